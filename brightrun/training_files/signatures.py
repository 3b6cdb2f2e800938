"""Near-duplicate groups of a training file's members, grown from the new members only.

Each member conversation's exact-duplicate key, MinHash signature and shingle set are computed once (at
enrichment, or when a training file first meets it unsigned) and kept in the workspace
(`brightrun.quality.signature_store`). Adding members then finds only the links that involve a new member:
exact keys equal to a new member's, and LSH candidates sharing a band bucket with a new member whose MinHash
estimate reaches the threshold less the margin, joined when the exact Jaccard similarity of the two shingle
sets reaches the threshold. The existing members' groups come from the previous version's membership rows.
The result is the grouping `splits.duplicate_groups` gives over all members (the same links, found from the
new side; a group is named by its smallest id), at the cost of the pairs with a new member.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import polars as pl

from brightrun.quality import duplicates
from brightrun.quality.findings import row_counts
from brightrun.workspace.pool import check_workers, default_workers, map_ordered, workers_for


def exact_key(text: str) -> str:
    """The exact-duplicate key of a text, as `duplicates.exact_duplicates` groups them."""
    return hashlib.blake2b(duplicates.normalize(text).encode(), digest_size=16).hexdigest()


def compute(texts: Sequence[str], sets: list[np.ndarray] | None = None) -> tuple[list[str], np.ndarray]:
    """(exact keys, MinHash signatures len(texts) x NUM_PERM) of texts. The texts' shingle sets are appended
    to `sets` when given."""
    keys: list[str] = []
    sig = duplicates.signatures(list(texts), sets=sets, keys=keys) if texts else np.empty((0, duplicates.NUM_PERM),
                                                                                          np.uint32)
    return keys, sig


def grow_groups(known: Mapping[str, str], signed: Mapping[str, tuple[str, np.ndarray]], new: Sequence[str],
                sets_of: Callable[[list[str]], Mapping[str, np.ndarray]], threshold: float = 0.6,
                workers: int | None = None) -> dict[str, str]:
    """{id: group id} over the members `known` ({id: group id}, the previous version's) and the `new` ones:
    the known groups joined with every exact or near-duplicate link that involves a new member; a group is
    named by its smallest id. `signed`: {id: (exact key, signature)} of every member; `sets_of(ids)`: the
    shingle sets of the members an exact check needs (asked once). `workers` processes search the LSH
    candidates (default: the core count, from PARALLEL_MEMBERS members on); the groups are the same."""
    old = sorted(known)
    new = sorted(new)
    ids = old + new
    n_old = len(old)
    position = {cid: k for k, cid in enumerate(ids)}
    comps = duplicates._Components(len(ids))
    for cid in old:  # the known groups (a group id is the smallest id of its group, a member)
        comps.union(position[cid], position[known[cid]])
    first: dict[str, int] = {}
    for k, cid in enumerate(ids):
        key = signed[cid][0]
        if key in first:
            if k >= n_old:
                comps.union(first[key], k)
        else:
            first[key] = k
    sig = (np.stack([signed[c][1] for c in ids]) if ids else np.empty((0, duplicates.NUM_PERM), np.uint32))
    _near_links(sig, n_old, threshold, comps, lambda idx: _by_index(idx, ids, sets_of), workers)
    name: dict[int, str] = {}
    labels = comps.label.tolist()
    for k, label in enumerate(labels):
        if label not in name or ids[k] < name[label]:
            name[label] = ids[k]
    return {cid: name[label] for cid, label in zip(ids, labels, strict=True)}


def _by_index(indices: list[int], ids: list[str], sets_of: Callable[[list[str]], Mapping[str, np.ndarray]]
              ) -> dict[int, np.ndarray]:
    sets = sets_of([ids[i] for i in indices])
    return {i: sets[ids[i]] for i in indices}


def _near_links(sig: np.ndarray, n_old: int, threshold: float, comps: duplicates._Components,
                sets_of: Callable[[list[int]], dict[int, np.ndarray]], workers: int | None = None) -> None:
    """Join every near-duplicate pair with at least one new member (index >= n_old): LSH buckets as
    `duplicates.near_duplicate_clusters` forms them, its estimate filter, then the exact Jaccard check, made
    once per pair however many bands the pair shares, and skipped when the two are already in one group
    when their turn comes (pairs taken in _candidates' order: the highest estimates first)."""
    pairs = _candidates(sig, n_old, threshold, _workers(workers, len(sig)))
    if not pairs.size:
        return
    n = len(sig)
    left, right = pairs // n, pairs % n
    involved = _members(left, right, n)
    sets = sets_of(involved.tolist())
    _link_exact(left, right, sets, threshold, comps, involved)


def _members(left: np.ndarray, right: np.ndarray, n: int) -> np.ndarray:
    """The distinct members (< n) of the pairs (left[k], right[k]), ascending: marked in a table of n flags
    (sorting the tens of millions of values took about a second each time)."""
    seen = np.zeros(n, dtype=bool)
    seen[left] = True
    seen[right] = True
    return np.flatnonzero(seen)


def _link_exact(left: np.ndarray, right: np.ndarray, sets: Mapping[int, np.ndarray], threshold: float,
                comps: duplicates._Components, involved: np.ndarray | None = None) -> int:
    """Join each pair (left[k], right[k]) whose exact Jaccard similarity (`jaccard`'s figure) reaches the
    threshold. The shingle values are renumbered densely first. When they are few (a bitmap of them is no
    longer than the average set, as in templated texts), the pairs are counted on bitmaps, a block of pairs at
    a time, in the order given; otherwise they are taken by their left member, ascending, and one member's pairs
    are counted together (its values marked in a table, each right member's looked up there). Either way a pair whose two
    members are in one group already when its turn comes is skipped. Returns the pairs checked."""
    if involved is None:
        involved = _members(left, right, int(max(left.max(), right.max())) + 1)
    where = np.full(int(involved[-1]) + 1, -1, np.int64)
    where[involved] = np.arange(len(involved))
    parts = [sets[i] for i in involved.tolist()]
    sizes = np.fromiter(map(len, parts), np.int64, len(parts))
    starts = np.zeros(len(parts), np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    dense, values = pd.factorize(np.concatenate(parts))  # (a hash table: several times a sort's speed)
    dense = dense.astype(np.int32)
    del parts
    words = -(-len(values) // 64)
    if words <= sizes.mean() and words * 8 * len(involved) <= _BITMAP_BYTES:
        bits = _bitmaps(dense, sizes, words)
        counts = np.bitwise_count(bits).sum(axis=1, dtype=np.int64)
        checked = 0
        for k in range(0, len(left), _PAIR_BLOCK):
            i, j = left[k:k + _PAIR_BLOCK], right[k:k + _PAIR_BLOCK]
            apart = comps.label[i] != comps.label[j]
            i, j = i[apart], j[apart]
            a, b = where[i], where[j]
            common = np.bitwise_count(bits[a] & bits[b]).sum(axis=1, dtype=np.int64)
            ok = common / (counts[a] + counts[b] - common) >= threshold
            for x, y in zip(i[ok].tolist(), j[ok].tolist(), strict=True):
                comps.union(x, y)
            checked += len(i)
        return checked
    mark = np.zeros(len(values), dtype=bool)
    order = np.argsort(left, kind="stable")
    cuts = np.flatnonzero(np.diff(left[order])) + 1
    label = comps.label
    checked = 0
    for group in np.split(order, cuts):
        i = int(left[group[0]])
        js = right[group]
        js = js[label[js] != label[i]]
        if not js.size:
            continue
        checked += js.size
        wi, wj = where[i], where[js]
        own = dense[starts[wi]:starts[wi] + sizes[wi]]
        mark[own] = True
        size = sizes[wj]
        bounds = np.zeros(len(wj), np.int64)
        np.cumsum(size[:-1], out=bounds[1:])
        index = np.arange(int(bounds[-1] + size[-1])) + np.repeat(starts[wj] - bounds, size)
        common = np.add.reduceat(mark[dense[index]], bounds, dtype=np.int64)
        mark[own] = False
        for j in js[common / (sizes[wi] + size - common) >= threshold].tolist():
            comps.union(i, j)
    return checked


_BITMAP_BYTES = 1 << 30
"""The most memory the members' bitmaps may take (else the table lookups are used)."""
_PAIR_BLOCK = 1 << 15
"""Pairs counted on bitmaps at once."""


def _bitmaps(dense: np.ndarray, sizes: np.ndarray, words: int) -> np.ndarray:
    """(members x words) uint64 bitmaps of the members' dense values (member k's are the k-th run of `dense`,
    `sizes[k]` long; value v is bit v % 8 of byte v // 8). The bits are OR-ed in by flat byte offsets: numpy's
    ufunc.at is several times faster on one index array than on a tuple of two (1.3 s against 4.5 s for 52
    million values)."""
    width = words * 8
    bits = np.zeros(len(sizes) * width, np.uint8)
    where = np.repeat(np.arange(len(sizes), dtype=np.int64) * width, sizes) + (dense >> 3)
    np.bitwise_or.at(bits, where, np.left_shift(1, dense & 7).astype(np.uint8))
    return bits.reshape(len(sizes), width).view(np.uint64)


SMALL_BUCKET = 64
"""Buckets up to this size have their candidate pairs made by one join per band; a larger bucket's are
estimated as a block, its new members against all its members."""

_WORK = 1 << 22
"""Bytes of equality flags a large bucket's block estimate holds at once."""

def _equal_counts(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
    """Equal values of uint8 arrays a and b (broadcast) counted along `axis`, which holds one value per
    permutation: the flags are added row by row into a uint8 count (at most num_perm, under 256), which
    numpy vectorizes across the other axis when `axis` is not the last."""
    return np.add.reduce((a == b).view(np.uint8), axis=axis, dtype=np.uint8)


PARALLEL_MEMBERS = 50_000
"""Members from which the candidate search uses several processes by default (below, starting them costs
more than it saves)."""


def _workers(workers: int | None, members: int) -> int:
    if workers is None:
        return default_workers() if members >= PARALLEL_MEMBERS else 1
    return check_workers(workers)


def _candidates(sig: np.ndarray, n_old: int, threshold: float, workers: int = 1) -> np.ndarray:
    """The pairs (i, j) sharing an LSH band bucket, i new (>= n_old), j old or a later new member, whose
    MinHash estimate reaches the threshold less duplicates.ESTIMATE_MARGIN: each once, as i * len(sig) + j,
    the highest estimates first (ties ascending): checked in that order, the likeliest links join the groups
    first and more of the later pairs are skipped as already joined (1.6M exact checks instead of 3.7M of
    7.9M candidates on the benchmark's templated texts). The estimates are first counted over the values' low
    bytes (equal values have equal low bytes, so that count is never below the true one and drops no pair), and
    the pairs that pass are counted again over the whole values. A large bucket is counted as blocks of its new
    members against all its members, permutation by permutation. With `workers` > 1, processes take the bands
    in turn, then parts of the pairs to count again (workspace.pool): the same pairs, in the same order."""
    num_perm = sig.shape[1]
    bands, rows = duplicates.lsh_params(max(0.05, threshold - duplicates.LSH_SLACK), num_perm)
    floor = threshold - duplicates.ESTIMATE_MARGIN
    need = next(c for c in range(num_perm + 1) if c / num_perm >= floor)  # the smallest count that passes
    rows_low = np.ascontiguousarray(sig.astype(np.uint8))  # the values' low bytes, one row per member
    workers = workers_for(workers, bands)
    turns = [list(range(k, bands, workers)) for k in range(workers)]
    work = [(turn, np.ascontiguousarray(np.concatenate([sig[:, b * rows:(b + 1) * rows] for b in turn], axis=1)))
            for turn in turns]
    passed = [found for _, found in map_ordered(_bands_passed, work, workers,
                                                shared=(rows_low, n_old, need, rows, SMALL_BUCKET))]
    if not any(p.size for p in passed):
        return np.empty(0, np.int64)
    pairs = _distinct(np.concatenate(passed))
    del passed
    parts = np.array_split(pairs, workers) if workers > 1 else [pairs]
    kept = [found for _, found in map_ordered(_whole_passed, parts, workers, shared=(sig, floor))]
    pairs = np.concatenate([found for found, _ in kept])
    misses = np.concatenate([missed for _, missed in kept])
    return pairs[np.argsort(misses, kind="stable")]  # (a radix sort of bytes)


def _bands_passed(work: tuple[list[int], np.ndarray], rows_low: np.ndarray, n_old: int, need: int,
                  rows: int, small_bucket: int) -> np.ndarray:
    """The pairs of the bands `work[0]` (their signature columns `work[1]`, `rows` each) whose low-byte count
    (`rows_low`: one row of low bytes per member) reaches `need`, as i * n + j, a pair once per band; buckets
    up to `small_bucket` members by a join, larger ones as blocks."""
    turn, columns = work
    n = len(rows_low)
    low = np.ascontiguousarray(rows_low.T)  # one row per permutation
    passed: list[np.ndarray] = []
    for at in range(len(turn)):
        block = np.ascontiguousarray(columns[:, at * rows:(at + 1) * rows])
        keys = block.view(np.dtype((np.void, block.dtype.itemsize * rows))).ravel()
        _, bucket, sizes = np.unique(keys, return_inverse=True, return_counts=True)
        has_new = np.zeros(len(sizes), dtype=bool)
        has_new[bucket[n_old:]] = True
        shared = has_new & (sizes > 1)
        if not shared.any():
            continue
        small = shared & (sizes <= small_bucket)
        members = np.flatnonzero(small[bucket])  # small buckets: their pairs in one join
        if members.size:
            frame = pl.DataFrame({"bucket": bucket[members].astype(np.int64), "j": members.astype(np.int64)})
            joined = (frame.filter(pl.col("j") >= n_old).rename({"j": "i"}).join(frame, on="bucket")
                      .filter((pl.col("j") < n_old) | (pl.col("j") > pl.col("i"))))  # a new-new pair once
            left, right = joined["i"].to_numpy(), joined["j"].to_numpy()
            for k in range(0, len(left), 65_536):
                part_l, part_r = left[k:k + 65_536], right[k:k + 65_536]
                close = row_counts(rows_low[part_l], rows_low[part_r]) >= need
                passed.append(part_l[close] * n + part_r[close])
        members = np.flatnonzero((shared & ~small)[bucket])  # large buckets: new members x the rest, as blocks
        order = members[np.argsort(bucket[members], kind="stable")]
        edges = np.flatnonzero(np.diff(bucket[order])) + 1
        for group in np.split(order, edges) if order.size else []:
            passed.extend(_bucket_pairs(np.take(low, group, axis=1), group, n_old, need, n))
    return np.concatenate(passed) if passed else np.empty(0, np.int64)


def _whole_passed(pairs: np.ndarray, sig: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """The pairs (as i * len(sig) + j) whose estimate over the whole values reaches `floor`, and for each the
    permutations whose values differ (uint8)."""
    n, num_perm = sig.shape
    equal = np.empty(len(pairs), dtype=np.uint8)
    for k in range(0, len(pairs), 65_536):
        left, right = pairs[k:k + 65_536] // n, pairs[k:k + 65_536] % n
        equal[k:k + 65_536] = row_counts(sig[left], sig[right])
    keep = equal / num_perm >= floor
    return pairs[keep], (num_perm - equal[keep]).astype(np.uint8)


def _bucket_pairs(block: np.ndarray, group: np.ndarray, n_old: int, need: int, n: int) -> list[np.ndarray]:
    """The pairs of a large bucket (members `group`, ascending; `block` their low bytes, num_perm x members)
    whose low-byte count reaches `need`: each new member against the old members and the new ones after it,
    a block of new members at a time, as i * n + j (n: the members of the file)."""
    num_perm, size = block.shape
    first = int(np.searchsorted(group, n_old))  # the new members are the last ones
    step = max(1, _WORK // (size * num_perm))
    out = []
    for start in range(first, size, step):
        stop = min(start + step, size)
        mine = block[:, start:stop].T[:, :, None]  # new members x num_perm x 1
        old = _equal_counts(block[None, :, :first], mine, 1) >= need
        ii, jj = np.nonzero(old)
        out.append(group[start + ii] * n + group[jj])
        after = _equal_counts(block[None, :, start + 1:], mine, 1) >= need  # columns start+1 ...
        after &= np.arange(start + 1, size)[None, :] > np.arange(start, stop)[:, None]
        ii, jj = np.nonzero(after)
        out.append(group[start + ii] * n + group[start + 1 + jj])
    return out


def _distinct(values: np.ndarray) -> np.ndarray:
    """np.unique(values) by a sort (numpy's hash-based unique is several times slower on tens of millions)."""
    values = np.sort(values)
    return values[np.concatenate(([True], values[1:] != values[:-1]))] if values.size else values


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
