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
ModelOpt = Annotated[str | None, typer.Option(
    help="Model. Claude: default each template's model setting. OpenAI-compatible: required, the server's model "
         "id (`brightrun doctor --provider openai-compatible` lists them).")]
BaseUrlOpt = Annotated[str | None, typer.Option(help="The provider's base URL (local or proxy servers).")]
TimeoutOpt = Annotated[float | None, typer.Option(help="Seconds before a call times out (default 120).", min=1)]
JsonModeOpt = Annotated[str | None, typer.Option(
    help="OpenAI-compatible servers: auto (json_schema, falling back to json_object if the server refuses it), "
         "json_schema, json_object (llama.cpp, Ollama) or none.")]
FoldSystemOpt = Annotated[bool | None, typer.Option(
    "--fold-system/--no-fold-system",
    help="OpenAI-compatible servers: put the system prompt in the first user message, for chat templates "
         "without a system role (e.g. Gemma).")]
WorkersOpt = Annotated[int | None, typer.Option(
    "--workers", help="Processes that compute, each on a chunk of conversations (default: the core count); the "
                      "results are the same for any number.")]
EngineOpt = Annotated[str, typer.Option(
    "--engine", help="local (this machine, --workers processes) or ray (Ray Data over the published Delta tables; "
                     "needs `pip install -e '.[ray]'`; RAY_ADDRESS names a cluster: docs/scale.md).")]


def check_engine(engine: str) -> str:
    if engine not in ("local", "ray"):
        raise BrightRunError(f"--engine {engine!r} is not an engine. Fix: give local or ray.")
    return engine


def open_workspace(workspace: Path | None, *, create: bool = True):
    """The workspace at the path; read-only commands (status, sql, show, list) pass create=False so a
    mistyped path is an error (exit 2) and nothing is made there."""
    from brightrun.workspace import Workspace

    return Workspace.open(workspace, create=create)


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


def run_with_progress(ws, job, run, **options):
    """Run a job with a progress bar; a job that stopped part-way is returned as written, its reason printed."""
    from brightrun.errors import JobStopped

    with progress_bar() as progress:
        task = progress.add_task("generating", total=job.total, completed=job.done + job.failed, extra="")
        try:
            job = run(ws, job.job_id, progress=job_progress(progress, task), **options)
        except JobStopped as exc:
            console.print(f"[red]error:[/] {exc}")
            return exc.job
    wait_for_tidying(ws)
    return job


def wait_for_tidying(ws) -> None:
    """Wait for the compaction and Delta publication a writer left running in the background (its rows are
    committed already); a failure there is a warning, since nothing asked for is lost."""
    with console.status("Merging the new parts and publishing the Delta copies..."):
        try:
            ws.wait_for_background()
        except BrightRunError as exc:
            console.print(f"[yellow]warning:[/] {exc}")


def report_job(job, json_out: bool, ws=None) -> None:
    """Print the job's outcome; exit 1 when not every item was made (the summary names how many failed and the
    commonest reason), so scripts can trust the exit code."""
    if json_out:
        sys.stdout.write(job.model_dump_json() + "\n")
    else:
        console.print(f"Job {job.job_id} {job.status}: {job.done} done, {job.failed} failed of {job.total}; "
                      f"{job.input_tokens + job.output_tokens:,} tokens, ${job.cost_usd:,.4f}.")
    if job.done >= job.total:
        return
    missing = job.total - job.done
    reason = None
    if ws is not None:
        from brightrun.generation.views import commonest_failure

        reason = commonest_failure(ws, job.job_id)
    console.print(f"[red]{missing} of {job.total} conversation(s) not made[/] ({job.failed} failed"
                  + (f"; commonest reason: {reason}" if reason else "") + "). See `brightrun jobs show "
                  f"{job.job_id}`; retry with `brightrun jobs retry-failed {job.job_id}` or resume with "
                  f"`brightrun jobs resume {job.job_id}`.")
    raise typer.Exit(1)


def resume_with_progress(workspace: Path | None, job_id: str, json_out: bool, *, enrich_after: bool = False) -> None:
    """Resume a job (finished items are never redone, nor paid twice), with a progress bar; then enrich what it
    made when asked (before the exit code reports any item not made)."""
    from brightrun.generation import load_job, resume_job

    ws = open_workspace(workspace)
    job = load_job(ws, job_id)
    if job is None:
        raise BrightRunError(f"no job {job_id!r} to resume. Fix: list jobs with `brightrun jobs list`.")
    console.print(f"Resuming job [bold]{job_id}[/] ({job.done} of {job.total} done).")
    # A key typed in the app with the job's base URL arrives in this process's environment only (never stored).
    from brightrun.generation.control import JOB_KEY_VARIABLE

    typed_key = os.environ.pop(JOB_KEY_VARIABLE, None)
    job = run_with_progress(ws, job, resume_job, api_key=typed_key)
    if enrich_after:
        from brightrun.enrichment import run_tracked

        result = run_tracked(ws)
        console.print(f"Enriched {result.enriched} conversation(s) into {result.pairs} training pair(s); "
                      f"{result.failed} failed.")
    report_job(job, json_out, ws)
