"""Exact and near-duplicate groups over more texts than memory holds: the quality report's duplicates.

`duplicates.clusters_of` keeps every text's MinHash signature (512 bytes) and shingle set (about 4 bytes a
word) in memory. At a million conversations (five million training pairs) those and the texts came to over
11 GiB. Here the parent holds, per text, its id and the index of its text's first copy (and, while features
arrive, each distinct text's key); the rest goes to a scratch folder, and a linking worker maps the low bytes of
the signatures (128 bytes per distinct text):

- Features arrive a chunk at a time (`Scratch.add`): texts with equal exact keys (equal normalized texts,
  hence equal shingle sets and signatures) are kept once, as their first copy, the *representative*.
- Each representative's whole signature, its low bytes and its shingle set are appended to files in the
  folder, and each LSH band's columns to a file of that band.
- Linking (`Scratch.link`) runs over the representatives, one band at a time, as `clusters_of` does: the
  buckets of equal band values; in a bucket each member against the later members not yet in its cluster.
  A pair is estimated on the low bytes first (equal values have equal low bytes, so that count is never
  below the whole-value count and drops no pair), then on the whole values (read from the folder), and
  joined when the exact Jaccard similarity of the two shingle sets (read from the folder) reaches the
  threshold. `workers` processes take the bands in turn and return the links that joined their clusters.
  A bucket of over 65,536 members (a million templated texts) is compared a block of rows at a time.

The groups are those of `exact_groups` and `clusters_of` over every text: a copy has its representative's
links, so expanding each representative's component by its copies gives the same components, and the
similarities are computed on the same sets.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from brightrun.quality.duplicates import (
    ESTIMATE_MARGIN,
    LSH_SLACK,
    NUM_PERM,
    Cluster,
    Features,
    _buckets,
    _Components,
    jaccard,
    lsh_params,
    text_features,
)

THRESHOLD = 0.6


class _Reader:
    """Rows of a file of uint32 values read with pread (nothing is mapped, so nothing stays resident)."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDONLY)

    def values(self, start: int, count: int) -> np.ndarray:
        return np.frombuffer(os.pread(self.fd, 4 * count, 4 * start), dtype=np.uint32)

    def close(self) -> None:
        os.close(self.fd)


class Scratch:
    """The representatives' features in a scratch folder, and what linking needs in memory (see the module)."""

    def __init__(self, threshold: float = THRESHOLD, num_perm: int = NUM_PERM) -> None:
        self.threshold, self.num_perm = threshold, num_perm
        self.bands, self.rows = lsh_params(max(0.05, threshold - LSH_SLACK), num_perm)
        self.folder = Path(tempfile.mkdtemp(prefix="brightrun-duplicates-"))
        self._ids: list[pa.Array] = []
        self._rep_of: list[np.ndarray] = []
        self._first: dict[str, int] = {}
        self._ends: list[np.ndarray] = []
        self._set_total = 0
        self.distinct = 0
        self._sig = open(self.folder / "sig.u32", "wb")  # noqa: SIM115 - closed by close()
        self._sets = open(self.folder / "sets.u32", "wb")  # noqa: SIM115
        self._low = open(self.folder / "low.u8", "wb")  # noqa: SIM115
        self._band = [open(self.folder / f"band{b}.u32", "wb") for b in range(self.bands)]  # noqa: SIM115

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for f in (self._sig, self._sets, self._low, *self._band):
            f.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def texts(self) -> int:
        return sum(len(a) for a in self._ids)

    def add(self, ids: list[str], features: Features) -> None:
        """Texts `ids` with their features (row k for ids[k])."""
        first, reps, new = self._first, np.empty(len(ids), np.int64), []
        for k, key in enumerate(features.keys):
            rep = first.get(key)
            if rep is None:
                rep = first[key] = self.distinct + len(new)
                new.append(k)
            reps[k] = rep
        self._ids.append(pa.array(ids, pa.string()))
        self._rep_of.append(reps)
        self.distinct += len(new)
        if not new:
            return
        sig = np.ascontiguousarray(features.signatures[new], dtype=np.uint32)
        self._sig.write(sig.tobytes())
        for band, out in enumerate(self._band):
            out.write(np.ascontiguousarray(sig[:, band * self.rows:(band + 1) * self.rows]).tobytes())
        self._low.write(sig.astype(np.uint8).tobytes())
        sets = [features.sets[k] for k in new]
        self._sets.write(np.concatenate(sets).astype(np.uint32).tobytes() if sets else b"")
        self._ends.append(self._set_total + np.cumsum([len(s) for s in sets], dtype=np.int64))
        self._set_total = int(self._ends[-1][-1])

    def findings(self, workers: int = 1, say: Callable[[int, int], None] | None = None
                 ) -> tuple[list[tuple[str, ...]], list[Cluster]]:
        """(exact groups, near-duplicate clusters) of every text added: the exact groups as `exact_groups`
        gives them; the clusters as `clusters_of` gives them, less those of one distinct text (an exact group
        already). `say(bands done, bands)` reports the linking's progress."""
        for f in (self._sig, self._sets, self._low, *self._band):
            f.flush()
        self._first = {}  # (not needed any more)
        rep_of = np.concatenate(self._rep_of) if self._rep_of else np.empty(0, np.int64)
        ids = pa.concat_arrays(self._ids) if self._ids else pa.array([], pa.string())
        ends = np.concatenate(self._ends) if self._ends else np.empty(0, np.int64)
        np.save(self.folder / "ends.npy", ends)
        exact = _groups(ids, rep_of, np.arange(self.distinct))
        comps = _Components(self.distinct)
        if self.distinct > 1:
            self._link(comps, workers, say)
        clusters = []
        sets = _Reader(self.folder / "sets.u32")
        try:
            multi = [np.array(sorted(group), np.int64) for group in comps.members.values()]
            label = np.full(self.distinct, -1, np.int64)
            for number, group in enumerate(multi):
                label[group] = number
            for names, reps in _grouped(ids, rep_of, label, len(multi)):
                head = reps[0]
                head_set = _set(sets, ends, head)
                similarity = min(jaccard(head_set, _set(sets, ends, r)) for r in sorted(set(reps)) if r != head)
                clusters.append(Cluster(names, round(similarity, 3)))
        finally:
            sets.close()
        return exact, sorted(clusters, key=lambda c: (-len(c.ids), c.ids))

    def _link(self, comps: _Components, workers: int, say: Callable[[int, int], None] | None) -> None:
        """Join the representatives' near-duplicate pairs into `comps`, a band at a time. One worker links in this
        process; several each take a band with the clusters known when it was handed out (a pair already in one
        cluster is skipped: it could not change the clusters) and return the links that joined its clusters."""
        from brightrun.workspace.pool import map_ordered, workers_for

        workers = workers_for(workers, self.bands)
        shared = (str(self.folder), self.distinct, self.rows, self.threshold, self.num_perm)
        if workers == 1:
            with _Linking(*shared, comps) as linking:
                for band in range(self.bands):
                    linking.band(band)
                    if say:
                        say(band + 1, self.bands)
            return
        handed = ((band, comps.label.copy()) for band in range(self.bands))
        for done, (_, links) in enumerate(map_ordered(_links_of_band, handed, workers, shared=shared), 1):
            for i, j in links.tolist():
                comps.union(i, j)
            if say:
                say(done, self.bands)


_LANES = np.uint64(0x0101010101010101)


def row_counts(rows: np.ndarray, row: np.ndarray) -> np.ndarray:
    """How many values of each of `rows` equal `row`'s, position by position (`row` one row, or as many rows as
    `rows`, compared pair by pair; the training files' candidate search counts pairs so). With num_perm a multiple of 8 the flags
    summed 8 at a time as the bytes of uint64 words (each byte at most num_perm / 8), then the bytes added by a
    multiplication; several times faster than counting a boolean array's rows."""
    if rows.shape[1] % 8:
        return np.count_nonzero(rows == row, axis=1)
    packed = np.add.reduce((rows == row).view(np.uint64), axis=1)
    return (packed * _LANES) >> np.uint64(56)


_BLOCK = 1 << 16
"""Rows compared at once: bounds the transient arrays of a huge bucket (a million templated texts) to a few MB."""


def _counts(low: np.ndarray, rows_low: np.ndarray | None, members: np.ndarray, at: int | np.ndarray,
            row: np.ndarray) -> np.ndarray:
    """row_counts of the low bytes of `members` (representatives) against `row`: from `rows_low` (the bucket's
    rows; `at` their positions in it, or the first of a run to its end) when the bucket was read at once, else
    from `low` a block at a time."""
    if rows_low is not None:
        return row_counts(rows_low[at:] if isinstance(at, int) else rows_low[at], row)
    return np.concatenate([row_counts(low[members[k:k + _BLOCK]], row) for k in range(0, len(members), _BLOCK)])


def _set(reader: _Reader, ends: np.ndarray, rep: int) -> np.ndarray:
    start = int(ends[rep - 1]) if rep else 0
    return reader.values(start, int(ends[rep]) - start)


def _groups(ids: pa.Array, rep_of: np.ndarray, label: np.ndarray) -> list[tuple[str, ...]]:
    """Sorted groups (sorted ids) of the texts whose representatives share a label >= 0, groups of two or more."""
    return [names for names, _ in _grouped(ids, rep_of, label, int(label.max()) + 1 if label.size else 0)]


def _grouped(ids: pa.Array, rep_of: np.ndarray, label: np.ndarray, count: int
             ) -> list[tuple[tuple[str, ...], list[int]]]:
    """(sorted ids, their representatives in the ids' order) of each group: texts whose representative has
    label g (0 <= g < count), for groups of two or more texts, sorted by their ids."""
    if not count or not len(rep_of):
        return []
    of_text = label[rep_of]
    counts = np.bincount(of_text[of_text >= 0], minlength=count)
    keep = (of_text >= 0) & (counts[np.maximum(of_text, 0)] > 1)
    texts = np.flatnonzero(keep)
    if not texts.size:
        return []
    order = texts[np.argsort(of_text[texts], kind="stable")]
    names = ids.take(pa.array(order)).to_pylist()
    cuts = np.flatnonzero(np.diff(of_text[order])) + 1
    out = []
    for start, stop in zip([0, *cuts.tolist()], [*cuts.tolist(), len(order)], strict=True):
        pairs = sorted(zip(names[start:stop], rep_of[order[start:stop]].tolist(), strict=True))
        out.append((tuple(n for n, _ in pairs), [r for _, r in pairs]))
    return sorted(out)


def _components_of(label: np.ndarray) -> _Components:
    """A _Components whose clusters are given by `label` (each member's root: the label of a root is itself)."""
    comps = _Components(len(label))
    comps.label = label
    order = np.argsort(label, kind="stable")
    cuts = np.flatnonzero(np.diff(label[order])) + 1
    starts, stops = np.concatenate(([0], cuts)), np.concatenate((cuts, [len(order)]))
    for start, stop in zip(starts[stops - starts > 1].tolist(), stops[stops - starts > 1].tolist(), strict=True):
        group = order[start:stop].tolist()
        comps.members[int(label[group[0]])] = group
    return comps


def _links_of_band(handed: tuple[int, np.ndarray], folder: str, n: int, rows: int, threshold: float,
                   num_perm: int) -> np.ndarray:
    """A worker's band: the links it makes among the n representatives in `folder`, starting from the clusters
    `handed[1]` (each representative's root), as a (k, 2) array of the pairs that joined two clusters."""
    band, label = handed
    with _Linking(folder, n, rows, threshold, num_perm, _components_of(label)) as linking:
        linking.band(band)
        return np.array(linking.links, dtype=np.int64).reshape(-1, 2)


class _Linking:
    """Linking over the representatives in a scratch folder, into `comps` (see the module)."""

    def __init__(self, folder: str, n: int, rows: int, threshold: float, num_perm: int, comps: _Components) -> None:
        self.where, self.n, self.rows, self.threshold, self.num_perm = Path(folder), n, rows, threshold, num_perm
        self.comps = comps
        self.low = (np.memmap(self.where / "low.u8", dtype=np.uint8, mode="r", shape=(n, num_perm)) if n
                    else np.empty((0, num_perm), np.uint8))
        self.ends = np.load(self.where / "ends.npy")
        self.sig, self.sets = _Reader(self.where / "sig.u32"), _Reader(self.where / "sets.u32")
        self.links: list[tuple[int, int]] = []

    def __enter__(self) -> _Linking:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sig.close()
        self.sets.close()

    def band(self, band: int) -> None:
        """Union the band's candidate pairs whose estimates reach the threshold less the margin and whose exact
        similarity reaches the threshold, as `duplicates._join_bands` does."""
        low, sig, num_perm, threshold = self.low, self.sig, self.num_perm, self.threshold
        floor = threshold - ESTIMATE_MARGIN
        label = self.comps.label
        block = np.fromfile(self.where / f"band{band}.u32", dtype=np.uint32).reshape(self.n, self.rows)
        for bucket in _buckets(block):
            # the bucket's low bytes, read once (ids ascending); a huge bucket's are read a block at a time
            rows_low = np.ascontiguousarray(low[bucket]) if len(bucket) <= _BLOCK else None
            for pos in range(len(bucket) - 1):
                labels = label[bucket[pos:]]
                apart = labels[1:] != labels[0]
                if apart.all():
                    rest = bucket[pos + 1:]
                    counts = _counts(low, rows_low, rest, pos + 1, np.asarray(low[bucket[pos]]))
                else:
                    if not apart.any():
                        break  # the rest of the bucket is one cluster already
                    at = np.flatnonzero(apart) + pos + 1
                    rest = bucket[at]
                    counts = _counts(low, rows_low, rest, at, np.asarray(low[bucket[pos]]))
                i = int(bucket[pos])
                rest = rest[counts / num_perm >= floor]
                if not len(rest):
                    continue
                mine, own = sig.values(i * num_perm, num_perm), None
                for k in range(0, len(rest), _BLOCK):  # a block at a time: skipping those joined meanwhile
                    part = rest[k:k + _BLOCK]
                    part = part[label[part] != label[i]]
                    if not len(part):
                        continue
                    whole = np.stack([sig.values(j * num_perm, num_perm) for j in part.tolist()])
                    part = part[row_counts(whole, mine) / num_perm >= floor]
                    if len(part) and own is None:
                        own = _set(self.sets, self.ends, i)
                    for j in part.tolist():
                        if label[j] != label[i] and jaccard(own, _set(self.sets, self.ends, j)) >= threshold:
                            self.comps.union(i, j)
                            self.links.append((i, j))


def features_of(chunk: tuple[list[str], list[str]]) -> Features:
    """The features of a chunk of (ids, texts): what the workers compute as the texts stream past."""
    return text_features(chunk[1])
