"""What the Generate page and `brightrun jobs` show about jobs: state, rate, ETA, spend, failures."""

from __future__ import annotations

import polars as pl

from brightrun.errors import JobError
from brightrun.generation.control import job_is_running
from brightrun.generation.jobs import cancel_requested, load_job
from brightrun.workspace import Workspace, utcnow


def job_table(ws: Workspace, limit: int = 50) -> pl.DataFrame:
    """Jobs newest first; a job marked processing with no live runner shows as interrupted."""
    frame = ws.sql("""
        SELECT job_id, status, provider, model, batch_api, total, done, failed,
               input_tokens + output_tokens AS tokens, cost_usd, created_at, finished_at, note
        FROM batch_jobs ORDER BY created_at DESC LIMIT ?""", [limit])
    states = []
    for job_id, status in zip(frame["job_id"].to_list(), frame["status"].to_list(), strict=True):
        if status in ("queued", "processing") and not job_is_running(ws, job_id):
            states.append("interrupted" if status == "processing" else "queued")
        else:
            states.append(status)
    return frame.with_columns(pl.Series("state", states, dtype=pl.String))


MIN_RATE_SECONDS = 5.0
"""A run shorter than this shows no rate: a retry of a few items answered in a fraction of a second would
read as thousands per minute."""


def job_state(ws: Workspace, job_id: str) -> dict:
    """Progress of one job: counts, rate and ETA of the current run (a retry's or a resume's own items over its
    own time, from its start to now or to its end), tokens and spend. No rate while a run waits to start (a
    retry just asked for) or before it has lasted MIN_RATE_SECONDS."""
    job = load_job(ws, job_id)
    if job is None:
        raise JobError(f"no job {job_id!r}. Fix: list jobs with `brightrun jobs list`.")
    running = job_is_running(ws, job_id)
    finished = job.done + job.failed
    rate = eta = None
    waiting = job.status == "queued" and not running  # the last run's figures are not this run's
    if job.run_started_at is not None and not waiting:
        end = utcnow() if running else (job.finished_at or job.updated_at)
        seconds = (end - job.run_started_at).total_seconds()
        made = finished - job.run_start_finished
        if seconds >= MIN_RATE_SECONDS:
            rate = made / seconds if made > 0 else 0.0
        if running and rate:
            eta = (job.total - finished) / rate
    state = job.status
    if job.status in ("queued", "processing") and not running:
        state = "interrupted" if job.status == "processing" else "queued"
    return {
        "job_id": job.job_id, "state": state, "running": running, "cancel_requested": cancel_requested(ws, job_id),
        "provider": job.provider, "model": job.model or "(each template's model)", "batch_api": job.batch_api,
        "total": job.total, "done": job.done, "failed": job.failed, "remaining": job.total - finished,
        "progress": finished / job.total if job.total else 1.0,
        "rate_per_minute": round(rate * 60, 1) if rate is not None else None,
        "eta_seconds": round(eta) if eta is not None else None,
        "input_tokens": job.input_tokens, "output_tokens": job.output_tokens, "cost_usd": job.cost_usd,
        "created_at": job.created_at, "updated_at": job.updated_at, "note": job.note,
    }


def job_failures(ws: Workspace, job_id: str) -> pl.DataFrame:
    """The job's failed items (latest failure of each), with the error type, message and raw answer."""
    return ws.sql("""
        SELECT f.item_id, i.persona_key, i.arc_key, i.topic_key, f.error_type, f.message, f.attempt,
               f.raw_response, f.created_at
        FROM failed_generations f JOIN batch_items i USING (item_id)
        WHERE f.job_id = ? AND i.status = 'failed'
        QUALIFY row_number() OVER (PARTITION BY f.item_id ORDER BY f.created_at DESC) = 1
        ORDER BY f.created_at DESC""", [job_id])


def commonest_failure(ws: Workspace, job_id: str) -> str | None:
    """The commonest reason among the job's failed items, as `error_type: message (N items)`, or None."""
    failures = job_failures(ws, job_id)
    if not failures.height:
        return None
    top = failures.group_by("error_type", "message").len().sort(["len", "error_type"], descending=[True, False]).row(
        0, named=True)
    return f"{top['error_type']}: {top['message']} ({top['len']} item(s))"
