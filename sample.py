"""
Generate new songs from a checkpoint written by train.py.

    python sample.py --out_dir=out-gpt-cpu
    python sample.py --out_dir=out-gpt-cpu --start="Hey Mr. Tambourine Man" --num_samples=1
    python sample.py --out_dir=out-gpt-cpu --start=FILE:prompt.txt --temperature=0.8 --top_k=20

Each sample starts at the beginning of a song (after <|endoftext|>) and ends at
the next <|endoftext|> or after max_new_tokens. All samples are generated in one
batch; the text is streamed to stdout one sample after the other as it is made.
"""

import codecs
import os
import sys

import torch

from checkpoint import file_sha256, load_checkpoint, model_from_checkpoint
from cli import UserError, parse_config, run_main
from lm import check_sampling
from tokenizer import RegexTokenizer
from train import pick_device

DEFAULTS = dict(
    out_dir="out",  # where train.py wrote ckpt.pt and the tokenizer
    start="",  # the prompt: a string, or FILE:path to read it from a file
    num_samples=3,
    max_new_tokens=500,
    temperature=1.0,  # 0 is greedy: always the most likely token
    top_k=5,  # keep the k most likely tokens (the seed's 5); 0 keeps all
    top_p=1.0,  # nucleus sampling: keep the most likely tokens holding this much probability
    seed=1337,
    device="auto",
    dtype="auto",  # 'auto' (bfloat16 on a CUDA GPU that has it, else float32), 'float32', 'bfloat16', 'float16'
    compile=False,  # torch.compile the one-token step: faster per token, after a compile of tens of seconds
)
EOT = "<|endoftext|>"
DIVIDER = "\n" + "-" * 40 + "\n"


def get_config(argv):
    cfg = parse_config(DEFAULTS, argv)
    if cfg["max_new_tokens"] < 0:
        raise UserError(f"max_new_tokens must be >= 0, got {cfg['max_new_tokens']}")
    if cfg["top_k"] < 0 or cfg["num_samples"] < 1:
        raise UserError("top_k must be >= 0 (0 keeps every token) and num_samples >= 1")
    try:  # the models' own check of temperature and top_p, before any checkpoint is loaded
        check_sampling(cfg["temperature"], cfg["top_k"] or None, cfg["top_p"])
    except ValueError as e:
        raise UserError(str(e)) from None
    if cfg["dtype"] not in ("auto", "float32", "bfloat16", "float16"):
        raise UserError(f"dtype={cfg['dtype']!r} is not one of 'auto', 'float32', 'bfloat16', 'float16'")
    return cfg


def read_prompt(start):
    if not start.startswith("FILE:"):
        return start
    path = start[len("FILE:"):]
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise UserError(f"cannot read the prompt file {path!r} given with start=FILE:...: {e.strerror}") from None


def load(out_dir, device):
    """(model in eval mode on device, tokenizer, eot id) from out_dir."""
    ckpt = load_checkpoint(os.path.join(out_dir, "ckpt.pt"), map_location=device)
    tok_path = os.path.join(out_dir, "tokenizer.model")
    if not os.path.exists(tok_path):
        raise UserError(f"{tok_path} is missing: train.py copies it next to the checkpoint; "
                        f"copy it from the data folder the model was trained on")
    if ckpt.get("tokenizer_sha256") not in (None, file_sha256(tok_path)):
        raise UserError(f"{tok_path} is not the tokenizer the checkpoint was trained with: "
                        f"copy tokenizer.model from the data folder it was trained on")
    try:
        tok = RegexTokenizer.from_file(tok_path)
    except ValueError as e:
        raise UserError(str(e)) from None
    if EOT not in tok.special_tokens:
        raise UserError(f"{tok_path} has no {EOT} token: prepare the data again with this project's prepare.py")
    model = model_from_checkpoint(ckpt).to(device).eval()
    return model, tok, tok.special_tokens[EOT]


def encode_prompt(tok, prompt, eot, block_size):
    """[eot] + the prompt's tokens, cut to the last block_size tokens (with a notice)."""
    ids = [eot] + tok.encode(prompt, allowed_special="all")
    if len(ids) > block_size:
        print(f"note: the prompt is {len(ids)} tokens long, more than the model's context of {block_size}; "
              f"keeping its last {block_size} tokens", file=sys.stderr)
        ids = ids[-block_size:]
    return ids


class StreamPrinter:
    """Prints one sample at a time while all are generated together in one batch.

    The sample on screen is written as its tokens arrive; the others are buffered
    until it is over. Bytes go through an incremental UTF-8 decoder, so a character
    split across two tokens is printed once it is whole.
    """

    def __init__(self, tok, n, out):
        self.tok, self.out = tok, out
        self.decoders = [codecs.getincrementaldecoder("utf-8")(errors="replace") for _ in range(n)]
        self.texts = [[] for _ in range(n)]
        self.done = [False] * n
        self.shown = 0  # the sample now on screen
        self.written = 0  # how many of its pieces are on screen

    def add(self, row, token_id):
        self.texts[row].append(self.decoders[row].decode(self.tok.decode_bytes([token_id])))

    def finish(self, row):
        if not self.done[row]:
            self.texts[row].append(self.decoders[row].decode(b"", final=True))
            self.done[row] = True

    def flush(self):
        while self.shown < len(self.texts):
            pieces = self.texts[self.shown]
            self.out.write("".join(pieces[self.written:]))
            self.written = len(pieces)
            if not self.done[self.shown]:
                break
            self.shown, self.written = self.shown + 1, 0
            if self.shown < len(self.texts):
                self.out.write(DIVIDER)
        self.out.flush()


def generate_songs(model, tok, prompt_ids, eot, cfg, out=None):
    """Generate cfg['num_samples'] songs after prompt_ids, streaming them to out (stdout); returns their texts."""
    out = sys.stdout if out is None else out
    device = next(model.parameters()).device
    n = cfg["num_samples"]
    idx = torch.tensor([prompt_ids] * n, dtype=torch.long, device=device)
    generator = torch.Generator(device=device).manual_seed(cfg["seed"])
    printer = StreamPrinter(tok, n, out)
    prompt = tok.decode(prompt_ids[1:] if prompt_ids[0] == eot else prompt_ids)
    for row in range(n):
        printer.texts[row].append(prompt)
    stream = model.generate_stream(idx, cfg["max_new_tokens"], temperature=cfg["temperature"],
                                   top_k=cfg["top_k"] or None, top_p=cfg["top_p"], stop_token=eot,
                                   generator=generator)
    for tokens in stream:
        for row, t in enumerate(tokens.tolist()):
            if printer.done[row]:
                continue
            if t == eot:
                printer.finish(row)  # the song is over; the special token is not printed
            else:
                printer.add(row, t)
        printer.flush()
    for row in range(n):
        printer.finish(row)
    printer.flush()
    out.write("\n")
    out.flush()
    return ["".join(t) for t in printer.texts]


def main(argv=None):
    cfg = get_config(sys.argv[1:] if argv is None else argv)
    device = pick_device(cfg["device"])
    model, tok, eot = load(cfg["out_dir"], device)
    prompt_ids = encode_prompt(tok, read_prompt(cfg["start"]), eot, model.config.block_size)
    dtype = cfg["dtype"]
    if dtype == "auto":
        dtype = "bfloat16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    if dtype != "float32":
        model.to({"bfloat16": torch.bfloat16, "float16": torch.float16}[dtype])
    if cfg["compile"]:
        model.compile_decoding()
    torch.manual_seed(cfg["seed"])
    return generate_songs(model, tok, prompt_ids, eot, cfg)


if __name__ == "__main__":
    run_main(main)
