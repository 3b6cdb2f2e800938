"""`brightrun experiments create|run|report|list|status`."""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer

from brightrun.cli.common import JsonOpt, WorkspaceOpt, console, open_workspace, out, print_frame

experiments_app = typer.Typer(help="A/B experiments on prompt versions and model settings.", no_args_is_help=True)


def _arm(spec: str) -> dict:
    """NAME=VERSION[,model=M][,temperature=T] -> a variant."""
    name, _, rest = spec.partition("=")
    parts = rest.split(",") if rest else []
    variant: dict = {"name": name.strip(), "template_version": (parts[0].strip() or None) if parts else None}
    for extra in parts[1:]:
        key, _, value = extra.partition("=")
        if key.strip() not in ("model", "temperature"):
            raise typer.BadParameter(f"{extra!r}: only model= and temperature= may follow the version")
        variant[key.strip()] = float(value) if key.strip() == "temperature" else value.strip()
    return variant


@experiments_app.command("create")
def create(
    experiment_id: Annotated[str, typer.Argument(help="Lower-case id, e.g. warm-prompt.")],
    template: Annotated[str, typer.Option(help="The template key whose versions are compared.")],
    control: Annotated[str, typer.Option(help="NAME=VERSION[,model=M][,temperature=T]; VERSION empty: current.")],
    variant: Annotated[list[str], typer.Option(help="A test arm, same form as --control (repeat).")],
    workspace: WorkspaceOpt = None,
    name: Annotated[str, typer.Option(help="A readable name (default: the id).")] = "",
    hypothesis: Annotated[str, typer.Option(help="What you expect and why.")] = "",
    metric: Annotated[str, typer.Option(help="The success metric.")] = "thumbs_up",
    guardrail: Annotated[list[str] | None, typer.Option(help="A guardrail metric (repeat; default: failed).")] = None,
    persona: Annotated[list[str] | None, typer.Option(help="Only these personas (repeat; default all).")] = None,
    topic: Annotated[list[str] | None, typer.Option(help="Only these topics (repeat; default all).")] = None,
    per_arm: Annotated[int, typer.Option(help="Conversations per arm in each cell.", min=1)] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the arms' generation.")] = 0,
) -> None:
    """Define an experiment (draft). Metrics: thumbs_up, mean_rating, quality_score, edited, response_words,
    failed, cost_usd."""
    from brightrun.experiments import create_experiment

    exp = create_experiment(open_workspace(workspace), experiment_id=experiment_id, name=name or experiment_id,
                            template_key=template, control=_arm(control), variants=[_arm(v) for v in variant],
                            hypothesis=hypothesis, success_metric=metric,
                            guardrails=guardrail if guardrail is not None else ["failed"], personas=persona or [],
                            topics=topic or [], per_arm=per_arm, seed=seed)
    arms = ", ".join(f"{a.name} ({a.template_version})" for a in exp.arms)
    console.print(f"Experiment [bold]{exp.experiment_id}[/] created (draft): {arms}.")


@experiments_app.command("run")
def run(
    experiment_id: Annotated[str, typer.Argument(help="The experiment.")],
    workspace: WorkspaceOpt = None,
    provider: Annotated[str, typer.Option(help="scripted, anthropic or openai-compatible.")] = "scripted",
    base_url: Annotated[str | None, typer.Option(help="The provider's base URL.")] = None,
    concurrency: Annotated[int, typer.Option(help="Calls in flight at once.", min=1, max=512)] = 8,
    enrich_after: Annotated[bool, typer.Option("--enrich/--no-enrich", help="Enrich the arms when done.")] = True,
) -> None:
    """Generate every arm (balanced over the cells; resumes unfinished arms) and mark it running."""
    from brightrun.experiments import run_experiment

    ws = open_workspace(workspace)
    options = {"base_url": base_url, "trusted_base_url": True} if base_url else {}  # the operator's URL
    with console.status("generating the arms") as status:
        exp = run_experiment(ws, experiment_id, provider=provider, provider_options=options, concurrency=concurrency,
                             progress=lambda msg: status.update(msg))
        if enrich_after:
            from brightrun.enrichment import enrich

            status.update("enriching")
            enrich(ws)
    console.print(f"Experiment [bold]{exp.experiment_id}[/] is running; review its conversations (Review page), "
                  f"then `brightrun experiments report {exp.experiment_id}`.")


@experiments_app.command("report")
def report(
    experiment_id: Annotated[str, typer.Argument(help="The experiment.")],
    workspace: WorkspaceOpt = None,
    alpha: Annotated[float, typer.Option(help="Significance level.", min=0.001, max=0.5)] = 0.05,
    exploratory: Annotated[bool, typer.Option(help="Benjamini-Hochberg instead of Holm.")] = False,
    fixed_sample: Annotated[bool, typer.Option(
        help="Decide on the fixed-sample p-values: only for the single look at the planned size.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Per arm and metric: estimate, interval, lift, test, adjusted p, P(beat control); SRM, strata and
    the winner or "no winner yet"."""
    from brightrun.experiments import experiment_report, results_frame
    from brightrun.experiments.report import readable_table, report_dict

    result = experiment_report(open_workspace(workspace, create=False), experiment_id, alpha=alpha,
                               exploratory=exploratory, fixed_sample=fixed_sample)
    if json_out:
        sys.stdout.write(orjson.dumps(report_dict(result), default=str,
                                      option=orjson.OPT_SERIALIZE_NUMPY).decode() + "\n")
        return
    table = results_frame(result)
    d = result.decision
    out.print(result.data_note(), markup=False, soft_wrap=True, style="bold yellow" if result.simulated else None)
    print_frame(result.arms, False)
    if table.height:
        print_frame(readable_table(table.select(
            "metric", "arm", "scripted_share", "n", "estimate", "low", "high", "abs_lift", "abs_low", "abs_high",
            "test", "p_adjusted", "seq_p_adjusted", "seq_low", "seq_high", "prob_beat_control")), False)
        out.print(f"Fixed-sample p-values and intervals are valid only at the planned size ({result.planned_n:,} "
                  f"conversations per arm); seq_*: always-valid (mSPRT), valid at every look. {result.decision_basis()}",
                  markup=False, soft_wrap=True)
    if result.srm is not None:
        out.print(f"Sample ratio: {result.srm.message}", markup=False, soft_wrap=True)
    for warning in result.warnings:
        console.print(f"[yellow]Warning:[/] {warning}", soft_wrap=True)
    verdict = (f"Winner: {d.winner} (P(beat control) {d.confidence:.3f}). {d.reason}" if d.winner else d.reason)
    out.print(verdict, markup=False, soft_wrap=True)


@experiments_app.command("list")
def list_command(workspace: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """Every experiment with its status."""
    import polars as pl

    from brightrun.experiments import list_experiments

    rows = [{"experiment_id": e.experiment_id, "name": e.name, "status": e.status, "template": e.template_key,
             "arms": ", ".join(a.name for a in e.arms), "metric": e.success_metric, "updated_at": e.updated_at}
            for e in list_experiments(open_workspace(workspace, create=False))]
    print_frame(pl.DataFrame(rows, schema={"experiment_id": pl.String, "name": pl.String, "status": pl.String,
                                           "template": pl.String, "arms": pl.String, "metric": pl.String,
                                           "updated_at": pl.Datetime("us", "UTC")}), json_out)


@experiments_app.command("status")
def status(
    experiment_id: Annotated[str, typer.Argument(help="The experiment.")],
    new_status: Annotated[str, typer.Argument(help="running, paused or completed.")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Pause, resume or complete an experiment."""
    from brightrun.experiments import set_status

    exp = set_status(open_workspace(workspace), experiment_id, new_status)  # type: ignore[arg-type]
    console.print(f"Experiment {exp.experiment_id} is {exp.status}.")
