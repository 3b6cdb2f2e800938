"""Exact and near-duplicate detection.

Exact duplicates share the hash of their normalized text (lowercase, punctuation removed,
whitespace folded). Near duplicates: MinHash LSH (128 permutations) over word 3-shingles proposes
candidate pairs (bands tuned for threshold - 0.1, so pairs at the threshold are proposed reliably);
a candidate whose MinHash estimate is within 0.06 of the threshold gets an exact check, and the pair
is joined when the exact Jaccard similarity of the two shingle sets reaches the threshold (default
0.6); pairs are joined into clusters (union-find). Only the exact similarity decides, so estimation
noise cannot chain unrelated texts into one cluster. On planted paraphrases (a sentence swapped, one
dropped, synonyms, typos) of scripted conversations: precision 1.000, recall 1.000
(tests/test_duplicates.py prints them); against exact all-pairs Jaccard on 2,000 scripted
conversations: precision 1.000, recall 0.874 (bench/bench_enrichment.py). The earlier acceptance on
the estimate alone, with bands tuned at the threshold, gave precision 0.12 and recall 0.14 there.
Works for conversations (all turns, in order) and for training pairs (the target response), or any
id -> text mapping.

How it is computed: vectorized with numpy (docs/benchmarks.md has the figures at 100,000
conversations; datasketch's MinHash objects, `MinHashLSH` and a query per key took 268 s and 5.1 GiB
there). The signatures are bit-identical to datasketch's `MinHash.bulk`:

- the shingles and their MinHash signatures are made in `brightrun.quality.minhash` (datasketch's
  hashing and permutations, vectorized; each distinct shingle hashed once per call).
- LSH chooses bands and rows as datasketch's `MinHashLSH` does, for threshold - 0.1. Two texts are
  candidates when a band of their signatures is equal; each text's distinct shingle hashes are kept
  (sorted uint32 arrays) for the exact check. A pair already in the same cluster is not compared
  again (it could not change the clusters), which keeps large clusters of near-identical texts from
  costing a comparison per pair.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from brightrun.quality.minhash import NUM_PERM as NUM_PERM
from brightrun.quality.minhash import normalize as normalize
from brightrun.quality.minhash import shingle_sets as shingle_sets
from brightrun.quality.minhash import shingles as shingles
from brightrun.quality.minhash import signatures as signatures

if TYPE_CHECKING:
    from brightrun.workspace import Workspace


@dataclass(frozen=True)
class Cluster:
    ids: tuple[str, ...]
    similarity: float
    """The lowest exact Jaccard similarity (of shingle sets) between a member and the cluster's first id;
    members joined through another member can be below the threshold."""


def exact_duplicates(texts: dict[str, str]) -> list[tuple[str, ...]]:
    """Groups of ids whose normalized texts are identical (groups of two or more)."""
    return exact_groups(list(texts), [exact_key(t) for t in texts.values()])


# -- LSH ----------------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimizing false positives + false negatives (equal weights), as datasketch's
    `MinHashLSH` chooses them."""
    grid = np.linspace(0.0, 1.0, 4001)
    best, params = float("inf"), (1, 1)
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            p = 1 - (1 - grid ** rows) ** bands
            below, above = grid <= threshold, grid >= threshold
            fp = np.trapezoid(p[below], grid[below])
            fn = np.trapezoid(1 - p[above], grid[above])
            if fp + fn < best:
                best, params = fp + fn, (bands, rows)
    return params


def _buckets(block: np.ndarray) -> list[np.ndarray]:
    """The rows of one band grouped by equal values: each group of two or more, indices ascending."""
    order = np.lexsort(block.T[::-1])  # stable
    ordered = block[order]
    edges = np.flatnonzero((ordered[1:] != ordered[:-1]).any(axis=1)) + 1
    starts = np.concatenate(([0], edges))
    ends = np.concatenate((edges, [len(order)]))
    big = ends - starts > 1
    return [order[s:e] for s, e in zip(starts[big].tolist(), ends[big].tolist(), strict=True)]


class _Components:
    """Union-find that keeps every member's root in a numpy array (relabel the smaller side)."""

    def __init__(self, n: int) -> None:
        self.label = np.arange(n, dtype=np.int64)
        self.members: dict[int, list[int]] = {}

    def union(self, x: int, y: int) -> None:
        rx, ry = int(self.label[x]), int(self.label[y])
        if rx == ry:
            return
        mx, my = self.members.pop(rx, [rx]), self.members.pop(ry, [ry])
        if len(mx) < len(my):
            rx, mx, my = ry, my, mx
        self.label[my] = rx
        mx += my
        self.members[rx] = mx


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted arrays of distinct shingle hashes."""
    common = np.intersect1d(a, b, assume_unique=True).size
    return common / (a.size + b.size - common)


ESTIMATE_MARGIN = 0.06
"""Candidates whose MinHash estimate is within this of the threshold get an exact check (about 1.4
standard errors of a 128-permutation estimate, so about 92% of the pairs exactly at the threshold
are checked, and nearly all above it); only the exact similarity decides."""
LSH_SLACK = 0.1
"""The LSH bands are tuned for threshold - LSH_SLACK, so pairs at the threshold are proposed often
(bands tuned at the threshold itself propose a pair exactly at it only about 40% of the time)."""


@dataclass(frozen=True)
class Features:
    """What duplicate detection needs of each text, computed independently per text (so any chunking
    gives the same values): the key of its normalized text (equal keys: exact duplicates), its MinHash
    signature, and its sorted distinct shingle hashes (for exact Jaccard similarities)."""

    keys: list[str]
    signatures: np.ndarray
    sets: list[np.ndarray]


def exact_key(text: str) -> str:
    return hashlib.blake2b(normalize(text).encode(), digest_size=16).hexdigest()


def text_features(texts: list[str], *, shingle: int = 3, num_perm: int = NUM_PERM, seed: int = 1) -> Features:
    """The Features of `texts`: a pure function, which worker processes and Ray tasks run on chunks."""
    sets: list[np.ndarray] = []
    keys: list[str] = []
    sig = signatures(texts, shingle=shingle, num_perm=num_perm, seed=seed, sets=sets, keys=keys)
    return Features(keys, sig, sets)


def _features_of_chunk(texts: list[str], shingle: int, num_perm: int, seed: int) -> Features:
    return text_features(texts, shingle=shingle, num_perm=num_perm, seed=seed)


FEATURE_CHUNK = 20_000
"""Texts per chunk a worker computes features of."""


def all_features(texts: list[str], *, shingle: int = 3, num_perm: int = NUM_PERM, seed: int = 1,
                 workers: int = 1) -> Features:
    """text_features of every text, computed by `workers` processes a chunk at a time, in order."""
    from brightrun.workspace.pool import map_ordered, workers_for  # the pool's module loads DuckDB

    chunks = [texts[i:i + FEATURE_CHUNK] for i in range(0, len(texts), FEATURE_CHUNK)]
    parts = [f for _, f in map_ordered(_features_of_chunk, chunks, workers_for(workers, len(chunks)),
                                       shared=(shingle, num_perm, seed))]
    return join_features(parts, num_perm)


def join_features(parts: list[Features], num_perm: int = NUM_PERM) -> Features:
    if not parts:
        return Features([], np.empty((0, num_perm), dtype=np.uint32), [])
    return Features([k for p in parts for k in p.keys], np.concatenate([p.signatures for p in parts]),
                    [s for p in parts for s in p.sets])


def exact_groups(ids: list[str], keys: list[str]) -> list[tuple[str, ...]]:
    """Groups of ids with equal keys (groups of two or more): exact_duplicates from precomputed keys."""
    groups: dict[str, list[str]] = defaultdict(list)
    for key, value in zip(ids, keys, strict=True):
        groups[value].append(key)
    return sorted(tuple(sorted(group)) for group in groups.values() if len(group) > 1)


def near_duplicate_clusters(texts: dict[str, str], *, threshold: float = 0.6, shingle: int = 3,
                            num_perm: int = NUM_PERM, seed: int = 1, workers: int = 1) -> list[Cluster]:
    """Clusters of ids whose texts are near duplicates: LSH proposes candidate pairs, and a pair is joined
    when the exact Jaccard similarity of its shingle sets reaches the threshold. `workers` processes share
    the work (the same clusters for any number)."""
    ids = list(texts)
    if len(ids) < 2:
        return []
    features = all_features([texts[i] for i in ids], shingle=shingle, num_perm=num_perm, seed=seed,
                            workers=workers)
    return clusters_of(ids, features, threshold=threshold, num_perm=num_perm, workers=workers)


def clusters_of(ids: list[str], features: Features, *, threshold: float = 0.6, num_perm: int = NUM_PERM,
                workers: int = 1) -> list[Cluster]:
    """near_duplicate_clusters from precomputed Features. With workers > 1 each worker takes a share of the
    LSH bands and returns the links that joined its own clusters (a spanning forest of what it found);
    the union of those forests has the same connected components as one pass over every band, because a
    pair skipped for being joined already cannot change a component."""
    if len(ids) < 2:
        return []
    from brightrun.workspace.pool import map_ordered, workers_for

    sig, sets = features.signatures, features.sets
    bands, rows = lsh_params(max(0.05, threshold - LSH_SLACK), num_perm)
    workers = workers_for(workers, bands)
    comps = _Components(len(ids))
    if workers == 1:
        _join_bands(sig, sets, range(bands), rows, threshold, num_perm, comps)
    else:
        with tempfile.TemporaryDirectory(prefix="brightrun-lsh-") as folder:
            _save_features(Path(folder), sig, sets)
            shares = [list(range(bands))[w::workers] for w in range(workers)]
            for _, links in map_ordered(_links_of_bands, shares, workers,
                                        shared=(folder, rows, threshold, num_perm)):
                for i, j in links.tolist():
                    comps.union(i, j)
    clusters = []
    for group in comps.members.values():
        names = sorted(ids[g] for g in group)
        index = {ids[g]: g for g in group}
        head = sets[index[names[0]]]
        similarity = min(jaccard(head, sets[index[name]]) for name in names[1:])
        clusters.append(Cluster(tuple(names), round(similarity, 3)))
    return sorted(clusters, key=lambda c: (-len(c.ids), c.ids))


def _join_bands(sig: np.ndarray, sets: list[np.ndarray], bands: Iterable[int], rows: int, threshold: float,
                num_perm: int, comps: _Components) -> list[tuple[int, int]]:
    """Union the candidate pairs of `bands` whose exact similarity reaches the threshold; the links that
    joined two clusters."""
    label = comps.label
    links = []
    for band in bands:
        for bucket in _buckets(sig[:, band * rows:(band + 1) * rows]):
            for pos in range(len(bucket) - 1):
                labels = label[bucket[pos:]]
                rest = bucket[pos + 1:][labels[1:] != labels[0]]
                if not len(rest):
                    if (labels == labels[0]).all():
                        break  # the rest of the bucket is one cluster already
                    continue
                i = int(bucket[pos])
                close = (sig[rest] == sig[i]).sum(axis=1) / num_perm >= threshold - ESTIMATE_MARGIN
                for j in rest[close].tolist():
                    if label[j] != label[i] and jaccard(sets[i], sets[j]) >= threshold:
                        comps.union(i, j)
                        links.append((i, j))
    return links


def _save_features(folder: Path, sig: np.ndarray, sets: list[np.ndarray]) -> None:
    """Signatures and shingle sets as .npy files the workers map instead of receiving copies."""
    np.save(folder / "sig.npy", sig)
    np.save(folder / "sets.npy", np.concatenate(sets) if sets else np.empty(0, dtype=np.uint32))
    np.save(folder / "ends.npy", np.cumsum([len(s) for s in sets], dtype=np.int64))


def _links_of_bands(bands: list[int], folder: str, rows: int, threshold: float, num_perm: int) -> np.ndarray:
    """A worker's share of clusters_of: the links its bands make, as an (n, 2) array of text indices."""
    sig = np.load(Path(folder) / "sig.npy", mmap_mode="r")
    flat = np.load(Path(folder) / "sets.npy", mmap_mode="r")
    ends = np.load(Path(folder) / "ends.npy")
    sets = np.split(np.asarray(flat), ends[:-1])
    links = _join_bands(np.asarray(sig), sets, bands, rows, threshold, num_perm, _Components(len(sig)))
    return np.array(links, dtype=np.int64).reshape(-1, 2)


def conversation_texts(ws: Workspace) -> dict[str, str]:
    """Every conversation's turns joined in order, by conversation id."""
    frame = ws.sql("SELECT conversation_id, string_agg(content, '\n' ORDER BY turn_number) AS text "
                   "FROM turns GROUP BY 1")
    return dict(zip(frame["conversation_id"].to_list(), frame["text"].to_list(), strict=True))


def pair_texts(ws: Workspace) -> dict[str, str]:
    """Every training pair's target response, by pair id."""
    frame = ws.sql("SELECT pair_id, target_response FROM training_pairs")
    return dict(zip(frame["pair_id"].to_list(), frame["target_response"].to_list(), strict=True))
