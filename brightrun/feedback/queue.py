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
    limit: int = 2000


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


def review_queue(ws: Workspace, f: ReviewFilter) -> pl.DataFrame:
    """Conversations matching the filter, unreviewed ones first (then by id): title, scaffold names, quality,
    advisor turns (`pairs`), how many are judged (by `f.by`, or by anyone), and the review state."""
    if f.quality_min > f.quality_max:
        raise BrightRunError("the quality range is empty. Fix: make the minimum no larger than the maximum.")
    where, params = _where(f)
    judged, judged_params = _judged_sql(f.by)
    state = {"yes": "j.judged >= p.pairs", "partly": "j.judged > 0 AND j.judged < p.pairs",
             "no": "coalesce(j.judged, 0) = 0", "any": "TRUE"}[f.reviewed]
    frame = ws.sql(f"""
        WITH p AS (SELECT conversation_id, count(*) AS pairs FROM training_pairs GROUP BY 1),
             j AS ({judged})
        SELECT c.conversation_id, c.title, c.persona_key, c.arc_key, c.topic_key, c.tier,
               c.template_key || ' @ ' || c.template_version AS template_version, c.quality_score,
               p.pairs, coalesce(j.judged, 0) AS judged,
               CASE WHEN coalesce(j.judged, 0) = 0 THEN 'not reviewed'
                    WHEN j.judged >= p.pairs THEN 'reviewed' ELSE 'partly reviewed' END AS state,
               j.last_judged
        FROM conversations c JOIN p USING (conversation_id) LEFT JOIN j USING (conversation_id)
        WHERE {where} AND {state}
        ORDER BY (coalesce(j.judged, 0) >= p.pairs), c.conversation_id LIMIT ?""",
                   [*judged_params, *params, f.limit])
    return with_names(ws, frame).select(
        "conversation_id", "title", "persona", "arc", "topic", "tier", "template_version", "quality_score",
        "pairs", "judged", "state", "last_judged")


def progress(ws: Workspace, f: ReviewFilter) -> dict[str, int]:
    """Over the conversations matching the filter (ignoring its reviewed state): conversations, fully
    reviewed ones, advisor turns and judged turns (by `f.by`, or by anyone)."""
    where, params = _where(f)
    judged, judged_params = _judged_sql(f.by)
    row = ws.sql(f"""
        WITH p AS (SELECT conversation_id, count(*) AS pairs FROM training_pairs GROUP BY 1),
             j AS ({judged})
        SELECT count(*) AS conversations, count_if(coalesce(j.judged, 0) >= p.pairs)::BIGINT AS reviewed,
               coalesce(sum(p.pairs), 0)::BIGINT AS turns, coalesce(sum(j.judged), 0)::BIGINT AS judged_turns
        FROM conversations c JOIN p USING (conversation_id) LEFT JOIN j USING (conversation_id)
        WHERE {where}""", [*judged_params, *params]).row(0, named=True)
    return {k: int(v or 0) for k, v in row.items()}  # count_if over no rows is NULL


def review_items(ws: Workspace, conversation_id: str) -> dict[int, dict]:
    """The reviewable advisor turns of a conversation by turn number: pair id, the original response and
    its heuristic quality score."""
    frame = ws.sql("""SELECT pair_id, turn_number, target_response, quality_score FROM training_pairs
                      WHERE conversation_id = ? ORDER BY turn_number""", [conversation_id])
    return {row["turn_number"]: row for row in frame.to_dicts()}
