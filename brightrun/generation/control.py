"""Running, resuming, cancelling and retrying jobs, in this process or a background one."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import orjson

from brightrun import aio
from brightrun.errors import JobError
from brightrun.generation.jobs import clear_cancel, load_job
from brightrun.generation.progress import ProgressFn, RunSettings
from brightrun.generation.runner import JobRunner
from brightrun.models import BatchItem, BatchJob
from brightrun.providers import Provider, get_provider
from brightrun.workspace import Workspace, utcnow


def provider_for_job(job: BatchJob, **overrides) -> Provider:
    """The provider a job was created with, from its stored settings. Keys are never stored: the server's key
    goes only where `brightrun.providers.keys` allows, else an `api_key` override (typed with the base URL)."""
    options = {**orjson.loads(job.provider_options or "{}"), **overrides}
    if job.provider != "scripted":
        options.setdefault("concurrency", job.concurrency)
    return get_provider(job.provider, **options)


YOUNG_GC_THRESHOLD = 20_000
"""Allocations between two young-generation collections while a job's calls run (Python's default: 700)."""


@contextmanager
def _heap_frozen():
    """While the calls run, the garbage collector leaves alone what was alive before them (gc.freeze): the
    modules, the scaffolding, the pending items. Otherwise each full collection walks that whole heap again
    for the run's short-lived objects (measured in bench_generation). Undone at the end; left alone when
    something else froze objects already."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    thresholds = gc.get_threshold()
    # and collects the young objects less often: a call makes a few hundred short-lived objects (the SDK's
    # request and response, the rows), so the default 700 ran a collection every couple of calls
    gc.set_threshold(max(thresholds[0], YOUNG_GC_THRESHOLD), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


async def _run(runner: JobRunner, batch_api: bool) -> BatchJob:
    try:
        pending = runner.prepare()
        runner.start()
        with _heap_frozen():
            if batch_api:
                from brightrun.generation.batches import run_batches

                await run_batches(runner, pending)
            else:
                await runner.run_messages(pending)
        return await runner.finish()
    finally:
        await runner.provider.aclose()


def run_job(ws: Workspace, job_id: str, provider: Provider | None = None, *, settings: RunSettings | None = None,
            progress: ProgressFn | None = None, api_key: str | None = None, **legacy) -> BatchJob:
    """Run (or resume) a job to the end. Only one process runs a given job at a time. `api_key`: a key typed
    with the job's base URL (used for this run only, never stored)."""
    job = load_job(ws, job_id)
    if job is None:
        raise JobError(f"no job {job_id!r} in {ws.root}. Fix: list jobs with `brightrun jobs list`.")
    if job.status in ("completed", "cancelled") and job.done + job.failed >= job.total:
        return job
    settings = settings or RunSettings(concurrency=job.concurrency, max_attempts=job.max_attempts)
    for name, value in legacy.items():
        setattr(settings, name, value)
    if api_key and provider is None:
        provider = provider_for_job(job, api_key=api_key)
    if job.batch_api and not (provider or provider_for_job(job)).supports_batches:
        raise JobError(f"provider {job.provider!r} has no batch API. Fix: run the job without --batch-api.")
    lock = ws.lock(f"job-{job_id}", timeout=0.5)
    try:
        lock.acquire()
    except TimeoutError as exc:
        who = getattr(exc, "who", "another process")
        raise JobError(f"job {job_id!r} is being run by {who}. Fix: wait for it to finish, "
                       f"or cancel it with `brightrun jobs cancel {job_id}`.") from None
    try:
        ws.recover()  # what a killed writer left, before this run adds its own parts
        provider = provider or provider_for_job(job)
        runner = JobRunner(ws, job, provider, settings, progress)
        return aio.run(_run(runner, job.batch_api))  # in a notebook cell's loop too
    finally:
        lock.release()


def job_is_running(ws: Workspace, job_id: str) -> bool:
    """True when a live process holds the job's lock."""
    return ws.lock_held(f"job-{job_id}")


JOB_KEY_VARIABLE = "BRIGHTRUN_JOB_API_KEY"
"""How a key typed in the app reaches the background process that runs the job (never stored)."""

PROVIDER_SETTINGS = ("base_url", "timeout", "json_mode", "fold_system")
"""The provider settings a job keeps (never a key), and that a resume or a retry may change."""


def change_provider_settings(ws: Workspace, job_id: str, *, model: str | None = None, operator: bool = False,
                             **settings) -> BatchJob:
    """Change a stopped job's model or provider settings (base URL, timeout, JSON mode, folding the system
    prompt) before it runs again; the change is written to the job's note. None leaves a setting as it is.
    `operator`: the settings come from the person running BrightRun (the command line), so the server's key may
    go to a new base URL; from anywhere else it may not (`brightrun.providers.keys`)."""
    job = load_job(ws, job_id)
    if job is None:
        raise JobError(f"no job {job_id!r}. Fix: list jobs with `brightrun jobs list`.")
    unknown = set(settings) - set(PROVIDER_SETTINGS)
    if unknown:
        raise JobError(f"unknown provider setting(s) {', '.join(sorted(unknown))}. Fix: change only "
                       f"{', '.join(PROVIDER_SETTINGS)} or the model.")
    changes = {k: v for k, v in settings.items() if v is not None}
    if job.provider == "scripted" and (changes or model):
        raise JobError(f"job {job_id!r} uses the scripted provider, which has no model or server settings. "
                       f"Fix: create a new job with --provider anthropic or openai-compatible.")
    if not changes and not model:
        return job
    if job_is_running(ws, job_id):
        raise JobError(f"job {job_id!r} is running. Fix: cancel it (`brightrun jobs cancel {job_id}`), or wait "
                       f"for it to finish, before changing its settings.")
    options = {**orjson.loads(job.provider_options or "{}"), **changes}
    if "base_url" in changes:
        options["trusted_base_url"] = operator
    if "json_mode" in changes:
        from brightrun.providers.openai_compat import check_json_mode

        check_json_mode(changes["json_mode"])
    said = ", ".join(f"{k}={v}" for k, v in [*([("model", model)] if model else []), *changes.items()])
    update = {"provider_options": orjson.dumps(options).decode(), "updated_at": utcnow(),
              "note": "; ".join(n for n in (job.note, f"settings changed at {utcnow():%Y-%m-%d %H:%M}: {said}") if n)}
    if model:
        update["model"] = model
    job = job.model_copy(update=update)
    ws.append_models("batch_jobs", [job])
    return job


def resume_job(ws: Workspace, job_id: str, **kwargs) -> BatchJob:
    """Resume an interrupted or cancelled job: what is finished is never done again."""
    clear_cancel(ws, job_id)
    job = load_job(ws, job_id)
    if job is not None and job.status == "cancelled":
        ws.append_models("batch_jobs", [job.model_copy(update={"status": "processing", "finished_at": None,
                                                                "updated_at": utcnow()})])
    return run_job(ws, job_id, **kwargs)


def retry_failed(ws: Workspace, job_id: str) -> int:
    """Put the job's failed items back to pending (their failures stay on record); returns how many."""
    job = load_job(ws, job_id)
    if job is None:
        raise JobError(f"no job {job_id!r}. Fix: list jobs with `brightrun jobs list`.")
    if job_is_running(ws, job_id):
        raise JobError(f"job {job_id!r} is running. Fix: wait for it to finish, then retry its failures.")
    failed = ws.sql("SELECT * FROM batch_items WHERE job_id = ? AND status = 'failed'", [job_id])
    now = utcnow()
    items = [BatchItem.model_validate(r).model_copy(update={"status": "pending", "updated_at": now})
             for r in failed.iter_rows(named=True)]
    ws.append_models("batch_items", items)
    if items:
        ws.append_models("batch_jobs", [job.model_copy(update={
            "status": "queued", "failed": job.failed - len(items), "finished_at": None, "updated_at": now})])
    return len(items)


def launch_background(ws: Workspace, job_id: str, *, enrich: bool = False, api_key: str | None = None) -> int:
    """Run `brightrun jobs resume JOB` in a detached process (it outlives the app's page); returns its pid.
    Its output goes to `logs/<job>.log` in the workspace. With `enrich`, the process then enriches what is new
    (`--enrich`), with its progress where the app shows it. `api_key`, a key typed with the job's base URL,
    reaches that process in its environment only ($BRIGHTRUN_JOB_API_KEY), never a job row or a file."""
    log_dir = ws.root / "logs"
    log_dir.mkdir(exist_ok=True)
    log = open(log_dir / f"{job_id}.log", "ab")  # noqa: SIM115 - handed to the child process
    env = {k: v for k, v in os.environ.items() if k not in ("BRIGHTRUN_WORKSPACE", JOB_KEY_VARIABLE)}
    if api_key:
        env[JOB_KEY_VARIABLE] = api_key
    process = subprocess.Popen(
        [sys.executable, "-m", "brightrun", "jobs", "resume", job_id, "--workspace", str(ws.root),
         *(["--enrich"] if enrich else [])],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        cwd=str(Path(__file__).resolve().parents[2]), start_new_session=True,
    )
    log.close()
    return process.pid
