"""The fine-tuning registry: jobs, their status history and the models they produced (tables
`finetuning_jobs`, `finetuning_events`, `model_versions`).

Statuses of a job, in order: `created` (exported and validated here), `uploading` (files going to the provider;
recorded before the first byte leaves, so a crash mid-way loses no job), `submitted` (the provider accepted
the job), then the provider's own: `validating_files`, `queued`, `running`, and the terminal `succeeded`,
`failed`, `cancelled`. A submission that fails before the provider has the job is `failed` with its error and
no `external_job_id`; it can be resumed. Every change appends a new row version of the job (the latest wins)
and an event row, so the history survives compaction.

Costs: `estimated_cost_usd` is the cookbook estimate (brightrun.exports.cost) for the base model from the
exported training lines, at the requested epochs (or the cookbook default); `actual_cost_usd` is the
provider's `trained_tokens` (epochs included) times the model's training price. Either is None when the
price table has no price for the model; `cost_note` says so.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import orjson
import polars as pl
from pydantic import BaseModel

from brightrun.errors import BrightRunError
from brightrun.exports.cost import CostEstimate, estimate_for_records, training_prices
from brightrun.workspace import Workspace, utcnow

STATUSES = ("created", "uploading", "submitted", "validating_files", "queued", "running", "succeeded", "failed",
            "cancelled")
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
REMOTE_ACTIVE = frozenset({"submitted", "validating_files", "queued", "running"})
"""Statuses of a job the provider has and that may still change: what a refresh asks about."""
PROVIDER_STATUSES = {s: s for s in ("validating_files", "queued", "running", "succeeded", "failed", "cancelled")}
ENVIRONMENTS = ("none", "staging", "production")
FOLDER = "finetuning"
MODELS_LOCK = "finetune-models"


class FineTuningError(BrightRunError):
    """A fine-tuning job cannot be submitted, resumed, refreshed or changed as asked."""

    def __init__(self, message: str, *, transient: bool = False, status: int | None = None,
                 problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status
        self.problems = list(problems or [])


class Job(BaseModel):
    """One row of `finetuning_jobs` (hyperparameters as a JSON object string)."""

    job_id: str
    training_file: str
    training_file_version: int
    content_hash: str | None = None
    format: str = "openai_sft"
    provider: str = "openai"
    base_model: str
    hyperparameters: str = "{}"
    suffix: str | None = None
    external_job_id: str | None = None
    training_file_id: str | None = None
    validation_file_id: str | None = None
    status: str = "created"
    provider_status: str | None = None
    error: str | None = None
    estimated_tokens: int | None = None
    estimated_cost_usd: float | None = None
    cost_note: str | None = None
    trained_tokens: int | None = None
    actual_cost_usd: float | None = None
    fine_tuned_model: str | None = None
    forced: str | None = None
    created_at: Any = None
    updated_at: Any = None

    @property
    def params(self) -> dict:
        return orjson.loads(self.hyperparameters or "{}")

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def resumable(self) -> bool:
        """Never reached the provider and not cancelled: `resume_job` can finish the submission."""
        return self.external_job_id is None and self.status in ("created", "uploading", "failed")


def map_status(provider_status: str | None) -> str:
    """Our status for a provider status; one we do not know reads as `submitted` (the raw value is kept)."""
    return PROVIDER_STATUSES.get(provider_status or "", "submitted")


def new_job_id() -> str:
    return f"ft-{utcnow():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def job_folder(ws: Workspace, job_id: str):
    """`<workspace>/finetuning/<job_id>/`: the export that was (or will be) uploaded."""
    return ws.root / FOLDER / job_id


# -- reading ----------------------------------------------------------------------------------------


def load_job(ws: Workspace, job_id: str) -> Job | None:
    frame = ws.sql("SELECT * FROM finetuning_jobs WHERE job_id = ?", [job_id])
    return Job.model_validate(frame.to_dicts()[0]) if frame.height else None


def get_job(ws: Workspace, job_id: str) -> Job:
    job = load_job(ws, job_id)
    if job is None:
        raise FineTuningError(f"no fine-tuning job {job_id!r}. Fix: list them with `brightrun finetune list`.")
    return job


def jobs_in(ws: Workspace, statuses: Iterable[str]) -> list[Job]:
    frame = ws.sql("SELECT * FROM finetuning_jobs WHERE status IN (SELECT unnest(?)) ORDER BY created_at",
                   [list(statuses)])
    return [Job.model_validate(row) for row in frame.iter_rows(named=True)]


def list_jobs(ws: Workspace) -> pl.DataFrame:
    """Every job, newest first, with every column of `finetuning_jobs`."""
    return ws.sql("SELECT * FROM finetuning_jobs ORDER BY created_at DESC, job_id DESC")


def list_models(ws: Workspace) -> pl.DataFrame:
    """Every fine-tuned model, newest first, with its job's actual cost and trained tokens."""
    return ws.sql("SELECT m.model_id, m.version_label, m.environment, m.base_model, m.training_file, "
                  "m.training_file_version, m.job_id, j.trained_tokens, j.actual_cost_usd, m.created_at, "
                  "m.updated_at FROM model_versions m LEFT JOIN finetuning_jobs j USING (job_id) "
                  "ORDER BY m.created_at DESC, m.model_id DESC")


def job_events(ws: Workspace, job_id: str) -> pl.DataFrame:
    """A job's history: every status change with its detail, oldest first."""
    return ws.sql("SELECT status, detail, created_at FROM finetuning_events WHERE job_id = ? "
                  "ORDER BY created_at, event_id", [job_id])


# -- writing ----------------------------------------------------------------------------------------


def record(ws: Workspace, job: Job, *, detail: str | None = None, **changes: Any) -> Job:
    """Append the job's new row version (and an event when the status changes or there is a detail)."""
    now = utcnow()
    new = job.model_copy(update={**changes, "updated_at": now, "created_at": job.created_at or now})
    ws.append("finetuning_jobs", [new.model_dump()])
    if detail or new.status != job.status or job.created_at is None:
        ws.append("finetuning_events", [{"event_id": uuid.uuid4().hex, "job_id": new.job_id, "status": new.status,
                                          "detail": detail or "", "created_at": now}])
    return new


def add_model_version(ws: Workspace, job: Job) -> dict | None:
    """Record the model a succeeded job produced, once, labelled v1, v2, ... per training file and base model."""
    if not job.fine_tuned_model:
        return None
    with ws.lock(MODELS_LOCK, timeout=30):
        existing = ws.sql("SELECT * FROM model_versions WHERE model_id = ?", [job.fine_tuned_model])
        if existing.height:
            return existing.to_dicts()[0]
        n = ws.scalar("SELECT count(*) FROM model_versions WHERE training_file = ? AND base_model = ?",
                      [job.training_file, job.base_model]) or 0
        now = utcnow()
        row = {"model_id": job.fine_tuned_model, "job_id": job.job_id, "base_model": job.base_model,
               "training_file": job.training_file, "training_file_version": job.training_file_version,
               "version_label": f"v{n + 1}", "environment": "none", "created_at": now, "updated_at": now}
        ws.append("model_versions", [row])
        return row


def deploy_model(ws: Workspace, model_id: str, environment: str) -> dict:
    """Put a model in an environment (staging, production) or take it out (none). One model per environment
    and training file: the model that held it before goes back to `none`."""
    if environment not in ENVIRONMENTS:
        raise FineTuningError(f"unknown environment {environment!r}. Fix: use one of {', '.join(ENVIRONMENTS)}.")
    with ws.lock(MODELS_LOCK, timeout=30):
        found = ws.sql("SELECT * FROM model_versions WHERE model_id = ?", [model_id])
        if not found.height:
            raise FineTuningError(f"no fine-tuned model {model_id!r}. Fix: list them with `brightrun finetune list` "
                                  "(a model appears once its job succeeded and was refreshed).")
        model = found.to_dicts()[0]
        now = utcnow()
        rows = [{**model, "environment": environment, "updated_at": now}]
        if environment != "none":
            holders = ws.sql("SELECT * FROM model_versions WHERE training_file = ? AND environment = ? "
                             "AND model_id <> ?", [model["training_file"], environment, model_id])
            rows += [{**r, "environment": "none", "updated_at": now} for r in holders.to_dicts()]
        ws.append("model_versions", rows)
        return rows[0]


# -- costs ------------------------------------------------------------------------------------------


def estimate_lines(ws: Workspace, messages: Iterable[list[dict]], base_model: str,
                   epochs: int | None = None) -> CostEstimate:
    """The estimate for training examples given as their message lists (what is uploaded)."""
    records = [{"messages": m, "split": "train"} for m in messages]
    return estimate_for_records(records, base_model, epochs=epochs, prices=training_prices(ws.root))


def estimate_job(ws: Workspace, training_file: str, base_model: str, *, version: int | None = None,
                 epochs: int | None = None) -> CostEstimate:
    """What a job would cost, before submitting it: the training split of the version, at `epochs` (None: the
    cookbook default for its size)."""
    from brightrun.training_files.export import records_of

    return estimate_for_records(records_of(ws, training_file, version), base_model, epochs=epochs,
                                prices=training_prices(ws.root))


def cost_note(estimate: CostEstimate) -> str | None:
    if estimate.cost_usd is None:
        return f"no training price for {estimate.model!r}: add it to training_prices.yaml to get a cost"
    return None


def actual_cost(ws: Workspace, base_model: str, trained_tokens: int | None) -> float | None:
    """trained_tokens x the model's price per training token (None without a price or tokens)."""
    price = training_prices(ws.root).get(base_model)
    if trained_tokens is None or price is None or price.usd_per_million_training_tokens is None:
        return None
    return round(trained_tokens * price.usd_per_million_training_tokens / 1_000_000, 6)


def base_models(ws: Workspace, provider: str = "openai") -> list[str]:
    """The models of `provider` in the training price table, in its order."""
    return [name for name, p in training_prices(ws.root).models.items() if p.provider == provider]
