"""Recording feedback. Every judgement is a new row (append-only, one Parquet part per write, so any
number of reviewers and processes can write at once); the latest per (target, reviewer) counts."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import polars as pl
from pydantic import ValidationError

from brightrun.errors import FeedbackError, validation_problem
from brightrun.models import Feedback
from brightrun.models.feedback import TargetType
from brightrun.workspace import Workspace, utcnow
from brightrun.workspace.files import atomic_write_bytes
from brightrun.workspace.spreadsheet import csv_bytes

COMPACT_AT = 64
"""Feedback parts (one per judgement) at which a judgement also merges them into the base, as runs do for
their tables, so a workspace reviewed for months does not read thousands of small files."""
_TARGETS = {"training_pair": ("training_pairs", "pair_id"), "conversation": ("conversations", "conversation_id"),
            "llm_call": ("llm_calls", "call_id")}


def record_feedback(ws: Workspace, target_type: TargetType, target_id: str, reviewer: str, *,
                    helpful: bool | None = None, rating: int | None = None, comment: str | None = None,
                    edited_response: str | None = None, check_target: bool = True) -> Feedback:
    """Record one reviewer's judgement of a target. It becomes that reviewer's current judgement of it;
    earlier ones stay in the history. An edit is stored beside the original, never over it."""
    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise FeedbackError("feedback needs a reviewer name. Fix: enter your name (it is remembered).")
    conversation_id = None
    if target_type == "training_pair" or check_target:
        if target_type not in _TARGETS:
            raise FeedbackError(f"unknown target type {target_type!r}. Fix: use one of {', '.join(_TARGETS)}.")
        view, key = _TARGETS[target_type]
        column = "conversation_id" if target_type != "llm_call" else "NULL"
        found = ws.sql(f"SELECT {column} AS conversation_id FROM {view} WHERE {key} = ?", [target_id])
        if not found.height:
            raise FeedbackError(f"no {target_type.replace('_', ' ')} {target_id!r} in this workspace. "
                              "Fix: pick one from the review queue.")
        conversation_id = found["conversation_id"][0]
    if edited_response is not None and not edited_response.strip():
        edited_response = None
    try:
        record = Feedback(feedback_id=f"fb-{uuid.uuid4().hex}", target_type=target_type, target_id=target_id,
                          conversation_id=conversation_id, reviewer=reviewer, helpful=helpful, rating=rating,
                          comment=(comment or "").strip() or None, edited_response=edited_response,
                          source="review", created_at=utcnow())
    except ValidationError as exc:
        raise FeedbackError(validation_problem(exc, f"feedback on {target_id!r}",
                                               "give a thumbs, a rating from 1 to 5, a comment or an edit")) from exc
    ws.append_models("feedback", [record])
    if len(ws.table_files("feedback").deltas) >= COMPACT_AT:
        ws.compact(tables=["feedback"], min_parts=COMPACT_AT)
    return record


def thumbs_up_unjudged(ws: Workspace, conversation_id: str, reviewer: str) -> int:
    """A thumbs up from `reviewer` on every advisor turn of the conversation they have not judged yet (their
    judgements stay as they are); one write. Returns how many turns it judged."""
    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise FeedbackError("feedback needs a reviewer name. Fix: enter your name (it is remembered).")
    pairs = ws.sql("""
        SELECT p.pair_id FROM training_pairs p WHERE p.conversation_id = ? AND NOT EXISTS (
            SELECT 1 FROM feedback_latest f WHERE f.target_type = 'training_pair' AND f.target_id = p.pair_id
            AND f.reviewer = ?) ORDER BY p.turn_number""", [conversation_id, reviewer])["pair_id"].to_list()
    now = utcnow()
    ws.append_models("feedback", [
        Feedback(feedback_id=f"fb-{uuid.uuid4().hex}", target_type="training_pair", target_id=pair_id,
                 conversation_id=conversation_id, reviewer=reviewer, helpful=True, source="review", created_at=now)
        for pair_id in pairs])
    return len(pairs)


def reviewers(ws: Workspace) -> list[str]:
    """Everyone who has judged anything, most active first."""
    return ws.sql("SELECT reviewer FROM feedback_latest WHERE source = 'review' GROUP BY 1 "
                  "ORDER BY count(*) DESC, reviewer")["reviewer"].to_list()


def judgements_for_conversation(ws: Workspace, conversation_id: str, reviewer: str) -> dict[str, dict]:
    """The reviewer's current judgement of each training pair of a conversation, by pair id."""
    frame = ws.sql("""
        SELECT target_id, helpful, rating, comment, edited_response, created_at FROM feedback_latest
        WHERE target_type = 'training_pair' AND conversation_id = ? AND reviewer = ?""",
                   [conversation_id, reviewer])
    return {row["target_id"]: row for row in frame.to_dicts()}


def history(ws: Workspace, target_id: str) -> pl.DataFrame:
    """Every judgement ever made of a target, newest first, with whether it is its reviewer's current one."""
    return ws.sql("""
        SELECT f.reviewer, f.helpful, f.rating, f.comment, f.edited_response, f.source, f.created_at,
               (f.feedback_id = l.feedback_id) AS current, f.feedback_id
        FROM feedback f JOIN feedback_latest l USING (target_type, target_id, reviewer)
        WHERE f.target_id = ? ORDER BY f.created_at DESC, f.feedback_id DESC""", [target_id])


def _thumbs(helpful: bool | None) -> str:
    return "" if helpful is None else ("up" if helpful else "down")


def current_judgements(ws: Workspace, target_id: str, reviewers: list[str]) -> pl.DataFrame:
    """The chosen reviewers' current judgements of a target: reviewer, thumbs (up/down), rating, comment,
    edited response, time."""
    judged = history(ws, target_id).filter(pl.col("current") & pl.col("reviewer").is_in(reviewers))
    return judged.select("reviewer", pl.col("helpful").map_elements(_thumbs, return_dtype=pl.String).alias("thumbs"),
                         "rating", "comment", "edited_response", "created_at")


def history_table(ws: Workspace, target_id: str, original: str, *, only_reviewer: str | None = None) -> pl.DataFrame:
    """The history of a target as the Review page shows it: the original response first, then every
    judgement newest first (only one reviewer's during blind review), each edit with its text."""
    judgements = history(ws, target_id)
    if only_reviewer is not None:
        judgements = judgements.filter(pl.col("reviewer") == only_reviewer)
    rows = [{"version": "original", "reviewer": "", "when": "", "thumbs": "", "rating": "", "comment": "",
             "response": original, "current": None}]
    rows += [{"version": "edit" if r["edited_response"] else "judgement", "reviewer": r["reviewer"],
              "when": f"{r['created_at']:%Y-%m-%d %H:%M:%S}", "thumbs": _thumbs(r["helpful"]),
              "rating": "" if r["rating"] is None else str(r["rating"]), "comment": r["comment"] or "",
              "response": r["edited_response"] or "(original kept)", "current": r["current"]}
             for r in judgements.to_dicts()]
    return pl.DataFrame(rows, schema={"version": pl.String, "reviewer": pl.String, "when": pl.String,
                                      "thumbs": pl.String, "rating": pl.String, "comment": pl.String,
                                      "response": pl.String, "current": pl.Boolean})


def export_feedback(ws: Workspace, path: Path, *, latest_only: bool = False, source: str | None = None) -> int:
    """Write feedback (every judgement, or only the current ones) to JSONL, CSV or Parquet by suffix,
    with each target's original response beside any edit. Returns the number of rows written."""
    view = "feedback_latest" if latest_only else "feedback"
    where, params = ("WHERE f.source = ? OR f.source LIKE ?", [source, f"{source}:%"]) if source else ("", [])
    frame = ws.sql(f"""
        SELECT f.*, coalesce(p.target_response, c.response) AS original_response
        FROM {view} f
        LEFT JOIN training_pairs p ON f.target_type = 'training_pair' AND p.pair_id = f.target_id
        LEFT JOIN llm_calls c ON f.target_type = 'llm_call' AND c.call_id = f.target_id
        {where} ORDER BY f.created_at, f.feedback_id""", params)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        data = b"".join(orjson.dumps(row, default=str) + b"\n" for row in frame.to_dicts())
        atomic_write_bytes(path, data)
    elif suffix == ".csv":
        atomic_write_bytes(path, csv_bytes(frame))  # spreadsheet formulas neutralised (OWASP)
    elif suffix == ".parquet":
        tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
        frame.write_parquet(tmp)
        tmp.replace(path)
    else:
        raise FeedbackError(f"cannot write {path.name}: unknown format. Fix: end the file name with .jsonl, "
                          ".csv or .parquet.")
    return frame.height
