"""A small GPT that trains in about 10 minutes on a 2-core CPU, on the built-in corpus
(python prepare.py --dataset=hey-bob): GPT-2 with rotary position embeddings, dropout 0.2,
learning rate 3e-3 and weight decay 0.3 (0.8% better than 2e-3 and 0.1 on two seeds).
Of the five modded-nanogpt changes tried, only rotary embeddings helped at equal time on this
data; RMSNorm, ReLU^2, QK-norm and zero-initialised projections did not (docs/experiments.md)."""
model = "gpt"
data_dir = "data/hey-bob"
out_dir = "out-gpt-cpu"
block_size = 128
n_layer = 4
n_head = 4
n_embd = 128
pos_emb = "rope"
norm = "layernorm"
mlp_act = "gelu"
qk_norm = False
zero_init_proj = False
dropout = 0.2
batch_size = 32
max_iters = 1850  # about 350 ms each on 2 cores (GPT-2's 2,000 take as long)
learning_rate = 3e-3
min_lr = 3e-4
warmup_iters = 100
lr_decay_iters = 1850
weight_decay = 0.3
eval_interval = 250
eval_iters = 20
log_interval = 50
device = "cpu"
