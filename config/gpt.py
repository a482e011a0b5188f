"""The GPU GPT: about 10M parameters, context 256, on the Hugging Face Bob Dylan dataset
(python prepare.py). Minutes on one modern GPU, with bfloat16 autocast and torch.compile."""
model = "gpt"
data_dir = "data/bob-dylan"
out_dir = "out"
block_size = 256
n_layer = 6
n_head = 6
n_embd = 384
pos_emb = "rope"  # the one change that helped config/gpt_cpu.py (docs/experiments.md); unmeasured here
dropout = 0.2
batch_size = 64
max_iters = 5000
learning_rate = 1e-3
min_lr = 1e-4
warmup_iters = 200
lr_decay_iters = 5000
weight_decay = 0.1
eval_interval = 500
eval_iters = 100
log_interval = 50
