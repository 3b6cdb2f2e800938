"""`brightrun jobs ...`: list, show, resume, cancel and retry the failures of generation jobs."""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer

from brightrun.cli.common import (
    BaseUrlOpt,
    FoldSystemOpt,
    JsonModeOpt,
    JsonOpt,
    ModelOpt,
    TimeoutOpt,
    WorkspaceOpt,
    console,
    open_workspace,
    out,
    print_frame,
    report_job,
    resume_with_progress,
    run_with_progress,
)

jobs_app = typer.Typer(help="Generation jobs: list, show, resume, cancel, retry failures.", no_args_is_help=True)
JobArg = Annotated[str, typer.Argument(help="The job id.")]


@jobs_app.command("list")
def list_jobs(workspace: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """Every job, newest first, with its progress and spend."""
    from brightrun.generation.views import job_table

    print_frame(job_table(open_workspace(workspace, create=False)), json_out)


@jobs_app.command("show")
def show(job_id: JobArg, workspace: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """One job: status, counts, rate, spend, and its failures."""
    from brightrun.generation.views import job_failures, job_state

    ws = open_workspace(workspace, create=False)
    state = job_state(ws, job_id)
    failures = job_failures(ws, job_id)
    if json_out:
        sys.stdout.write(orjson.dumps({"job": state, "failures": failures.to_dicts()}, default=str).decode() + "\n")
        return
    for key, value in state.items():
        out.print(f"[bold]{key}[/]: {value}")
    if failures.height:
        print_frame(failures.select("item_id", "error_type", "message", "attempt"), False)


def _change_settings(ws, job_id: str, model, base_url, timeout, json_mode, fold_system) -> None:
    from brightrun.generation import change_provider_settings

    change_provider_settings(ws, job_id, model=model, base_url=base_url, timeout=timeout, json_mode=json_mode,
                             fold_system=fold_system, operator=True)  # typed at the shell: the operator's URL


@jobs_app.command("resume")
def resume(job_id: JobArg, workspace: WorkspaceOpt = None, json_out: JsonOpt = False, model: ModelOpt = None,
           base_url: BaseUrlOpt = None, timeout: TimeoutOpt = None, json_mode: JsonModeOpt = None,
           fold_system: FoldSystemOpt = None,
           enrich_after: Annotated[bool, typer.Option("--enrich/--no-enrich", help="Enrich when done.")] = False,
           ) -> None:
    """Resume an interrupted or cancelled job: finished items are never redone, nor paid twice. Settings given
    here replace the job's (recorded in its note). Exits 0 when every conversation is made, 1 when some are not."""
    _change_settings(open_workspace(workspace), job_id, model, base_url, timeout, json_mode, fold_system)
    resume_with_progress(workspace, job_id, json_out, enrich_after=enrich_after)


@jobs_app.command("cancel")
def cancel(job_id: JobArg, workspace: WorkspaceOpt = None) -> None:
    """Stop a running job: no new calls start; calls in flight land and are kept."""
    from brightrun.generation import request_cancel

    request_cancel(open_workspace(workspace), job_id)
    console.print(f"Cancel requested for {job_id}. Resume it later with `brightrun jobs resume {job_id}`.")


@jobs_app.command("retry-failed")
def retry(job_id: JobArg, workspace: WorkspaceOpt = None,
          run: Annotated[bool, typer.Option("--run/--no-run", help="Run the job right away.")] = True,
          model: ModelOpt = None, base_url: BaseUrlOpt = None, timeout: TimeoutOpt = None,
          json_mode: JsonModeOpt = None, fold_system: FoldSystemOpt = None) -> None:
    """Put a job's failed items back in the queue (their failures stay on record) and run them. Settings given
    here replace the job's (recorded in its note). With --run, exits 1 when some conversations are still not made."""
    from brightrun.generation import load_job, resume_job, retry_failed

    ws = open_workspace(workspace)
    _change_settings(ws, job_id, model, base_url, timeout, json_mode, fold_system)
    n = retry_failed(ws, job_id)
    console.print(f"{n} failed item(s) of {job_id} queued again.")
    if n and run:
        report_job(run_with_progress(ws, load_job(ws, job_id), resume_job), False, ws)
