"""The `brightrun` command: the app's operations for scripts and scale."""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer
from filelock import Timeout
from rich.markup import escape

from brightrun.cli.applogs import import_log_command
from brightrun.cli.common import (
    BaseUrlOpt,
    EngineOpt,
    FoldSystemOpt,
    JsonModeOpt,
    JsonOpt,
    ModelOpt,
    TimeoutOpt,
    WorkersOpt,
    WorkspaceOpt,
    check_engine,
    console,
    job_progress,
    open_workspace,
    out,
    print_frame,
    progress_bar,
    report_job,
    run_with_progress,
)
from brightrun.cli.doctor import doctor_command
from brightrun.cli.experiments import experiments_app
from brightrun.cli.feedback import datasets_app, feedback_app
from brightrun.cli.finetune import finetune_app
from brightrun.cli.jobs import jobs_app
from brightrun.cli.prompts import prompts_app
from brightrun.cli.quality import quality_app, validate
from brightrun.cli.training import training_app
from brightrun.errors import BrightRunError, os_error

app = typer.Typer(help="BrightRun: generate, enrich, explore and assemble fine-tuning data.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(jobs_app, name="jobs")
app.add_typer(quality_app, name="quality")
app.add_typer(feedback_app, name="feedback")
app.add_typer(datasets_app, name="datasets")
app.add_typer(prompts_app, name="prompts")
app.add_typer(experiments_app, name="experiments")
app.add_typer(training_app, name="training-file")
app.add_typer(finetune_app, name="finetune")

@app.command()
def demo(
    workspace: WorkspaceOpt = None,
    conversations: Annotated[int, typer.Option(help="Exactly how many conversations to make.", min=1)] = 600,
    seed: Annotated[int, typer.Option(help="The seed of the scripted data.")] = 42,
    reports: Annotated[bool, typer.Option("--reports/--no-reports",
                                          help="Also compute the quality report and run the data contracts.")] = True,
) -> None:
    """Build a demo workspace: scripted conversations over the whole grid, enriched, with its quality report
    and data-contract results."""
    from brightrun.demo import build_demo

    ws = open_workspace(workspace)
    with progress_bar() as progress:
        task = progress.add_task("generating", total=conversations, extra="")
        etask = progress.add_task("enriching", total=None, extra="", visible=False)

        def on_enrich(done: int, total: int) -> None:
            progress.update(etask, completed=done, total=total, visible=True)

        result = build_demo(ws, conversations, seed=seed, progress=job_progress(progress, task),
                            enrich_progress=on_enrich)
    made = sum(j.done for j in result.jobs)
    if reports:
        from brightrun.quality.report import build_quality_report, save_quality_report
        from brightrun.validation import run_contracts, save_report

        with console.status("computing the quality report") as status:
            save_quality_report(ws, build_quality_report(ws, progress=lambda msg: status.update(msg)))
            status.update("running the data contracts")
            contracts = run_contracts(ws, progress=lambda msg: status.update(msg))
            save_report(ws, contracts)
        console.print("Quality report saved; data contracts "
                      + ("[green]pass[/]." if contracts.success else "[red]fail[/]: see `brightrun validate`."))
    console.print(f"[green]Demo ready[/] in {ws.root}: {made} conversations in {len(result.jobs)} jobs, "
                  f"{result.enrichment.pairs} training pairs. Start the app with `make run`.")


def _provider_options(provider: str, failure_rate: float, seed: int, **settings) -> dict:
    """The job's stored provider settings: the scripted provider's rates, or the server settings given."""
    if provider == "scripted":
        return {"failure_rate": failure_rate, "seed": seed}
    if provider != "openai-compatible" and (settings.get("json_mode") or settings.get("fold_system")):
        raise BrightRunError("--json-mode and --fold-system apply to --provider openai-compatible only. Fix: drop "
                             "them (Claude always gets a schema in its accepted subset).")
    return {k: v for k, v in settings.items() if v is not None}


@app.command()
def generate(
    workspace: WorkspaceOpt = None,
    persona: Annotated[list[str] | None, typer.Option(help="Persona key (repeat; default all).")] = None,
    arc: Annotated[list[str] | None, typer.Option(help="Emotional arc key (repeat; default all).")] = None,
    topic: Annotated[list[str] | None, typer.Option(help="Training topic key (repeat; default all).")] = None,
    count: Annotated[int, typer.Option(help="Conversations per cell.", min=1)] = 1,
    quota: Annotated[int | None, typer.Option(help="Instead of --count: fill every chosen cell up to this many "
                                                   "approved-or-pending conversations.", min=1)] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the job (default: a new random one).")] = None,
    job_id: Annotated[str | None, typer.Option(help="Name the job (resumes it if it exists).")] = None,
    resume: Annotated[str | None, typer.Option(help="Resume this job instead of starting one.")] = None,
    provider: Annotated[str, typer.Option(help="scripted, anthropic or openai-compatible.")] = "scripted",
    model: ModelOpt = None,
    temperature: Annotated[float | None, typer.Option(help="Override the templates' temperature.", min=0,
                                                      max=1)] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Override the templates' max tokens.", min=256)] = None,
    base_url: BaseUrlOpt = None,
    timeout: TimeoutOpt = None,
    json_mode: JsonModeOpt = None,
    fold_system: FoldSystemOpt = None,
    concurrency: Annotated[int, typer.Option(help="Calls in flight at once.", min=1, max=512)] = 8,
    batch_api: Annotated[bool, typer.Option("--batch-api", help="Use the provider's batch API (cheaper, slower).")] = False,
    max_attempts: Annotated[int, typer.Option(help="Attempts per item before it is recorded as failed.",
                                              min=1, max=20)] = 3,
    failure_rate: Annotated[float, typer.Option(help="Scripted only: share of first attempts that fail.")] = 0.0,
    estimate_only: Annotated[bool, typer.Option("--estimate", help="Print the estimate and stop.")] = False,
    enrich_after: Annotated[bool, typer.Option("--enrich/--no-enrich", help="Enrich when done.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Generate conversations for scaffold cells (persona x arc x topic), or resume a job. Exits 0 when every
    conversation was made, 1 when some were not (the summary says how many and why), 2 on an error before
    any call."""
    import random

    from brightrun.generation import create_job, load_job, resume_job
    from brightrun.generation.estimate import estimate_plan
    from brightrun.generation.jobs import make_plan, require_model

    ws = open_workspace(workspace)
    require_model(provider, model)
    target = resume or job_id
    job = load_job(ws, target) if target else None
    if resume and job is None:
        raise BrightRunError(f"no job {resume!r} to resume. Fix: list jobs with `brightrun jobs list`.")
    if job is None:
        seed = seed if seed is not None else random.randrange(2**31)
        plan = make_plan(ws, persona, arc, topic, count=count, quota=quota)
        if not plan:
            console.print(f"Every chosen cell already has {quota} conversation(s): nothing to generate.")
            return
        chosen_model = model or ("scripted-1" if provider == "scripted" else None)
        estimate = estimate_plan(ws, plan, provider=provider, model=chosen_model, batch=batch_api, seed=seed)
        console.print(f"Estimate: {estimate.summary}.")
        if estimate_only:
            if json_out:
                sys.stdout.write(orjson.dumps(estimate.__dict__).decode() + "\n")
            return
        job = create_job(ws, plan, provider=provider, model=chosen_model or "", seed=seed, job_id=job_id,
                         provider_options=_provider_options(provider, failure_rate, seed, base_url=base_url,
                                                            timeout=timeout, json_mode=json_mode,
                                                            fold_system=fold_system,
                                                            trusted_base_url=True if base_url else None),
                         concurrency=concurrency, batch_api=batch_api, max_attempts=max_attempts,
                         temperature=temperature, max_tokens=max_tokens)
        console.print(f"Job [bold]{job.job_id}[/]: {job.total} conversation(s) over {len(plan)} cell(s).")
    else:
        from brightrun.generation import change_provider_settings

        job = change_provider_settings(ws, job.job_id, model=model, base_url=base_url, timeout=timeout,
                                       json_mode=json_mode, fold_system=fold_system, operator=True)
        console.print(f"Resuming job [bold]{job.job_id}[/] ({job.done} of {job.total} done).")
    job = run_with_progress(ws, job, resume_job)
    if enrich_after:
        from brightrun.enrichment import run_tracked

        run_tracked(ws)
    report_job(job, json_out, ws)


@app.command()
def enrich(
    workspace: WorkspaceOpt = None,
    force: Annotated[bool, typer.Option(help="Enrich every conversation again.")] = False,
    workers: WorkersOpt = None,
    engine: EngineOpt = "local",
    json_out: JsonOpt = False,
) -> None:
    """Turn new conversations into training pairs; bad records are reported and skipped. The app shows its
    progress."""
    from brightrun.enrichment import run_tracked
    from brightrun.workspace.pool import check_workers

    workers = check_workers(workers)
    check_engine(engine)
    ws = open_workspace(workspace)
    with progress_bar() as progress:
        task = progress.add_task("enriching", total=None, extra="")
        result = run_tracked(ws, force=force, workers=workers, engine=engine,
                             progress=lambda done, total: progress.update(task, completed=done, total=total))
    if json_out:
        sys.stdout.write(orjson.dumps({"enriched": result.enriched, "failed": result.failed,
                                       "pairs": result.pairs, "errors": result.errors}, default=str).decode() + "\n")
        return
    console.print(f"Enriched {result.enriched} conversation(s) into {result.pairs} training pair(s); "
                  f"{result.failed} failed.")
    for error in result.errors[:20]:
        console.print(f"  [red]{error['conversation_id']}[/]: {error['reason']}. Fix: {error['fix']}.")
    if len(result.errors) > 20:
        console.print(f"  ... and {len(result.errors) - 20} more: `brightrun sql \"select * from enrichment_errors\"`")


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="SQL over the workspace views.")],
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
    read_only: Annotated[bool, typer.Option(
        "--read-only", help="Run it where no file can be read or written: only the workspace views (the tables "
                            "the query names are read into memory first).")] = False,
) -> None:
    """Run SQL over the workspace views and print the rows. This is full DuckDB with your rights: it can read
    and write any file you can (COPY ... TO, read_csv). Use --read-only for SQL from someone else."""
    print_frame(open_workspace(workspace, create=False).sql(query, read_only=read_only), json_out)


@app.command()
def status(workspace: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """What the workspace holds, and its jobs."""
    from dataclasses import asdict

    from brightrun.enrichment import interrupted as interrupted_enrichment
    from brightrun.explore import recent_jobs, totals
    from brightrun.generation import job_is_running

    ws = open_workspace(workspace, create=False)
    t = totals(ws)
    jobs = recent_jobs(ws, 20)
    notes = {}
    for row in jobs.iter_rows(named=True):
        if row["status"] in ("queued", "processing") and not job_is_running(ws, row["job_id"]):
            notes[row["job_id"]] = f"interrupted: resume with `brightrun jobs resume {row['job_id']}`"
    stranded = interrupted_enrichment(ws)
    if stranded:
        notes["enrichment"] = (f"interrupted: {stranded:,} conversation(s) left mid-enrichment by a stopped run; "
                               f"`brightrun enrich` finishes them")
    if json_out:
        sys.stdout.write(orjson.dumps({"workspace": str(ws.root), "totals": asdict(t), "jobs": jobs.to_dicts(),
                                       "notes": notes, "problems": ws.problems}, default=str).decode() + "\n")
        return
    out.print(f"[bold]Workspace[/] {ws.root}")
    out.print(f"  conversations {t.conversations:,} ({t.enriched:,} enriched, {t.enrichment_failed:,} failed "
              f"enrichment), training pairs {t.training_pairs:,}")
    out.print(f"  LLM calls made here {t.generated_calls:,} ({t.failed_calls:,} failed of all), tokens "
              f"{t.generated_tokens:,}, cost ${t.generated_cost_usd:,.2f}, failed generations {t.failed_generations:,}")
    if t.imported_calls:
        out.print(f"  imported app-log calls {t.imported_calls:,}, tokens {t.imported_tokens:,}, "
                  f"cost ${t.imported_cost_usd:,.2f}")
    if jobs.height:
        print_frame(jobs.select("job_id", "status", "tier", "provider", "total", "done", "failed", "created_at"),
                     False)
    for job_id, note in notes.items():
        out.print(f"  [yellow]{job_id}[/]: {note}")
    for problem in ws.problems:
        out.print(f"  [red]problem[/]: {problem}")


@app.command()
def compact(workspace: WorkspaceOpt = None) -> None:
    """Merge small table parts; safe while other processes read and write."""
    ws = open_workspace(workspace)
    for what in ws.recover():
        console.print(f"  recovered: {what}")
    result = ws.compact()
    merged = {k: v for k, v in result.items() if v}
    console.print(f"Compacted {sum(merged.values())} part(s) in {len(merged)} table(s)." if merged
                  else "Nothing to compact.")


@app.command()
def publish(
    workspace: WorkspaceOpt = None,
    table: Annotated[list[str] | None, typer.Option("--table", "-t", help="Only this table (repeat for more).")] = None,
) -> None:
    """Write each table's current rows (one per key) as a Delta table under <workspace>/delta/<table>/, for
    Spark, Daft, Ray, polars or DuckDB to read; tables unchanged since their last publication are skipped.
    Compaction does this too."""
    ws = open_workspace(workspace)
    result = ws.publish(table or None)
    written = [p for p in result.values() if p.rows is not None]
    for p in written:
        console.print(f"  {p.table}: version {p.version}, {p.rows:,} rows ({p.seconds * 1000:.0f} ms)")
    console.print(f"Published {len(written)} table(s), {len(result) - len(written)} unchanged, "
                  f"to {ws.root / 'delta'}.")


@app.command()
def schema(entity: Annotated[str | None, typer.Argument(help="One entity (default: list them).")] = None) -> None:
    """Print the JSON schema of a domain entity."""
    from brightrun.models import ENTITIES, json_schemas

    if entity is None:
        out.print("\n".join(ENTITIES))
        return
    if entity not in ENTITIES:
        raise BrightRunError(f"unknown entity {entity!r}. Fix: use one of {', '.join(ENTITIES)}.")
    sys.stdout.write(orjson.dumps(json_schemas()[entity], option=orjson.OPT_INDENT_2).decode() + "\n")


app.command()(validate)
app.command("import-log")(import_log_command)
app.command("doctor")(doctor_command)


def main() -> None:
    """The `brightrun` command: every failure a user can cause ends in `error: ... Fix: ...` and exit code 2
    (a BrightRunError, a lock another process holds, a read-only workspace, no permission, a full disk)."""
    try:
        app()
    except BrightRunError as exc:
        _fail(exc)
    except Timeout as exc:  # a lock taken outside the workspace's own (those raise LockHeld, a BrightRunError)
        _fail(f"{exc} Fix: wait for the other process to finish, then try again.")
    except OSError as exc:
        mapped = os_error(exc)
        if mapped is None:
            raise
        _fail(mapped)


def _fail(message: object) -> None:
    console.print(f"[red]error:[/] {escape(str(message))}", soft_wrap=True)
    raise SystemExit(2) from None
