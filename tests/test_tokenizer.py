import random
import warnings

import pytest
import regex

from tokenizer import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, RegexTokenizer

EOT = "<|endoftext|>"


# -----------------------------------------------------------------------------
# minbpe's algorithm written the straightforward way: slow, obviously correct

def ref_stats(ids, counts):
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def ref_merge(ids, pair, idx):
    out, i = [], 0
    while i < len(ids):
        if i < len(ids) - 1 and (ids[i], ids[i + 1]) == pair:
            out.append(idx)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def ref_train(text, vocab_size, pattern=GPT4_SPLIT_PATTERN):
    chunks = [list(c.encode("utf-8")) for c in regex.findall(pattern, text)]
    merges = {}
    for i in range(vocab_size - 256):
        stats = {}
        for ids in chunks:
            ref_stats(ids, stats)
        if not stats:
            break
        pair = max(stats, key=stats.get)  # first maximal pair in order of first occurrence
        merges[pair] = 256 + i
        chunks = [ref_merge(ids, pair, 256 + i) for ids in chunks]
    return merges


def ref_encode(text, merges, pattern=GPT4_SPLIT_PATTERN):
    out = []
    for chunk in regex.findall(pattern, text):
        ids = list(chunk.encode("utf-8"))
        while len(ids) >= 2:
            stats = ref_stats(ids, {})
            pair = min(stats, key=lambda p: merges.get(p, float("inf")))
            if pair not in merges:
                break
            ids = ref_merge(ids, pair, merges[pair])
        out.extend(ids)
    return out


def trained(text, vocab_size, **kw):
    tok = RegexTokenizer(**kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok.train(text, vocab_size)
    return tok


LYRIC = ("How many roads must a man walk down\nBefore you call him a man?\n"
         "How many seas must a white dove sail\nBefore she sleeps in the sand?\n"
         "Yes, and how many times must the cannonballs fly\nBefore they’re forever banned?\n"
         "The answer, my friend, is blowin’ in the wind\nThe answer is blowin’ in the wind\n") * 3

# texts where many pairs tie: repeated short alphabets, palindromes, runs of one byte
TIE_TEXTS = [
    "ab ba ab ba cd dc cd dc",
    "abcabcabc cbacbacba bcabca",
    "aaaa aaa aa a bbbb bbb bb b",
    "xyxyxy yxyxyx " * 5,
    "".join(random.Random(0).choice("ab ") for _ in range(400)),
    "".join(random.Random(1).choice("abc\n") for _ in range(600)),
    "".join(random.Random(2).choice("ab’é 😀") for _ in range(300)),
]


# -----------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["", "a", "héllo wörld, 你好世界 😀👍🏽 Здравствуй ✨",
                                  "line one\r\nline\ttwo\r\n\t\tindented\x00\x07 control", LYRIC])
def test_round_trip(text):
    tok = trained(LYRIC + "你好世界 😀", 300)
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert all(0 <= i < 300 for i in ids)


def test_wikipedia_example():
    tok = trained("aaabdaaabac", 256 + 3)
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]
    assert tok.merges == {(97, 97): 256, (256, 97): 257, (257, 98): 258}


@pytest.mark.parametrize("text", [LYRIC, "hello world " * 20 + "hellooo wooorld"] + TIE_TEXTS)
def test_merges_and_encodings_match_reference(text):
    for vocab_size in (256 + 5, 256 + 40, 256 + 200):
        tok = trained(text, vocab_size)
        expected = ref_train(text, vocab_size)
        assert list(tok.merges.items()) == list(expected.items())
        assert tok.encode_ordinary(text) == ref_encode(text, expected)
        other = "a new text: how many bananas, abba?"
        assert tok.encode_ordinary(other) == ref_encode(other, expected)


def test_random_texts_match_reference():
    rng = random.Random(42)
    for _ in range(60):
        alphabet = rng.choice(["ab", "abc ", "ab\n", "xyz ’"])
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200)))
        vocab_size = 256 + rng.randint(0, 30)
        assert list(trained(text, vocab_size).merges.items()) == list(ref_train(text, vocab_size).items())


def test_custom_pattern_matches_reference():
    tok = trained(LYRIC, 300, pattern=GPT2_SPLIT_PATTERN)
    assert list(tok.merges.items()) == list(ref_train(LYRIC, 300, GPT2_SPLIT_PATTERN).items())


def test_pairs_never_span_chunks():
    tok = trained("a b a b a b", 256 + 10)
    # chunks are "a", " b", " a", " b"...: (b, space) never occurs inside a chunk
    assert (98, 32) not in tok.merges


def test_vocab_holds_the_bytes_of_each_token():
    tok = trained(LYRIC, 320)
    for (a, b), idx in tok.merges.items():
        assert tok.vocab[idx] == tok.vocab[a] + tok.vocab[b]
    assert len(tok.vocab) == 320


# --- bad input ----------------------------------------------------------------

@pytest.mark.parametrize("vocab_size", [255, 0, -3])
def test_vocab_size_below_256(vocab_size):
    with pytest.raises(ValueError, match="at least 256"):
        RegexTokenizer().train("abc", vocab_size)


@pytest.mark.parametrize("vocab_size", [300.0, "300", True, None])
def test_vocab_size_not_an_int(vocab_size):
    with pytest.raises(ValueError, match="must be an int"):
        RegexTokenizer().train("abc", vocab_size)


def test_short_text_stops_with_warning():
    tok = RegexTokenizer()
    with pytest.warns(UserWarning, match="made 2 merges of the 10"):
        tok.train("abc", 266)  # pairs (a,b), then (ab,c): nothing left after 2
    assert tok.merges == {(97, 98): 256, (256, 99): 257}
    with pytest.warns(UserWarning, match="made 0 merges"):
        RegexTokenizer().train("", 300)


def test_pairs_seen_once_are_merged():
    tok = trained("xy", 257)
    assert tok.merges == {(120, 121): 256}


def test_lone_surrogate_is_a_clear_error():
    tok = trained(LYRIC, 280)
    with pytest.raises(ValueError, match="not valid Unicode"):
        tok.encode("bad \ud800 text")
    with pytest.raises(ValueError, match="not valid Unicode"):
        RegexTokenizer().train("bad \udfff text", 260)


def test_decode_of_unknown_id():
    with pytest.raises(ValueError, match="invalid token id: 999"):
        trained("abc", 257).decode([97, 999])


def test_decode_replaces_partial_utf8():
    tok = RegexTokenizer()
    assert tok.decode(list("é".encode("utf-8"))[:1]) == "\ufffd"


# --- special tokens -------------------------------------------------------------

def test_special_tokens_modes():
    tok = trained(LYRIC, 300)
    tok.register_special_tokens({EOT: 300})
    text = f"song one{EOT}song two"
    ordinary = tok.encode_ordinary(text)
    with_special = tok.encode_ordinary("song one") + [300] + tok.encode_ordinary("song two")
    assert tok.encode(text, allowed_special="all") == with_special
    assert tok.encode(text, allowed_special={EOT}) == with_special
    assert tok.encode(text, allowed_special=[EOT]) == with_special
    assert tok.encode(text, allowed_special="none") == ordinary
    with pytest.raises(ValueError, match="contains the special token"):
        tok.encode(text)  # none_raise is the default
    assert tok.encode("no specials here") == tok.encode_ordinary("no specials here")
    assert tok.decode(with_special) == text
    with pytest.raises(ValueError, match="unknown special tokens"):
        tok.encode(text, allowed_special={"<|other|>"})
    with pytest.raises(ValueError, match="not understood"):
        tok.encode(text, allowed_special="some")


def test_endoftext_between_songs():
    tok = trained(LYRIC, 400)
    tok.register_special_tokens({EOT: 400})
    ids = tok.encode(f"a song{EOT}another song", allowed_special="all")
    assert ids.count(400) == 1
    assert tok.decode(ids[: ids.index(400)]) == "a song"


def test_longest_special_token_wins():
    tok = trained(LYRIC, 300)
    tok.register_special_tokens({"<|end|>": 300, "<|end|><|end|>": 301})
    assert tok.encode("x<|end|><|end|>y<|end|>", allowed_special="all") == [120, 301, 121, 300]


def test_special_token_ids_must_not_clash():
    tok = trained(LYRIC, 300)
    with pytest.raises(ValueError, match="id of at least 300"):
        tok.register_special_tokens({EOT: 299})


# --- files ---------------------------------------------------------------------

@pytest.mark.parametrize("specials", [{}, {EOT: 320, "<|fim middle|>": 321}])
def test_save_load_round_trip(tmp_path, specials):
    tok = trained(LYRIC, 320)
    tok.register_special_tokens(specials)
    tok.save(str(tmp_path / "tok"))
    loaded = RegexTokenizer()
    loaded.load(str(tmp_path / "tok.model"))
    assert list(loaded.merges.items()) == list(tok.merges.items())
    assert loaded.special_tokens == tok.special_tokens
    assert loaded.vocab == tok.vocab
    text = LYRIC + "".join(specials)
    assert loaded.encode(text, allowed_special="all") == tok.encode(text, allowed_special="all")
    model = (tmp_path / "tok.model").read_text(encoding="utf-8").split("\n")
    assert model[:3] == ["minbpe v1", GPT4_SPLIT_PATTERN, str(len(specials))]
    assert model[3 + len(specials)] == "{} {}".format(*next(iter(tok.merges)))
    vocab_lines = (tmp_path / "tok.vocab").read_text(encoding="utf-8").splitlines()
    assert vocab_lines[0] == "[\\u0000] 0"
    assert vocab_lines[97] == "[a] 97"
    (a, b), idx = next(iter(tok.merges.items()))
    assert vocab_lines[256] == f"[{chr(a)}][{chr(b)}] -> [{chr(a)}{chr(b)}] 256"


def test_load_file_written_by_hand_in_minbpe_format(tmp_path):
    path = tmp_path / "hand.model"
    path.write_text("minbpe v1\n" + GPT4_SPLIT_PATTERN + "\n1\n<|endoftext|> 259\n97 97\n256 97\n257 98\n",
                    encoding="utf-8")
    tok = RegexTokenizer()
    tok.load(str(path))
    assert tok.merges == {(97, 97): 256, (256, 97): 257, (257, 98): 258}
    assert tok.special_tokens == {EOT: 259}
    assert tok.encode("aaabdaaabac<|endoftext|>", allowed_special="all") == [258, 100, 258, 97, 99, 259]
    # and what we write is what minbpe writes, byte for byte
    tok.save(str(tmp_path / "again"))
    assert (tmp_path / "again.model").read_bytes() == path.read_bytes()


def test_custom_pattern_survives_save_load(tmp_path):
    pattern = r"\p{L}+|\s+|[^\s\p{L}]+"
    tok = trained(LYRIC, 300, pattern=pattern)
    tok.save(str(tmp_path / "custom"))
    loaded = RegexTokenizer()  # starts with the GPT-4 pattern
    loaded.load(str(tmp_path / "custom.model"))
    assert loaded.pattern == pattern
    # the compiled regex is the loaded one: "'s" is one chunk with GPT-4, not with this pattern
    assert loaded.compiled_pattern.findall("it's") == ["it", "'", "s"]
    assert loaded.encode(LYRIC) == tok.encode(LYRIC)


@pytest.mark.parametrize("content, line", [
    ("hello\n", 1),
    ("minbpe v1\n" + GPT4_SPLIT_PATTERN + "\nx\n", 3),
    ("minbpe v1\n" + GPT4_SPLIT_PATTERN + "\n1\n", 4),
    ("minbpe v1\n" + GPT4_SPLIT_PATTERN + "\n0\n97 98\n97 x\n", 5),
    ("minbpe v1\n" + GPT4_SPLIT_PATTERN + "\n0\n97 98\n300 97\n", 5),
    ("minbpe v1\n(unclosed\n0\n", 2),
])
def test_load_malformed_file_names_file_and_line(tmp_path, content, line):
    path = tmp_path / "bad.model"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=rf"bad\.model line {line}:"):
        RegexTokenizer().load(str(path))


def test_load_missing_or_binary_file(tmp_path):
    with pytest.raises(ValueError, match="missing.model: cannot read"):
        RegexTokenizer().load(str(tmp_path / "missing.model"))
    (tmp_path / "bin.model").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ValueError, match="not UTF-8"):
        RegexTokenizer().load(str(tmp_path / "bin.model"))
    with pytest.raises(ValueError, match="expected a .model file"):
        RegexTokenizer().load(str(tmp_path / "tok.vocab"))
