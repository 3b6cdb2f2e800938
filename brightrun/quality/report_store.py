"""How a quality report is kept in the workspace, so that the Quality page reads only what it shows.

- `reports/quality.json`: the summary (when, the counts, the score summary, the diversity per cell, and per
  scope the number of exact groups, near-duplicate clusters and redundant records): a few hundred KB at most.
- `reports/quality-groups-<stamp>.parquet`: the duplicate groups' members, a row each (scope, kind, group number,
  its size and similarity, the member's position in it and its id), named by the summary. At a million
  conversations the groups hold about 7 million ids: as JSON (before) that was a 340 MB file that took 4.9 s and
  1.8 GB to parse on every page load; the page now reads the groups it lists from the Parquet file.

The summary is written last, by an atomic rename, so a crash leaves the previous report whole; older groups files
are removed after. A `quality.json` written before this layout (the groups inside it) is still read.
"""

from __future__ import annotations

import io
import time
from datetime import datetime
from itertools import chain
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import BaseModel, ValidationError

from brightrun.errors import WorkspaceError
from brightrun.workspace import Workspace
from brightrun.workspace.files import atomic_write_bytes, read_json, write_json

SCOPES = ("conversations", "training_pairs")
KINDS = ("exact", "near")
GROUP_SCHEMA = {"scope": pl.String, "kind": pl.String, "group": pl.Int32, "size": pl.Int32, "similarity": pl.Float64,
                "position": pl.Int32, "id": pl.String}


class DuplicateGroup(BaseModel):
    ids: list[str]
    similarity: float
    """1.0 for exact duplicates; for near duplicates the lowest estimated Jaccard similarity to the first."""


class DuplicateFindings(BaseModel):
    exact: list[DuplicateGroup]
    near: list[DuplicateGroup]

    def redundant(self) -> set[str]:
        """Every member but the first of each group: what a dataset should drop to be free of duplicates."""
        return {i for g in [*self.exact, *self.near] for i in g.ids[1:]}


class CellDiversity(BaseModel):
    persona_key: str
    arc_key: str
    topic_key: str
    conversations: int
    distinct_2: float | None
    repeated_openings: float | None
    low: bool
    variation_draws: int | None = None
    """Distinct declared-variation draws among the cell's conversations (None: a report from before)."""
    variation_values: str | None = None
    """Distinct options used per variation dimension, e.g. "client_mood 3, opening 4"."""


class ScoreSummary(BaseModel):
    enriched: int
    mean_quality: float | None
    p10_quality: float | None
    median_quality: float | None
    mean_arc_adherence: float | None
    below_6: int
    """Enriched conversations with a quality score under 6."""


class QualityReport(BaseModel):
    computed_at: datetime
    seconds: float
    conversations: int
    training_pairs: int
    scores: ScoreSummary
    conversation_duplicates: DuplicateFindings
    pair_duplicates: DuplicateFindings
    diversity: list[CellDiversity]

    @property
    def low_diversity(self) -> list[CellDiversity]:
        return [c for c in self.diversity if c.low]


class DuplicateCounts(BaseModel):
    exact: int
    near: int
    redundant: int


class QualitySummary(BaseModel):
    """A saved report without its groups' members (`group_rows` and the functions below read those)."""

    computed_at: datetime
    seconds: float
    conversations: int
    training_pairs: int
    scores: ScoreSummary
    duplicates: dict[str, DuplicateCounts]
    """By scope: "conversations" and "training_pairs"."""
    diversity: list[CellDiversity]
    groups_file: str | None = None

    @property
    def low_diversity(self) -> list[CellDiversity]:
        return [c for c in self.diversity if c.low]


def report_path(ws: Workspace) -> Path:
    return ws.root / "reports" / "quality.json"


def _counts(findings: DuplicateFindings) -> DuplicateCounts:
    return DuplicateCounts(exact=len(findings.exact), near=len(findings.near), redundant=len(findings.redundant()))


def summary_of(report: QualityReport, groups_file: str | None = None) -> QualitySummary:
    return QualitySummary(
        computed_at=report.computed_at, seconds=report.seconds, conversations=report.conversations,
        training_pairs=report.training_pairs, scores=report.scores, diversity=report.diversity, groups_file=groups_file,
        duplicates={"conversations": _counts(report.conversation_duplicates),
                    "training_pairs": _counts(report.pair_duplicates)})


def _group_frame(report: QualityReport) -> pl.DataFrame:
    """A row per group member (GROUP_SCHEMA), built column by column (at a million conversations, 7 million
    members: a list per column of Python values would take over a GB)."""
    frames = [pl.DataFrame(schema=GROUP_SCHEMA)]
    for scope, found in zip(SCOPES, (report.conversation_duplicates, report.pair_duplicates), strict=True):
        for kind in KINDS:
            groups = getattr(found, kind)
            if not groups:
                continue
            sizes = np.fromiter((len(g.ids) for g in groups), np.int32, len(groups))
            starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
            similarity = np.fromiter((g.similarity for g in groups), np.float64, len(groups))
            frames.append(pl.DataFrame({
                "scope": pl.repeat(scope, int(sizes.sum()), dtype=pl.String, eager=True),
                "kind": pl.repeat(kind, int(sizes.sum()), dtype=pl.String, eager=True),
                "group": np.repeat(np.arange(len(groups), dtype=np.int32), sizes),
                "size": np.repeat(sizes, sizes), "similarity": np.repeat(similarity, sizes),
                "position": (np.arange(int(sizes.sum())) - np.repeat(starts, sizes)).astype(np.int32),
                "id": pl.Series(list(chain.from_iterable(g.ids for g in groups)), dtype=pl.String)},
                schema=GROUP_SCHEMA))
    return pl.concat(frames)


def save(ws: Workspace, report: QualityReport) -> Path:
    """Keep `report` (see the module); returns the summary's path."""
    folder = report_path(ws).parent
    name = f"quality-groups-{time.time_ns()}.parquet"
    buffer = io.BytesIO()
    _group_frame(report).write_parquet(buffer, compression="zstd", row_group_size=200_000)
    atomic_write_bytes(folder / name, buffer.getvalue())
    del buffer
    write_json(report_path(ws), summary_of(report, name).model_dump(mode="json"))
    for old in folder.glob("quality-groups-*.parquet"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return report_path(ws)


def _unreadable(path: Path, exc: Exception) -> WorkspaceError:
    return WorkspaceError(f"the quality report {path} cannot be read ({str(exc).splitlines()[0]}). "
                          "Fix: run `brightrun quality report` to compute it again.")


def _old_report(ws: Workspace, data: dict) -> QualityReport:
    try:
        return QualityReport.model_validate(data)
    except ValidationError as exc:
        raise _unreadable(report_path(ws), exc) from exc


def latest_summary(ws: Workspace) -> QualitySummary | None:
    """The last saved report's summary, or None if none was computed yet."""
    path = report_path(ws)
    if not path.exists():
        return None
    data = read_json(path)
    if isinstance(data, dict) and "conversation_duplicates" in data:  # saved before the groups had a file
        return summary_of(_old_report(ws, data))
    try:
        return QualitySummary.model_validate(data)
    except ValidationError as exc:
        raise _unreadable(path, exc) from exc


def group_rows(ws: Workspace, summary: QualitySummary) -> pl.LazyFrame:
    """The summary's group members (GROUP_SCHEMA), lazily."""
    if summary.groups_file is None:
        data = read_json(report_path(ws))
        frame = _group_frame(_old_report(ws, data)) if "conversation_duplicates" in data else pl.DataFrame(
            schema=GROUP_SCHEMA)
        return frame.lazy()
    path = report_path(ws).parent / Path(summary.groups_file).name
    if not path.exists():
        raise _unreadable(path, FileNotFoundError(f"{path.name} is missing"))
    return pl.scan_parquet(path)


def findings(ws: Workspace, summary: QualitySummary, scope: str) -> DuplicateFindings:
    """Every group of `scope`, as the report had them."""
    rows = (group_rows(ws, summary).filter(pl.col("scope") == scope)
            .sort("kind", "group", "position").collect())
    out: dict[str, list[DuplicateGroup]] = {kind: [] for kind in KINDS}
    for (kind, _), part in rows.group_by("kind", "group", maintain_order=True):
        out[str(kind)].append(DuplicateGroup(ids=part["id"].to_list(), similarity=part["similarity"][0]))
    return DuplicateFindings(exact=out["exact"], near=out["near"])


def groups(ws: Workspace, summary: QualitySummary, scope: str, kind: str, *, min_size: int = 2,
           limit: int = 1000) -> tuple[pl.DataFrame, int]:
    """(the `limit` largest groups of at least `min_size` members: group, size, similarity, first id; how many
    groups there are of that size)."""
    heads = (group_rows(ws, summary).filter((pl.col("scope") == scope) & (pl.col("kind") == kind)
                                            & (pl.col("position") == 0) & (pl.col("size") >= min_size))
             .select("group", "size", "similarity", pl.col("id").alias("first_id")).collect())
    return heads.sort(["size", "group"], descending=[True, False]).head(limit), heads.height


def members(ws: Workspace, summary: QualitySummary, scope: str, kind: str, group: int, limit: int = 1000) -> list[str]:
    """The first `limit` ids of one group (its first member first)."""
    return (group_rows(ws, summary).filter((pl.col("scope") == scope) & (pl.col("kind") == kind)
                                           & (pl.col("group") == group) & (pl.col("position") < limit))
            .sort("position").collect()["id"].to_list())


def redundant(ws: Workspace, summary: QualitySummary, scope: str) -> set[str]:
    """Every member but the first of each group of `scope`: what a dataset should drop to be free of duplicates."""
    return set(group_rows(ws, summary).filter((pl.col("scope") == scope) & (pl.col("position") > 0))
               .select("id").collect()["id"].to_list())


def latest_report(ws: Workspace) -> QualityReport | None:
    """The last saved report, whole (every group's members), or None if none was computed yet."""
    summary = latest_summary(ws)
    if summary is None:
        return None
    return QualityReport(
        computed_at=summary.computed_at, seconds=summary.seconds, conversations=summary.conversations,
        training_pairs=summary.training_pairs, scores=summary.scores, diversity=summary.diversity,
        conversation_duplicates=findings(ws, summary, "conversations"),
        pair_duplicates=findings(ws, summary, "training_pairs"))
