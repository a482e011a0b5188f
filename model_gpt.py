"""
A GPT-2 style decoder-only transformer (Radford et al. 2019):

    idx (B, T) -> token embedding (+ learned position embedding)
    -> n_layer pre-norm blocks: x = x + attn(norm(x)); x = x + mlp(norm(x))
    -> final norm -> LM head -> logits (B, T, vocab_size)

The defaults are plain GPT-2; the other switches are ideas from modded-nanogpt,
off until a measurement on our data says they help. For generation a KV cache
keeps every layer's keys and values, so a new token costs one position, not T.
"""

import math
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from lm import DictConfig, LanguageModel, check_config, decoding_compile_args, lm_loss

OPTIONS = {"attention": ("sdpa", "manual"), "pos_emb": ("learned", "rope"),
           "norm": ("layernorm", "rmsnorm"), "mlp_act": ("gelu", "relu2")}


@dataclass
class GPTConfig(DictConfig):
    vocab_size: int = 513
    block_size: int = 256  # the longest context the model sees
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.0
    bias: bool = False  # biases in the linear layers and LayerNorms
    attention: str = "sdpa"  # 'sdpa' PyTorch's fused kernel | 'manual' written out, to read
    pos_emb: str = "learned"  # 'learned' table added to the input | 'rope' rotary, applied to q and k
    norm: str = "layernorm"  # 'layernorm' | 'rmsnorm'
    mlp_act: str = "gelu"  # 'gelu' | 'relu2' (relu squared)
    qk_norm: bool = False  # RMS-normalise q and k of each head before their dot product
    tie_weights: bool = True  # the LM head shares the token embedding matrix
    zero_init_proj: bool = False  # attention and MLP output projections (c_proj) start at zero

    def __post_init__(self):
        check_config(self, positive=("vocab_size", "block_size", "n_layer", "n_head", "n_embd"))
        for name, allowed in OPTIONS.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"GPTConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head}) "
                             f"so that the heads split the channels evenly")
        if self.pos_emb == "rope" and self.head_size % 2:
            raise ValueError(f"rope rotates pairs of channels, so the head size n_embd / n_head must be even, "
                             f"got {self.head_size}")

    @property
    def head_size(self):
        return self.n_embd // self.n_head

    @property
    def padded_vocab(self):
        """vocab_size rounded up to a multiple of 64, where the embedding and head matmuls run faster."""
        return -(-self.vocab_size // 64) * 64


def make_norm(config):
    return nn.RMSNorm(config.n_embd) if config.norm == "rmsnorm" else nn.LayerNorm(config.n_embd, bias=config.bias)


def rope_tables(block_size, head_size, base=10000.0):
    """cos and sin (block_size, head_size / 2) of the angles position * base^(-2i / head_size)."""
    freqs = base ** (-torch.arange(0, head_size, 2, dtype=torch.float32) / head_size)  # (hs / 2,)
    angles = torch.outer(torch.arange(block_size, dtype=torch.float32), freqs)  # (block_size, hs / 2)
    return angles.cos(), angles.sin()


def apply_rope(x, cos, sin):
    """Rotate the channel pairs (i, i + hs/2) of x (B, nh, T, hs) by their position's angles (T, hs/2),
    so that q . k depends on the two positions only through their distance."""
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def manual_attention(q, k, v, dropout, mask=None):
    """softmax(q k^T / sqrt(hs)) v for queries (B, nh, T, hs) over keys and values (B, nh, S, hs).
    mask (T, S) is True where a query may look; by default query i sees keys 0 .. i (causal)."""
    T, S = q.size(-2), k.size(-2)
    att = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, nh, T, hs) @ (B, nh, hs, S) -> (B, nh, T, S)
    if mask is None:
        mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril()
    att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
    att = F.dropout(att, dropout)
    return att @ v  # (B, nh, T, S) @ (B, nh, S, hs) -> (B, nh, T, hs)


def sdpa_attention(q, k, v, dropout, mask=None):
    """The same through PyTorch's fused kernel (flash attention on a GPU)."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=mask is None)


class CausalSelfAttention(nn.Module):
    def __init__(self, config, layer):
        super().__init__()
        self.layer = layer  # our slot in the KV cache
        self.n_head = config.n_head
        self.qk_norm = config.qk_norm
        self.attend = manual_attention if config.attention == "manual" else sdpa_attention
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_drop = nn.Dropout(config.dropout)

    def forward(self, x, rope=None, cache=None, pos=None, mask=None):
        B, T, C = x.shape
        # (B, T, 3C) -> (3, B, nh, T, hs): each head attends with its own slice of the channels
        qkv = self.c_attn(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        qk, v = qkv[:2], qkv[2]  # q and k go through the same transforms, so they go together
        if self.qk_norm:
            # unit-RMS q and k bound the attention logits, so softmax cannot saturate as weights grow
            qk = F.rms_norm(qk, qk.shape[-1:])
        if rope is not None:
            qk = apply_rope(qk, *rope)
        q, k = qk.unbind(0)
        if cache is not None:
            k, v = cache.update(self.layer, k, v, pos)  # (B, nh, S, hs): the whole cache
            if mask is None:  # a prefill: the fresh cache holds just these T positions
                k, v = k[:, :, :T], v[:, :, :T]
        y = self.attend(q, k, v, self.dropout if self.training else 0.0, mask)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, nh, T, hs) -> (B, T, C)
        return self.resid_drop(self.c_proj(y))


ACTIVATIONS = {"gelu": F.gelu, "relu2": lambda x: F.relu(x).square()}


class FeedForward(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.act = ACTIVATIONS[config.mlp_act]
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.drop(self.c_proj(self.act(self.c_fc(x))))  # (B, T, C) -> (B, T, 4C) -> (B, T, C)


class Block(nn.Module):
    def __init__(self, config, layer):
        super().__init__()
        self.ln_1 = make_norm(config)
        self.attn = CausalSelfAttention(config, layer)
        self.ln_2 = make_norm(config)
        self.mlp = FeedForward(config)

    def forward(self, x, rope=None, cache=None, pos=None, mask=None):
        x = x + self.attn(self.ln_1(x), rope, cache, pos, mask)
        return x + self.mlp(self.ln_2(x))


class KVCache:
    """Every layer's keys and values (B, nh, size, hs) for positions 0 .. size - 1.

    Always the full size, so that a decoding step has the same shapes at every position
    (torch.compile compiles it once); attention masks out the positions not yet filled.
    """

    def __init__(self, n_layer, size):
        self.size = size
        self.k, self.v = [None] * n_layer, [None] * n_layer

    def update(self, layer, k, v, pos):
        """Store k, v (B, nh, T, hs) at positions pos (T,); return the whole cache (B, nh, size, hs)."""
        if self.k[layer] is None:  # allocated on first use, in the dtype k and v come in (keep it)
            # zeros, not empty: garbage could hold NaN, and a masked-out NaN still spreads
            # (NaN - inf in the scores, 0 * NaN in the weighted sum)
            shape = (*k.shape[:2], self.size, k.size(-1))
            self.k[layer], self.v[layer] = k.new_zeros(shape), v.new_zeros(shape)
        self.k[layer].index_copy_(2, pos, k)
        self.v[layer].index_copy_(2, pos, v)
        return self.k[layer], self.v[layer]


class GPT(LanguageModel):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.padded_vocab, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd) if config.pos_emb == "learned" else None
        if config.pos_emb == "rope":
            cos, sin = rope_tables(config.block_size, config.head_size)
            # computed from the config, so left out of the state dict
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, layer) for layer in range(config.n_layer))
        self.ln_f = make_norm(config)
        self.lm_head = nn.Linear(config.n_embd, config.padded_vocab, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.wte.weight
        self.init_weights()

    def init_weights(self):
        """GPT-2's init: weights normal(0, 0.02), biases zero, norms at identity. Each of the
        2 * n_layer residual projections (c_proj) adds to the residual stream, so they start at
        std 0.02 / sqrt(2 * n_layer) to keep its variance independent of depth (or at zero with
        zero_init_proj, so that every block starts as the identity)."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                if self.config.zero_init_proj:
                    nn.init.zeros_(p)
                else:
                    nn.init.normal_(p, std=0.02 / math.sqrt(2 * self.config.n_layer))

    def hidden(self, idx, cache=None, pos=None):
        """Token ids (B, T) at positions pos (T,) (by default 0 .. T - 1) -> final hidden states
        (B, T, C). With a cache: either a prefill, T tokens at 0 .. T - 1 into a fresh cache, or
        a step, one token at position pos that also sees the keys and values stored before it."""
        if pos is None:
            pos = torch.arange(idx.size(1), device=idx.device)
        mask = None  # causal attention over the T tokens themselves
        if cache is not None and idx.size(1) == 1:
            # the step looks at the whole cache, whatever the position (so its shapes never
            # change), through a mask that hides the positions after its own
            mask = torch.arange(cache.size, device=idx.device) <= pos[:, None]  # (1, S)
        x = self.wte(idx)  # (B, T) -> (B, T, C)
        if self.wpe is not None:
            x = x + self.wpe(pos)
        rope = None if self.wpe is not None else (self.rope_cos[pos], self.rope_sin[pos])
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, rope, cache, pos, mask)
        return self.ln_f(x)

    def head(self, x):
        """(..., C) -> (..., vocab_size): the padding columns are cut, so never sampled nor in the loss."""
        return self.lm_head(x)[..., :self.config.vocab_size]

    def check_length(self, idx):
        if idx.size(1) > self.config.block_size:
            raise ValueError(f"the sequence has {idx.size(1)} tokens but block_size is {self.config.block_size}; "
                             f"pass at most the last {self.config.block_size}")

    def forward(self, idx, targets=None):
        """idx (B, T) -> logits (B, T, vocab_size) and the loss if targets (B, T) are given."""
        self.check_length(idx)
        logits = self.head(self.hidden(idx))
        return logits, None if targets is None else lm_loss(logits, targets)

    def last_logits(self, idx):
        """Only the last position through the head, as nanoGPT does when it samples without a cache."""
        self.check_length(idx)
        return self.head(self.hidden(idx)[:, -1])

    def forward_cached(self, idx, pos, cache):
        """Tokens idx (B, T) at positions pos (T,) -> the last one's logits (B, vocab_size), with
        their keys and values stored in the cache. What sample.py's compile=True compiles."""
        return self.head(self.hidden(idx, cache, pos)[:, -1])

    def compile_decoding(self):
        """Compile forward_cached: with the cache at its full size, a decoding step has the same
        shapes at every position, so it compiles once (and once more for each prefill length)."""
        self.forward_cached = torch.compile(self.forward_cached, **decoding_compile_args(self, dynamic=False))

    def prefill(self, idx):
        """Run the prompt's last block_size tokens into a fresh KV cache; the state is (cache, those tokens)."""
        idx = idx[:, -self.config.block_size:]
        cache = KVCache(self.config.n_layer, self.config.block_size)
        pos = torch.arange(idx.size(1), device=idx.device)
        return self.forward_cached(idx, pos, cache), (cache, idx)

    def decode_step(self, token, state):
        cache, tokens = state  # tokens (B, n): the n positions in the cache
        n = tokens.size(1)
        tokens = torch.cat([tokens, token[:, None]], dim=1)
        if n == self.config.block_size:
            # Full. Sliding the window by one token would change every cached position (and what
            # it saw), so each step would cost a full forward pass. Instead restart from the last
            # half: one prefill buys block_size // 2 cheap steps, but the context drops to half.
            return self.prefill(tokens[:, -max(1, self.config.block_size // 2):])
        pos = torch.full((1,), n, device=token.device)  # a tensor: one compiled step serves every position
        return self.forward_cached(token[:, None], pos, cache), (cache, tokens)

    def crop_block_size(self, block_size):
        """Shrink the context to block_size tokens (e.g. to sample or fine-tune with less)."""
        if not 1 <= block_size <= self.config.block_size:
            raise ValueError(f"can only crop block_size to between 1 and {self.config.block_size}, got {block_size}")
        self.config = replace(self.config, block_size=block_size)
        if self.wpe is not None:
            self.wpe.weight = nn.Parameter(self.wpe.weight.detach()[:block_size].clone())
        else:
            self.rope_cos, self.rope_sin = self.rope_cos[:block_size], self.rope_sin[:block_size]

    def estimate_mfu(self, tokens_per_iter, dt, peak_flops=989e12):
        """Model flops utilisation: the fraction of peak_flops (H100 bf16 dense) achieved when a
        training step (forward and backward) on tokens_per_iter tokens takes dt seconds. Per token,
        PaLM (Chowdhery et al. 2022, appendix B) counts 6N flops for the matmuls with the N weights
        (2 forward, 4 backward) and 12 L H Q T for attention over T positions."""
        cfg = self.config
        lookups = ([] if cfg.tie_weights else [self.wte]) + ([] if self.wpe is None else [self.wpe])
        n = self.num_params() - sum(m.weight.numel() for m in lookups)  # a table lookup does no matmul
        flops_per_token = 6 * n + 12 * cfg.n_layer * cfg.n_head * cfg.head_size * cfg.block_size
        return flops_per_token * tokens_per_iter / (dt * peak_flops)
