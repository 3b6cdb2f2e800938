"""The review queue: enriched conversations to judge, filtered, with each reviewer's progress."""

from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import BaseModel, Field

from brightrun.errors import BrightRunError
from brightrun.quality.explore import with_names
from brightrun.workspace import Workspace


class ReviewFilter(BaseModel):
    personas: list[str] = Field(default_factory=list)
    arcs: list[str] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)
    template_versions: list[str] = Field(default_factory=list, description="'template_key @ version'")
    tiers: list[str] = Field(default_factory=list)
    job_ids: list[str] = Field(default_factory=list, description="the jobs that made them (an experiment's arms)")
    quality_min: float = 0.0
    quality_max: float = 10.0
    reviewed: Literal["any", "yes", "partly", "no"] = "any"
    """'yes': every advisor turn judged; 'partly': some; 'no': none (by `by`, or by anyone if `by` is None)."""
    by: str | None = None
    limit: int = 500
    """The queue's length: the not fully reviewed first, so a reviewer works down it and the next load brings
    the next ones. The Review page draws every queued conversation as a row and as an option to open; at a
    million conversations its first run took 1,676 ms with 2,000 and 1,321 ms with 500 (docs/benchmarks.md)."""


def _where(f: ReviewFilter) -> tuple[str, list]:
    clauses, params = ["c.enrichment_status = 'completed'", "c.quality_score BETWEEN ? AND ?"], [
        f.quality_min, f.quality_max]
    for column, values in (("persona_key", f.personas), ("arc_key", f.arcs), ("topic_key", f.topics),
                           ("tier", f.tiers), ("template_key || ' @ ' || template_version", f.template_versions),
                           ("job_id", f.job_ids)):
        if values:
            clauses.append(f"(c.{column}) IN ({', '.join('?' * len(values))})")
            params += values
    return " AND ".join(clauses), params


def _judged_sql(by: str | None) -> tuple[str, list]:
    who = "AND reviewer = ?" if by else ""
    return (f"""SELECT conversation_id, count(DISTINCT target_id) AS judged, max(created_at) AS last_judged
                FROM feedback_latest WHERE target_type = 'training_pair' AND source = 'review' {who}
                GROUP BY 1""", [by] if by else [])


def _pairs(ws: Workspace) -> tuple[str, str]:
    """(the join, the column) giving each enriched conversation's advisor turns as `pairs`: the count that
    enrichment keeps with the conversation's quality (a column of the `conversations` view), or, when any
    quality row was written before it kept one, a count over every training pair (at 1M conversations, 5M
    pairs, that grouping and its join were most of the queue's time; docs/benchmarks.md)."""
    legacy = ws.sql("SELECT count(*) AS n FROM _t_conversation_quality WHERE pair_count IS NULL").item()
    if legacy:
        return ("JOIN (SELECT conversation_id, count(*) AS pairs FROM training_pairs GROUP BY 1) p "
                "USING (conversation_id)", "p.pairs")
    return "", "c.pair_count"


_READS = ["conversations", "conversation_status", "conversation_quality", "training_pairs", "feedback"]
"""The tables the queue and its progress are computed from: each is kept per data version of these
(`Workspace.memo`), so the Review page's reruns (opening a conversation, a judgement saved elsewhere) reuse it."""


def review_queue(ws: Workspace, f: ReviewFilter) -> pl.DataFrame:
    """Conversations matching the filter, unreviewed ones first (then by id): title, scaffold names, quality,
    advisor turns (`pairs`), how many are judged (by `f.by`, or by anyone), and the review state."""
    if f.quality_min > f.quality_max:
        raise BrightRunError("the quality range is empty. Fix: make the minimum no larger than the maximum.")
    return ws.memo(("review_queue", f.model_dump_json()), lambda: _review_queue(ws, f), tables=_READS)


def _review_queue(ws: Workspace, f: ReviewFilter) -> pl.DataFrame:
    where, params = _where(f)
    judged, judged_params = _judged_sql(f.by)
    join, pairs = _pairs(ws)
    state = {"yes": f"j.judged >= {pairs}", "partly": f"j.judged > 0 AND j.judged < {pairs}",
             "no": "coalesce(j.judged, 0) = 0", "any": "TRUE"}[f.reviewed]
    frame = ws.sql(f"""
        WITH j AS ({judged})
        SELECT c.conversation_id, c.title, c.persona_key, c.arc_key, c.topic_key, c.tier,
               c.template_key || ' @ ' || c.template_version AS template_version, c.quality_score,
               {pairs} AS pairs, coalesce(j.judged, 0) AS judged,
               CASE WHEN coalesce(j.judged, 0) = 0 THEN 'not reviewed'
                    WHEN j.judged >= {pairs} THEN 'reviewed' ELSE 'partly reviewed' END AS state,
               j.last_judged
        FROM conversations c {join} LEFT JOIN j USING (conversation_id)
        WHERE {where} AND {pairs} > 0 AND {state}
        ORDER BY (coalesce(j.judged, 0) >= {pairs}), c.conversation_id LIMIT ?""",
                   [*judged_params, *params, f.limit])
    return with_names(ws, frame).select(
        "conversation_id", "title", "persona", "arc", "topic", "tier", "template_version", "quality_score",
        "pairs", "judged", "state", "last_judged")


def progress(ws: Workspace, f: ReviewFilter) -> dict[str, int]:
    """Over the conversations matching the filter (ignoring its reviewed state): conversations, fully
    reviewed ones, advisor turns and judged turns (by `f.by`, or by anyone)."""
    return dict(ws.memo(("review_progress", f.model_copy(update={"reviewed": "any", "limit": 0}).model_dump_json()),
                        lambda: tuple(_progress(ws, f).items()), tables=_READS))


def _progress(ws: Workspace, f: ReviewFilter) -> dict[str, int]:
    where, params = _where(f)
    judged, judged_params = _judged_sql(f.by)
    join, pairs = _pairs(ws)
    row = ws.sql(f"""
        WITH j AS ({judged})
        SELECT count(*) AS conversations, count_if(coalesce(j.judged, 0) >= {pairs})::BIGINT AS reviewed,
               coalesce(sum({pairs}), 0)::BIGINT AS turns, coalesce(sum(j.judged), 0)::BIGINT AS judged_turns
        FROM conversations c {join} LEFT JOIN j USING (conversation_id)
        WHERE {where} AND {pairs} > 0""", [*judged_params, *params]).row(0, named=True)
    return {k: int(v or 0) for k, v in row.items()}  # count_if over no rows is NULL


def review_items(ws: Workspace, conversation_id: str) -> dict[int, dict]:
    """The reviewable advisor turns of a conversation by turn number: pair id, the original response and
    its heuristic quality score."""
    frame = ws.sql("""SELECT pair_id, turn_number, target_response, quality_score FROM training_pairs
                      WHERE conversation_id = ? ORDER BY turn_number""", [conversation_id])
    return {row["turn_number"]: row for row in frame.to_dicts()}
