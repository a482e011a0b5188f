"""
The MLP language model of Bengio et al. 2003, "A Neural Probabilistic Language Model".

To predict the next token, look up the embeddings of the previous block_size
tokens, concatenate them, and feed them to a one-hidden-layer network:

    logits = b + W x + U tanh(d + H x),   x = [C(w_{t-n+1}), ..., C(w_t)]   (the paper's notation)

W x is the paper's optional direct connection (config.direct). Positions before
the start of the text are filled with a dedicated blank token, so the model
predicts every position of a sequence, the first one included, in one pass.
"""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from lm import DictConfig, LanguageModel, check_config, lm_loss


@dataclass
class MLPConfig(DictConfig):
    vocab_size: int = 513
    block_size: int = 32  # how many previous tokens the model sees (the seed's context_length)
    n_embd: int = 64
    n_hidden: int = 512
    dropout: float = 0.0
    direct: bool = False  # the paper's direct connection from the embeddings to the output

    def __post_init__(self):
        check_config(self, positive=("vocab_size", "block_size", "n_embd", "n_hidden"))


class MLP(LanguageModel):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.blank = config.vocab_size  # the extra embedding row, only ever an input
        self.wte = nn.Embedding(config.vocab_size + 1, config.n_embd)
        n_in = config.block_size * config.n_embd
        self.hidden = nn.Linear(n_in, config.n_hidden)
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.n_hidden, config.vocab_size)
        self.direct = nn.Linear(n_in, config.vocab_size, bias=False) if config.direct else None
        # PyTorch's default init elsewhere, as in the seed; the output layers start at zero so the
        # untrained model predicts the uniform distribution (loss ln V, not ~0.07 above it)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        if self.direct is not None:
            nn.init.zeros_(self.direct.weight)

    def head(self, x):
        """Concatenated window embeddings (..., block_size * n_embd) -> logits (..., vocab_size)."""
        logits = self.out(self.drop(torch.tanh(self.hidden(x))))
        if self.direct is not None:
            logits = logits + self.direct(x)
        return logits

    def windows(self, idx):
        """(B, T) -> (B, T, block_size): row t holds the block_size tokens ending at position t."""
        padded = F.pad(idx, (self.config.block_size - 1, 0), value=self.blank)  # (B, block_size - 1 + T)
        return padded.unfold(1, self.config.block_size, 1)

    def forward(self, idx, targets=None):
        """idx (B, T) -> logits (B, T, vocab_size) and the loss if targets are given.

        Any T works: each position sees only its own window of block_size tokens.
        """
        x = self.wte(self.windows(idx)).flatten(2)  # (B, T, block_size, C) -> (B, T, block_size * C)
        logits = self.head(x)
        return logits, None if targets is None else lm_loss(logits, targets)

    # Generation needs no cache: the state is the last window, and each step computes
    # one position instead of the T positions forward would.

    def prefill(self, idx):
        # a fresh copy, laid out like the windows decode_step makes, so that a compiled step fits
        # them all (.contiguous() would keep the view's row stride when there is one row)
        window = self.windows(idx[:, -self.config.block_size:])[:, -1].clone(memory_format=torch.contiguous_format)
        return self.head(self.wte(window).flatten(1)), window

    def decode_step(self, token, window):
        window = torch.cat([window[:, 1:], token[:, None]], dim=1)  # slide the window by one token
        return self.head(self.wte(window).flatten(1)), window
