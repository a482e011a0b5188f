import io
import os
import subprocess
import sys

import pytest
import torch

import checkpoint
import sample
import train
from cli import UserError
from tokenizer import RegexTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {
    "gpt": ["--model=gpt", "--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=16"],
    "mlp": ["--model=mlp", "--block_size=8", "--n_embd=16", "--n_hidden=64"],
}


@pytest.fixture(scope="module", params=list(MODELS))
def out_dir(request, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    train.main([f"--data_dir={data_dir}", f"--out_dir={out}", *MODELS[request.param], "--batch_size=8",
                "--max_iters=30", "--eval_interval=30", "--eval_iters=1", "--device=cpu", "--learning_rate=3e-3"])
    return str(out)


def sample_texts(out_dir, *args):
    return sample.main([f"--out_dir={out_dir}", "--device=cpu", *args])


def test_same_seed_same_songs(out_dir, capsys):
    capsys.readouterr()
    a = sample_texts(out_dir, "--seed=7", "--max_new_tokens=40", "--num_samples=2")
    printed = capsys.readouterr().out
    b = sample_texts(out_dir, "--seed=7", "--max_new_tokens=40", "--num_samples=2")
    c = sample_texts(out_dir, "--seed=8", "--max_new_tokens=40", "--num_samples=2")
    assert a == b and a != c
    assert len(a) == 2 and a[0] != a[1]  # one batch, but each row draws its own tokens
    # what was streamed is the samples, in order, with a divider between them
    assert printed == a[0] + sample.DIVIDER + a[1] + "\n"


def test_top_k_1_is_greedy(out_dir):
    greedy = sample_texts(out_dir, "--temperature=0", "--max_new_tokens=30", "--num_samples=1")
    top1 = sample_texts(out_dir, "--top_k=1", "--max_new_tokens=30", "--num_samples=1", "--seed=99")
    assert greedy == top1


def test_compile_gives_the_same_songs(out_dir):
    torch._dynamo.reset()
    args = ["--seed=3", "--max_new_tokens=40", "--num_samples=2"]  # past block_size
    assert sample_texts(out_dir, *args, "--compile=True") == sample_texts(out_dir, *args)
    torch._dynamo.reset()


def test_prompt_from_a_file(out_dir, tmp_path):
    (tmp_path / "prompt.txt").write_text("Hey Mr\n", encoding="utf-8")
    texts = sample_texts(out_dir, f"--start=FILE:{tmp_path / 'prompt.txt'}", "--max_new_tokens=10", "--num_samples=2")
    assert all(t.startswith("Hey Mr\n") for t in texts)


def test_a_long_prompt_keeps_its_last_block_size_tokens(out_dir, capsys):
    texts = sample_texts(out_dir, "--start=" + "the answer is blowing in the wind " * 20, "--max_new_tokens=5",
                         "--num_samples=1")
    assert "keeping its last" in capsys.readouterr().err
    assert texts[0].startswith("wind") or " wind" in texts[0]


def test_zero_new_tokens_prints_the_prompt(out_dir):
    assert sample_texts(out_dir, "--start=Hey", "--max_new_tokens=0", "--num_samples=2") == ["Hey", "Hey"]


def test_top_k_larger_than_the_vocabulary_is_clamped(out_dir):
    assert len(sample_texts(out_dir, "--top_k=100000", "--max_new_tokens=5", "--num_samples=1")) == 1


# --- the stream: stop token, batching, UTF-8 ----------------------------------------

class Scripted:
    """A stand-in model whose generate_stream yields fixed tokens, to test what sample.py makes of them."""

    config = type("Config", (), {"block_size": 8})

    def __init__(self, rows):
        self.rows = rows

    def parameters(self):
        yield torch.zeros(1)

    def generate_stream(self, idx, max_new_tokens, **kwargs):
        for step in range(min(max_new_tokens, max(len(r) for r in self.rows))):
            yield torch.tensor([r[step] if step < len(r) else kwargs["stop_token"] for r in self.rows])


def byte_tokenizer():
    tok = RegexTokenizer()
    tok.register_special_tokens({sample.EOT: 256})
    return tok


def test_the_stop_token_ends_a_song_and_is_not_printed():
    tok, eot = byte_tokenizer(), 256
    rows = [list(b"la la") + [eot] + list(b"never shown"), list(b"long song here")]
    out = io.StringIO()
    texts = sample.generate_songs(Scripted(rows), tok, [eot], eot, dict(num_samples=2, max_new_tokens=50,
                                  temperature=1.0, top_k=5, top_p=1.0, seed=0), out=out)
    assert texts == ["la la", "long song here"]
    assert out.getvalue() == "la la" + sample.DIVIDER + "long song here\n"


def test_a_character_split_across_tokens_is_printed_whole():
    tok = byte_tokenizer()
    out = io.StringIO()
    printer = sample.StreamPrinter(tok, 1, out)
    first, second = "é".encode("utf-8")
    printer.add(0, first)
    printer.flush()
    assert out.getvalue() == ""  # half a character: nothing yet, and no replacement character
    printer.add(0, second)
    printer.flush()
    assert out.getvalue() == "é"
    printer.add(0, "😀".encode("utf-8")[0])
    printer.finish(0)  # a song that ends inside a character ends in one replacement character
    printer.flush()
    assert out.getvalue() == "é\ufffd"


def test_later_samples_wait_for_the_one_on_screen():
    tok = byte_tokenizer()
    out = io.StringIO()
    printer = sample.StreamPrinter(tok, 2, out)
    printer.add(1, ord("b"))
    printer.add(0, ord("a"))
    printer.flush()
    assert out.getvalue() == "a"
    printer.finish(0)
    printer.flush()
    assert out.getvalue() == "a" + sample.DIVIDER + "b"


# --- bad input gets one clear sentence ------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--max_new_tokens=-1"], "max_new_tokens must be >= 0"),
    (["--top_p=0"], r"top_p must be in \(0, 1\]"),
    (["--top_p=1.5"], r"top_p must be in \(0, 1\]"),
    (["--temperature=-1"], "temperature must be >= 0"),
    (["--num_sample=2"], r"unknown option 'num_sample' .*did you mean 'num_samples'"),
])
def test_bad_options(args, message):
    with pytest.raises(UserError, match=message):
        sample.get_config(args)


def test_no_checkpoint(tmp_path):
    with pytest.raises(UserError, match=r"no checkpoint at .*: train one first with `python train.py"):
        sample.main([f"--out_dir={tmp_path}", "--device=cpu"])


def test_prompt_file_that_is_not_there(out_dir, tmp_path):
    with pytest.raises(UserError, match="cannot read the prompt file"):
        sample_texts(out_dir, f"--start=FILE:{tmp_path / 'missing.txt'}")


def test_checkpoint_from_another_version(out_dir, tmp_path):
    ckpt = checkpoint.load_checkpoint(os.path.join(out_dir, "ckpt.pt"))
    ckpt["format_version"] = 0
    torch.save(ckpt, tmp_path / "ckpt.pt")
    with pytest.raises(UserError, match="checkpoint format 0, this code reads format 1"):
        sample.main([f"--out_dir={tmp_path}", "--device=cpu"])


def test_tokenizer_that_does_not_match(out_dir, tmp_path):
    ckpt = checkpoint.load_checkpoint(os.path.join(out_dir, "ckpt.pt"))
    torch.save(ckpt, tmp_path / "ckpt.pt")
    other = RegexTokenizer()
    other.train("a different corpus " * 50, 265)
    other.register_special_tokens({sample.EOT: 265})
    other.save(str(tmp_path / "tokenizer"))
    with pytest.raises(UserError, match="not the tokenizer the checkpoint was trained with"):
        sample.main([f"--out_dir={tmp_path}", "--device=cpu"])


def test_script_prints_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "sample.py", f"--out_dir={tmp_path}"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: no checkpoint at")
