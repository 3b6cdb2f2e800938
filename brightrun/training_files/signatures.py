"""Near-duplicate groups of a training file's members, grown incrementally from cached MinHash signatures.

Each member conversation's exact-duplicate key (blake2b of its normalized turns) and MinHash signature (the
same values `brightrun.quality.duplicates.signatures` gives) are computed once, when it is first added,
and kept in `cache/training_file_signatures/<name>/<METHOD>/` (Parquet parts, one per add; a conversation's turns
never change once generated, so neither does its signature). Adding members then finds only the links
that involve a new member: exact keys equal to a new member's, and LSH candidates sharing a band bucket
with a new member, joined when the exact Jaccard similarity of the two shingle sets reaches the threshold
(the sets of the members a new one is compared with are made from their turns, only for those). The
existing members' groups come from the previous version's membership rows. The result is the grouping
`splits.duplicate_groups` gives over all members (the same links, found from the new side; a group is
named by its smallest id), at the cost of the new members only.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from brightrun.quality import duplicates
from brightrun.workspace.files import atomic_write_bytes

METHOD = f"1-p{duplicates.NUM_PERM}-s3-seed1"
"""The signature scheme of the cached parts (permutations, shingle size, seed); another scheme, another
folder."""


def cache_folder(training_file_folder: Path) -> Path:
    """Where a training file keeps its members' signatures: `<workspace>/cache/training_file_signatures/
    <name>/<METHOD>/`, beside (not in) the training file's folder of built versions."""
    return training_file_folder.parent.parent / "cache" / "training_file_signatures" / training_file_folder.name / METHOD


def exact_key(text: str) -> str:
    """The exact-duplicate key of a text, as `duplicates.exact_duplicates` groups them."""
    return hashlib.blake2b(duplicates.normalize(text).encode(), digest_size=16).hexdigest()


def compute(texts: Sequence[str], sets: list[np.ndarray] | None = None) -> tuple[list[str], np.ndarray]:
    """(exact keys, MinHash signatures len(texts) x NUM_PERM) of texts: what the cache holds. The texts'
    shingle sets are appended to `sets` when given (for the exact checks of this add; not kept)."""
    keys: list[str] = []
    sig = duplicates.signatures(list(texts), sets=sets, keys=keys) if texts else np.empty((0, duplicates.NUM_PERM),
                                                                                          np.uint32)
    return keys, sig


def cached(folder: Path, ids: Sequence[str]) -> dict[str, tuple[str, np.ndarray]]:
    """{id: (exact key, signature)} of the ids whose signatures are kept in `folder` (cache_folder)."""
    parts = sorted(folder.glob("*.parquet")) if folder.exists() else []
    if not parts:
        return {}
    frame = pl.concat([pl.read_parquet(p) for p in parts]).unique("conversation_id", keep="first")
    frame = frame.filter(pl.col("conversation_id").is_in(list(ids)))
    sig = np.frombuffer(b"".join(frame["signature"].to_list()), dtype=np.uint32).reshape(-1, duplicates.NUM_PERM)
    return {cid: (key, sig[k]) for k, (cid, key) in enumerate(zip(frame["conversation_id"].to_list(),
                                                                    frame["exact"].to_list(), strict=True))}


def store(folder: Path, ids: Sequence[str], keys: Sequence[str], sig: np.ndarray) -> None:
    """Keep the signatures of `ids` in `folder` (a new part; the caller holds the training file's lock)."""
    if not len(ids):
        return
    frame = pl.DataFrame({"conversation_id": list(ids), "exact": list(keys),
                          "signature": [row.tobytes() for row in np.ascontiguousarray(sig, dtype=np.uint32)]})
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / f"{uuid.uuid4().hex}.parquet", buffer.getvalue())


def grow_groups(known: Mapping[str, str], known_sig: Mapping[str, tuple[str, np.ndarray]],
                new_texts: Mapping[str, str], new_sig: tuple[list[str], np.ndarray],
                texts_of: Callable[[list[str]], dict[str, str]], threshold: float = 0.6,
                sets: Mapping[str, np.ndarray] | None = None) -> dict[str, str]:
    """{id: group id} over the members `known` ({id: group id}, the previous version's) and the new ones:
    the known groups joined with every exact or near-duplicate link that involves a new member. `sets`:
    shingle sets already made ({id: set}); the others are made when a check needs them."""
    old = sorted(known)
    new = sorted(new_texts)
    ids = old + new
    n_old = len(old)
    position = {cid: k for k, cid in enumerate(ids)}
    parent = list(range(len(ids)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def join(x: int, y: int) -> None:
        rx, ry = find(x), find(y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)  # the root is the smallest position, so the smallest id

    for cid in old:  # the known groups (a group id is the smallest id of its group, a member)
        join(position[cid], position[known[cid]])
    new_keys, new_rows = new_sig
    key_of = {cid: key for cid, (key, _) in known_sig.items()}
    first: dict[str, int] = {}
    for cid in old:
        first.setdefault(key_of[cid], position[cid])
    for k, key in enumerate(new_keys):
        if key in first:
            join(first[key], n_old + k)
        else:
            first[key] = n_old + k
    sig = np.vstack([np.stack([known_sig[c][1] for c in old]) if old else
                     np.empty((0, duplicates.NUM_PERM), np.uint32), new_rows])
    made = {position[c]: v for c, v in (sets or {}).items() if c in position}
    _near_links(sig, n_old, threshold, find, join, lambda idx: _sets(idx, ids, n_old, new_texts, texts_of, made))
    return {cid: ids[find(position[cid])] for cid in ids}


def _sets(indices: list[int], ids: list[str], n_old: int, new_texts: Mapping[str, str],
          texts_of: Callable[[list[str]], dict[str, str]], made: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Sorted distinct shingle hashes of the members at `indices`: those `made` already, the others from their
    turns (old members' read in one query)."""
    order = [i for i in indices if i not in made]
    wanted_old = [ids[i] for i in order if i < n_old]
    texts = texts_of(wanted_old) if wanted_old else {}
    sets = duplicates.shingle_sets([texts.get(ids[i], "") if i < n_old else new_texts[ids[i]] for i in order])
    return {**made, **dict(zip(order, sets, strict=True))}


def _near_links(sig: np.ndarray, n_old: int, threshold: float, find: Callable[[int], int],
                join: Callable[[int, int], None], sets_of: Callable[[list[int]], dict[int, np.ndarray]]) -> None:
    """Join every near-duplicate pair with at least one new member (index >= n_old): LSH buckets as
    `duplicates.near_duplicate_clusters` forms them, its estimate filter, then the exact Jaccard check, made
    once per pair however many bands the pair shares, the closest estimates first, and skipped when the two
    are already in one group (a new member that joins a group is not checked again against its members)."""
    pairs = _candidates(sig, n_old, threshold)
    if not pairs.size:
        return
    n = len(sig)
    left, right = (pairs // n).tolist(), (pairs % n).tolist()
    sets = sets_of(np.union1d(left, right).tolist())
    for i, j in zip(left, right, strict=True):
        if find(i) != find(j) and jaccard(sets[i], sets[j]) >= threshold:
            join(i, j)


SMALL_BUCKET = 64
"""Buckets up to this size have their candidate pairs made by one join per band; a larger bucket's are
made one new member at a time (a join would hold its size squared pairs at once)."""


def _candidates(sig: np.ndarray, n_old: int, threshold: float) -> np.ndarray:
    """The pairs (i, j) sharing an LSH band bucket, i new (>= n_old), j old or a later new member, whose
    MinHash estimate reaches the threshold less duplicates.ESTIMATE_MARGIN: each once, as i * len(sig) + j,
    the highest estimate first (then ascending)."""
    num_perm, n = sig.shape[1], len(sig)
    bands, rows = duplicates.lsh_params(max(0.05, threshold - duplicates.LSH_SLACK), num_perm)
    floor = threshold - duplicates.ESTIMATE_MARGIN
    found: list[np.ndarray] = []
    agree: list[np.ndarray] = []
    for band in range(bands):
        block = np.ascontiguousarray(sig[:, band * rows:(band + 1) * rows])
        keys = block.view(np.dtype((np.void, block.dtype.itemsize * rows))).ravel()
        _, bucket, sizes = np.unique(keys, return_inverse=True, return_counts=True)
        has_new = np.zeros(len(sizes), dtype=bool)
        has_new[bucket[n_old:]] = True
        shared = has_new & (sizes > 1)
        if not shared.any():
            continue
        small = shared & (sizes <= SMALL_BUCKET)
        members = np.flatnonzero(small[bucket])  # small buckets: their pairs in one join, estimates in bulk
        if members.size:
            frame = pl.DataFrame({"bucket": bucket[members].astype(np.int64), "j": members.astype(np.int64)})
            joined = (frame.filter(pl.col("j") >= n_old).rename({"j": "i"}).join(frame, on="bucket")
                      .filter((pl.col("j") < n_old) | (pl.col("j") > pl.col("i"))))  # a new-new pair once
            left, right = joined["i"].to_numpy(), joined["j"].to_numpy()
            for k in range(0, len(left), 65_536):
                same = (sig[left[k:k + 65_536]] == sig[right[k:k + 65_536]]).sum(axis=1)
                close = same / num_perm >= floor
                found.append(left[k:k + 65_536][close] * n + right[k:k + 65_536][close])
                agree.append(same[close])
        members = np.flatnonzero((shared & ~small)[bucket])  # large buckets: one new member at a time
        order = members[np.argsort(bucket[members], kind="stable")]
        edges = np.flatnonzero(np.diff(bucket[order])) + 1
        for group in np.split(order, edges) if order.size else []:
            for i in group[group >= n_old].tolist():
                rest = group[(group < n_old) | (group > i)]
                same = (sig[rest] == sig[i]).sum(axis=1)
                close = same / num_perm >= floor
                found.append(i * n + rest[close].astype(np.int64))
                agree.append(same[close])
    if not found:
        return np.empty(0, np.int64)
    pairs, first = np.unique(np.concatenate(found), return_index=True)
    return pairs[np.argsort(-np.concatenate(agree)[first], kind="stable")]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """`duplicates.jaccard` (exact Jaccard similarity of two sorted arrays of distinct values), by a binary
    search of the smaller in the larger: the same figure, several times faster than np.intersect1d."""
    if a.size > b.size:
        a, b = b, a
    if not a.size:
        return 0.0 if b.size else duplicates.jaccard(a, b)
    found = np.minimum(np.searchsorted(b, a), b.size - 1)
    common = int(np.count_nonzero(b[found] == a))
    return common / (a.size + b.size - common)
