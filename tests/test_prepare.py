"""Tests of prepare.py: the data folder it writes, its sources, its atomicity, its errors."""

import csv
import json
import os
import random
import subprocess
import sys

import datasets
import numpy as np
import pytest

import prepare
from cli import UserError
from tokenizer import RegexTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EOT = "<|endoftext|>"
WORDS = "the road wind rain woman baby Mama’s river town train don’t I’m you your rolling blowing it’s".split()
SMALL = ["--vocab_size=300"]  # 44 merges: enough to exercise the tokenizer, fast


def make_songs(n=40, seed=0):
    """n distinct songs with blank lines, curly apostrophes and a trailing line break on some."""
    rng = random.Random(seed)
    songs = []
    for i in range(n):
        verses = ["\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8)))
                            for _ in range(rng.randint(2, 4)))
                  for _ in range(rng.randint(1, 3))]
        songs.append(f"Song number {i}\n" + "\n\n".join(verses) + ("\n" if i % 3 == 0 else ""))
    return songs


SONGS = make_songs()
WITH_EMPTY = SONGS[:5] + ["", "  \n"] + SONGS[5:]  # two empty songs, dropped and counted


def write_txt(path, songs):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(f"\n{EOT}\n".join(songs))
    return str(path)


def write_csv(path, songs, column="lyrics"):
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["title", column])
        w.writerows([f"title {i}", s] for i, s in enumerate(songs))
    return str(path)


def run(*args):
    prepare.main([str(a) for a in args])


def read_meta(out):
    with open(os.path.join(out, "meta.json"), encoding="utf-8") as f:
        return json.load(f)


def read_bin(out, split):
    return np.memmap(os.path.join(out, f"{split}.bin"), dtype=np.uint16, mode="r")


def decoded_songs(out, split):
    tok = RegexTokenizer()
    tok.load(os.path.join(out, "tokenizer.model"))
    return tok.decode(read_bin(out, split).tolist()).split(EOT)


def snapshot(out):
    """Each file's (inode, mtime, bytes): changes if the file is rewritten or replaced."""
    result = {}
    for name in sorted(os.listdir(out)):
        path = os.path.join(out, name)
        st = os.stat(path)
        with open(path, "rb") as f:
            result[name] = (st.st_ino, st.st_mtime_ns, f.read())
    return result


@pytest.fixture
def corpus(tmp_path):
    return write_txt(tmp_path / "songs.txt", WITH_EMPTY)


@pytest.fixture
def built(tmp_path, corpus):
    out = tmp_path / "out"
    run(f"--dataset={corpus}", f"--out_dir={out}", *SMALL)
    return str(out)


# -----------------------------------------------------------------------------
# the data folder

def test_bins_are_uint16_streams_of_the_lengths_meta_says(built):
    meta = read_meta(built)
    assert sorted(os.listdir(built)) == sorted(prepare.FILES)
    assert meta["vocab_size"] == 301 and meta["special_tokens"] == {EOT: 300} and meta["dtype"] == "uint16"
    assert meta["empty_songs_dropped"] == 2
    assert meta["splits"]["train"]["songs"] == 36 and meta["splits"]["val"]["songs"] == 4  # ceil(0.1 * 40) held out
    for split in ("train", "val"):
        ids = np.fromfile(os.path.join(built, f"{split}.bin"), dtype=np.uint16)
        stats = meta["splits"][split]
        assert len(ids) == stats["tokens"]
        assert os.path.getsize(os.path.join(built, f"{split}.bin")) == 2 * stats["tokens"]
        assert ids.max() <= 300
        assert (ids == 300).sum() == stats["songs"] - 1  # one <|endoftext|> between each two songs


def test_train_bin_decodes_to_the_train_songs_joined_by_endoftext(built):
    train, val = prepare.split_songs(SONGS, 0.1, 1337)
    for split, songs in (("train", train), ("val", val)):
        ids = read_bin(built, split).tolist()
        tok = RegexTokenizer()
        tok.load(os.path.join(built, "tokenizer.model"))
        assert tok.decode(ids) == EOT.join(songs)
        stats = read_meta(built)["splits"][split]
        assert stats["chars"] == sum(len(s) for s in songs)
        assert stats["bytes"] == sum(len(s.encode("utf-8")) for s in songs)
        assert stats["bytes_per_token"] == stats["bytes"] / stats["tokens"]


def test_no_song_is_in_both_splits_and_none_is_lost(built):
    train, val = decoded_songs(built, "train"), decoded_songs(built, "val")
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(SONGS)


def test_split_is_reproducible_with_the_seed_and_differs_with_another(tmp_path, corpus):
    for name, seed in (("a", 1337), ("b", 1337), ("c", 7)):
        run(f"--dataset={corpus}", f"--out_dir={tmp_path / name}", f"--seed={seed}", *SMALL)
    a, b, c = (read_meta(tmp_path / name) for name in "abc")
    assert a["splits"] == b["splits"]  # checksums included
    assert decoded_songs(tmp_path / "a", "val") == decoded_songs(tmp_path / "b", "val")
    assert set(decoded_songs(tmp_path / "a", "val")) != set(decoded_songs(tmp_path / "c", "val"))
    assert c["seed"] == 7


def test_text_is_not_altered(tmp_path):
    songs = ["Don’t think twice, it’s all right\n", "Dont think twice its alright", "line one\n\nline two  "]
    out = tmp_path / "out"
    path = write_txt(tmp_path / "songs.txt", songs)
    run(f"--dataset={path}", f"--out_dir={out}", "--test_size=0.34", "--vocab_size=260")
    assert sorted(decoded_songs(out, "train") + decoded_songs(out, "val")) == sorted(songs)


# -----------------------------------------------------------------------------
# sources

@pytest.mark.parametrize("kind", ["txt", "folder", "csv", "jsonl", "json", "parquet"])
def test_each_local_format_gives_the_songs_in_order(tmp_path, kind):
    path = tmp_path / f"songs.{kind}"
    if kind == "txt":
        write_txt(path, WITH_EMPTY)
    elif kind == "folder":
        path = tmp_path / "songs"
        path.mkdir()
        for i, song in enumerate(WITH_EMPTY):
            (path / f"{i:03d}.txt").write_text(song, encoding="utf-8")
        (path / "notes.md").write_text("not a song", encoding="utf-8")
    elif kind == "csv":
        write_csv(path, WITH_EMPTY, column="text")
    elif kind == "jsonl":
        path.write_text("".join(json.dumps({"text": s}) + "\n" for s in WITH_EMPTY), encoding="utf-8")
    elif kind == "json":
        path.write_text(json.dumps([{"text": s} for s in WITH_EMPTY]), encoding="utf-8")
    else:
        datasets.Dataset.from_dict({"text": WITH_EMPTY}).to_parquet(str(path))
    cfg = dict(prepare.DEFAULTS, dataset=str(path))
    texts, source = prepare.load_songs(cfg)
    assert prepare.clean_songs(texts, 0, "x") == (SONGS, 2)
    assert source["kind"] == "path" and source["location"] == str(path)
    assert prepare.data_dir(cfg, source) == os.path.join("data", "songs")


def test_txt_separator_is_a_line_of_its_own(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text(f"one\n{EOT}\n{EOT}\ntwo {EOT} still two\n{EOT}\nthree\n", encoding="utf-8")
    texts, _ = prepare.load_songs(dict(prepare.DEFAULTS, dataset=str(path)))
    assert texts == ["one", "", f"two {EOT} still two", "three\n"]


def test_max_songs_keeps_the_first_non_empty_songs(tmp_path, corpus):
    out = tmp_path / "out"
    run(f"--dataset={corpus}", f"--out_dir={out}", "--max_songs=10", *SMALL)
    assert sorted(decoded_songs(out, "train") + decoded_songs(out, "val")) == sorted(SONGS[:10])


def builtin_lyrics():
    path = os.path.join(os.path.dirname(prepare.importlib.util.find_spec("hey_bob").origin), "data", "lyrics.csv")
    with open(path, encoding="utf-8", newline="") as f:
        return [row["lyrics"] for row in csv.DictReader(f)]


def test_offline_falls_back_to_the_builtin_corpus_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("the Hub was called"))
    monkeypatch.chdir(tmp_path)
    run("--max_songs=20", *SMALL)
    out = capsys.readouterr().out
    assert "HF_HUB_OFFLINE is set: using the built-in corpus instead" in out
    assert os.path.join("data", "hey-bob") in out.splitlines()[0]
    assert not os.path.exists(tmp_path / "data" / "bob-dylan")
    built = tmp_path / "data" / "hey-bob"
    meta = read_meta(built)
    assert meta["dataset"]["kind"] == "built-in" and meta["dataset"]["text_column"] == "lyrics"
    songs = decoded_songs(built, "train") + decoded_songs(built, "val")
    lyrics = builtin_lyrics()
    assert len(lyrics) == 345
    assert sorted(songs) == sorted(lyrics[:20])  # the first 20 rows of the CSV, curly apostrophes and all
    assert any("’" in s for s in songs)
    assert "hey_bob" not in sys.modules  # read as data, the package's code never ran


def test_unreachable_hub_falls_back_and_says_how_to_skip_the_wait(tmp_path, monkeypatch, capsys):
    def unreachable(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'huggingartists/bob-dylan' on the Hub (LocalEntryNotFoundError)")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    out = tmp_path / "out"
    run(f"--out_dir={out}", "--max_songs=15", *SMALL)
    line = capsys.readouterr().out.splitlines()[0]
    assert "cannot be reached: using the built-in corpus" in line and "HF_HUB_OFFLINE=1" in line
    assert read_meta(out)["dataset"]["kind"] == "built-in"
    # another Hub dataset does not silently become Bob Dylan
    with pytest.raises(UserError, match="cannot be reached, so someone/poems cannot be loaded"):
        run("--dataset=someone/poems", f"--out_dir={tmp_path / 'p'}", *SMALL)


def test_hub_dataset_is_loaded_with_its_train_split_and_named_after_it(tmp_path, monkeypatch):
    calls = []

    def fake_hub(name, split):
        calls.append((name, split))
        return datasets.Dataset.from_dict({"title": [str(i) for i in range(len(SONGS))], "text": SONGS})
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", fake_hub)
    monkeypatch.chdir(tmp_path)
    run(*SMALL)
    assert calls == [("huggingartists/bob-dylan", "train")]
    meta = read_meta(tmp_path / "data" / "bob-dylan")
    assert meta["dataset"] == {"kind": "hub", "name": "huggingartists/bob-dylan", "text_column": "text",
                               "location": "https://huggingface.co/datasets/huggingartists/bob-dylan"}
    with pytest.raises(UserError, match=r"has no column 'lyrics'; its columns are title, text"):
        run("--text_column=lyrics", *SMALL)


def test_missing_hub_dataset_is_a_sentence(tmp_path, monkeypatch):
    def missing(*args, **kwargs):
        raise datasets.exceptions.DatasetNotFoundError("Dataset 'nobody/nothing' doesn't exist on the Hub")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", missing)
    with pytest.raises(UserError, match="no dataset 'nobody/nothing' on the Hugging Face Hub"):
        run("--dataset=nobody/nothing", f"--out_dir={tmp_path / 'out'}")


# -----------------------------------------------------------------------------
# nothing half-written, nothing lost

@pytest.mark.parametrize("failure", [OSError("disk full"), KeyboardInterrupt()])
def test_a_run_that_fails_midway_leaves_the_previous_dataset(tmp_path, built, corpus, monkeypatch, failure):
    before = snapshot(built)
    write_bin = prepare.write_bin

    def fail_on_val(path, ids):
        if path.endswith("val.bin"):
            raise failure
        write_bin(path, ids)  # train.bin is written, then the run dies
    monkeypatch.setattr(prepare, "write_bin", fail_on_val)
    with pytest.raises(type(failure)):
        run(f"--dataset={corpus}", f"--out_dir={built}", "--seed=7", "--force=True", *SMALL)
    assert snapshot(built) == before
    assert sorted(os.listdir(tmp_path)) == ["out", "songs.txt"]  # no temporary folder left behind


def test_a_first_run_that_fails_midway_leaves_no_dataset(tmp_path, corpus, monkeypatch):
    def fail(path, ids):
        raise OSError("disk full")
    monkeypatch.setattr(prepare, "write_bin", fail)
    with pytest.raises(OSError):
        run(f"--dataset={corpus}", f"--out_dir={tmp_path / 'out'}", *SMALL)
    assert sorted(os.listdir(tmp_path)) == ["songs.txt"]


def test_a_failed_swap_puts_the_previous_dataset_back(tmp_path, built, corpus, monkeypatch):
    before = snapshot(built)
    rename = os.rename

    def fail_moving_the_new_folder_in(src, dst):
        if os.path.basename(src).startswith(".out.tmp-") and not src.endswith(".old"):
            raise OSError("rename failed")
        rename(src, dst)
    monkeypatch.setattr(os, "rename", fail_moving_the_new_folder_in)
    with pytest.raises(OSError, match="rename failed"):
        run(f"--dataset={corpus}", f"--out_dir={built}", "--seed=7", "--force=True", *SMALL)
    monkeypatch.undo()
    assert snapshot(built) == before
    assert sorted(os.listdir(tmp_path)) == ["out", "songs.txt"]


def test_rerun_with_the_same_source_and_options_does_nothing(built, corpus, capsys):
    before = snapshot(built)
    capsys.readouterr()
    run(f"--dataset={corpus}", f"--out_dir={built}", *SMALL)
    assert "is up to date (same source and options): nothing to do; --force=True rebuilds it" in capsys.readouterr().out
    assert snapshot(built) == before


def test_force_or_a_changed_option_or_source_rebuilds(tmp_path, built, corpus, capsys):
    run(f"--dataset={corpus}", f"--out_dir={built}", "--force=True", *SMALL)
    assert "wrote" in capsys.readouterr().out
    fp = read_meta(built)["fingerprint"]
    run(f"--dataset={corpus}", f"--out_dir={built}", "--vocab_size=280")
    assert read_meta(built)["vocab_size"] == 281 and read_meta(built)["fingerprint"] != fp
    write_txt(corpus, WITH_EMPTY + ["one more song"])
    run(f"--dataset={corpus}", f"--out_dir={built}", "--vocab_size=280")
    assert "one more song" in decoded_songs(built, "train") + decoded_songs(built, "val")


def test_a_folder_prepare_did_not_write_is_not_replaced(tmp_path, corpus):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious", encoding="utf-8")
    with pytest.raises(UserError, match="holds files prepare.py did not write \\(thesis.tex\\)"):
        run(f"--dataset={corpus}", f"--out_dir={tmp_path / 'mine'}", *SMALL)
    assert os.listdir(tmp_path / "mine") == ["thesis.tex"]


# -----------------------------------------------------------------------------
# bad input: one sentence

def test_dataset_with_no_rows(tmp_path):
    with pytest.raises(UserError, match="has no rows: there are no songs in it"):
        run(f"--dataset={write_csv(tmp_path / 'none.csv', [])}", "--text_column=lyrics", *SMALL)


def test_dataset_whose_songs_are_all_empty(tmp_path):
    with pytest.raises(UserError, match=r"every song in .*blank.csv is empty \(3 rows\)"):
        run("--dataset=" + write_csv(tmp_path / "blank.csv", ["", " ", "\n"]), "--text_column=lyrics", *SMALL)


def test_text_column_that_does_not_exist_names_the_columns(tmp_path):
    with pytest.raises(UserError, match=r"has no column 'text'; its columns are title, lyrics"):
        run(f"--dataset={write_csv(tmp_path / 'songs.csv', SONGS)}", *SMALL)


def test_local_path_that_does_not_exist(tmp_path):
    with pytest.raises(UserError, match="no such file or folder: .*nope.txt"):
        run(f"--dataset={tmp_path / 'nope.txt'}")


def test_unknown_option_names_the_close_matches():
    with pytest.raises(UserError, match="unknown option 'vocab_sise'.*did you mean 'vocab_size'"):
        run("--vocab_sise=300")


@pytest.mark.parametrize("vocab_size, message", [
    (255, "vocab_size=255 is below 256, the number of byte tokens"),
    (65536, "vocab_size=65536 plus 1 special token needs ids above 65,535.*at most 65535"),
])
def test_vocab_size_out_of_range_is_refused_up_front(tmp_path, monkeypatch, vocab_size, message):
    monkeypatch.setattr(prepare, "load_songs", lambda cfg: pytest.fail("data was read before checking options"))
    with pytest.raises(UserError, match=message):
        run(f"--vocab_size={vocab_size}")


def test_too_few_songs_to_split(tmp_path):
    with pytest.raises(UserError, match="cannot split 1 songs with test_size=0.1"):
        run(f"--dataset={write_txt(tmp_path / 'one.txt', ['just one song'])}", f"--out_dir={tmp_path / 'o'}")


def test_the_script_prints_one_line_and_exits_2(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "prepare.py"), "--vocab_size=100"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == ("error: vocab_size=100 is below 256, the number of byte tokens; "
                             "use 256 or more (512 is the default)\n")
