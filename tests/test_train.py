import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import checkpoint
import prepare
import train
from cli import UserError, parse_config, run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_GPT = ["--model=gpt", "--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=16", "--batch_size=4",
            "--eval_iters=2", "--log_interval=5", "--device=cpu", "--warmup_iters=2", "--lr_decay_iters=40"]
TINY_MLP = ["--model=mlp", "--block_size=8", "--n_embd=16", "--n_hidden=64", "--batch_size=8",
            "--eval_iters=2", "--log_interval=5", "--device=cpu", "--warmup_iters=2", "--lr_decay_iters=40"]


def run(data_dir, out_dir, *args):
    return train.main([f"--data_dir={data_dir}", f"--out_dir={out_dir}", *args])


def read_metrics(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# --- configuration -------------------------------------------------------------

def test_config_file_then_overrides(tmp_path):
    path = tmp_path / "c.py"
    path.write_text('"""doc"""\nmodel = "mlp"\nn_embd = 48\nlearning_rate = 3e-4\n', encoding="utf-8")
    cfg = train.get_config([str(path), "--n_embd=96", "--dropout=0", "--out_dir=x", "--compile=False"])
    assert (cfg["model"], cfg["n_embd"], cfg["learning_rate"], cfg["out_dir"]) == ("mlp", 96, 3e-4, "x")
    assert cfg["dropout"] == 0.0 and isinstance(cfg["dropout"], float)  # an int is a fine float
    assert cfg["compile"] is False and cfg["batch_size"] == train.DEFAULTS["batch_size"]


@pytest.mark.parametrize("args, message", [
    (["--learning_rat=1e-3"], r"unknown option 'learning_rat' in the command line \(did you mean 'learning_rate'"),
    (["--n_layer=2.5"], r"option 'n_layer' in the command line must be of type int, got 2.5"),
    (["--bias=1"], r"'bias' .* must be of type bool"),
    (["--batch_size"], r"needs a value"),
    (["--model=rnn"], r"model='rnn' is not one of"),
    (["--compile=maybe"], r"compile='maybe' is not one of"),
    (["--eval_only=True"], r"add --init_from=resume"),
])
def test_config_errors(args, message):
    with pytest.raises(UserError, match=message):
        train.get_config(args)


def test_config_file_errors(tmp_path):
    (tmp_path / "typo.py").write_text("n_layers = 3\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"unknown option 'n_layers' in config file .*typo.py \(did you mean 'n_layer'"):
        train.get_config([str(tmp_path / "typo.py")])
    (tmp_path / "code.py").write_text("import os\n", encoding="utf-8")
    with pytest.raises(UserError, match="line 1: only `name = value`"):
        train.get_config([str(tmp_path / "code.py")])
    with pytest.raises(UserError, match="cannot read config file"):
        train.get_config([str(tmp_path / "missing.py")])


def test_shipped_configs_parse():
    names = sorted(os.listdir(os.path.join(ROOT, "config")))
    assert {"gpt.py", "gpt_cpu.py", "gpt2_cpu.py", "mlp.py", "mlp_cpu.py"} <= set(names)
    for name in names:
        cfg = train.get_config([os.path.join(ROOT, "config", name)])
        train.model_config(cfg, 513)  # and the model's own checks accept it
        checkpoint.build_model(cfg["model"], train.model_config(cfg, 513))


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.get_config(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(f"--{key}=" in out for key in train.DEFAULTS)


def test_a_failed_compile_ends_in_one_sentence(capsys):
    """run_main turns a failed compile backend (no C++ compiler, say) into advice; other errors stay tracebacks."""
    from torch._inductor.exc import InductorError

    def failing_compile():
        raise InductorError(RuntimeError("C++ compile error\nlots of compiler output"), None)

    with pytest.raises(SystemExit) as exit_info:
        run_main(failing_compile)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RuntimeError: C++ compile error" in err and "--compile=False" in err
    with pytest.raises(ZeroDivisionError):
        run_main(lambda: 1 / 0)
    with pytest.raises(torch._dynamo.exc.Unsupported):  # a tracing problem is not a missing compiler
        run_main(lambda: torch.compile(lambda x: torch._dynamo.graph_break() or x, fullgraph=True)(torch.ones(1)))


# --- learning rate schedule ----------------------------------------------------

def test_lr_schedule():
    cfg = dict(train.DEFAULTS, learning_rate=1.0, min_lr=0.1, warmup_iters=10, lr_decay_iters=110)
    assert train.get_lr(0, cfg) == pytest.approx(1 / 11)  # > 0 at the first step
    assert train.get_lr(10, cfg) == pytest.approx(1.0)  # end of warmup: the peak
    assert train.get_lr(60, cfg) == pytest.approx(0.55)  # half way through the cosine
    assert train.get_lr(110, cfg) == pytest.approx(0.1)
    assert train.get_lr(500, cfg) == pytest.approx(0.1)
    lrs = [train.get_lr(i, cfg) for i in range(120)]
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:11])) and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert train.get_lr(77, dict(cfg, decay_lr=False)) == 1.0


# --- training runs --------------------------------------------------------------

@pytest.mark.parametrize("tiny", [TINY_GPT, TINY_MLP], ids=["gpt", "mlp"])
def test_short_run_learns_and_writes_everything(data_dir, tmp_path, tiny):
    out = tmp_path / "out"
    result = run(data_dir, out, *tiny, "--max_iters=40", "--eval_interval=20", "--learning_rate=3e-3")
    evals = [r for r in read_metrics(out) if r["kind"] == "eval"]
    assert [r["iter"] for r in evals] == [0, 20, 40]
    assert evals[-1]["train_loss"] < evals[0]["train_loss"] - 0.5
    assert evals[0]["train_loss"] == pytest.approx(math.log(301), abs=0.1)
    for name in ("ckpt.pt", "metrics.jsonl", "loss.png", "tokenizer.model", "meta.json"):
        assert (out / name).exists()
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sum(r["kind"] == "train" for r in read_metrics(out)) == 8
    assert result["val_bpb"] == pytest.approx(result["val_loss"] / math.log(2) / train.bytes_per_token(
        train.load_meta(data_dir)))
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    assert ckpt["iter"] == 40 and ckpt["best_val_loss"] == pytest.approx(evals[-1]["val_loss"])
    assert not any(k.startswith("_orig_mod.") for k in ckpt["model"])
    assert ckpt["train_config"]["max_iters"] == 40 and ckpt["model_config"]["vocab_size"] == 301


def test_eval_only_is_the_full_validation(data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    run(data_dir, out, *TINY_MLP, "--max_iters=10", "--eval_interval=10")
    capsys.readouterr()
    a = run(data_dir, out, *TINY_MLP, "--init_from=resume", "--eval_only=True")
    b = run(data_dir, out, *TINY_MLP, "--init_from=resume", "--eval_only=True", "--batch_size=3")
    assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-6)  # deterministic, batching aside
    assert "full validation" in capsys.readouterr().out
    assert a["val_ppl"] == pytest.approx(math.exp(a["val_loss"]))


def test_evaluate_full_predicts_every_token_once():
    data = np.arange(1, 40, dtype=np.uint16)  # 39 tokens: 38 targets, windows of 16, 16 and 6

    class Recorder(torch.nn.Module):
        targets = []

        def forward(self, x, y):
            self.targets.append(y[y != -1])
            # uniform logits over 64 tokens: every target costs ln 64
            return torch.zeros(*x.shape, 64), None

    model = Recorder()
    loss = train.evaluate_full(model, data, 16, 2, torch.device("cpu"), train.contextlib.nullcontext())
    assert torch.cat(model.targets).tolist() == list(range(2, 40))
    assert loss == pytest.approx(math.log(64))


def test_resume_is_exact(data_dir, tmp_path):
    args = [*TINY_GPT, "--dropout=0.1", "--eval_interval=5", "--always_save_checkpoint=True"]
    run(data_dir, tmp_path / "straight", *args, "--max_iters=12")
    run(data_dir, tmp_path / "split", *args, "--max_iters=6")
    run(data_dir, tmp_path / "split", *args, "--max_iters=12", "--init_from=resume")
    a = torch.load(tmp_path / "straight" / "ckpt.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "ckpt.pt", weights_only=True)
    assert a["iter"] == b["iter"] == 12
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=1e-6)
    # and the resumed run appended to the log rather than starting a new one
    assert [r["iter"] for r in read_metrics(tmp_path / "split") if r["kind"] == "eval"] == [0, 5, 6, 10, 12]


def test_best_val_loss_is_never_overwritten_by_a_worse_one(data_dir, tmp_path):
    out = tmp_path / "out"
    # a learning rate this high makes the model worse after it got better
    run(data_dir, out, *TINY_MLP, "--max_iters=30", "--eval_interval=5", "--learning_rate=0.5",
        "--always_save_checkpoint=True", "--warmup_iters=0", "--decay_lr=False")
    evals = [r["val_loss"] for r in read_metrics(out) if r["kind"] == "eval"]
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    assert ckpt["best_val_loss"] == pytest.approx(min(evals))


# --- checkpoints that never lose a run ------------------------------------------

def test_corrupt_and_foreign_checkpoints_are_refused(data_dir, tmp_path):
    out = tmp_path / "out"
    run(data_dir, out, *TINY_MLP, "--max_iters=5", "--eval_interval=5")
    path = out / "ckpt.pt"
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(UserError, match="not a readable checkpoint"):
        checkpoint.load_checkpoint(str(path))
    torch.save({"evil": checkpoint.UserError("pickled object")}, path)
    with pytest.raises(UserError, match="refused for safety"):
        checkpoint.load_checkpoint(str(path))
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(UserError, match="not a checkpoint written by this project"):
        checkpoint.load_checkpoint(str(path))
    path.write_bytes(good)
    ckpt = checkpoint.load_checkpoint(str(path))
    ckpt["format_version"] = 99
    torch.save(ckpt, path)
    with pytest.raises(UserError, match="format 99"):
        run(data_dir, out, *TINY_MLP, "--max_iters=10", "--init_from=resume")


def test_kill_during_save_keeps_the_old_checkpoint(data_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    run(data_dir, out, *TINY_MLP, "--max_iters=5", "--eval_interval=5")
    before = (out / "ckpt.pt").read_bytes()

    def dying_save(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(checkpoint.torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        run(data_dir, out, *TINY_MLP, "--max_iters=10", "--eval_interval=5", "--init_from=resume")
    assert (out / "ckpt.pt").read_bytes() == before
    assert checkpoint.load_checkpoint(str(out / "ckpt.pt"))["iter"] == 5
    assert sorted(os.listdir(out)) == ["ckpt.pt", "loss.png", "meta.json", "metrics.jsonl",
                                       "tokenizer.model", "tokenizer.vocab"]  # no temporary file left


def test_ctrl_c_saves_the_current_state(data_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    calls = {"n": 0}
    real_get_batch = train.get_batch

    def interrupted(*args):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return real_get_batch(*args)

    monkeypatch.setattr(train, "get_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(data_dir, out, *TINY_MLP, "--max_iters=100", "--eval_interval=1000", "--eval_iters=1")
    # eval at 0 drew 2 batches; steps 1..5 drew 5 more; the 6th step was interrupted
    assert checkpoint.load_checkpoint(str(out / "ckpt.pt"))["iter"] == 5


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    run(data_dir, out, *TINY_MLP, "--max_iters=5", "--eval_interval=5")
    before = (out / "ckpt.pt").read_bytes()
    import model_mlp
    monkeypatch.setattr(model_mlp, "lm_loss", lambda logits, targets: logits.sum() * float("nan"))
    with pytest.raises(UserError, match=r"the loss became nan at iteration 6: .* last good checkpoint"):
        run(data_dir, out, *TINY_MLP, "--max_iters=10", "--eval_interval=100", "--init_from=resume")
    assert (out / "ckpt.pt").read_bytes() == before


# --- bad input ------------------------------------------------------------------

def test_missing_data_folder(tmp_path):
    with pytest.raises(UserError, match=r"no prepared data in .*nowhere: run `python prepare.py` first"):
        run(tmp_path / "nowhere", tmp_path / "out", *TINY_MLP)


def test_resume_on_data_with_another_tokenizer(data_dir, tmp_path):
    out = tmp_path / "out"
    run(data_dir, out, *TINY_MLP, "--max_iters=5", "--eval_interval=5")
    other = tmp_path / "other"
    prepare.main(["--dataset=hey-bob", "--max_songs=40", "--vocab_size=290", f"--out_dir={other}"])
    with pytest.raises(UserError, match="trained on data with another tokenizer"):
        run(other, out, *TINY_MLP, "--max_iters=10", "--init_from=resume")
    with pytest.raises(UserError, match="holds a mlp model"):
        run(data_dir, out, *TINY_GPT, "--max_iters=10", "--init_from=resume")


def test_resume_without_checkpoint(data_dir, tmp_path):
    with pytest.raises(UserError, match="no checkpoint at"):
        run(data_dir, tmp_path / "empty", *TINY_MLP, "--init_from=resume")


def test_cuda_asked_for_but_absent(data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="asks for CUDA, but this torch sees no CUDA GPU: use --device=cpu"):
        run(data_dir, tmp_path / "out", *TINY_MLP, "--device=cuda")


def test_script_prints_one_line_not_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "train.py", "--n_layers=3"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("error: unknown option 'n_layers'")


# --- CPU twins of the GPU paths ---------------------------------------------------

def test_bfloat16_autocast_on_cpu(data_dir, tmp_path):
    result = run(data_dir, tmp_path / "out", *TINY_GPT, "--max_iters=5", "--eval_interval=5", "--dtype=bfloat16")
    assert math.isfinite(result["val_loss"])


def test_compile_on_cpu_saves_the_plain_module(data_dir, tmp_path):
    out = tmp_path / "out"
    run(data_dir, out, *TINY_MLP, "--max_iters=3", "--eval_interval=3", "--compile=True")
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    assert ckpt["model"].keys() == checkpoint.build_model("mlp", ckpt["model_config"]).state_dict().keys()


def test_two_processes_match_one_with_twice_the_accumulation(data_dir, tmp_path):
    """DDP over gloo: 2 ranks x 1 micro-batch each == 1 process x 2 micro-batches, on the same batches.

    The two differ only in the order of float32 additions (all-reduce vs accumulation), ~1e-7 relative
    per step; AdamW divides by sqrt(v), so after 6 steps the weights agree to well within 1e-5.
    """
    args = [*TINY_GPT, "--max_iters=6", "--eval_interval=6", "--gradient_accumulation_steps=2",
            "--always_save_checkpoint=True"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "train.py", f"--data_dir={data_dir}", f"--out_dir={tmp_path / 'ddp'}", *args],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es)" in proc.stdout
    run(data_dir, tmp_path / "single", *args)
    a = torch.load(tmp_path / "ddp" / "ckpt.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "single" / "ckpt.pt", weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-5)
