"""OpenAI fine-tuning: submit a training-file version, follow its job, cancel it, resume a broken submission.

Submitting (`submit_job`): the version is exported as `openai_sft` into `<workspace>/finetuning/<job_id>/`
(gated by the data contracts like any export, unless forced with a reason) and validated by OpenAI's rules for
the chosen base model; any error refuses the submission and nothing is recorded. Then the job row is written
(`created`), `uploading` is recorded before the first upload, each uploaded file id is recorded as it arrives,
and the job is created with the job id in its metadata (`brightrun_job_id`). A crash or error at any point
leaves a row that `resume_job` finishes: files already uploaded are not uploaded again, and before creating
the job it asks OpenAI for a job with that metadata, so a job whose creation answer was lost is found, never
created twice. The same lookup guards the retries of the creation itself (the SDK's automatic retries are off
for that one call).

Following (`refresh_jobs`): every job the provider has and that has not ended is retrieved; changes are
recorded (status, provider status, error, trained tokens and the actual cost, the fine-tuned model), and a
succeeded job's model is added to `model_versions` once.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from pathlib import Path

import filelock
import openai
import orjson

from brightrun.exports.cost import token_limit, training_prices
from brightrun.exports.openai_ft import SFT_MODEL, validate_openai_sft
from brightrun.finetuning.client import openai_client, translate
from brightrun.finetuning.registry import (
    FOLDER,
    REMOTE_ACTIVE,
    FineTuningError,
    Job,
    actual_cost,
    add_model_version,
    base_models,
    cost_note,
    estimate_lines,
    get_job,
    job_folder,
    jobs_in,
    map_status,
    new_job_id,
    record,
)
from brightrun.training_files import build_version, get_version
from brightrun.training_files.chunks import records_match
from brightrun.training_files.export import export_version
from brightrun.workspace import Workspace

FORMAT = "openai_sft"
PROVIDER = "openai"
METADATA_KEY = "brightrun_job_id"
LIMITS = {"n_epochs": (int, 1, 50), "batch_size": (int, 1, 256), "learning_rate_multiplier": (float, 0.0, 10.0)}
SUFFIX_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


# -- checks -----------------------------------------------------------------------------------------


def check_hyperparameters(hyperparameters: Mapping[str, object]) -> dict:
    """The hyperparameters to send: n_epochs, batch_size, learning_rate_multiplier; "auto" or None are left
    to OpenAI."""
    chosen: dict = {}
    for name, value in hyperparameters.items():
        if name not in LIMITS:
            raise FineTuningError(f"unknown hyperparameter {name!r}. Fix: use {', '.join(LIMITS)}.")
        if value is None or value == "auto":
            continue
        kind, low, high = LIMITS[name]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if kind is int:
            ok = number and value == int(value) and low <= value <= high
        else:
            ok = number and low < value <= high
        if not ok:
            raise FineTuningError(f"{name} = {value!r} is out of range. Fix: give "
                                  + (f"a whole number from {low} to {high}" if kind is int else
                                     f"a number above {low} and at most {high}") + ", or leave it to OpenAI (auto).")
        chosen[name] = kind(value)
    return chosen


def check_base_model(ws: Workspace, base_model: str) -> str:
    model = (base_model or "").strip()
    choices = ", ".join(base_models(ws))
    if not model:
        raise FineTuningError(f"no base model. Fix: choose one, e.g. {choices}.")
    price = training_prices(ws.root).get(model)
    if price is not None and price.provider != PROVIDER:
        raise FineTuningError(f"{model} is a {price.provider} model; OpenAI fine-tunes OpenAI models. Fix: choose "
                              f"one of {choices}.")
    return model


def check_suffix(suffix: str | None) -> str | None:
    if suffix is None or not suffix.strip():
        return None
    suffix = suffix.strip()
    if len(suffix) > 64 or not set(suffix) <= SUFFIX_CHARS:
        raise FineTuningError(f"suffix {suffix!r} is not allowed. Fix: use at most 64 letters, digits, dashes, "
                              "underscores or dots.")
    return suffix


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


# -- submitting -------------------------------------------------------------------------------------


def submit_job(ws: Workspace, training_file: str, *, base_model: str, version: int | None = None,
               hyperparameters: Mapping[str, object] | None = None, suffix: str | None = None,
               client: openai.OpenAI | None = None, force_reason: str | None = None,
               base_url: str | None = None) -> Job:
    """Export, validate, upload and create an OpenAI fine-tuning job for a training-file version (the latest
    when `version` is None). Returns the job as recorded after creation."""
    hyper = check_hyperparameters(hyperparameters or {})
    base_model = check_base_model(ws, base_model)
    suffix = check_suffix(suffix)
    client = client or openai_client(base_url)
    v = get_version(ws, training_file, version)
    if not records_match(ws, v):
        raise FineTuningError(f"not submitted: the enriched records of {training_file!r} v{v.version} changed since "
                              "the version was made (re-enriched or deleted conversations), so the upload would not "
                              "be that version. Fix: make a new version (add, remove or re-split) and submit it.")
    content_hash = v.content_hash or build_version(ws, training_file, v.version).content_hash
    job_id = new_job_id()
    folder = job_folder(ws, job_id)
    try:
        exported = export_version(ws, training_file, FORMAT, folder, version=v.version, force_reason=force_reason)
        validation = exported.validation
        if token_limit(base_model) != token_limit(SFT_MODEL):
            validation = validate_openai_sft(folder, model=base_model)
        if not validation.ok:
            problems = [str(p) for p in validation.errors]
            listing = "\n".join(f"  {p}" for p in problems[:20])
            more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
            raise FineTuningError(
                f"not submitted: the {FORMAT} export of {training_file!r} v{v.version} breaks OpenAI's rules for "
                f"{base_model} ({len(problems)} problem(s)):\n{listing}{more}\nFix: correct the training file "
                f"(or its split: OpenAI needs at least 10 training examples) and submit again.", problems=problems)
        train = _lines(folder / "data" / "train.jsonl")
        valid = _lines(folder / "data" / "validation.jsonl")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    estimate = estimate_lines(ws, [line["messages"] for line in train], base_model, epochs=hyper.get("n_epochs"))
    job = Job(job_id=job_id, training_file=training_file, training_file_version=v.version, content_hash=content_hash,
              format=FORMAT, provider=PROVIDER, base_model=base_model,
              hyperparameters=orjson.dumps(hyper, option=orjson.OPT_SORT_KEYS).decode(), suffix=suffix,
              estimated_tokens=estimate.charged_tokens, estimated_cost_usd=estimate.cost_usd,
              cost_note=cost_note(estimate), forced=force_reason)
    warnings = f"; {len(validation.warnings)} warning(s)" if validation.warnings else ""
    job = record(ws, job, detail=f"exported {len(train)} training and {len(valid)} validation example(s) as "
                                 f"{FORMAT} to {FOLDER}/{job_id}{warnings}")
    return _submit(ws, job, client)



def resume_job(ws: Workspace, job_id: str, *, client: openai.OpenAI | None = None,
               base_url: str | None = None) -> Job:
    """Finish a submission that broke before OpenAI had the job (a crash, a network or key error)."""
    job = get_job(ws, job_id)
    if job.external_job_id:
        raise FineTuningError(f"job {job_id} is already at OpenAI ({job.external_job_id}, {job.status}). "
                              "Fix: follow it with `brightrun finetune list --refresh`.")
    if not job.resumable:
        raise FineTuningError(f"job {job_id} is {job.status} and cannot be resumed. Fix: submit the training file "
                              "again (a new job).")
    return _submit(ws, job, client or openai_client(base_url))


def _lock(ws: Workspace, job_id: str, timeout: float = 5.0):
    return ws.lock(f"finetune-{job_id}", timeout=timeout)


def _submit(ws: Workspace, job: Job, client: openai.OpenAI) -> Job:
    try:
        with _lock(ws, job.job_id):
            return _upload_and_create(ws, job, client)
    except filelock.Timeout:
        raise FineTuningError(f"job {job.job_id} is being submitted by another process. Fix: wait for it, then "
                              "look with `brightrun finetune list`.") from None


def _upload_and_create(ws: Workspace, job: Job, client: openai.OpenAI) -> Job:
    folder = job_folder(ws, job.job_id)
    train, valid = folder / "data" / "train.jsonl", folder / "data" / "validation.jsonl"
    if not train.exists():
        raise FineTuningError(f"the export of job {job.job_id} ({train}) is gone, so it cannot be uploaded. "
                              "Fix: submit the training file again (a new job).")
    may_exist = job.status != "created"  # an earlier attempt may have created the job and lost the answer
    job = record(ws, job, status="uploading", error=None, detail="uploading the export to OpenAI")
    doing = "uploading the training file"
    try:
        if job.training_file_id is None:
            file_id = _upload(client, train, f"{job.job_id}-train.jsonl")
            job = record(ws, job, training_file_id=file_id, detail=f"uploaded data/train.jsonl as {file_id}")
        doing = "uploading the validation file"
        if job.validation_file_id is None and _lines(valid):
            file_id = _upload(client, valid, f"{job.job_id}-validation.jsonl")
            job = record(ws, job, validation_file_id=file_id, detail=f"uploaded data/validation.jsonl as {file_id}")
        doing = f"creating the fine-tuning job on {job.base_model}"
        remote = _create(client, job, may_exist)
    except openai.OpenAIError as exc:
        error = translate(exc, doing, client=client, then=f"resume with `brightrun finetune resume {job.job_id}`")
        record(ws, job, status="failed", error=str(error), detail=f"failed while {doing}")
        raise error from None
    job = record(ws, job, status="submitted", external_job_id=remote.id, provider_status=remote.status,
                 detail=f"OpenAI job {remote.id} created")
    return apply_remote(ws, job, remote)


def _upload(client: openai.OpenAI, path: Path, name: str) -> str:
    return client.files.create(file=(name, path.read_bytes(), "application/jsonl"), purpose="fine-tune").id


def find_remote(client: openai.OpenAI, job_id: str):
    """The OpenAI job created for our `job_id` (by its metadata), or None."""
    for remote in client.fine_tuning.jobs.list(metadata={METADATA_KEY: job_id}, limit=100).data:
        if (remote.metadata or {}).get(METADATA_KEY) == job_id:
            return remote
    return None


def _delay(exc: Exception, attempt: int) -> float:
    response = getattr(exc, "response", None)
    headers = response.headers if response is not None else {}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return min(60.0, float(headers.get(name)) * scale)
        except (TypeError, ValueError):
            continue
    return min(8.0, 0.5 * 2 ** attempt)


def _create(client: openai.OpenAI, job: Job, may_exist: bool):
    params: dict = {"model": job.base_model, "training_file": job.training_file_id,
                    "method": {"type": "supervised", "supervised": {"hyperparameters": job.params}},
                    "metadata": {METADATA_KEY: job.job_id, "training_file": job.training_file[:200],
                                 "training_file_version": str(job.training_file_version)}}
    if job.validation_file_id:
        params["validation_file"] = job.validation_file_id
    if job.suffix:
        params["suffix"] = job.suffix
    once = client.with_options(max_retries=0)
    attempts = client.max_retries + 1
    for attempt in range(attempts):
        if may_exist or attempt:
            found = find_remote(client, job.job_id)
            if found is not None:
                return found
        try:
            return once.fine_tuning.jobs.create(**params)
        except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as exc:
            if attempt == attempts - 1:
                raise
            time.sleep(_delay(exc, attempt))
    raise AssertionError("unreachable")  # pragma: no cover


# -- following --------------------------------------------------------------------------------------


def apply_remote(ws: Workspace, job: Job, remote) -> Job:
    """Record what the provider says of a job (only when something changed); add the model of a success."""
    changes: dict = {}
    status = map_status(remote.status)
    if status != job.status:
        changes["status"] = status
    if remote.status != job.provider_status:
        changes["provider_status"] = remote.status
    if remote.error is not None and remote.error.message:
        message = f"OpenAI: {remote.error.code}: {remote.error.message}"
        if message != job.error:
            changes["error"] = message
    if remote.trained_tokens is not None and remote.trained_tokens != job.trained_tokens:
        changes["trained_tokens"] = remote.trained_tokens
        changes["actual_cost_usd"] = actual_cost(ws, job.base_model, remote.trained_tokens)
    if remote.fine_tuned_model and remote.fine_tuned_model != job.fine_tuned_model:
        changes["fine_tuned_model"] = remote.fine_tuned_model
    if changes:
        detail = f"OpenAI status {remote.status}"
        if "trained_tokens" in changes:
            detail += f", {remote.trained_tokens:,} trained tokens"
        if "fine_tuned_model" in changes:
            detail += f", model {remote.fine_tuned_model}"
        if "error" in changes:
            detail += f": {changes['error']}"
        job = record(ws, job, detail=detail, **changes)
    if job.status == "succeeded" and job.fine_tuned_model:
        add_model_version(ws, job)
    return job


def refresh_jobs(ws: Workspace, client: openai.OpenAI | None = None, *, base_url: str | None = None) -> list[Job]:
    """Ask OpenAI about every job it has that has not ended; returns the jobs whose record changed. A job
    another process is submitting right now is left for the next refresh."""
    active = [j for j in jobs_in(ws, REMOTE_ACTIVE) if j.external_job_id]
    if not active:
        return []
    client = client or openai_client(base_url)
    changed = []
    for job in active:
        try:
            with _lock(ws, job.job_id, timeout=0.5):
                remote = client.fine_tuning.jobs.retrieve(job.external_job_id)
                new = apply_remote(ws, job, remote)
        except filelock.Timeout:
            continue
        except openai.OpenAIError as exc:
            raise translate(exc, f"checking job {job.job_id} ({job.external_job_id})", client=client) from None
        if new is not job:
            changed.append(new)
    return changed


def cancel_job(ws: Workspace, job_id: str, *, client: openai.OpenAI | None = None,
               base_url: str | None = None) -> Job:
    """Cancel a job: at OpenAI when it has it, else locally (a submission that never reached OpenAI)."""
    job = get_job(ws, job_id)
    if job.terminal and (job.external_job_id or job.status == "cancelled"):
        raise FineTuningError(f"job {job_id} has already ended ({job.status}). Fix: nothing to cancel.")
    if not job.external_job_id:
        with _lock(ws, job_id):
            return record(ws, get_job(ws, job_id), status="cancelled", detail="cancelled before it reached OpenAI")
    client = client or openai_client(base_url)
    try:
        remote = client.fine_tuning.jobs.cancel(job.external_job_id)
    except openai.OpenAIError as exc:
        raise translate(exc, f"cancelling job {job_id} ({job.external_job_id})", client=client) from None
    return apply_remote(ws, job, remote)
