"""What the App logs page shows of imported calls: per-step summaries, a filtered list, one call with
its feedback. Text is redacted unless the caller asks for the raw personal data."""

from __future__ import annotations

from typing import Literal

import orjson
import polars as pl

from brightrun.applogs.pii import redact, redact_series
from brightrun.errors import BrightRunError
from brightrun.workspace import Workspace, contains, contains_pattern

FeedbackFilter = Literal["any", "with feedback", "positive", "negative", "none"]

_FEEDBACK = {
    "any": "TRUE",
    "with feedback": "f.feedback_id IS NOT NULL",
    "positive": "(f.helpful OR f.rating >= 4) AND NOT coalesce(NOT f.helpful, FALSE)",
    "negative": "(NOT f.helpful OR f.rating <= 2)",
    "none": "f.feedback_id IS NULL",
}


def _prompt(request: str) -> str:
    try:
        value = orjson.loads(request)
    except orjson.JSONDecodeError:
        return request
    return str(value.get("prompt", "")) if isinstance(value, dict) else request


def step_summary(ws: Workspace) -> pl.DataFrame:
    """Per imported action type: calls, users, sessions, mean input and output length (characters), tokens,
    cost, median latency, calls with feedback, thumbs-up rate among thumbs, mean rating."""
    return ws.sql("""
        SELECT c.action_type, count(*) AS calls, count(DISTINCT c.user_id) AS users,
               count(DISTINCT c.session_id) AS sessions,
               avg(length(c.request)) AS mean_input_chars, avg(length(c.response)) AS mean_output_chars,
               sum(c.input_tokens + c.output_tokens)::BIGINT AS tokens, sum(c.cost_usd) AS cost_usd,
               median(c.latency_ms) AS median_latency_ms, count(f.feedback_id) AS with_feedback,
               avg(f.helpful::INT) AS thumbs_up_rate, avg(f.rating) AS mean_rating
        FROM llm_calls c
        LEFT JOIN feedback_latest f ON f.target_type = 'llm_call' AND f.target_id = c.call_id
        WHERE c.import_id IS NOT NULL
        GROUP BY 1 ORDER BY min(c.created_at), 1""")


def filter_values(ws: Workspace) -> dict[str, list[str]]:
    """The action types and categories present in imported calls, for filters."""
    frame = ws.sql("SELECT DISTINCT action_type, category FROM llm_calls WHERE import_id IS NOT NULL")
    return {"action_types": sorted(frame["action_type"].drop_nulls().unique().to_list()),
            "categories": sorted(frame["category"].drop_nulls().unique().to_list())}


def list_calls(ws: Workspace, *, action_types: list[str] | None = None, categories: list[str] | None = None,
               feedback: FeedbackFilter = "any", text: str = "", limit: int = 500,
               show_personal_data: bool = False) -> pl.DataFrame:
    """Imported calls matching the filters, newest first, with short previews of input and output (personal
    data redacted unless `show_personal_data`) and the call's feedback."""
    if feedback not in _FEEDBACK:
        raise BrightRunError(f"unknown feedback filter {feedback!r}. Fix: use one of {', '.join(_FEEDBACK)}.")
    where, params = ["c.import_id IS NOT NULL", _FEEDBACK[feedback]], []
    if action_types:
        where.append(f"c.action_type IN ({', '.join('?' * len(action_types))})")
        params += action_types
    if categories:
        where.append(f"c.category IN ({', '.join('?' * len(categories))})")
        params += categories
    if text.strip():
        where.append(f"({contains('c.request')} OR {contains('c.response')})")
        params += [contains_pattern(text.strip())] * 2
    frame = ws.sql(f"""
        SELECT c.call_id, c.created_at, c.action_type, c.category, c.user_id, c.session_id, c.model,
               c.request, c.response, c.input_tokens + c.output_tokens AS tokens, c.latency_ms,
               f.helpful, f.rating, f.comment
        FROM llm_calls c
        LEFT JOIN feedback_latest f ON f.target_type = 'llm_call' AND f.target_id = c.call_id
        WHERE {' AND '.join(where)} ORDER BY c.created_at DESC, c.call_id LIMIT ?""", [*params, limit])
    frame = frame.with_columns(
        pl.col("request").map_elements(_prompt, return_dtype=pl.String).str.slice(0, 160).alias("input"),
        pl.col("response").str.slice(0, 160).alias("output"),
    ).drop("request", "response")
    if not show_personal_data:
        frame = frame.with_columns(*(redact_series(frame[c]).alias(c)
                                     for c in ("input", "output", "user_id", "session_id", "comment")))
    return frame.select("call_id", "created_at", "action_type", "category", "user_id", "session_id", "input",
                        "output", "helpful", "rating", "comment", "model", "tokens", "latency_ms")


def call_detail(ws: Workspace, call_id: str, *, show_personal_data: bool = False) -> dict:
    """One imported call: its fields, the full input and output, and every judgement of it."""
    frame = ws.sql("SELECT * FROM llm_calls WHERE call_id = ?", [call_id])
    if not frame.height:
        raise BrightRunError(f"no call {call_id!r} in this workspace. Fix: pick one from the list.")
    call = frame.row(0, named=True)
    call["input"], call["output"] = _prompt(call["request"]), call["response"]
    feedback = ws.sql("""SELECT reviewer, helpful, rating, comment, created_at FROM feedback
                         WHERE target_type = 'llm_call' AND target_id = ? ORDER BY created_at""", [call_id])
    if not show_personal_data:
        for key in ("input", "output", "user_id", "session_id"):
            call[key] = redact(call[key])
        feedback = feedback.with_columns(redact_series(feedback["reviewer"]).alias("reviewer"),
                                         redact_series(feedback["comment"]).alias("comment"))
    call["feedback"] = feedback
    return call


def import_problems(ws: Workspace, import_id: str, limit: int = 1000) -> pl.DataFrame:
    """The bad rows of one import, by line (values already redacted when stored)."""
    return ws.sql("""SELECT line, field, source_column AS "column", reason, fix, value FROM import_errors
                     WHERE import_id = ? ORDER BY line, field LIMIT ?""", [import_id, limit])
