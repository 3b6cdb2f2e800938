"""What the `brightrun` commands share: options, opening the workspace, output, progress."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from brightrun.errors import BrightRunError

console = Console(stderr=True)
out = Console()

WorkspaceOpt = Annotated[Path | None, typer.Option(
    "--workspace", "-w", help="The workspace folder (default: $BRIGHTRUN_WORKSPACE, else ./data).",
    envvar="BRIGHTRUN_WORKSPACE", show_envvar=True)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def open_workspace(workspace: Path | None):
    from brightrun.workspace import Workspace

    return Workspace.open(workspace)


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[extra]}"), TimeRemainingColumn(), console=console,
                    disable=not console.is_terminal and not force_progress())


def force_progress() -> bool:
    return os.environ.get("BRIGHTRUN_PROGRESS") == "1"


def job_progress(progress: Progress, task):
    def update(p) -> None:
        progress.update(task, completed=p.finished, total=p.total,
                        extra=f"{p.done} done, {p.failed} failed, {p.input_tokens + p.output_tokens:,} tokens, "
                              f"${p.cost_usd:,.4f}")
    return update


def print_frame(frame, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(frame.to_dicts(), default=str).decode() + "\n")
        return
    table = Table(show_lines=False)
    for column in frame.columns:
        table.add_column(column, overflow="fold")
    for row in frame.iter_rows():
        table.add_row(*["" if v is None else str(v) for v in row])
    out.print(table)
    out.print(f"{frame.height} row(s)")


def run_with_progress(ws, job, run):
    with progress_bar() as progress:
        task = progress.add_task("generating", total=job.total, completed=job.done + job.failed, extra="")
        return run(ws, job.job_id, progress=job_progress(progress, task))


def report_job(job, json_out: bool) -> None:
    if json_out:
        sys.stdout.write(job.model_dump_json() + "\n")
    else:
        console.print(f"Job {job.job_id} {job.status}: {job.done} done, {job.failed} failed of {job.total}; "
                      f"{job.input_tokens + job.output_tokens:,} tokens, ${job.cost_usd:,.4f}.")


def resume_with_progress(workspace: Path | None, job_id: str, json_out: bool) -> None:
    """Resume a job (finished items are never redone, nor paid twice), with a progress bar."""
    from brightrun.generation import load_job, resume_job

    ws = open_workspace(workspace)
    job = load_job(ws, job_id)
    if job is None:
        raise BrightRunError(f"no job {job_id!r} to resume. Fix: list jobs with `brightrun jobs list`.")
    console.print(f"Resuming job [bold]{job_id}[/] ({job.done} of {job.total} done).")
    report_job(run_with_progress(ws, job, resume_job), json_out)
