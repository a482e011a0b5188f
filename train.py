"""
Train the GPT or the MLP language model on the token files that prepare.py wrote.

    python train.py config/gpt_cpu.py                       # one CPU
    python train.py config/gpt.py --batch_size=32           # a GPU, with an override
    torchrun --standalone --nproc_per_node=8 train.py config/gpt.py   # 8 GPUs, data-parallel
    python train.py config/gpt_cpu.py --init_from=resume --eval_only=True   # full-validation eval

Several nodes: run on each node
    torchrun --nnodes=2 --node_rank=R --nproc_per_node=8 --rdzv_backend=c10d \
             --rdzv_endpoint=HOST:29500 train.py config/gpt.py

The loop, in order: config -> data checks -> model -> AdamW -> for each iteration:
evaluate now and then, save a checkpoint when val improves, one optimizer step
made of gradient_accumulation_steps micro-batches, log.
"""

import contextlib
import dataclasses
import json
import math
import os
import random
import shutil
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from checkpoint import (CHECKPOINT_VERSION, MODELS, build_model, file_sha256, load_checkpoint,
                        model_from_checkpoint, save_checkpoint)
from cli import UserError, atomic_path, parse_config, run_main

# -----------------------------------------------------------------------------
# every option, with its default; config files and --key=value override these

DEFAULTS = dict(
    # I/O
    data_dir="data/bob-dylan",  # what prepare.py wrote
    out_dir="out",
    init_from="scratch",  # 'scratch' or 'resume' (from out_dir/ckpt.pt)
    eval_only=False,  # with init_from='resume': evaluate on the whole val split and exit
    eval_interval=250,
    eval_iters=50,  # batches per split for the quick loss estimate during training
    log_interval=10,
    always_save_checkpoint=False,  # else only when val loss improves
    # model: 'gpt' or 'mlp'; each takes the keys its config has
    model="gpt",
    block_size=128,  # context length, in tokens
    n_layer=4,
    n_head=4,
    n_embd=128,
    n_hidden=512,  # MLP hidden width
    dropout=0.0,
    bias=False,
    attention="sdpa",  # 'sdpa' (fused kernel) or 'manual' (written out, for teaching)
    pos_emb="learned",  # 'learned' (GPT-2) or 'rope'
    norm="layernorm",  # 'layernorm' (GPT-2) or 'rmsnorm'
    mlp_act="gelu",  # 'gelu' (GPT-2) or 'relu2'
    qk_norm=False,
    tie_weights=True,
    zero_init_proj=False,
    direct=False,  # MLP: the paper's direct input-to-output connection
    # optimizer: AdamW
    batch_size=32,  # sequences per micro-batch, per process
    gradient_accumulation_steps=1,  # micro-batches per step, summed over all processes
    max_iters=2000,
    learning_rate=1e-3,
    weight_decay=0.1,
    beta1=0.9,
    beta2=0.99,
    grad_clip=1.0,  # 0 disables clipping
    # learning rate: linear warmup, then cosine decay to min_lr at lr_decay_iters
    decay_lr=True,
    warmup_iters=100,
    lr_decay_iters=2000,
    min_lr=1e-4,
    # system
    device="auto",  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', 'cuda:1', 'mps'
    dtype="auto",  # 'auto' (bfloat16 on CUDA if supported, else float16; float32 elsewhere), 'float32', 'bfloat16', 'float16'
    compile=None,  # torch.compile the model: None (on for CUDA, off elsewhere), True or False
    seed=1337,
)

GPT_ONLY = {"n_layer", "n_head", "bias", "attention", "pos_emb", "norm", "mlp_act", "qk_norm",
            "tie_weights", "zero_init_proj"}


def get_config(argv):
    cfg = parse_config(DEFAULTS, argv)
    choices = dict(model=tuple(MODELS), init_from=("scratch", "resume"),
                   dtype=("auto", "float32", "bfloat16", "float16"), compile=(None, True, False))
    for key, allowed in choices.items():
        if cfg[key] not in allowed:
            raise UserError(f"option {key}={cfg[key]!r} is not one of {', '.join(map(repr, allowed))}")
    positive = ("batch_size", "gradient_accumulation_steps", "block_size", "eval_interval", "eval_iters",
                "log_interval")
    for key in positive:
        if cfg[key] < 1:
            raise UserError(f"option {key} must be at least 1, got {cfg[key]}")
    if cfg["max_iters"] < 0 or cfg["learning_rate"] <= 0:
        raise UserError("max_iters must be >= 0 and learning_rate > 0")
    if cfg["eval_only"] and cfg["init_from"] != "resume":
        raise UserError("eval_only=True evaluates a trained checkpoint: add --init_from=resume")
    return cfg


def model_config(cfg, vocab_size):
    """The model config dict: the training config's keys that the chosen model's config has."""
    fields = {f.name for f in dataclasses.fields(MODELS[cfg["model"]][1])}
    config = {k: v for k, v in cfg.items() if k in fields}
    config["vocab_size"] = vocab_size
    return config


# -----------------------------------------------------------------------------
# learning rate schedule

def get_lr(it, cfg):
    """Linear warmup from lr/warmup to lr, then cosine decay to min_lr at lr_decay_iters, then min_lr."""
    lr, min_lr = cfg["learning_rate"], cfg["min_lr"]
    if not cfg["decay_lr"]:
        return lr
    if it < cfg["warmup_iters"]:
        return lr * (it + 1) / (cfg["warmup_iters"] + 1)  # > 0 at step 0
    if it >= cfg["lr_decay_iters"]:
        return min_lr
    progress = (it - cfg["warmup_iters"]) / max(1, cfg["lr_decay_iters"] - cfg["warmup_iters"])
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)


# -----------------------------------------------------------------------------
# data: flat uint16 token streams, memory-mapped

def load_meta(data_dir):
    meta_path = os.path.join(data_dir, "meta.json")
    if not os.path.exists(meta_path):
        raise UserError(f"no prepared data in {data_dir}: run `python prepare.py` first "
                        f"(or point --data_dir at the folder prepare.py wrote)")
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        vocab_size = int(meta["vocab_size"])
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{meta_path} is damaged: run `python prepare.py --force` to rebuild the data") from None
    for split in ("train", "val"):
        if not os.path.exists(os.path.join(data_dir, f"{split}.bin")):
            raise UserError(f"{data_dir}/{split}.bin is missing: run `python prepare.py --force` to rebuild the data")
    if not 0 < vocab_size <= 65536:
        raise UserError(f"{meta_path} says vocab_size={vocab_size}, which does not fit uint16 tokens")
    return meta


def bytes_per_token(meta, split="val"):
    return meta["splits"][split]["bytes_per_token"]


def open_split(data_dir, split):
    # a fresh memmap each time: a long-lived one keeps every page it touched resident
    return np.memmap(os.path.join(data_dir, f"{split}.bin"), dtype=np.uint16, mode="r")


def check_split_sizes(data_dir, block_size):
    for split in ("train", "val"):
        n = len(open_split(data_dir, split))
        if n < block_size + 2:
            raise UserError(f"{data_dir}/{split}.bin has only {n} tokens, fewer than block_size+2={block_size + 2}: "
                            f"prepare more songs or lower --block_size")


def get_batch(data, ix, block_size, device):
    """Windows of block_size+1 tokens starting at ix: inputs x and next-token targets y, each (len(ix), block_size)."""
    x = torch.from_numpy(np.stack([data[i:i + block_size] for i in ix]).astype(np.int64))
    y = torch.from_numpy(np.stack([data[i + 1:i + 1 + block_size] for i in ix]).astype(np.int64))
    if device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)


def draw_offsets(rng, n_tokens, block_size, micro_steps, batch_size):
    """Start offsets for one optimizer step, (micro_steps, batch_size): the same on every rank, each takes its rows."""
    return rng.integers(0, n_tokens - block_size - 1, size=(micro_steps, batch_size))


# -----------------------------------------------------------------------------
# evaluation

@torch.no_grad()
def estimate_loss(model, cfg, device, ctx):
    """Mean loss over eval_iters random batches of each split (fixed batches: the same at every eval)."""
    model.eval()
    out = {}
    for split in ("train", "val"):
        rng = np.random.default_rng([cfg["seed"], 1])
        data = open_split(cfg["data_dir"], split)
        losses = []
        for _ in range(cfg["eval_iters"]):
            ix = draw_offsets(rng, len(data), cfg["block_size"], 1, cfg["batch_size"])[0]
            x, y = get_batch(data, ix, cfg["block_size"], device)
            with ctx:
                _, loss = model(x, y)
            losses.append(loss.item())
        out[split] = float(np.mean(losses))
    model.train()
    return out


@torch.no_grad()
def evaluate_full(model, data, block_size, batch_size, device, ctx):
    """Mean loss over every token of data, in consecutive non-overlapping windows of block_size.

    Each token after the first is predicted exactly once, from the tokens before it in its window.
    """
    model.eval()
    n_targets = len(data) - 1
    starts = list(range(0, n_targets, block_size))
    total, count = 0.0, 0
    for b in range(0, len(starts), batch_size):
        rows = starts[b:b + batch_size]
        x = torch.zeros(len(rows), block_size, dtype=torch.int64)
        y = torch.full((len(rows), block_size), -1, dtype=torch.int64)  # -1: no target (the last window is short)
        for r, s in enumerate(rows):
            n = min(block_size, n_targets - s)
            x[r, :n] = torch.from_numpy(data[s:s + n].astype(np.int64))
            y[r, :n] = torch.from_numpy(data[s + 1:s + 1 + n].astype(np.int64))
        x, y = x.to(device), y.to(device)
        with ctx:
            logits, _ = model(x, y)
        total += F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=-1, reduction="sum").item()
        count += int((y != -1).sum())
    model.train()
    return total / count


def report_full_eval(loss, meta):
    bpb = loss / math.log(2) / bytes_per_token(meta)
    return dict(val_loss=loss, val_ppl=math.exp(loss), val_bpb=bpb)


# -----------------------------------------------------------------------------
# system: device, precision, processes

def pick_device(requested):
    """'auto' -> cuda, then mps, then cpu; a device that is not there is a UserError."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device={requested!r} asks for CUDA, but this torch sees no CUDA GPU: "
                        f"use --device=cpu, or install a CUDA build of torch")
    if requested == "mps" and not torch.backends.mps.is_available():
        raise UserError("device='mps' asks for Apple's GPU, which is not available here: use --device=cpu")
    try:
        return torch.device(requested)
    except RuntimeError:
        raise UserError(f"device={requested!r} is not a device: use auto, cpu, cuda, cuda:N or mps") from None


def setup_device(cfg):
    """Returns (device, rank, world_size); under torchrun, joins the process group (nccl on CUDA, gloo on CPU)."""
    device = pick_device(cfg["device"])
    if not ("RANK" in os.environ and "WORLD_SIZE" in os.environ):
        return device, 0, 1
    rank, local_rank, world = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"])
    if device.type == "cuda":
        device = torch.device(f"cuda:{local_rank}")
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device, rank, world


def setup_precision(cfg, device):
    """Returns (autocast context, GradScaler, dtype name)."""
    dtype = cfg["dtype"]
    if dtype == "auto":
        if device.type == "cuda":
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        else:
            dtype = "float32"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # float32 matmuls on tensor cores
        torch.backends.cudnn.allow_tf32 = True
    ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    ctx = contextlib.nullcontext() if dtype == "float32" else torch.autocast(device.type, dtype=ptdtype)
    # float16 needs loss scaling to keep small gradients from underflowing; bfloat16 does not
    scaler = torch.amp.GradScaler(device.type, enabled=(dtype == "float16"))
    return ctx, scaler, dtype


def rng_state(batch_rng):
    state = dict(python=random.getstate(), numpy=batch_rng.bit_generator.state, torch=torch.get_rng_state())
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state, batch_rng):
    random.setstate(state["python"])
    batch_rng.bit_generator.state = state["numpy"]
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -----------------------------------------------------------------------------
# logging: console, metrics.jsonl, loss.png

def log_metrics(out_dir, record):
    with open(os.path.join(out_dir, "metrics.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def plot_losses(out_dir):
    """out_dir/loss.png: train and val loss against iteration, from metrics.jsonl."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(os.path.join(out_dir, "metrics.jsonl"), encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    train = [(r["iter"], r["loss"]) for r in records if r["kind"] == "train"]
    evals = [(r["iter"], r["train_loss"], r["val_loss"]) for r in records if r["kind"] == "eval"]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train), color="tab:blue", alpha=0.35, lw=1, label="train (batch)")
    if evals:
        its, tr, va = zip(*evals)
        ax.plot(its, tr, "o-", color="tab:blue", label="train (estimate)")
        ax.plot(its, va, "o-", color="tab:orange", label="val (estimate)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = os.path.join(out_dir, "loss.png")
    tmp = path + ".tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path


# -----------------------------------------------------------------------------
# the training run

def train(cfg):
    device, rank, world = setup_device(cfg)
    master = rank == 0
    try:
        result = _train(cfg, device, rank, world, master)
        if world > 1:
            # wait for rank 0's last evaluation and files: a rank that tears its connections
            # down while another still holds them can abort the whole job (seen with gloo)
            dist.barrier()
        return result
    finally:
        if world > 1:
            dist.destroy_process_group()


def _train(cfg, device, rank, world, master):
    data_dir, out_dir = cfg["data_dir"], cfg["out_dir"]
    meta = load_meta(data_dir)
    vocab_size = int(meta["vocab_size"])
    tokenizer_sha = file_sha256(os.path.join(data_dir, "tokenizer.model"))
    ckpt_path = os.path.join(out_dir, "ckpt.pt")
    if cfg["gradient_accumulation_steps"] % world:
        raise UserError(f"gradient_accumulation_steps={cfg['gradient_accumulation_steps']} must be a multiple "
                        f"of the number of processes ({world})")
    local_accum = cfg["gradient_accumulation_steps"] // world

    torch.manual_seed(cfg["seed"])
    random.seed(cfg["seed"])
    batch_rng = np.random.default_rng(cfg["seed"])  # same stream on every rank: each takes its own rows
    ctx, scaler, dtype = setup_precision(cfg, device)

    # the model, fresh or from the checkpoint
    ckpt = None
    if cfg["init_from"] == "resume":
        ckpt = load_checkpoint(ckpt_path, map_location=device)
        if ckpt.get("tokenizer_sha256") != tokenizer_sha or ckpt["model_config"]["vocab_size"] != vocab_size:
            raise UserError(f"{ckpt_path} was trained on data with another tokenizer than {data_dir}: "
                            f"point --data_dir at the data it was trained on, or train from scratch")
        if ckpt["model_kind"] != cfg["model"]:
            raise UserError(f"{ckpt_path} holds a {ckpt['model_kind']} model, but model={cfg['model']!r}: "
                            f"use --model={ckpt['model_kind']}")
        model = model_from_checkpoint(ckpt)
        cfg["block_size"] = model.config.block_size
    else:
        model = build_model(cfg["model"], model_config(cfg, vocab_size))
    check_split_sizes(data_dir, cfg["block_size"])
    model.to(device)

    if cfg["eval_only"]:
        loss = evaluate_full(model, open_split(data_dir, "val"), cfg["block_size"], cfg["batch_size"], device, ctx)
        result = report_full_eval(loss, meta)
        if master:
            print(f"full validation ({len(open_split(data_dir, 'val')):,} tokens, windows of {cfg['block_size']}): "
                  f"loss {result['val_loss']:.4f}, perplexity {result['val_ppl']:.2f}, "
                  f"bits per byte {result['val_bpb']:.4f}")
        return result

    optimizer = model.configure_optimizers(cfg["weight_decay"], cfg["learning_rate"],
                                           (cfg["beta1"], cfg["beta2"]), device.type)
    iter_num, best_val_loss = 0, float("inf")
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"], batch_rng)
        iter_num, best_val_loss = ckpt["iter"], ckpt["best_val_loss"]
        ckpt = None  # free the memory

    raw_model = model  # what is saved and evaluated: never the compiled or DDP wrapper
    use_compile = device.type == "cuda" if cfg["compile"] is None else cfg["compile"]
    if use_compile:
        model = torch.compile(model)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    tokens_per_iter = cfg["gradient_accumulation_steps"] * cfg["batch_size"] * cfg["block_size"]
    if master:
        os.makedirs(out_dir, exist_ok=True)
        if cfg["init_from"] == "scratch":
            open(os.path.join(out_dir, "metrics.jsonl"), "w").close()
            if os.path.exists(ckpt_path):
                print(f"note: starting from scratch; {ckpt_path} will be replaced at the first save")
        for name in ("tokenizer.model", "tokenizer.vocab", "meta.json"):  # so that sample.py needs only out_dir
            with atomic_path(os.path.join(out_dir, name)) as tmp:
                shutil.copyfile(os.path.join(data_dir, name), tmp)
        print(json.dumps(cfg, indent=1))
        print(f"{cfg['model']}: {raw_model.num_params() / 1e6:.2f}M parameters, {device} {dtype}"
              f"{', compiled' if use_compile else ''}, {world} process(es), {tokens_per_iter:,} tokens per iteration")

    def save(state_rng):
        save_checkpoint(dict(
            format_version=CHECKPOINT_VERSION, model=raw_model.state_dict(), model_kind=cfg["model"],
            model_config=dataclasses.asdict(raw_model.config), optimizer=optimizer.state_dict(),
            scaler=scaler.state_dict() if scaler.is_enabled() else {}, train_config=cfg, iter=iter_num,
            best_val_loss=best_val_loss, rng=state_rng, tokenizer_sha256=tokenizer_sha), ckpt_path)

    train_data_len = len(open_split(data_dir, "train"))
    progress = None
    if master:
        from tqdm import tqdm
        progress = tqdm(total=cfg["max_iters"], initial=iter_num, unit="it", dynamic_ncols=True, leave=False,
                        disable=None)  # None: no bar when stderr is not a terminal
    try:
        t0, timed = time.time(), 0  # the clock for ms/iter, restarted after each log and eval
        step_rng = rng_state(batch_rng)  # the state at the start of the current step: what a save records
        while True:
            lr = get_lr(iter_num, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr

            if master and (iter_num % cfg["eval_interval"] == 0 or iter_num == cfg["max_iters"]):
                losses = estimate_loss(raw_model, cfg, device, ctx)
                val_bpb = losses["val"] / math.log(2) / bytes_per_token(meta)
                progress.write(f"iter {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}, "
                               f"val {val_bpb:.4f} bits/byte")
                log_metrics(out_dir, dict(kind="eval", iter=iter_num, train_loss=losses["train"],
                                          val_loss=losses["val"], val_bpb=val_bpb, lr=lr, time=time.time()))
                improved = losses["val"] < best_val_loss
                best_val_loss = min(best_val_loss, losses["val"])
                if (improved or cfg["always_save_checkpoint"]) and iter_num > 0:
                    save(step_rng)
                t0, timed = time.time(), 0
            if iter_num >= cfg["max_iters"]:
                break

            # one optimizer step: local_accum micro-batches on each of the world processes
            offsets = draw_offsets(batch_rng, train_data_len, cfg["block_size"],
                                   cfg["gradient_accumulation_steps"], cfg["batch_size"])
            data = open_split(data_dir, "train")
            for micro in range(local_accum):
                x, y = get_batch(data, offsets[rank * local_accum + micro], cfg["block_size"], device)
                # sync gradients across processes on the last micro-step only
                sync = world == 1 or micro == local_accum - 1
                with (contextlib.nullcontext() if sync else model.no_sync()), ctx:
                    _, loss = model(x, y)
                    loss = loss / local_accum  # so that the accumulated gradient is the mean
                scaler.scale(loss).backward()
            if cfg["grad_clip"] > 0:
                scaler.unscale_(optimizer)
                grad_norm = torch.nn.utils.clip_grad_norm_(raw_model.parameters(), cfg["grad_clip"]).item()
            else:
                grad_norm = float("nan")
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            iter_num += 1
            timed += 1
            step_rng = rng_state(batch_rng)

            lossf = loss.item() * local_accum
            if not math.isfinite(lossf):
                raise UserError(f"the loss became {lossf} at iteration {iter_num}: training stopped and the last good "
                                f"checkpoint in {ckpt_path} is kept; lower learning_rate or use dtype=float32")
            if master:
                progress.update(1)
                if iter_num % cfg["log_interval"] == 0 or iter_num == cfg["max_iters"]:
                    dt = (time.time() - t0) / timed
                    t0, timed = time.time(), 0
                    tok_s = tokens_per_iter / dt
                    mfu = ""
                    record = dict(kind="train", iter=iter_num, loss=lossf, lr=lr, grad_norm=grad_norm,
                                  ms_per_iter=dt * 1000, tokens_per_s=tok_s)
                    if device.type == "cuda" and hasattr(raw_model, "estimate_mfu"):
                        record["mfu"] = raw_model.estimate_mfu(tokens_per_iter // world, dt)
                        mfu = f", mfu {record['mfu'] * 100:.1f}%"
                    log_metrics(out_dir, record)
                    progress.write(f"iter {iter_num}: loss {lossf:.4f}, lr {lr:.2e}, grad norm {grad_norm:.3f}, "
                                   f"{dt * 1000:.0f} ms/iter, {tok_s:,.0f} tok/s{mfu}")
    except KeyboardInterrupt:
        if master:
            progress.close()
            save(step_rng)  # the state after the last whole step: resume redoes the interrupted one
            print(f"interrupted at iteration {iter_num}: saved {ckpt_path}; "
                  f"continue with --init_from=resume --out_dir={out_dir}", file=sys.stderr)
        raise

    if master:
        progress.close()
        final = report_full_eval(evaluate_full(raw_model, open_split(data_dir, "val"), cfg["block_size"],
                                               cfg["batch_size"], device, ctx), meta)
        log_metrics(out_dir, dict(kind="full_eval", iter=iter_num, **final))
        plot = plot_losses(out_dir)
        print(f"full validation of the final model: loss {final['val_loss']:.4f}, "
              f"{final['val_bpb']:.4f} bits/byte")
        print(f"done: checkpoint {ckpt_path}, log {os.path.join(out_dir, 'metrics.jsonl')}, plot {plot}; "
              f"sample with: python sample.py --out_dir={out_dir}")
        return final
    return None


def main(argv=None):
    cfg = get_config(sys.argv[1:] if argv is None else argv)
    return train(cfg)


if __name__ == "__main__":
    run_main(main)
