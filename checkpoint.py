"""
Checkpoints: what train.py writes and sample.py reads.

`out_dir/ckpt.pt` is a dict of tensors and plain Python values, so that it loads
with `torch.load(path, weights_only=True)` (no pickled code is ever run):

    format_version  int, CHECKPOINT_VERSION
    model           the model's state dict (never torch.compile's `_orig_mod.` keys)
    model_kind      "gpt" or "mlp"
    model_config    dict, the model's config dataclass as a dict
    optimizer       AdamW's state dict
    scaler          GradScaler's state dict (fp16 only, else {})
    train_config    dict, the full training config
    iter            int, optimizer steps done
    best_val_loss   float, lowest estimated val loss so far
    rng             dict: python, numpy (the batch sampler), torch, cuda states
    tokenizer_sha256  str, the sha256 of the tokenizer.model it was trained with

Next to it, train.py copies tokenizer.model, tokenizer.vocab and meta.json, so
that `python sample.py --out_dir=...` needs nothing else.
"""

import hashlib
import os
import pickle
import zipfile

import torch

from cli import UserError, atomic_path
from model_gpt import GPT, GPTConfig
from model_mlp import MLP, MLPConfig

CHECKPOINT_VERSION = 1
MODELS = {"gpt": (GPT, GPTConfig), "mlp": (MLP, MLPConfig)}
REQUIRED_KEYS = ("format_version", "model", "model_kind", "model_config", "train_config", "iter")


def build_model(kind, config):
    """A fresh model of kind 'gpt' or 'mlp' from a config dict."""
    if kind not in MODELS:
        raise UserError(f"unknown model {kind!r}: choose one of {', '.join(MODELS)}")
    model_cls, config_cls = MODELS[kind]
    try:
        return model_cls(config_cls.from_dict(config))
    except (TypeError, ValueError) as e:
        raise UserError(f"bad {kind} model config: {e}") from None


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(state, path):
    """torch.save to a temporary file, then rename: a crash mid-save leaves the previous checkpoint whole."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path, map_location="cpu"):
    """Load and check a checkpoint written by save_checkpoint; UserError with a sentence if it is not one."""
    if not os.path.exists(path):
        raise UserError(f"no checkpoint at {path}: train one first with `python train.py config/gpt_cpu.py "
                        f"--out_dir={os.path.dirname(path) or '.'}`")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(f"{path} holds objects other than tensors and plain values (pickled code?); "
                        f"it was refused for safety: only checkpoints written by train.py load") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise UserError(f"{path} is not a readable checkpoint (truncated or corrupt: {str(e).splitlines()[0]}); "
                        f"delete it and train again") from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED_KEYS):
        raise UserError(f"{path} is not a checkpoint written by this project's train.py")
    if ckpt["format_version"] != CHECKPOINT_VERSION:
        raise UserError(f"{path} has checkpoint format {ckpt['format_version']}, this code reads format "
                        f"{CHECKPOINT_VERSION}: train it again with this version of train.py")
    return ckpt


def model_from_checkpoint(ckpt):
    """Rebuild the saved model with its weights."""
    model = build_model(ckpt["model_kind"], ckpt["model_config"])
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise UserError(f"the checkpoint's weights do not fit its own model config "
                        f"({str(e).splitlines()[0]}); was it edited by hand?") from None
    return model
