"""
A byte-level BPE tokenizer with the API, the file format and the exact merges of
minbpe's RegexTokenizer (github.com/karpathy/minbpe), written here because minbpe
is not packaged, and fast enough to train on a whole corpus in under a second.

How BPE works, in one paragraph: the text is cut into chunks by a regex (words,
numbers, punctuation runs, whitespace: the GPT-4 split pattern), each chunk
becomes its UTF-8 bytes (tokens 0..255), and training repeatedly finds the most
frequent adjacent pair of tokens and replaces it by a new token (256, 257, ...).
A pair never spans two chunks. Encoding replays the merges in the order they
were learned; decoding concatenates the bytes of each token.

What is the same as minbpe, token for token:
- the most frequent pair wins, counting overlapping pairs ("aaa" has (a, a) twice);
- a tie goes to the pair that occurs first in the (partly merged) text, as
  minbpe's `max` over a dict filled in order of first occurrence does;
- a merge replaces non-overlapping occurrences from left to right;
- encoding applies the lowest-id mergeable pair of a chunk until none is left.

What is faster: minbpe recounts every pair of the whole text at every merge.
Here each distinct chunk is counted once, with its multiplicity; the pair counts
and an index from each pair to the chunks that hold it are kept up to date, and
a merge only rewrites the chunks that contain its pair. Encoding encodes each
distinct chunk once per call.
"""

import heapq
import unicodedata
import warnings
from collections import Counter

import regex

# the split patterns of GPT-2 and of GPT-4 (tiktoken's cl100k_base)
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT4_SPLIT_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""

MODEL_VERSION_LINE = "minbpe v1"


# -----------------------------------------------------------------------------
# the two primitives of BPE

def get_stats(ids, counts=None):
    """Count adjacent pairs, overlapping ones included: [1, 2, 3, 1, 2] -> {(1, 2): 2, (2, 3): 1, (3, 1): 1}.

    The dict is filled in order of first occurrence, which is what breaks ties in training.
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids, pair, idx):
    """Replace each non-overlapping occurrence of pair, left to right, by idx: ([1, 1, 1], (1, 1), 9) -> [9, 1]."""
    out = []
    i, n = 0, len(ids)
    a, b = pair
    while i < n:
        if i < n - 1 and ids[i] == a and ids[i + 1] == b:
            out.append(idx)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


# -----------------------------------------------------------------------------
# helpers for the human-readable .vocab file

def replace_control_characters(s):
    """Show control characters as \\uXXXX escapes so a token never breaks a line of the listing."""
    return "".join(ch if unicodedata.category(ch)[0] != "C" else f"\\u{ord(ch):04x}" for ch in s)


def render_token(t):
    return replace_control_characters(t.decode("utf-8", errors="replace"))


def to_utf8(text):
    """text.encode('utf-8'), with a sentence instead of a traceback for a lone surrogate."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"the text is not valid Unicode: {e.reason} at position {e.start} "
                         f"({text[e.start:e.end]!r}); fix or drop that character before tokenizing") from None


# -----------------------------------------------------------------------------
# training: incremental pair counts over distinct chunks

def _first_offset(ids, pair, vocab):
    """Byte offset in the chunk where pair first starts (orders occurrences like token positions do)."""
    offset = 0
    for x, y in zip(ids, ids[1:]):
        if x == pair[0] and y == pair[1]:
            return offset
        offset += len(vocab[x])
    raise KeyError(pair)  # the index said the pair was here: a bug, not a user error


def train_merges(chunks, num_merges, verbose=False):
    """Learn up to num_merges merges from a list of text chunks (str), in minbpe's order.

    Returns (merges, vocab): merges maps (id1, id2) -> new id in merge order, vocab id -> bytes.
    """
    # Distinct chunks in order of first appearance: chunk j's first occurrence comes before chunk j+1's.
    freq = Counter(chunks)
    words = [list(to_utf8(c)) for c in freq]  # token ids of each distinct chunk, merged in place
    mult = list(freq.values())  # how often each distinct chunk occurs

    counts = {}  # pair -> occurrences in the whole text
    where = {}  # pair -> set of distinct chunks that hold it
    for j, ids in enumerate(words):
        for pair in zip(ids, ids[1:]):
            counts[pair] = counts.get(pair, 0) + mult[j]
            where.setdefault(pair, set()).add(j)
    # max-heap of (count, pair); an entry is stale once the pair's count has moved on
    heap = [(-c, p) for p, c in counts.items()]
    heapq.heapify(heap)

    vocab = {i: bytes([i]) for i in range(256)}
    merges = {}
    for i in range(num_merges):
        # the most frequent pairs (all of them, if several tie)
        best, top = None, []
        while heap:
            c, p = heap[0]
            if counts.get(p) != -c or p in top:
                heapq.heappop(heap)  # stale or duplicate entry
                continue
            if best is not None and -c != best:
                break
            best = -c
            top.append(heapq.heappop(heap)[1])
        if not top:
            warnings.warn(f"the text ran out of pairs: made {i} merges of the {num_merges} asked for "
                          f"(vocab size {256 + i}); give it more text or ask for a smaller vocab_size")
            break
        if len(top) > 1:
            # tie: the pair that occurs first in the text wins, that is in the first distinct chunk
            # that holds it (chunks are numbered in order of first appearance), then first within it
            def first_occurrence(p):
                j = min(where[p])
                return j, _first_offset(words[j], p, vocab)
            top.sort(key=first_occurrence)
            for p in top[1:]:
                heapq.heappush(heap, (-best, p))
        pair, idx = top[0], 256 + i

        # rewrite only the chunks that hold the pair, and apply the change of their pair counts
        delta = Counter()
        for j in where.pop(pair):
            old = words[j]
            new = merge(old, pair, idx)
            words[j] = new
            m = mult[j]
            old_pairs, new_pairs = Counter(zip(old, old[1:])), Counter(zip(new, new[1:]))
            for p, k in old_pairs.items():
                delta[p] -= k * m
                if p not in new_pairs and p != pair:
                    where[p].discard(j)
            for p, k in new_pairs.items():
                delta[p] += k * m
                if p not in old_pairs:
                    where.setdefault(p, set()).add(j)
        for p, d in delta.items():
            if d == 0:
                continue
            c = counts.get(p, 0) + d
            if c > 0:
                counts[p] = c
                heapq.heappush(heap, (-c, p))
            else:
                counts.pop(p, None)
                where.pop(p, None)
        counts.pop(pair, None)

        merges[pair] = idx
        vocab[idx] = vocab[pair[0]] + vocab[pair[1]]
        if verbose:
            print(f"merge {i + 1}/{num_merges}: {pair} -> {idx} ({vocab[idx]}) had {best} occurrences")
    return merges, vocab


# -----------------------------------------------------------------------------
# the tokenizer

class RegexTokenizer:
    """minbpe's RegexTokenizer: regex-split, byte-level BPE, optional special tokens."""

    def __init__(self, pattern=None):
        self.pattern = GPT4_SPLIT_PATTERN if pattern is None else pattern
        self.compiled_pattern = regex.compile(self.pattern)
        self.merges = {}  # (int, int) -> int, in merge order
        self.special_tokens = {}  # str -> int, e.g. {'<|endoftext|>': 512}
        self.inverse_special_tokens = {}
        self.vocab = self._build_vocab()  # int -> bytes

    def _build_vocab(self):
        vocab = {idx: bytes([idx]) for idx in range(256)}
        for (p0, p1), idx in self.merges.items():
            vocab[idx] = vocab[p0] + vocab[p1]
        for special, idx in self.special_tokens.items():
            vocab[idx] = special.encode("utf-8")
        return vocab

    # --- training -------------------------------------------------------------

    def train(self, text, vocab_size, verbose=False):
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
            raise ValueError(f"vocab_size must be an int, got {vocab_size!r}")
        if vocab_size < 256:
            raise ValueError(f"vocab_size must be at least 256 (the byte tokens), got {vocab_size}")
        chunks = self.compiled_pattern.findall(text)
        self.merges, _ = train_merges(chunks, vocab_size - 256, verbose=verbose)
        self.vocab = self._build_vocab()

    def register_special_tokens(self, special_tokens):
        """special_tokens: dict str -> int, e.g. {'<|endoftext|>': 512}. Ids must not be ordinary tokens."""
        for special, idx in special_tokens.items():
            if not special or not isinstance(idx, int) or idx < 256 + len(self.merges):
                raise ValueError(f"special token {special!r} needs a non-empty name and an id of at least "
                                 f"{256 + len(self.merges)} (after the bytes and merges), got {idx!r}")
        self.special_tokens = dict(special_tokens)
        self.inverse_special_tokens = {v: k for k, v in self.special_tokens.items()}
        self.vocab = self._build_vocab()

    # --- encoding and decoding ------------------------------------------------

    def _encode_chunk(self, text_bytes):
        ids = list(text_bytes)
        merges = self.merges
        while len(ids) >= 2:
            # the pair that was merged first in training (lowest new id) goes first
            pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
            if pair not in merges:
                break
            ids = merge(ids, pair, merges[pair])
        return ids

    def encode_ordinary(self, text):
        """Encode text, treating special-token strings as ordinary text."""
        cache = {}  # chunk -> ids: a lyric repeats its words, so most chunks are seen before
        ids = []
        for chunk in self.compiled_pattern.findall(text):
            chunk_ids = cache.get(chunk)
            if chunk_ids is None:
                chunk_ids = cache[chunk] = self._encode_chunk(to_utf8(chunk))
            ids.extend(chunk_ids)
        return ids

    def encode(self, text, allowed_special="none_raise"):
        """Encode text; allowed_special is 'all', 'none', 'none_raise' or a set/list of special strings.

        'none' treats special strings as text; 'none_raise' raises ValueError if one is in the text.
        """
        if allowed_special == "all":
            special = self.special_tokens
        elif allowed_special == "none":
            special = {}
        elif allowed_special == "none_raise":
            special = {}
            for token in self.special_tokens:
                if token in text:
                    raise ValueError(f"the text contains the special token {token!r}; pass "
                                     f"allowed_special='all' to encode it as a special token, or 'none' as text")
        elif isinstance(allowed_special, (set, frozenset, list, tuple)):
            unknown = [s for s in allowed_special if s not in self.special_tokens]
            if unknown:
                raise ValueError(f"unknown special tokens {unknown}; registered: {list(self.special_tokens)}")
            special = {k: v for k, v in self.special_tokens.items() if k in allowed_special}
        else:
            raise ValueError(f"allowed_special={allowed_special!r} is not understood; "
                             f"use 'all', 'none', 'none_raise' or a set of special tokens")
        if not special:
            return self.encode_ordinary(text)
        # the longest special first, so that one which is a prefix of another does not cut it
        names = sorted(special, key=len, reverse=True)
        special_pattern = "(" + "|".join(regex.escape(k) for k in names) + ")"
        ids = []
        for part in regex.split(special_pattern, text):
            if part in special:
                ids.append(special[part])
            elif part:
                ids.extend(self.encode_ordinary(part))
        return ids

    def decode_bytes(self, ids):
        """The raw bytes of a list of ids (a token may hold part of a UTF-8 character)."""
        try:
            return b"".join(self.vocab[idx] for idx in ids)
        except KeyError as e:
            raise ValueError(f"invalid token id: {e.args[0]}") from None

    def decode(self, ids):
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # --- files: minbpe's format, byte for byte --------------------------------

    def save(self, file_prefix):
        """Write file_prefix.model (what load() reads) and file_prefix.vocab (for people only)."""
        if "\n" in self.pattern or "\r" in self.pattern:
            raise ValueError("a split pattern with a line break cannot be saved in the one-line .model format")
        model_lines = [MODEL_VERSION_LINE, self.pattern, str(len(self.special_tokens))]
        model_lines += [f"{special} {idx}" for special, idx in self.special_tokens.items()]
        model_lines += [f"{idx1} {idx2}" for idx1, idx2 in self.merges]
        with open(file_prefix + ".model", "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(model_lines) + "\n")

        inverted_merges = {idx: pair for pair, idx in self.merges.items()}
        with open(file_prefix + ".vocab", "w", encoding="utf-8", newline="\n") as f:
            for idx, token in self.vocab.items():
                s = render_token(token)
                if idx in inverted_merges:
                    idx0, idx1 = inverted_merges[idx]
                    f.write(f"[{render_token(self.vocab[idx0])}][{render_token(self.vocab[idx1])}] -> [{s}] {idx}\n")
                else:
                    f.write(f"[{s}] {idx}\n")

    def load(self, model_file):
        """Read a .model file written by save() or by minbpe; ValueError names the file and line if it is bad."""
        if not str(model_file).endswith(".model"):
            raise ValueError(f"{model_file}: expected a .model file (the .vocab file is for reading only)")
        try:
            with open(model_file, encoding="utf-8", newline="") as f:
                lines = f.read().split("\n")
        except OSError as e:
            raise ValueError(f"{model_file}: cannot read the tokenizer file ({e.strerror})") from None
        except UnicodeDecodeError:
            raise ValueError(f"{model_file}: not a tokenizer file (not UTF-8 text)") from None
        if lines and lines[-1] == "":
            lines.pop()
        lines = [line.rstrip("\r") for line in lines]

        def bad(lineno, what):
            return ValueError(f"{model_file} line {lineno}: {what}; is it a minbpe .model file?")

        if len(lines) < 3 or lines[0] != MODEL_VERSION_LINE:
            raise bad(1, f"expected {MODEL_VERSION_LINE!r}")
        pattern = lines[1]
        try:
            compiled = regex.compile(pattern)
        except regex.error as e:
            raise bad(2, f"the split pattern does not compile ({e})") from None
        if not lines[2].isdigit():
            raise bad(3, "expected the number of special tokens")
        num_special = int(lines[2])
        special_tokens = {}
        for lineno in range(4, 4 + num_special):
            if lineno > len(lines):
                raise bad(lineno, "missing special token line")
            special, _, idx = lines[lineno - 1].rpartition(" ")
            if not special or not idx.isdigit():
                raise bad(lineno, "expected '<special token> <id>'")
            special_tokens[special] = int(idx)
        merges = {}
        for lineno in range(4 + num_special, len(lines) + 1):
            parts = lines[lineno - 1].split(" ")
            if len(parts) != 2 or not all(p.isdigit() for p in parts):
                raise bad(lineno, "expected a merge '<id1> <id2>'")
            idx1, idx2 = int(parts[0]), int(parts[1])
            idx = 256 + len(merges)
            if idx1 >= idx or idx2 >= idx:
                raise bad(lineno, f"merge ({idx1}, {idx2}) uses a token not defined before id {idx}")
            merges[(idx1, idx2)] = idx
        self.pattern, self.compiled_pattern = pattern, compiled
        self.merges = merges
        self.register_special_tokens(special_tokens)

    @classmethod
    def from_file(cls, model_file):
        tok = cls()
        tok.load(model_file)
        return tok
