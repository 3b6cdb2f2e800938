"""The leakage report of a training-file version, computed once and kept.

A version's members and splits never change, so its leakage report (leakage_report: near-duplicate
clustering of every member, then every pair of each cluster) is computed the first time it is asked
for and written to `training_files/<name>/leakage/v<N>-<key>.parquet`; later calls read that file. The
key covers what the report depends on: the threshold, the version's records hash (the members' training
pairs when it was made) and METHOD (bumped when the duplicate detection changes). A lock per version
makes a second caller (a page rerun, another process) wait for the first computation and read its file
instead of starting another.

cluster_leaks reads what the training file already knows: each member's near-duplicate group (exact and
near duplicates of its turns, Jaccard >= 0.6, made when the members were split) as recorded in its
membership rows. An SFT export checks those instead of clustering its records again.
"""

from __future__ import annotations

import hashlib
import io

import polars as pl

from brightrun.training_files.core import Version, folder_of, get_version
from brightrun.training_files.splits import groups_of, leakage_pairs
from brightrun.workspace import Workspace
from brightrun.workspace.files import atomic_write_bytes

METHOD = "1"
"""The duplicate detection the stored reports were made with (brightrun.quality.duplicates)."""


def cluster_leaks(ws: Workspace, v: Version) -> dict[str, tuple[str, str]]:
    """{held-out member: (its group, a train member of that group)} for the version's near-duplicate groups
    that straddle train and a held-out split (the splits keep a group in one split, so normally empty)."""
    split_of = v.split_of
    group_of = {c: g for c, g in groups_of(ws, v.name, v.version).items() if c in split_of}
    trained: dict[str, str] = {}
    for cid in sorted(group_of):
        if split_of[cid] == "train":
            trained.setdefault(group_of[cid], cid)
    return {cid: (g, trained[g]) for cid, g in sorted(group_of.items())
            if split_of[cid] != "train" and g in trained}


def leakage_report(ws: Workspace, name: str, version: int | None = None, threshold: float = 0.6) -> pl.DataFrame:
    """Pairs of members in different splits whose texts are exact or near duplicates (empty when the
    splits are sound): kind, id_a, split_a, id_b, split_b."""
    v = get_version(ws, name, version)
    return leakage_pairs(ws, v.member_ids, v.split_of, threshold)


def stored_leakage_report(ws: Workspace, name: str, version: int | None = None,
                          threshold: float = 0.6) -> pl.DataFrame:
    """leakage_report of the version (the latest by default), computed at most once per version and
    threshold and read from the workspace afterwards."""
    v = get_version(ws, name, version)
    key = hashlib.sha256(f"{METHOD}|{threshold!r}|{v.records_hash}".encode()).hexdigest()[:16]
    path = folder_of(ws, name) / "leakage" / f"v{v.version}-{key}.parquet"
    if path.exists():
        return pl.read_parquet(path)
    with ws.lock(f"leakage-{name}-v{v.version}", timeout=3600):
        if path.exists():  # computed by whoever held the lock before
            return pl.read_parquet(path)
        report = leakage_report(ws, name, v.version, threshold)
        buffer = io.BytesIO()
        report.write_parquet(buffer)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buffer.getvalue())
        return report
