"""MinHash signatures of word shingles, for near-duplicate detection (`brightrun.quality.duplicates`).

The signatures are bit-identical to datasketch's `MinHash.bulk`, computed with numpy for tens of thousands of
shingles at once:

- texts are normalized (lowercase, punctuation removed, whitespace folded) and cut into word shingles (3 words
  by default);
- shingles are hashed as datasketch hashes them (the first 4 bytes of the SHA-1 of the shingle's bytes), but
  each distinct shingle once per call: words get integer ids and a shingle is found by its ids, so shingle
  strings are only built the first time a shingle is seen;
- signatures use datasketch's default scheme (affine32: fmix32, then h -> a * h + b mod 2^32 with the
  permutations of `numpy.random.RandomState(seed)`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from itertools import chain
from typing import Any

import numpy as np

_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
NUM_PERM = 128


def normalize(text: str) -> str:
    # the same as re.sub(r"\s+", " ", ...).strip(), in about 60% of the time
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def shingles(text: str, size: int = 3) -> set[bytes]:
    words = normalize(text).split()
    if len(words) <= size:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i:i + size]).encode() for i in range(len(words) - size + 1)}


_CHUNK_WORDS = 1 << 16
"""Words hashed per numpy batch: bounds the (shingles x num_perm) work array to about 32 MiB."""


class _Ids(dict):
    """word -> id, numbering new words as they come (kept in `words`)."""

    def __init__(self, words: list[str]) -> None:
        super().__init__()
        self.words = words

    def __missing__(self, word: str) -> int:
        self[word] = len(self.words)
        self.words.append(word)
        return self[word]


class _Cache(dict):
    """key -> compute(key), computed on first use."""

    def __init__(self, compute: Callable[[Any], int]) -> None:
        super().__init__()
        self.compute = compute

    def __missing__(self, key: Any) -> int:
        value = self[key] = self.compute(key)
        return value


class _Shingles:
    """The shingles of many texts, hashed as datasketch hashes them (the first 4 bytes of the SHA-1 of
    the shingle's UTF-8 bytes, little-endian), each distinct shingle once per call.

    Words get integer ids; a shingle of `size` words is keyed by its ids packed into one int64 while
    the vocabulary fits (2^21 words for 3-shingles), and by its bytes after that."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.bits = 63 // size
        self.words: list[str] = []
        self.ids = _Ids(self.words)
        self.hashes = _Cache(self._hash)

    def word_ids(self, words: Iterable[str], count: int) -> np.ndarray:
        return np.fromiter(map(self.ids.__getitem__, words), dtype=np.int64, count=count)

    def hash_of(self, keys: list[int] | list[bytes]) -> np.ndarray:
        """The shingles' 32-bit hashes (before datasketch's fmix32), each computed once per call."""
        return np.fromiter(map(self.hashes.__getitem__, keys), dtype=np.uint32, count=len(keys))

    def _hash(self, key: int | bytes) -> int:
        if isinstance(key, int):
            mask = (1 << self.bits) - 1
            parts = [(key >> (self.bits * (self.size - 1 - j))) & mask for j in range(self.size)]
            key = " ".join(self.words[i] for i in parts).encode()
        return int.from_bytes(hashlib.sha1(key).digest()[:4], "little")

    def packable(self) -> bool:
        return len(self.words) <= 1 << self.bits


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, as datasketch applies it before its affine32 permutations."""
    h = h ^ (h >> np.uint32(16))
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


@lru_cache(maxsize=8)
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutations for `seed` (h -> a * h + b mod 2^32, `a` odd)."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def _chunk_shingles(shingler: _Shingles, ids: np.ndarray, lengths: np.ndarray,
                    texts: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """(text index, shingle hash) of each distinct shingle hash of each text in a chunk, sorted by
    text. (A MinHash is a minimum, so repeated values need not be kept.)"""
    size = shingler.size
    n = len(lengths)
    docs, values = [], []
    long = lengths >= size
    count = len(ids) - size + 1
    if count > 0 and long.any():
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        owner = np.repeat(np.arange(n), lengths)[:count]
        keep = long[owner] & (np.arange(count) - starts[owner] <= lengths[owner] - size)
        positions = np.flatnonzero(keep)
        docs.append(owner[positions])
        if shingler.packable():
            key = ids[positions]
            for j in range(1, size):
                key = (key << shingler.bits) | ids[positions + j]
            unique, inverse = np.unique(key, return_inverse=True)
            values.append(shingler.hash_of(unique.tolist())[inverse])
        else:
            words = shingler.words
            rows = np.stack([ids[positions + j] for j in range(size)], axis=1).tolist()
            keys = [" ".join(words[i] for i in row).encode() for row in rows]
            values.append(shingler.hash_of(keys))
    short = np.flatnonzero(~long).tolist()
    if short:  # fewer words than a shingle: one shingle of them all (no words: the empty shingle)
        docs.append(np.array(short, dtype=np.int64))
        keys = [" ".join(texts[i]).encode() for i in short]
        values.append(shingler.hash_of(keys))
    pairs = np.sort((np.concatenate(docs).astype(np.uint64) << np.uint64(32))
                    | np.concatenate(values).astype(np.uint64))
    pairs = pairs[np.concatenate(([True], pairs[1:] != pairs[:-1]))]  # np.unique, without its slow hash path
    return (pairs >> np.uint64(32)).astype(np.int64), (pairs & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def _chunks(texts: list[str], shingle: int, keys: list[str] | None
            ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """(first text, texts, shingle hashes, start of each text's hashes) of the texts, about _CHUNK_WORDS words
    at a time: each text's sorted distinct shingle hashes (before fmix32). Each text is normalized once;
    with `keys`, its exact_key is appended there (made from the same words)."""
    shingler = _Shingles(shingle)
    first = 0
    while first < len(texts):
        split: list[list[str]] = []
        total = 0
        while first + len(split) < len(texts) and (not split or total < _CHUNK_WORDS):
            words = _PUNCT.sub(" ", texts[first + len(split)].lower()).split()  # = normalize(text).split()
            split.append(words)
            total += len(words)
        if keys is not None:
            keys.extend(hashlib.blake2b(" ".join(w).encode(), digest_size=16).hexdigest() for w in split)
        lengths = np.fromiter(map(len, split), dtype=np.int64, count=len(split))
        ids = shingler.word_ids(chain.from_iterable(split), total)
        doc, values = _chunk_shingles(shingler, ids, lengths, split)
        yield first, len(split), values, np.searchsorted(doc, np.arange(len(split)))  # every text has a shingle
        first += len(split)


def signatures(texts: list[str], *, shingle: int = 3, num_perm: int = NUM_PERM, seed: int = 1,
               sets: list[np.ndarray] | None = None, keys: list[str] | None = None) -> np.ndarray:
    """MinHash signatures (len(texts) x num_perm, uint32) of the texts' word shingles: the same
    values as datasketch's `MinHash.bulk([shingles(t) or {b""} ...], num_perm=num_perm, seed=seed)`.
    If `sets` is a list, each text's sorted distinct shingle hashes are appended to it (for exact
    Jaccard similarities); if `keys` is, each text's exact_key (from the same normalization)."""
    a, b = _permutations(num_perm, seed)
    out = np.empty((len(texts), num_perm), dtype=np.uint32)
    for first, count, values, bounds in _chunks(texts, shingle, keys):
        if sets is not None:
            sets.extend(np.split(values, bounds[1:]))
        permuted = a[:, None] * _fmix32(values)[None, :]  # num_perm x shingles: reduce along rows
        permuted += b[:, None]
        out[first:first + count] = np.minimum.reduceat(permuted, bounds, axis=1).T
    return out


def shingle_sets(texts: list[str], *, shingle: int = 3) -> list[np.ndarray]:
    """Each text's sorted distinct shingle hashes, as `signatures(texts, sets=...)` gives them, without
    computing the signatures."""
    sets: list[np.ndarray] = []
    for _, _, values, bounds in _chunks(texts, shingle, None):
        sets.extend(np.split(values, bounds[1:]))
    return sets
