"""
What every language model here shares: the loss, sampling, the optimizer and generation.

A model maps token ids (B, T) to logits (B, T, V) for the next token at every
position. Generation then needs two things from it:

    prefill(idx)              -> (logits of the last position (B, V), state)
    decode_step(token, state) -> (logits of the new last position (B, V), state)

The defaults below keep no cache: the state is the last block_size tokens and
each step runs the whole forward pass again. A model that can do better (the
GPT with its KV cache, the MLP that only needs one window) overrides the two.
"""

import dataclasses
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F


class DictConfig:
    """Mixin for config dataclasses: `dataclasses.asdict(cfg)` out, `Config.from_dict(d)` back in."""

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys {unknown}; the known keys are {sorted(known)}")
        return cls(**d)


def check_config(cfg, positive, fractions=("dropout",)):
    """Raise ValueError unless the named fields are integers >= 1 and fractions lie in [0, 1)."""
    for name in positive:
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{type(cfg).__name__}.{name} must be an integer >= 1, got {value!r}")
    for name in fractions:
        value = getattr(cfg, name)
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{type(cfg).__name__}.{name} must be in [0, 1), got {value!r}")


def lm_loss(logits, targets):
    """Mean cross-entropy over all positions; a target of -1 marks a position to skip."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)


def check_sampling(temperature, top_k, top_p):
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p}")


def sample_next(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """Draw one token per row from logits (B, V) -> (B,) int64.

    temperature 0 is greedy argmax. top_k keeps the k most likely tokens (k is
    clamped to V); top_p keeps the smallest set of most likely tokens whose
    probability reaches top_p, and always the most likely one. The generator
    must live on the logits' device.
    """
    check_sampling(temperature, top_k, top_p)
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        top = logits.topk(min(top_k, logits.size(-1)), dim=-1)
        if top_p is None or top_p >= 1:  # the common case, in fewer steps: draw among the k directly
            choice = torch.multinomial(top.values.softmax(dim=-1), num_samples=1, generator=generator)
            return top.indices.gather(-1, choice).squeeze(-1)
        logits = torch.full_like(logits, float("-inf")).scatter(-1, top.indices, top.values)
    if top_p is not None and top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # drop a token once the more likely ones already hold top_p; the first holds 0 before it
        drop = probs.cumsum(dim=-1) - probs >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.empty_like(logits).scatter(-1, order, sorted_logits)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


def decoding_compile_args(model, dynamic):
    """torch.compile arguments for a decoding step. On a CPU: C++ wrapper code, and a step of one
    sequence does its one-row matmuls (vector times matrix) in inductor's own loops, fused with
    the layer norms and activations around them, instead of calling BLAS for each (a gpt_cpu
    step: 0.18 against 0.26 ms; a batch of several rows still calls BLAS)."""
    if next(model.parameters()).device.type != "cpu":
        return dict(dynamic=dynamic)
    options = {"cpp_wrapper": True}
    try:  # an inductor pass (CPU rule: one row, both other sizes <= 2048); older torch lacks it
        from torch._inductor.fx_passes.split_cat import post_grad_pass_names
    except ImportError:
        post_grad_pass_names = ()
    if "decompose_mm_pass" in post_grad_pass_names:
        options["post_grad_fusion_options"] = {"decompose_mm_pass": {}}
    return dict(dynamic=dynamic, options=options)


class LanguageModel(nn.Module):
    """Base class: a subclass sets self.config (with block_size) and forward(idx, targets) -> (logits, loss)."""

    def num_params(self):
        """Every parameter, embeddings and padding rows included; a tied weight counts once."""
        return sum(p.numel() for p in self.parameters())

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
        """AdamW that decays matrices and embeddings (dim >= 2) but not biases and norm gains."""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        # the fused kernel is one launch for all parameters instead of one per tensor; CUDA only
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, fused=device_type == "cuda")

    def last_logits(self, idx):
        """idx (B, T) -> the logits (B, V) that follow its last token; a model can skip the rest."""
        return self(idx)[0][:, -1]

    def prefill(self, idx):
        """Run the prompt (B, T); return the last position's logits (B, V) and the decoding state.

        No cache here: the state is the last block_size tokens, and every decode_step
        runs forward over all of them again.
        """
        idx = idx[:, -self.config.block_size:]
        return self.last_logits(idx), idx

    def decode_step(self, token, state):
        """Append token (B,) to the state; return the logits (B, V) that follow it and the new state."""
        return LanguageModel.prefill(self, torch.cat([state, token[:, None]], dim=1))

    def compile_decoding(self):
        """torch.compile decode_step, with torch's default for shapes: a step whose shapes never
        change (the MLP's window) compiles once; the default step's state grows by a token a
        step, so after its second shape it is recompiled for dynamic ones. On a CPU the compiled
        code is driven from C++ (inductor's cpp_wrapper) rather than from Python, which saves
        most of the per-token overhead of a small model.
        """
        self.decode_step = torch.compile(self.decode_step, **decoding_compile_args(self, dynamic=None))

    def generate_stream(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
                        stop_token=None, generator=None, use_cache=True):
        """Yield up to max_new_tokens next tokens, one (B,) tensor per step, continuing idx (B, T).

        A row that has produced stop_token keeps producing it, and the stream ends
        early once every row has. use_cache=False takes the base class's no-cache
        path even where the model has a faster one (for benchmarks and tests).
        Runs under inference_mode (lighter than no_grad: the yielded tensors are
        inference tensors, so clone one before training on it); the caller chooses the
        mode (call model.eval() to turn dropout off).
        """
        if idx.dim() != 2 or idx.size(1) == 0:
            raise ValueError(f"the prompt must be a (B, T) tensor of token ids with T >= 1, got shape {tuple(idx.shape)}")
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        check_sampling(temperature, top_k, top_p)
        if use_cache:
            prefill, decode_step = self.prefill, self.decode_step
        else:
            prefill, decode_step = partial(LanguageModel.prefill, self), partial(LanguageModel.decode_step, self)
        # a separate generator function, so that the checks above raise now rather than at the first next()
        return self._stream(idx, max_new_tokens, temperature, top_k, top_p, stop_token, generator,
                            prefill, decode_step)

    @torch.inference_mode()
    def _stream(self, idx, max_new_tokens, temperature, top_k, top_p, stop_token, generator,
                prefill, decode_step):
        if max_new_tokens == 0:
            return
        logits, state = prefill(idx)
        stopped = torch.zeros(idx.size(0), dtype=torch.bool, device=idx.device)
        for step in range(max_new_tokens):
            token = sample_next(logits, temperature, top_k, top_p, generator)
            if stop_token is not None:
                token = token.masked_fill(stopped, stop_token)
                stopped |= token == stop_token
            yield token
            if step == max_new_tokens - 1 or (stop_token is not None and bool(stopped.all())):
                return  # no forward pass for a token nobody will sample
            logits, state = decode_step(token, state)

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
                 stop_token=None, generator=None, use_cache=True):
        """idx (B, T) -> (B, T + max_new_tokens); rows that stopped are padded with stop_token."""
        steps = [token[:, None] for token in self.generate_stream(
            idx, max_new_tokens, temperature, top_k, top_p, stop_token, generator, use_cache)]
        missing = max_new_tokens - len(steps)
        if missing:
            steps.append(idx.new_full((idx.size(0), missing), stop_token))
        return torch.cat([idx, *steps], dim=1)
