"""The seed notebook's MLP and recipe: context 32, 64-d embeddings, 512 hidden units,
AdamW at a constant 1e-3 (PyTorch's defaults otherwise), batch 64, 10,000 iterations,
on the Hugging Face Bob Dylan dataset. Unlike the seed, every position of a window is a target."""
model = "mlp"
data_dir = "data/bob-dylan"
out_dir = "out-mlp"
block_size = 32
n_embd = 64
n_hidden = 512
batch_size = 64
max_iters = 10000
learning_rate = 1e-3
decay_lr = False
weight_decay = 0.01
beta1 = 0.9
beta2 = 0.999
grad_clip = 0.0
eval_interval = 1000
eval_iters = 100
log_interval = 100
