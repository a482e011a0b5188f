import torch

import bench
from model_gpt import GPT, GPTConfig


def test_time_sampling_times_both_paths_over_every_round(monkeypatch):
    """After one warm-up round, each timed round runs the cached and then the uncached path, each
    for all the new tokens; a time comes back for each path."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, block_size=8, n_layer=1, n_head=2, n_embd=16)).eval()
    runs = []
    real = model.generate_stream

    def counting(prompt, n, **kw):
        runs.append((kw["use_cache"], sum(1 for _ in real(prompt, n, **kw))))
        return iter(())

    monkeypatch.setattr(model, "generate_stream", counting)
    seconds = bench.time_sampling(model, torch.zeros((2, 1), dtype=torch.long), new_tokens=20, repeats=3)
    assert runs == [(True, 20), (False, 20)] * 4  # 1 warm-up + 3 timed rounds, in turns
    assert set(seconds) == {True, False} and all(s > 0 for s in seconds.values())


def test_print_table_fills_the_columns_an_error_row_lacks(capsys):
    bench.print_table([dict(mode="eager", speedup=3.14159), dict(mode="compiled", error="no compiler")])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["mode", "speedup", "error"]
    assert lines[1].split() == ["eager", "3.14"]
    assert lines[2].split() == ["compiled", "no", "compiler"]
