"""`brightrun jobs ...`: list, show, resume, cancel and retry the failures of generation jobs."""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer

jobs_app = typer.Typer(help="Generation jobs: list, show, resume, cancel, retry failures.", no_args_is_help=True)
JobArg = Annotated[str, typer.Argument(help="The job id.")]


def _cli():
    from brightrun import cli

    return cli


@jobs_app.command("list")
def list_jobs(workspace: Annotated[str | None, typer.Option("--workspace", "-w", envvar="BRIGHTRUN_WORKSPACE",
                                                            help="The workspace folder.")] = None,
              json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every job, newest first, with its progress and spend."""
    from brightrun.generation.views import job_table

    cli = _cli()
    cli._print_frame(job_table(cli._open(workspace)), json_out)


@jobs_app.command("show")
def show(job_id: JobArg,
         workspace: Annotated[str | None, typer.Option("--workspace", "-w", envvar="BRIGHTRUN_WORKSPACE",
                                                       help="The workspace folder.")] = None,
         json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """One job: status, counts, rate, spend, and its failures."""
    from brightrun.generation.views import job_failures, job_state

    cli = _cli()
    ws = cli._open(workspace)
    state = job_state(ws, job_id)
    failures = job_failures(ws, job_id)
    if json_out:
        sys.stdout.write(orjson.dumps({"job": state, "failures": failures.to_dicts()}, default=str).decode() + "\n")
        return
    for key, value in state.items():
        cli.out.print(f"[bold]{key}[/]: {value}")
    if failures.height:
        cli._print_frame(failures.select("item_id", "error_type", "message", "attempt"), False)


def _workspace_opt():
    return typer.Option("--workspace", "-w", envvar="BRIGHTRUN_WORKSPACE", help="The workspace folder.")


@jobs_app.command("resume")
def resume(job_id: JobArg, workspace: Annotated[str | None, _workspace_opt()] = None,
           json_out: Annotated[bool, typer.Option("--json", help="Print the job as JSON.")] = False) -> None:
    """Resume an interrupted or cancelled job: finished items are never redone, nor paid twice."""
    from brightrun.generation import load_job, resume_job

    cli = _cli()
    ws = cli._open(workspace)
    job = load_job(ws, job_id)
    if job is None:
        raise cli.BrightRunError(f"no job {job_id!r}. Fix: list jobs with `brightrun jobs list`.")
    cli.console.print(f"Resuming job [bold]{job_id}[/] ({job.done} of {job.total} done).")
    cli._report_job(cli._run_with_progress(ws, job, resume_job), json_out)


@jobs_app.command("cancel")
def cancel(job_id: JobArg, workspace: Annotated[str | None, _workspace_opt()] = None) -> None:
    """Stop a running job: no new calls start; calls in flight land and are kept."""
    from brightrun.generation import request_cancel

    cli = _cli()
    request_cancel(cli._open(workspace), job_id)
    cli.console.print(f"Cancel requested for {job_id}. Resume it later with `brightrun jobs resume {job_id}`.")


@jobs_app.command("retry-failed")
def retry(job_id: JobArg, workspace: Annotated[str | None, _workspace_opt()] = None,
          run: Annotated[bool, typer.Option("--run/--no-run", help="Run the job right away.")] = True) -> None:
    """Put a job's failed items back in the queue (their failures stay on record) and run them."""
    from brightrun.generation import load_job, resume_job, retry_failed

    cli = _cli()
    ws = cli._open(workspace)
    n = retry_failed(ws, job_id)
    cli.console.print(f"{n} failed item(s) of {job_id} queued again.")
    if n and run:
        cli._report_job(cli._run_with_progress(ws, load_job(ws, job_id), resume_job), False)
