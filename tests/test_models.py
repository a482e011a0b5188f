"""Tests for lm.py, model_mlp.py and model_gpt.py, on tiny models so that the file runs in seconds on a CPU."""

import dataclasses
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from lm import LanguageModel, decoding_compile_args, sample_next
from model_gpt import GPT, GPTConfig
from model_mlp import MLP, MLPConfig

V = 37  # not a multiple of 64, so the GPT's padded vocabulary is exercised

GPT_VARIANTS = [
    {"pos_emb": "rope"},
    {"norm": "rmsnorm"},
    {"mlp_act": "relu2"},
    {"qk_norm": True},
    {"tie_weights": False},
    {"zero_init_proj": True},
]


def tiny_mlp(**overrides):
    torch.manual_seed(0)
    return MLP(MLPConfig(**{"vocab_size": V, "block_size": 8, "n_embd": 8, "n_hidden": 32, **overrides})).eval()


def tiny_gpt(**overrides):
    torch.manual_seed(0)
    return GPT(GPTConfig(**{"vocab_size": V, "block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 16,
                            **overrides})).eval()


MODELS = {"mlp": tiny_mlp, "gpt": tiny_gpt}

# (model, config overrides) for the tests that every architecture and switch must pass
ALL_VARIANTS = ([("mlp", {}), ("mlp", {"direct": True}), ("gpt", {})]
                + [("gpt", variant) for variant in GPT_VARIANTS])


def scrambled(model):
    """Perturb every parameter: zero-initialised layers would make equality tests pass trivially."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def tokens(*shape, seed=1):
    return torch.randint(V, shape, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- forward and loss

@pytest.mark.parametrize("name", MODELS)
def test_logits_shape_and_initial_loss(name):
    model = MODELS[name]()
    idx, targets = tokens(4, model.config.block_size), tokens(4, model.config.block_size, seed=2)
    logits, loss = model(idx, targets)
    assert logits.shape == (4, model.config.block_size, V)
    assert loss.shape == ()
    assert abs(loss.item() - math.log(V)) < 0.1  # an untrained model is close to uniform
    assert model(idx)[1] is None


@pytest.mark.parametrize("name", MODELS)
def test_loss_skips_targets_of_minus_one(name):
    model = scrambled(MODELS[name]())
    idx, targets = tokens(2, 8), tokens(2, 8, seed=2)
    targets[:, :5] = -1
    logits, loss = model(idx, targets)
    expected = F.cross_entropy(logits[:, 5:].reshape(-1, V), targets[:, 5:].reshape(-1))
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("name", MODELS)
def test_changing_a_token_changes_no_earlier_logit(name):
    model = scrambled(MODELS[name]())
    idx = tokens(2, model.config.block_size)
    t = 5
    changed = idx.clone()
    changed[:, t] = (idx[:, t] + 1) % V
    before, after = model(idx)[0], model(changed)[0]
    torch.testing.assert_close(before[:, :t], after[:, :t], atol=1e-6, rtol=0)
    assert not torch.allclose(before[:, t], after[:, t])


@pytest.mark.parametrize("name", MODELS)
def test_overfits_one_batch(name):
    model = MODELS[name]().train()
    seq = tokens(4, model.config.block_size + 1)
    x, y = seq[:, :-1], seq[:, 1:]
    optimizer = model.configure_optimizers(0.0, 1e-2, (0.9, 0.99), "cpu")
    for _ in range(300):
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1


def test_mlp_windows_match_the_seed_formulation():
    """Position t sees the block_size tokens ending at t, blank-padded: check against a loop."""
    model = scrambled(tiny_mlp())
    bs, blank = model.config.block_size, V
    idx = tokens(2, 3 * bs)
    logits, _ = model(idx)
    padded = torch.cat([torch.full((2, bs - 1), blank), idx], dim=1)
    for t in range(idx.size(1)):
        x = model.wte(padded[:, t:t + bs]).view(2, -1)  # (B, block_size * n_embd), as in the seed
        torch.testing.assert_close(logits[:, t], model.out(torch.tanh(model.hidden(x))))


def test_gpt_rejects_a_sequence_longer_than_block_size():
    model = tiny_gpt()
    with pytest.raises(ValueError, match="block_size"):
        model(tokens(1, model.config.block_size + 1))


# ----------------------------------------------------------------------------- parameters and configs

def mlp_param_formula(cfg):
    C, H, window = cfg.n_embd, cfg.n_hidden, cfg.block_size * cfg.n_embd
    embedding = (cfg.vocab_size + 1) * C  # + 1: the blank token
    hidden = window * H + H
    out = H * cfg.vocab_size + cfg.vocab_size
    direct = window * cfg.vocab_size if cfg.direct else 0
    return embedding + hidden + out + direct


def gpt_param_formula(cfg):
    C, bias = cfg.n_embd, cfg.bias
    norm = C + (C if cfg.norm == "layernorm" and bias else 0)
    attention = C * 3 * C + C * C + (3 * C + C if bias else 0)  # c_attn, c_proj
    mlp = C * 4 * C + 4 * C * C + (4 * C + C if bias else 0)  # c_fc, c_proj
    embeddings = cfg.padded_vocab * C + (cfg.block_size * C if cfg.pos_emb == "learned" else 0)
    head = 0 if cfg.tie_weights else cfg.padded_vocab * C
    return embeddings + cfg.n_layer * (2 * norm + attention + mlp) + norm + head


@pytest.mark.parametrize("overrides", [{}, {"direct": True}, {"n_hidden": 7, "block_size": 3}])
def test_mlp_num_params_closed_form(overrides):
    model = tiny_mlp(**overrides)
    assert model.num_params() == mlp_param_formula(model.config)


def test_mlp_with_seed_defaults_has_the_seed_count_plus_the_blank_row():
    assert MLP(MLPConfig(vocab_size=512)).num_params() == 1_344_512 + 64


@pytest.mark.parametrize("overrides", [{}, {"bias": True}, *GPT_VARIANTS, {"norm": "rmsnorm", "bias": True}])
def test_gpt_num_params_closed_form(overrides):
    model = tiny_gpt(**overrides)
    assert model.num_params() == gpt_param_formula(model.config)


def test_gpt_defaults_param_count():
    # wte 576*384 + wpe 256*384 + 6 layers * (2*384 + 4*384^2 + 8*384^2) + ln_f 384
    assert GPT(GPTConfig()).num_params() == 10_941_312


@pytest.mark.parametrize("config_class", [MLPConfig, GPTConfig])
def test_config_round_trips_through_a_dict(config_class):
    cfg = config_class(vocab_size=100, dropout=0.1)
    assert config_class.from_dict(dataclasses.asdict(cfg)) == cfg
    with pytest.raises(ValueError, match="n_layers"):
        config_class.from_dict({**dataclasses.asdict(cfg), "n_layers": 3})


@pytest.mark.parametrize("bad", [
    {"n_embd": 10, "n_head": 3},
    {"attention": "flash"},
    {"norm": "batchnorm"},
    {"pos_emb": "rope", "n_embd": 6, "n_head": 2},  # head size 3 is odd
    {"vocab_size": 0},
    {"dropout": 1.0},
])
def test_gpt_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        GPTConfig(**bad)


@pytest.mark.parametrize("name, overrides", [("mlp", {"direct": True}), ("gpt", {}), ("gpt", {"tie_weights": False}),
                                             ("gpt", {"pos_emb": "rope"})])
def test_model_rebuilt_from_config_dict_and_state_dict_is_identical(name, overrides):
    model = scrambled(MODELS[name](**overrides))
    cfg = type(model.config).from_dict(dataclasses.asdict(model.config))
    rebuilt = type(model)(cfg).eval()
    rebuilt.load_state_dict(model.state_dict())
    idx = tokens(2, 8)
    assert torch.equal(model(idx)[0], rebuilt(idx)[0])


def test_optimizer_decays_matrices_only():
    model = tiny_gpt(bias=True)
    decay, no_decay = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu").param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    assert sum(p.numel() for group in (decay, no_decay) for p in group["params"]) == model.num_params()


@pytest.mark.parametrize("pos_emb", ["learned", "rope"])
def test_crop_block_size(pos_emb):
    model = scrambled(tiny_gpt(pos_emb=pos_emb))
    idx = tokens(2, 8)
    before = model(idx)[0]
    model.crop_block_size(8)
    assert model.config.block_size == 8
    torch.testing.assert_close(model(idx)[0], before)
    assert model.generate(idx[:, :3], 20).shape == (2, 23)
    with pytest.raises(ValueError):
        model(tokens(2, 9))
    with pytest.raises(ValueError):
        model.crop_block_size(9)


def test_estimate_mfu_follows_the_palm_formula():
    model = tiny_gpt()
    cfg = model.config
    n = model.num_params() - cfg.block_size * cfg.n_embd  # the position table is only looked up
    flops = (6 * n + 12 * cfg.n_layer * cfg.n_head * cfg.head_size * cfg.block_size) * 1000
    assert model.estimate_mfu(tokens_per_iter=1000, dt=0.5, peak_flops=1e9) == pytest.approx(flops / 0.5 / 1e9)


# ----------------------------------------------------------------------------- attention, cache, variants

@pytest.mark.parametrize("pos_emb", ["learned", "rope"])
def test_manual_attention_matches_sdpa(pos_emb):
    sdpa = scrambled(tiny_gpt(pos_emb=pos_emb))
    manual = tiny_gpt(pos_emb=pos_emb, attention="manual")
    manual.load_state_dict(sdpa.state_dict())
    idx = tokens(3, sdpa.config.block_size)
    torch.testing.assert_close(manual(idx)[0], sdpa(idx)[0], atol=1e-5, rtol=0)
    assert_decode_matches_forward(manual)  # the manual mask with one query over a longer cache


def assert_decode_matches_forward(model, prompt_len=3):
    """prefill + decode_step give, at every step within block_size, the logits of forward on the whole sequence."""
    seq = tokens(2, model.config.block_size, seed=3)
    full = model(seq)[0]
    logits, state = model.prefill(seq[:, :prompt_len])
    torch.testing.assert_close(logits, full[:, prompt_len - 1], atol=1e-5, rtol=0)
    for t in range(prompt_len, seq.size(1)):
        logits, state = model.decode_step(seq[:, t], state)
        torch.testing.assert_close(logits, full[:, t], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name, overrides", ALL_VARIANTS)
def test_cached_decode_matches_forward(name, overrides):
    assert_decode_matches_forward(scrambled(MODELS[name](**overrides)))


@pytest.mark.parametrize("overrides", GPT_VARIANTS)
def test_gpt_variant_trains(overrides):
    model = tiny_gpt(**overrides).train()
    _, loss = model(tokens(2, 16), tokens(2, 16, seed=2))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_full_cache_restarts_from_the_last_half():
    model = scrambled(tiny_gpt())
    bs = model.config.block_size
    seq = tokens(2, bs + 2)
    _, state = model.prefill(seq[:, :bs])
    logits, state = model.decode_step(seq[:, bs], state)  # token bs + 1 does not fit: keep the last bs // 2
    torch.testing.assert_close(logits, model(seq[:, bs + 1 - bs // 2:bs + 1])[0][:, -1], atol=1e-5, rtol=0)
    logits, state = model.decode_step(seq[:, bs + 1], state)  # and the cache grows again from there
    torch.testing.assert_close(logits, model(seq[:, bs + 1 - bs // 2:bs + 2])[0][:, -1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("use_cache", [True, False])
def test_generation_runs_past_block_size(name, use_cache):
    model = MODELS[name]()
    n = 3 * model.config.block_size + 1
    out = model.generate(tokens(2, 3), n, use_cache=use_cache)
    assert out.shape == (2, 3 + n) and out.dtype == torch.int64
    assert 0 <= out.min() and out.max() < V


def test_cache_keeps_its_full_size_and_unfilled_positions_at_zero():
    """Fixed shapes at every step (so a compiled step compiles once); zeros, since 0 * NaN would leak
    through the mask if the unfilled positions held garbage."""
    model = scrambled(tiny_gpt())
    _, (cache, _) = model.prefill(tokens(2, 3))
    assert cache.k[0].shape == (2, model.config.n_head, model.config.block_size, model.config.head_size)
    assert not cache.k[0][:, :, 3:].any() and not cache.v[0][:, :, 3:].any()
    assert cache.k[0][:, :, :3].abs().min() > 0


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("name", MODELS)
def test_compiled_decoding_matches_eager(name, batch):
    """compile_decoding (sample.py's compile=True) gives the eager logits, past block_size (so through
    the GPT's cache restarts too), and compiles each shape once rather than once per position.
    For one sequence on a CPU the one-row matmuls become inductor's own loops, not BLAS calls."""
    torch._dynamo.reset()
    model = scrambled(MODELS[name]())
    bs = model.config.block_size
    seq = tokens(batch, 2 * bs + 3, seed=5)

    def decomposed():  # matmuls without and with a bias done as inductor's loops so far
        inductor = torch._dynamo.utils.counters["inductor"]
        return inductor["decompose_mm"] + inductor["decompose_addmm"]

    before_decomposed = decomposed()

    def logits_along(seq):
        logits, state = model.prefill(seq[:, :3])
        out = [logits]
        for t in range(3, seq.size(1)):
            logits, state = model.decode_step(seq[:, t], state)
            out.append(logits)
        return torch.stack(out)

    eager = logits_along(seq)
    model.compile_decoding()
    graphs = torch._dynamo.utils.counters["stats"]
    before = graphs["unique_graphs"]
    torch.testing.assert_close(logits_along(seq), eager, atol=1e-5, rtol=1e-5)
    compiled = graphs["unique_graphs"] - before
    # the GPT: prompt (3 tokens), step (1), restart (block_size // 2); the MLP: its step
    assert compiled == {"gpt": 3, "mlp": 1}[name]
    torch.testing.assert_close(logits_along(seq), eager, atol=1e-5, rtol=1e-5)
    assert graphs["unique_graphs"] - before == compiled  # the second pass reuses them all
    if "post_grad_fusion_options" in decoding_compile_args(model, dynamic=None)["options"]:
        assert (decomposed() > before_decomposed) == (batch == 1)
    torch._dynamo.reset()


@pytest.mark.parametrize("attention", ["sdpa", "manual"])
def test_cached_decode_in_bfloat16(attention):
    """The cache takes the dtype of the keys and values it gets; the mask works in bf16 too."""
    model = scrambled(tiny_gpt(attention=attention)).to(torch.bfloat16)
    seq = tokens(2, model.config.block_size, seed=3)
    full = model(seq)[0].float()
    logits, state = model.prefill(seq[:, :3])
    for t in range(3, seq.size(1)):
        logits, state = model.decode_step(seq[:, t], state)
        assert logits.dtype == torch.bfloat16 and state[0].k[0].dtype == torch.bfloat16
        torch.testing.assert_close(logits.float(), full[:, t], atol=0.05, rtol=0.05)


def test_generation_leaves_grad_mode_to_the_caller():
    model = tiny_gpt().train()
    for token in model.generate_stream(tokens(1, 3), 3):
        assert torch.is_grad_enabled() and not token.requires_grad
    assert not model.generate(tokens(1, 3), 3).requires_grad


# ----------------------------------------------------------------------------- sampling

def test_top_k_never_samples_outside_the_k_most_likely():
    logits = torch.randn(1, 50, generator=torch.Generator().manual_seed(0)).expand(2000, 50)
    samples = sample_next(logits, top_k=5, generator=torch.Generator().manual_seed(1))
    assert set(samples.tolist()) == set(logits[0].topk(5).indices.tolist())


@pytest.mark.parametrize("top_p", [None, 1.0])
def test_top_k_draws_with_the_renormalised_probabilities(top_p):
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, -3.0]]).expand(20000, 6)
    samples = sample_next(logits, temperature=0.8, top_k=3, top_p=top_p, generator=torch.Generator().manual_seed(0))
    expected = torch.zeros(6)
    expected[:3] = (logits[0, :3] / 0.8).softmax(-1)
    torch.testing.assert_close(torch.bincount(samples, minlength=6) / 20000, expected, atol=0.01, rtol=0)


def test_top_k_larger_than_the_vocabulary_is_clamped():
    assert sample_next(torch.randn(3, 10), top_k=1000).shape == (3,)


@pytest.mark.parametrize("name", MODELS)
def test_top_k_one_is_greedy(name):
    model = scrambled(MODELS[name]())
    prompt, n = tokens(3, 2), model.config.block_size - 2  # past block_size the cached path keeps less context
    greedy = model.generate(prompt, n, temperature=0)
    assert torch.equal(model.generate(prompt, n, top_k=1), greedy)
    assert torch.equal(model.generate(prompt, n, temperature=0, use_cache=False), greedy)


def test_temperature_zero_is_argmax():
    logits = torch.randn(4, 10)
    assert torch.equal(sample_next(logits, temperature=0), logits.argmax(-1))


def test_top_p_keeps_the_nucleus():
    logits = torch.tensor([[0.5, 0.3, 0.2]]).log().expand(3000, 3)
    draw = lambda top_p: set(sample_next(logits, top_p=top_p, generator=torch.Generator().manual_seed(0)).tolist())
    assert draw(0.4) == {0}  # the most likely token is always kept
    assert draw(0.6) == {0, 1}
    assert draw(1.0) == {0, 1, 2}


@pytest.mark.parametrize("bad", [{"top_p": 0.0}, {"top_p": 1.5}, {"top_p": -0.1}, {"temperature": -1.0},
                                 {"top_k": 0}])
def test_bad_sampling_arguments_raise_at_once(bad):
    with pytest.raises(ValueError):
        sample_next(torch.randn(2, 5), **bad)
    with pytest.raises(ValueError):
        tiny_gpt().generate_stream(tokens(1, 2), 5, **bad)  # before the first next()


def test_negative_max_new_tokens_raises():
    with pytest.raises(ValueError, match="max_new_tokens"):
        tiny_mlp().generate(tokens(1, 2), -1)
    assert torch.equal(tiny_mlp().generate(tokens(1, 2), 0), tokens(1, 2))


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_gives_the_same_sample(name):
    model = scrambled(MODELS[name]())
    sample = lambda: model.generate(tokens(2, 3), 30, generator=torch.Generator().manual_seed(7))
    assert torch.equal(sample(), sample())


class Counter(LanguageModel):
    """Predicts (last token + 1) mod 10 with certainty: a model whose every output the test knows."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(block_size=4)

    def forward(self, idx, targets=None):
        return 100.0 * F.one_hot((idx + 1) % 10, 10).float(), None


def test_stop_token_ends_a_row_and_then_the_stream():
    prompt = torch.tensor([[0], [5]])
    steps = list(Counter().generate_stream(prompt, 20, temperature=0, stop_token=7))
    assert len(steps) == 7  # row 0 counts 1..7; the stream ends when both rows have stopped
    assert torch.stack(steps, dim=1).tolist() == [[1, 2, 3, 4, 5, 6, 7], [6, 7, 7, 7, 7, 7, 7]]
    out = Counter().generate(prompt, 20, temperature=0, stop_token=7)
    assert out.shape == (2, 21) and out[:, 8:].eq(7).all()
