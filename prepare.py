"""
Turn a dataset of songs into what train.py reads: a trained tokenizer and two
flat streams of token ids, one to train on and one to validate on.

    python prepare.py                          # huggingartists/bob-dylan from the Hub -> data/bob-dylan/
    python prepare.py --dataset=hey-bob        # the built-in corpus                     -> data/hey-bob/
    python prepare.py --dataset=songs.txt      # a local file or folder                  -> data/songs/

Where the songs come from (--dataset=...):
- ORG/NAME: a dataset on the Hugging Face Hub; its "train" split, one song per
  row in --text_column.
- hey-bob: the 345 Bob Dylan songs shipped in the PyPI package hey-bob. This is
  also what the default dataset falls back to when the Hub cannot be reached or
  HF_HUB_OFFLINE=1 is set (the data folder is then data/hey-bob).
- a .csv, .json, .jsonl or .parquet file: one song per row, in --text_column.
- a .txt file: songs separated by a line that holds only <|endoftext|> (that
  line and its line breaks belong to no song; a file without such a line is
  one song).
- a folder: every .txt file directly inside it is one song, in order of name.

What comes out, in data/<name>/ (or --out_dir):
- train.bin, val.bin: token ids as np.uint16, one flat stream per split, the
  songs separated by the <|endoftext|> token; read them with
  np.memmap(path, dtype=np.uint16, mode="r").
- tokenizer.model (RegexTokenizer.load reads it), tokenizer.vocab (for people).
- meta.json: vocab size, special token ids, source, split, per split the songs,
  characters, bytes and tokens, checksums, versions, and the fingerprint that
  makes a re-run with the same source and options a no-op (--force=True rebuilds).

The split is the datasets library's train_test_split with a fixed seed; the
tokenizer learns its merges from the train split only. The text is never
altered; songs that are empty or only whitespace are dropped and counted.
Everything is written into a hidden folder beside the data folder and swapped in
at the end, so a failed or interrupted run leaves the previous complete data
folder, or none.
"""

import csv
import hashlib
import importlib.metadata
import importlib.resources
import importlib.util
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone

import datasets
import numpy as np
from tqdm import tqdm

import tokenizer
from cli import UserError, parse_config, run_main
from tokenizer import RegexTokenizer

PROJECT_VERSION = "0.1.0"

DEFAULTS = dict(
    dataset="huggingartists/bob-dylan",  # ORG/NAME on the Hub, "hey-bob" (built-in), or a local file or folder
    text_column="text",  # the column that holds the songs (Hub datasets and .csv/.json/.parquet files)
    vocab_size=512,  # byte tokens + merges; <|endoftext|> comes right after (id 512)
    test_size=0.1,  # fraction of the songs held out for validation
    seed=1337,  # seed of the train/validation split
    out_dir="",  # the data folder; empty: data/<name of the dataset>
    max_songs=0,  # keep only the first N non-empty songs (quick runs, tests); 0: all
    force=False,  # rebuild even if the data folder is up to date
)

EOT = "<|endoftext|>"
BUILTIN = "hey-bob"
FALLBACK_FOR = DEFAULTS["dataset"]  # the built-in corpus stands in for this dataset only
LOADERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet", ".txt": "text"}
FILES = ("train.bin", "val.bin", "tokenizer.model", "tokenizer.vocab", "meta.json")
TXT_SEPARATOR = re.compile(r"\n?^<\|endoftext\|>$\n?", re.MULTILINE)
PROGRESS_CHARS = 1_000_000  # a split with more characters than this gets a progress bar while encoding


def check_options(cfg):
    """Refuse options that cannot work, before any data is read."""
    n_special = 1  # <|endoftext|>
    if cfg["vocab_size"] < 256:
        raise UserError(f"vocab_size={cfg['vocab_size']} is below 256, the number of byte tokens; "
                        f"use 256 or more (512 is the default)")
    if cfg["vocab_size"] + n_special > 65536:
        raise UserError(f"vocab_size={cfg['vocab_size']} plus {n_special} special token needs ids above 65,535, "
                        f"which do not fit in uint16; use a vocab_size of at most {65536 - n_special}")
    if not 0 < cfg["test_size"] < 1:
        raise UserError(f"test_size={cfg['test_size']} must be a fraction between 0 and 1, e.g. 0.1")
    if cfg["max_songs"] < 0:
        raise UserError(f"max_songs={cfg['max_songs']} must be 0 (all songs) or a positive number")
    if not cfg["dataset"]:
        raise UserError("dataset is empty; name a Hub dataset (ORG/NAME), hey-bob, or a local file or folder")


# -----------------------------------------------------------------------------
# loading: every source gives a list of texts (one per song) and a description

class HubUnreachable(UserError):
    """The Hub cannot be reached, or HF_HUB_OFFLINE is set: the default dataset falls back to the built-in one."""

    def __init__(self, name, reason, hint):
        super().__init__(f"{reason}, so {name} cannot be loaded{hint}; use a local file, "
                         f"or --dataset=hey-bob for the built-in corpus")
        self.reason, self.hint = reason, hint


def load_songs(cfg):
    """The songs of cfg['dataset'] in the source's order, and a dict saying where they came from."""
    dataset = os.path.expanduser(cfg["dataset"])
    if dataset == BUILTIN:
        return read_builtin()
    # a path if it exists or looks like one; otherwise a Hub name (which can look like a relative path)
    if os.path.exists(dataset) or dataset.startswith((".", "/")) or os.path.splitext(dataset)[1].lower() in LOADERS:
        return read_local(dataset, cfg["text_column"])
    try:
        return read_hub(dataset, cfg["text_column"])
    except HubUnreachable as e:
        if dataset != FALLBACK_FOR:
            raise
        songs, source = read_builtin()
        print(f"{e.reason}: using the built-in corpus instead ({len(songs)} Bob Dylan songs from the "
              f"hey-bob package), data folder {data_dir(cfg, source)}{e.hint}")
        return songs, source


def hub_offline():
    # read at call time (the libraries read it once, at import)
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def read_hub(name, column):
    if hub_offline():
        raise HubUnreachable(name, "HF_HUB_OFFLINE is set", "")
    try:
        ds = datasets.load_dataset(name, split="train")
    except datasets.exceptions.DatasetNotFoundError:
        raise UserError(f"there is no dataset {name!r} on the Hugging Face Hub (or it is private), "
                        f"and no local file or folder of that name") from None
    except ConnectionError:  # after the library's ~25 s of retries; OfflineModeIsEnabled is one too
        raise HubUnreachable(name, "the Hugging Face Hub cannot be reached",
                             " (set HF_HUB_OFFLINE=1 to skip the wait for the Hub next time)") from None
    except ValueError as e:  # e.g. no "train" split
        raise UserError(f"cannot load {name} from the Hugging Face Hub: {e}") from None
    source = {"kind": "hub", "name": name, "location": f"https://huggingface.co/datasets/{name}",
              "text_column": column}
    return column_texts(ds, column, label(source)), source


def read_builtin():
    # The package's data file, found without running the package's code (its __init__ imports pandas).
    spec = importlib.util.find_spec("hey_bob")
    if spec is None:
        raise UserError("the built-in corpus comes from the hey-bob package, which is not installed: "
                        "pip install hey-bob")
    lyrics = importlib.resources.files(importlib.util.module_from_spec(spec)) / "data" / "lyrics.csv"
    with lyrics.open(encoding="utf-8", newline="") as f:
        songs = [row["lyrics"] for row in csv.DictReader(f)]  # columns: release_year, album, title, lyrics
    version = importlib.metadata.version("hey-bob")
    return songs, {"kind": "built-in", "name": BUILTIN, "location": f"hey-bob {version}: hey_bob/data/lyrics.csv",
                   "text_column": "lyrics"}


def read_local(path, column):
    if not os.path.exists(path):
        raise UserError(f"no such file or folder: {path}")
    source = {"kind": "path", "name": os.path.basename(os.path.abspath(path)),
              "location": os.path.abspath(path), "text_column": column}
    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.endswith(".txt") and os.path.isfile(os.path.join(path, f)))
        if not files:
            raise UserError(f"the folder {path} holds no .txt files (one song per file)")
        ds = load_local("text", [os.path.join(path, f) for f in files], path, sample_by="document")
        return list(ds["text"]), {**source, "text_column": None}
    loader = LOADERS.get(os.path.splitext(path)[1].lower())
    if loader is None:
        raise UserError(f"cannot read {path}: expected a .txt, .csv, .json, .jsonl or .parquet file, "
                        f"or a folder of .txt files")
    if loader == "text":
        ds = load_local("text", path, path, sample_by="document")
        return TXT_SEPARATOR.split(ds["text"][0]), {**source, "text_column": None}
    return column_texts(load_local(loader, path, path), column, path), source


def load_local(loader, data_files, where, **kwargs):
    """The datasets library's own loader for a local file (or files), with its errors as sentences."""
    try:
        return datasets.load_dataset(loader, data_files=data_files, split="train", **kwargs)
    except ValueError as e:
        if "corresponds to no data" in str(e):
            raise UserError(f"{where} has no rows: there are no songs in it") from None
        raise UserError(f"cannot read {where} as {loader}: {e}") from None
    except datasets.exceptions.DatasetGenerationError as e:
        raise UserError(f"cannot read {where} as {loader}: {e.__cause__ or e}") from None


def column_texts(ds, column, where):
    """The values of one column as a list of str (a missing value is an empty song)."""
    if column not in ds.column_names:
        raise UserError(f"{where} has no column {column!r}; its columns are {', '.join(ds.column_names)}: "
                        f"name the one with the songs with --text_column=NAME")
    texts = ["" if t is None else t for t in ds[column]]
    wrong = next((t for t in texts if not isinstance(t, str)), None)
    if wrong is not None:
        raise UserError(f"column {column!r} of {where} holds {type(wrong).__name__} values, not text; "
                        f"name the column with the songs with --text_column=NAME")
    return texts


def clean_songs(texts, max_songs, where):
    """Drop empty songs and keep the first max_songs (0: all); returns (songs, number dropped)."""
    if not texts:
        raise UserError(f"{where} has no rows: there are no songs in it")
    songs = [t for t in texts if t.strip()]
    if not songs:
        raise UserError(f"every song in {where} is empty ({len(texts)} rows)")
    return songs[:max_songs] if max_songs else songs, len(texts) - len(songs)


def data_dir(cfg, source):
    """--out_dir, or data/<name>: the Hub dataset's name, hey-bob, or the local file or folder's stem."""
    if cfg["out_dir"]:
        return cfg["out_dir"]
    name = source["name"].split("/")[-1]
    if source["kind"] == "path":
        name = os.path.splitext(name)[0] if os.path.isfile(source["location"]) else name
    return os.path.join("data", name)


def label(source):
    """How error messages name a source."""
    return {"hub": f"the Hub dataset {source['name']}", "built-in": "the built-in corpus",
            "path": source["location"]}[source["kind"]]


# -----------------------------------------------------------------------------
# split, tokenizer, encoding

def split_songs(songs, test_size, seed):
    """(train songs, validation songs): the datasets library's shuffled split, the same for the same seed."""
    try:
        parts = datasets.Dataset.from_dict({"text": songs}).train_test_split(test_size=test_size, seed=seed)
    except ValueError:
        raise UserError(f"cannot split {len(songs)} songs with test_size={test_size}: each split needs at "
                        f"least one song; use more songs or another test_size") from None
    return list(parts["train"]["text"]), list(parts["test"]["text"])


def train_tokenizer(songs, vocab_size):
    """A RegexTokenizer (GPT-4 split pattern) trained on the songs, with <|endoftext|> right after the merges."""
    tok = RegexTokenizer()
    tok.train("\n".join(songs), vocab_size)
    tok.register_special_tokens({EOT: 256 + len(tok.merges)})  # fewer merges if the text runs out of pairs
    return tok


def encode_split(tok, songs, name="songs"):
    """One flat np.uint16 stream: the songs' tokens with <|endoftext|> between songs."""
    eot = tok.special_tokens[EOT]
    large = sum(len(s) for s in songs) > PROGRESS_CHARS
    ids = []
    for i, song in enumerate(tqdm(songs, desc=f"encoding {name}", unit="song", disable=not large)):
        if i:
            ids.append(eot)
        # ordinary: a song that quotes "<|endoftext|>" keeps it as text, so the token only ever separates songs
        ids.extend(tok.encode_ordinary(song))
    return np.array(ids, dtype=np.uint16)


def split_stats(songs, ids):
    """What meta.json says about a split. bytes counts the songs' UTF-8 text, tokens the whole stream
    (separators included), so bits per byte = loss in bits per token / bytes_per_token."""
    n_bytes = sum(len(s.encode("utf-8")) for s in songs)
    return {"songs": len(songs), "chars": sum(len(s) for s in songs), "bytes": n_bytes, "tokens": len(ids),
            "bytes_per_token": n_bytes / len(ids), "sha256": hashlib.sha256(ids.tobytes()).hexdigest()}


# -----------------------------------------------------------------------------
# fingerprint, meta.json, the data folder

def fingerprint(source, songs, cfg):
    """A hash of what the data folder is made from: source, its text, options, tokenizer format."""
    text = hashlib.sha256()
    for song in songs:
        text.update(f"{len(song)}\n{song}".encode("utf-8"))
    what = {"source": [source["kind"], source["name"], source["location"], source["text_column"]],
            "text": text.hexdigest(), "vocab_size": cfg["vocab_size"], "test_size": cfg["test_size"],
            "seed": cfg["seed"], "max_songs": cfg["max_songs"],
            "tokenizer": [tokenizer.MODEL_VERSION_LINE, tokenizer.GPT4_SPLIT_PATTERN], "special": EOT}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def is_up_to_date(out_dir, fp):
    try:
        with open(os.path.join(out_dir, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return False
    return meta.get("fingerprint") == fp and all(os.path.isfile(os.path.join(out_dir, f)) for f in FILES)


def version_of(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def make_meta(cfg, source, fp, tok, stats, dropped):
    return {
        "vocab_size": len(tok.vocab),  # byte tokens + merges + special tokens
        "special_tokens": dict(tok.special_tokens),
        "dtype": "uint16",
        "dataset": source,
        "seed": cfg["seed"],
        "test_size": cfg["test_size"],
        "max_songs": cfg["max_songs"],
        "empty_songs_dropped": dropped,
        "splits": {name: {"file": f"{name}.bin", **s} for name, s in stats.items()},
        "tokenizer": {"model": "tokenizer.model", "vocab": "tokenizer.vocab", "merges": len(tok.merges),
                      "format": tokenizer.MODEL_VERSION_LINE},
        "fingerprint": fp,
        "versions": {"project": PROJECT_VERSION, "python": platform.python_version(),
                     "torch": version_of("torch"), "datasets": datasets.__version__, "numpy": np.__version__},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def check_replaceable(out_dir):
    """Refuse to replace a folder that holds anything prepare.py did not write."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UserError(f"out_dir {out_dir} is a file, not a folder; choose another --out_dir")
    others = sorted(set(os.listdir(out_dir)) - set(FILES)) if os.path.isdir(out_dir) else []
    if others:
        raise UserError(f"out_dir {out_dir} holds files prepare.py did not write ({', '.join(others[:3])}); "
                        f"choose another --out_dir or move them away")


def write_bin(path, ids):
    ids.tofile(path)


def write_dataset(out_dir, tok, ids, meta):
    """Write the whole data folder beside out_dir, then swap it in: out_dir is always complete or absent."""
    parent, name = os.path.split(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{name}.tmp-")
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        for split, split_ids in ids.items():
            write_bin(os.path.join(tmp, f"{split}.bin"), split_ids)
        tok.save(os.path.join(tmp, "tokenizer"))
        with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2, ensure_ascii=False)
            f.write("\n")
        swap_in(tmp, out_dir)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)


def swap_in(new, out_dir):
    """Move the folder `new` onto out_dir, replacing the previous data folder."""
    if not os.path.exists(out_dir):
        os.rename(new, out_dir)
        return
    old = new + ".old"
    os.rename(out_dir, old)
    try:
        os.rename(new, out_dir)
    except BaseException:
        os.rename(old, out_dir)
        raise
    shutil.rmtree(old)


def print_summary(out_dir, source, meta, times):
    print(f"wrote {out_dir} ({', '.join(FILES)}) from {source['kind']} {source['location']}")
    print(f"{'split':<6} {'songs':>7} {'chars':>11} {'bytes':>11} {'tokens':>11} {'bytes/token':>12}")
    for name, s in meta["splits"].items():
        print(f"{name:<6} {s['songs']:>7,} {s['chars']:>11,} {s['bytes']:>11,} {s['tokens']:>11,} "
              f"{s['bytes_per_token']:>12.3f}")
    specials = ", ".join(f"{k} = {v}" for k, v in meta["special_tokens"].items())
    print(f"vocab {meta['vocab_size']} (256 bytes + {meta['tokenizer']['merges']} merges + {specials}); "
          f"{meta['empty_songs_dropped']} empty songs dropped")
    print("time: " + ", ".join(f"{k} {v:.2f} s" for k, v in times.items()) + f", total {sum(times.values()):.2f} s")


# -----------------------------------------------------------------------------

def main(argv=None):
    cfg = parse_config(DEFAULTS, sys.argv[1:] if argv is None else argv)
    check_options(cfg)
    times = {}
    t0 = time.perf_counter()

    def lap(stage):
        nonlocal t0
        t = time.perf_counter()
        times[stage], t0 = t - t0, t

    texts, source = load_songs(cfg)
    songs, dropped = clean_songs(texts, cfg["max_songs"], label(source))
    out_dir = data_dir(cfg, source)
    fp = fingerprint(source, songs, cfg)
    if not cfg["force"] and is_up_to_date(out_dir, fp):
        print(f"{out_dir} is up to date (same source and options): nothing to do; --force=True rebuilds it")
        return
    check_replaceable(out_dir)
    lap("load")
    train, val = split_songs(songs, cfg["test_size"], cfg["seed"])
    lap("split")
    tok = train_tokenizer(train, cfg["vocab_size"])
    lap("tokenizer")
    ids = {"train": encode_split(tok, train, "train"), "val": encode_split(tok, val, "val")}
    lap("encode")
    stats = {name: split_stats(s, ids[name]) for name, s in (("train", train), ("val", val))}
    meta = make_meta(cfg, source, fp, tok, stats, dropped)
    write_dataset(out_dir, tok, ids, meta)
    lap("write")
    print_summary(out_dir, source, meta, times)


if __name__ == "__main__":
    run_main(main)
