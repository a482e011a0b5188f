"""The plain GPT-2 recipe (nanoGPT's: learned positions, LayerNorm, GELU, tied head, AdamW with
cosine decay) at the size and 10-minute CPU budget of gpt_cpu.py: the baseline it is measured against."""
model = "gpt"
data_dir = "data/hey-bob"
out_dir = "out-gpt2-cpu"
block_size = 128
n_layer = 4
n_head = 4
n_embd = 128
pos_emb = "learned"
norm = "layernorm"
mlp_act = "gelu"
qk_norm = False
zero_init_proj = False
dropout = 0.1
batch_size = 32
max_iters = 2000  # about 285 ms each on 2 cores
learning_rate = 2e-3
min_lr = 2e-4
warmup_iters = 100
lr_decay_iters = 2000
weight_decay = 0.1
eval_interval = 250
eval_iters = 20
log_interval = 50
device = "cpu"
