"""Splits of a training file: train, validation, test by ratio, with nothing leaking across them.

Groups: conversations whose texts are exact or near duplicates (MinHash LSH + exact Jaccard, see
`brightrun.quality.duplicates`) form one group, and a group never straddles two splits. Strata: each group
belongs to the tier x arc stratum of its first conversation. Within a stratum, groups are ordered by
sha256(salt + first id) and each goes to the split furthest below its share, counting conversations in
the stratum and overall (so small strata still fill validation and test across the file). The same
members, ratios and salt give the same splits on every machine.

Stable across versions: adding or removing members never moves a member that stays. Its group keeps its
split, a new member that is a near duplicate of a member joins that member's split, and only the new
groups are placed, each stratum's existing members counted, so the ratios hold as the file grows. A
model tested on one version's validation or test members is never trained on them by a later version.
Only an explicit re-split (a new ratio or salt) places every member afresh.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from brightrun.datasets.rules import SPLITS
from brightrun.errors import TrainingFileError
from brightrun.quality import signature_store
from brightrun.quality.duplicates import exact_duplicates, near_duplicate_clusters, shingle_sets
from brightrun.training_files import signatures
from brightrun.workspace import Workspace


def check_ratios(ratios: Sequence[int]) -> None:
    if len(ratios) != 3 or any((not isinstance(r, int)) or r < 0 for r in ratios) or sum(ratios) <= 0:
        raise TrainingFileError(f"split ratios {tuple(ratios)!r} are not three non-negative whole numbers with a "
                                f"positive sum. Fix: use e.g. (80, 10, 10).")


def member_texts(ws: Workspace, ids: list[str]) -> dict[str, str]:
    frame = ws.sql("SELECT conversation_id, string_agg(content, '\n' ORDER BY turn_number) AS text FROM turns "
                   "WHERE conversation_id IN (SELECT unnest(?)) GROUP BY 1 ORDER BY 1", [ids])
    return dict(zip(frame["conversation_id"].to_list(), frame["text"].to_list(), strict=True))


def duplicate_groups(texts: dict[str, str], threshold: float = 0.6) -> dict[str, str]:
    """{id: group id}: exact and near duplicates joined transitively; the group id is its smallest id."""
    parent = {i: i for i in texts}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def join(ids: Sequence[str]) -> None:
        roots = sorted(find(i) for i in ids)
        for r in roots[1:]:
            parent[r] = roots[0]

    for group in exact_duplicates(texts):
        join(group)
    for cluster in near_duplicate_clusters(texts, threshold=threshold):
        join(cluster.ids)
    return {i: find(i) for i in texts}


def groups_of(ws: Workspace, name: str, version: int) -> dict[str, str]:
    """{member: its near-duplicate group} as recorded in a version's membership rows (the latest row of each
    member, should a crashed commit have left rows of the same version number)."""
    rows = ws.sql("SELECT conversation_id, cluster FROM training_file_conversations WHERE name = ? AND version = ? "
                  "QUALIFY row_number() OVER (PARTITION BY conversation_id ORDER BY created_at DESC) = 1",
                  [name, version])
    return dict(zip(rows["conversation_id"].to_list(), rows["cluster"].to_list(), strict=True))


FILTER_FINGERPRINTS = 20_000
"""Files with fewer members than this read their members' turn fingerprints by id; larger ones scan every
conversation's (one scan of the turns table is cheaper than filtering it by many ids)."""


def grown_groups(ws: Workspace, ids: list[str], known: Mapping[str, str], workers: int | None = None
                 ) -> dict[str, str]:
    """duplicate_groups of `ids` from the groups `known` of the members that stay ({id: group}) and the
    features kept in the workspace (signature_store): only the members not signed since their turns were
    written are read and signed. `workers`: see signatures.grow_groups."""
    turns = signature_store.fingerprints(ws, ids if len(ids) < FILTER_FINGERPRINTS else None)
    have = signature_store.load(ws, ids, turns).by_id()
    unsigned = [i for i in ids if i not in have]
    made: dict[str, np.ndarray] = {}
    if unsigned:
        texts = member_texts(ws, unsigned)
        fresh = signature_store.sign_missing(ws, {i: texts.get(i, "") for i in unsigned}, turns)
        have.update(fresh.by_id())
        made = dict(zip(fresh.ids, fresh.sets or [], strict=True))

    def sets_of(wanted: list[str]) -> dict[str, np.ndarray]:
        found = {i: made[i] for i in wanted if i in made}
        found |= signature_store.load_sets(ws, [i for i in wanted if i not in found])
        missing = [i for i in wanted if i not in found]  # (entries lost since they were read)
        if missing:
            texts = member_texts(ws, missing)
            found |= dict(zip(missing, shingle_sets([texts.get(i, "") for i in missing]), strict=True))
        return found

    return signatures.grow_groups({i: known[i] for i in ids if i in known}, have,
                                  [i for i in ids if i not in known], sets_of, workers=workers)


def _order(salt: str, key: str) -> bytes:
    return hashlib.sha256(f"{salt}{key}".encode()).digest()


def split_members(ws: Workspace, info: pl.DataFrame, ratios: Sequence[int], salt: str,
                  fixed: Mapping[str, str] | None = None, *, known: Mapping[str, str] | None = None,
                  workers: int | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """Reads info(conversation_id, tier, arc_key); returns ({id: split}, {id: group id}).

    `fixed` ({id: split}, the members of the previous version) never moves: a group holding a fixed member
    takes its split (that of its smallest fixed id, should a new member join groups of two splits), and
    the other groups are placed so that each stratum, counting its fixed members, nears the ratios.
    With `known` (the previous version's {member: group}, when members were only added), the groups are
    grown from the new members only (grown_groups), else made anew."""
    check_ratios(ratios)
    fixed = fixed or {}
    ids = info["conversation_id"].to_list()
    if not ids:
        return {}, {}
    members = set(ids)
    if known is not None and set(known) <= members and set(known.values()) <= members:
        groups = grown_groups(ws, ids, known, workers)  # (groups recorded by older code may name no member)
    else:
        texts = member_texts(ws, ids)
        groups = duplicate_groups({i: texts.get(i, "") for i in ids})
    stratum_of = {r["conversation_id"]: (r["tier"] or "", r["arc_key"] or "") for r in info.iter_rows(named=True)}
    by_group: dict[str, list[str]] = defaultdict(list)
    for cid in ids:
        by_group[groups[cid]].append(cid)
    shares = [r / sum(ratios) for r in ratios]
    overall = [0, 0, 0]
    local: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    assignment: dict[str, str] = {}
    strata: dict[tuple[str, str], list[str]] = defaultdict(list)

    def place(head: str, k: int) -> None:
        local[stratum_of[head]][k] += len(by_group[head])
        overall[k] += len(by_group[head])
        for cid in by_group[head]:
            assignment[cid] = SPLITS[k]

    for head in sorted(by_group):
        kept = sorted(c for c in by_group[head] if c in fixed)
        if kept:
            place(head, SPLITS.index(fixed[kept[0]]))
        else:
            strata[stratum_of[head]].append(head)
    for stratum in sorted(strata):
        counts = local[stratum]
        for head in sorted(strata[stratum], key=lambda h: _order(salt, h)):
            size = len(by_group[head])
            n_local, n_all = sum(counts) + size, sum(overall) + size
            deficit = [shares[k] * n_local - counts[k] + shares[k] * n_all - overall[k] if shares[k] else float("-inf")
                       for k in range(3)]
            place(head, max(range(3), key=lambda j: (deficit[j], -j)))
    return assignment, groups


def leakage_pairs(ws: Workspace, member_ids: list[str], split_of: dict[str, str],
                  threshold: float = 0.6) -> pl.DataFrame:
    """Pairs of `member_ids` in different splits (`split_of`) whose texts are exact or near duplicates:
    kind, id_a, split_a, id_b, split_b."""
    split = split_of
    texts = member_texts(ws, member_ids)
    rows = []
    seen: set[tuple[str, str]] = set()
    exact = exact_duplicates(texts)
    for kind, groups in (("exact", exact), ("near", [c.ids for c in near_duplicate_clusters(texts, threshold=threshold)])):
        for group in groups:
            for i, a in enumerate(group):
                for b in group[i + 1:]:
                    if split[a] != split[b] and (a, b) not in seen:
                        seen.add((a, b))
                        rows.append({"kind": kind, "id_a": a, "split_a": split[a], "id_b": b, "split_b": split[b]})
    return pl.DataFrame(rows, schema={"kind": pl.String, "id_a": pl.String, "split_a": pl.String,
                                      "id_b": pl.String, "split_b": pl.String})
