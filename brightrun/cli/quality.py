"""`brightrun quality report|judge` and `brightrun validate`: quality signals and the data contracts."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Annotated

import orjson
import typer

from brightrun.cli.common import (
    BaseUrlOpt,
    EngineOpt,
    FoldSystemOpt,
    JsonModeOpt,
    JsonOpt,
    TimeoutOpt,
    WorkersOpt,
    WorkspaceOpt,
    check_engine,
    console,
    open_workspace,
    out,
    progress_bar,
)
from brightrun.errors import BrightRunError

quality_app = typer.Typer(help="Quality signals: the quality report and the optional LLM judge.",
                          no_args_is_help=True)


@quality_app.command("report")
def report(
    workspace: WorkspaceOpt = None,
    cached: Annotated[bool, typer.Option("--cached", help="Print the last saved report instead of computing.")] = False,
    workers: WorkersOpt = None,
    engine: EngineOpt = "local",
    json_out: JsonOpt = False,
) -> None:
    """Compute duplicates (exact and near, conversations and training pairs), diversity per scaffold cell
    and a score summary; save it for the app (reports/quality.json and the groups beside it) and print it."""
    from brightrun.quality.report import (
        build_quality_report,
        latest_quality_report,
        save_quality_report,
        staleness,
        summarize,
    )
    from brightrun.workspace.pool import check_workers

    workers = check_workers(workers)
    check_engine(engine)
    ws = open_workspace(workspace)
    if cached:
        from brightrun.quality.report_store import latest_summary

        result = latest_quality_report(ws) if json_out else latest_summary(ws)  # the summary is all the text needs
        if result is None:
            raise BrightRunError("no quality report saved yet. Fix: run `brightrun quality report` without --cached.")
        stale = staleness(ws, result)
        if stale:
            console.print(f"[yellow]Out of date:[/] {stale}.")
    else:
        with progress_bar() as progress:
            task = progress.add_task("computing the quality report", total=None, extra="")

            def step(message: str) -> None:
                progress.update(task, description=message, completed=0, total=None)

            def counted(what: str, done: int, total: int) -> None:
                progress.update(task, description=what, completed=done, total=total)

            result = build_quality_report(ws, progress=step, counts=counted, workers=workers, engine=engine)
        path = save_quality_report(ws, result)
        console.print(f"Saved {path}")
    if json_out:
        sys.stdout.write(result.model_dump_json() + "\n")
    else:
        out.print(summarize(result), soft_wrap=True, markup=False)


@quality_app.command("judge")
def judge(
    workspace: WorkspaceOpt = None,
    provider: Annotated[str, typer.Option(help="scripted (offline), anthropic or openai-compatible.")] = "scripted",
    model: Annotated[str | None, typer.Option(help="The judge model (default: the provider's default).")] = None,
    limit: Annotated[int | None, typer.Option(help="Judge at most this many pairs (a seeded sample).", min=1)] = 50,
    all_pairs: Annotated[bool, typer.Option("--all", help="Judge every training pair (ignores --limit).")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the sample.")] = 0,
    concurrency: Annotated[int, typer.Option(help="Calls in flight at once.", min=1, max=64)] = 4,
    force: Annotated[bool, typer.Option(help="Judge again pairs already judged by this model and rubric.")] = False,
    base_url: BaseUrlOpt = None,
    timeout: TimeoutOpt = None,
    json_mode: JsonModeOpt = None,
    fold_system: FoldSystemOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Score training pairs with an LLM judge (rubric in docs/quality.md); every call is logged in llm_calls.
    With a real provider this costs money: start with a small --limit."""
    from brightrun.providers import get_provider
    from brightrun.quality.judge import agreement, judge_pairs

    ws = open_workspace(workspace)
    settings = {"base_url": base_url, "timeout": timeout, "trusted_base_url": True if base_url else None}
    if provider == "openai-compatible":
        settings |= {"json_mode": json_mode, "fold_system": fold_system}
    elif json_mode or fold_system:
        raise BrightRunError("--json-mode and --fold-system apply to --provider openai-compatible only. Fix: drop them.")
    options = {k: v for k, v in settings.items() if v is not None} if provider != "scripted" else {}
    chosen = get_provider(provider, **options)
    with progress_bar() as progress:
        task = progress.add_task("judging", total=None, extra="")
        result = judge_pairs(ws, chosen, model=model, limit=None if all_pairs else limit, sample_seed=seed,
                             concurrency=concurrency, force=force,
                             progress=lambda done, total: progress.update(task, completed=done, total=total))
    stats = agreement(ws)
    if json_out:
        sys.stdout.write(orjson.dumps({**result.__dict__, "agreement": stats}, default=str).decode() + "\n")
        _exit_unless_all_judged(result)
        return
    console.print(f"Judged {result.judged} pair(s), skipped {result.skipped} already judged, {result.failed} failed; "
                  f"${result.cost_usd:,.4f} in {result.seconds:.1f} s.")
    if stats.get("n"):
        rho = "n/a (too few pairs or constant scores)" if stats.get("spearman") is None else f"{stats['spearman']:.2f}"
        console.print(f"Judge vs heuristic overall over {stats['n']} pair(s): Spearman {rho}, "
                      f"mean absolute difference {stats['mean_abs_diff']:.2f}.")
    for error in result.errors[:10]:
        console.print(f"  [red]{error['pair_id']}[/]: {error['reason']}")
    _exit_unless_all_judged(result)


def _exit_unless_all_judged(result) -> None:
    """Exit 1 when some pairs were not judged: a script must not take a partial run for a whole one."""
    if result.stopped:
        console.print(f"[red]stopped:[/] {result.stopped}")
    if result.failed or result.stopped:
        reasons = Counter(e["reason"] for e in result.errors)
        common = f"; commonest reason: {reasons.most_common(1)[0][0]}" if reasons else ""
        console.print(f"[red]{result.failed} pair(s) not judged[/]{common}.")
        raise typer.Exit(1)


def validate(
    workspace: WorkspaceOpt = None,
    table: Annotated[list[str] | None, typer.Option(help="Only this table's suite (repeat).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run the data contracts (Great Expectations suites in expectations/) against the workspace, save the
    report for the app (reports/validation.json) and exit 1 if any expectation fails."""
    from brightrun.validation import run_contracts, save_report, summarize

    ws = open_workspace(workspace)
    with console.status("loading Great Expectations") as status:
        result = run_contracts(ws, tables=table, progress=lambda msg: status.update(msg))
    path = save_report(ws, result)
    if json_out:
        sys.stdout.write(result.model_dump_json() + "\n")
    else:
        out.print(summarize(result), soft_wrap=True, markup=False)
        console.print(f"Saved {path}")
    if not result.success:
        raise typer.Exit(1)
