"""
Benchmarks: figures, not tests. Run on a quiet machine; each figure is a median.

    python bench.py tokenizer   # BPE training and encoding: tokenizer.py vs the reference algorithm
    python bench.py train       # ms/iter, tokens/s, peak memory (and MFU on CUDA) per config
    python bench.py sample      # tokens/s generating 500 tokens, with and without the KV cache
    python bench.py all

Prints a table per part and writes bench.json (all parts that ran).
"""

import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

import torch

import prepare
import train
from checkpoint import build_model
from cli import UserError, atomic_path, first_line, parse_config, run_main
from lm import decoding_compile_args
from tokenizer import RegexTokenizer

ROOT = os.path.dirname(os.path.abspath(__file__))
PARTS = ("tokenizer", "train", "sample")


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def print_table(rows):
    keys = list(dict.fromkeys(k for r in rows for k in r))  # an error row has other keys
    cells = [[f"{r[k]:,.3g}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths)))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths)))


# -----------------------------------------------------------------------------
# tokenizer

def builtin_corpus():
    songs, _ = prepare.read_builtin()
    return "\n".join(songs)


def corpora():
    """The 565 KB built-in corpus, and a 3 MB one made of it in five letter cases and a half copy:
    the hub dataset is out of reach here, and case variants give it new chunks to learn from."""
    text = builtin_corpus()
    big = "\n".join([text, text.upper(), text.lower(), text.title(), text.swapcase(), text[: len(text) // 2]])
    return {"hey-bob 565KB": text, "variants 3MB": big}


def bench_tokenizer(repeats=3, ref_slice=20_000):
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from test_tokenizer import ref_encode, ref_train  # the straightforward minbpe algorithm

    rows = []
    for name, text in corpora().items():
        mb = len(text.encode("utf-8")) / 1e6
        tok = RegexTokenizer()
        train_s = median_time(lambda: tok.train(text, 512), repeats)
        encode_s = median_time(lambda: tok.encode_ordinary(text), repeats)
        # the reference is O(merges x bytes): time it on a slice and scale by the length
        piece = text[:ref_slice]
        scale = len(text) / len(piece)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            merges = ref_train(piece, 512)
            ref_train_s = (time.perf_counter() - t0) * scale
        ref_encode_s = median_time(lambda: ref_encode(piece, merges), 1) * scale
        rows.append(dict(corpus=name, MB=mb, train_s=train_s, ref_train_s_extrapolated=ref_train_s,
                         train_speedup=ref_train_s / train_s, encode_MB_s=mb / encode_s,
                         ref_encode_MB_s=mb / ref_encode_s, encode_speedup=ref_encode_s / encode_s))
    return rows


# -----------------------------------------------------------------------------
# training throughput

def config_of(name, **overrides):
    cfg = parse_config(train.DEFAULTS, [os.path.join(ROOT, "config", f"{name}.py")])
    cfg.update(overrides)
    return cfg


def train_configs(device):
    """(label, cfg) pairs: the CPU configs on a CPU, the GPU config on CUDA."""
    if device.type == "cuda":
        return [("gpt", config_of("gpt", device="cuda"))]
    return [(name, config_of(name)) for name in ("mlp_cpu", "gpt_cpu", "gpt2_cpu")]


def time_training(cfg, device, compile_model, warmup=5, iters=20):
    """Median seconds per optimizer step on random tokens (the data's content does not change the speed)."""
    torch.manual_seed(0)
    model = build_model(cfg["model"], train.model_config(cfg, 513)).to(device)
    optimizer = model.configure_optimizers(cfg["weight_decay"], cfg["learning_rate"],
                                           (cfg["beta1"], cfg["beta2"]), device.type)
    ctx, scaler, dtype = train.setup_precision(dict(cfg, dtype="auto"), device)
    step_model = torch.compile(model) if compile_model else model
    B, T, A = cfg["batch_size"], cfg["block_size"], cfg["gradient_accumulation_steps"]
    x = torch.randint(0, 513, (B, T), device=device)
    y = torch.randint(0, 513, (B, T), device=device)

    def step():
        for _ in range(A):
            with ctx:
                _, loss = step_model(x, y)
            scaler.scale(loss / A).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    dt = median_time(step, iters)
    tokens = A * B * T
    row = dict(ms_per_iter=dt * 1000, tokens_per_s=tokens / dt, params_M=model.num_params() / 1e6, dtype=dtype)
    if device.type == "cuda":
        row["peak_mem_MB"] = torch.cuda.max_memory_allocated() / 2**20
        if hasattr(model, "estimate_mfu"):
            row["mfu_pct"] = 100 * model.estimate_mfu(tokens, dt)
    else:
        row["peak_rss_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # this process, all of it
    return row


def error_row(e):
    """A table row for a measurement that failed (a compile needs a working C++ toolchain): report, don't stop."""
    return dict(error=f"{type(e).__name__}: {first_line(e, 80)}")


def _time_training_safely(args):
    try:
        return time_training(*args)
    except Exception as e:
        return error_row(e)


def bench_train(device):
    """Each measurement in a fresh process, so that peak memory is its own and compile caches don't carry over."""
    rows = []
    spawn = multiprocessing.get_context("spawn")
    for label, cfg in train_configs(device):
        for compile_model in (False, True):
            with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                row = pool.submit(_time_training_safely, (cfg, device, compile_model)).result()
            rows.append(dict(config=label, compile=compile_model, **row))
    return rows


# -----------------------------------------------------------------------------
# sampling throughput

def time_sampling(model, prompt, new_tokens, repeats):
    """Median seconds to generate new_tokens with the cache and without, timed in turns, round after
    round, so that a noisy machine slows both alike; round 0 warms up (and compiles)."""
    times = {True: [], False: []}
    for r in range(1 + repeats):
        for use_cache in times:
            t0 = time.perf_counter()
            for _ in model.generate_stream(prompt, new_tokens, top_k=5, use_cache=use_cache):
                pass
            if prompt.device.type == "cuda":
                torch.cuda.synchronize()
            if r:
                times[use_cache].append(time.perf_counter() - t0)
    return {use_cache: statistics.median(t) for use_cache, t in times.items()}


def bench_sample(device, new_tokens=500, repeats=5):
    """Tokens/s for new_tokens tokens with the KV cache and without it (recomputing the whole
    context each token, as nanoGPT's sample.py does), eager and compiled."""
    cfg = config_of("gpt_cpu")
    rows = []
    for compiled in (False, True):
        torch.manual_seed(0)
        # random weights sample as fast as trained ones; stop_token=None so every run makes new_tokens
        model = build_model("gpt", train.model_config(cfg, 513)).to(device).eval()
        if compiled:
            model.compile_decoding()  # the cached step, as sample.py --compile=True does
            # uncached: the same options, for every length (C++ wrapper code makes it ~5% faster on a CPU)
            model.last_logits = torch.compile(model.last_logits, **decoding_compile_args(model, dynamic=True))
        for n in (1, 8):
            row = dict(model=f"gpt_cpu (block {cfg['block_size']})", compiled=compiled, num_samples=n,
                       new_tokens=new_tokens)
            prompt = torch.full((n, 1), 512, dtype=torch.long, device=device)
            try:
                seconds = time_sampling(model, prompt, new_tokens, repeats)
            except Exception as e:
                rows.append(dict(row, **error_row(e)))
                continue
            speed = {use_cache: n * new_tokens / s for use_cache, s in seconds.items()}
            rows.append(dict(row, cached_tok_s=speed[True], uncached_tok_s=speed[False],
                             speedup=speed[True] / speed[False]))
        torch._dynamo.reset()
    return rows


# -----------------------------------------------------------------------------

def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parts = [a for a in argv if not a.startswith("--")] or ["all"]
    cfg = parse_config(dict(device="auto", out="bench.json"), [a for a in argv if a.startswith("--")])
    unknown = [p for p in parts if p not in PARTS + ("all",)]
    if unknown:
        raise UserError(f"unknown part {unknown[0]!r}: choose from {', '.join(PARTS)}, all")
    parts = PARTS if "all" in parts else parts
    device = train.pick_device(cfg["device"])
    results = dict(machine=dict(device=str(device), torch=torch.__version__, threads=torch.get_num_threads(),
                                cpu=platform.processor() or platform.machine(),
                                gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                                date=time.strftime("%Y-%m-%d %H:%M")))
    for part in parts:
        print(f"\n== {part} ({device}, {torch.get_num_threads()} threads)")
        rows = {"tokenizer": bench_tokenizer, "train": lambda: bench_train(device),
                "sample": lambda: bench_sample(device)}[part]()
        print_table(rows)
        results[part] = rows
    with atomic_path(cfg["out"]) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    print(f"\nwrote {cfg['out']}")


if __name__ == "__main__":
    run_main(main)
