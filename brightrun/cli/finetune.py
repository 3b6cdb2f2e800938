"""`brightrun finetune submit|list|show|resume|cancel|deploy`: OpenAI fine-tuning jobs and their models."""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer

from brightrun.cli.common import JsonOpt, WorkspaceOpt, console, open_workspace, out, print_frame

finetune_app = typer.Typer(help="Fine-tuning: submit a training-file version to OpenAI, follow the jobs, and the "
                                "models they produced.", no_args_is_help=True)
JobArg = Annotated[str, typer.Argument(help="The job id (from `brightrun finetune list`).")]
BaseUrlOpt = Annotated[str | None, typer.Option(help="The API base URL (default: $OPENAI_BASE_URL, else OpenAI's).",
                                                envvar="OPENAI_BASE_URL")]


def _dump(obj) -> None:
    sys.stdout.write(orjson.dumps(obj, default=str).decode() + "\n")


@finetune_app.command("submit")
def submit(
    training_file: Annotated[str, typer.Argument(help="The training file's name.")],
    model: Annotated[str, typer.Option("--model", help="The base model, e.g. gpt-4o-mini-2024-07-18.")],
    workspace: WorkspaceOpt = None,
    version: Annotated[int | None, typer.Option(help="A past version (default: the latest).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (default: OpenAI's choice, estimated by the cookbook "
                                                    "rule).", min=1, max=50)] = None,
    suffix: Annotated[str | None, typer.Option(help="Added to the fine-tuned model's name (at most 64 "
                                                    "characters).")] = None,
    force: Annotated[str | None, typer.Option("--force", help="Submit although the data contracts failed; the "
                                                              "reason is recorded.")] = None,
    base_url: BaseUrlOpt = None,
    estimate_only: Annotated[bool, typer.Option("--estimate", help="Print the cost estimate and stop.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Export a training-file version as OpenAI chat SFT, validate it, upload it and create the fine-tuning job
    (needs OPENAI_API_KEY). Prints the estimated cost; the actual cost comes once the job has finished."""
    from brightrun.finetuning import estimate_job, submit_job
    from brightrun.finetuning.tables import estimate_text

    ws = open_workspace(workspace)
    if estimate_only:
        estimate = estimate_job(ws, training_file, model, version=version, epochs=epochs)
        if json_out:
            _dump(estimate.model_dump())
        else:
            out.print(estimate_text(estimate), markup=False)
        return
    with console.status("exporting, validating and uploading"):
        job = submit_job(ws, training_file, base_model=model, version=version, suffix=suffix, force_reason=force,
                         hyperparameters={"n_epochs": epochs} if epochs else {}, base_url=base_url)
    if json_out:
        _dump(job.model_dump())
        return
    cost = f"about ${job.estimated_cost_usd:,.4f}" if job.estimated_cost_usd is not None else f"unknown ({job.cost_note})"
    console.print(f"Submitted [bold]{job.job_id}[/]: {training_file} v{job.training_file_version} on {job.base_model}, "
                  f"OpenAI job {job.external_job_id} ({job.status}). Estimated cost {cost} for "
                  f"{job.estimated_tokens:,} charged tokens. Follow it with `brightrun finetune list --refresh`.")


@finetune_app.command("list")
def list_command(
    workspace: WorkspaceOpt = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="Ask OpenAI about the jobs that have not ended "
                                                            "first (needs OPENAI_API_KEY).")] = False,
    base_url: BaseUrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The fine-tuning jobs (status, estimated and actual cost, the OpenAI job, the fine-tuned model) and the
    models they produced."""
    from brightrun.finetuning import list_jobs, list_models, refresh_jobs
    from brightrun.finetuning.tables import jobs_table, models_table, resumable_jobs

    ws = open_workspace(workspace, create=refresh)
    if refresh:
        with console.status("asking OpenAI"):
            changed = refresh_jobs(ws, base_url=base_url)
        console.print(f"Refreshed: {len(changed)} job(s) changed.")
    if json_out:
        _dump({"jobs": list_jobs(ws).to_dicts(), "models": list_models(ws).to_dicts()})
        return
    jobs = jobs_table(ws)
    if not jobs.height:
        out.print("No fine-tuning jobs yet. Submit one with `brightrun finetune submit TRAINING_FILE --model "
                  "gpt-4o-mini-2024-07-18`.", markup=False)
        return
    print_frame(jobs.drop("hyperparameters", "trained tokens", "error", "updated"), False)
    for row in jobs.filter(jobs["error"] != "").iter_rows(named=True):
        out.print(f"  {row['job']}: {row['error']}", markup=False, soft_wrap=True)
    for job_id in sorted(set(resumable_jobs(ws)) - set(jobs.filter(jobs["error"] != "")["job"])):
        out.print(f"  {job_id}: never reached OpenAI; finish it with `brightrun finetune resume {job_id}`",
                  markup=False, soft_wrap=True)
    models = models_table(ws)
    if models.height:
        out.print("[bold]Fine-tuned models[/]")
        print_frame(models, False)


@finetune_app.command("show")
def show(job_id: JobArg, workspace: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """One job with its whole history."""
    from brightrun.finetuning import get_job, job_events

    ws = open_workspace(workspace, create=False)
    job = get_job(ws, job_id)
    events = job_events(ws, job_id)
    if json_out:
        _dump({"job": job.model_dump(), "events": events.to_dicts()})
        return
    for name, value in job.model_dump().items():
        out.print(f"{name:>22}  {'' if value is None else value}", markup=False)
    print_frame(events, False)


@finetune_app.command("resume")
def resume(job_id: JobArg, workspace: WorkspaceOpt = None, base_url: BaseUrlOpt = None,
           json_out: JsonOpt = False) -> None:
    """Finish a submission that broke before OpenAI had the job: files already uploaded are not uploaded again,
    and a job OpenAI created without our hearing of it is found, not created twice."""
    from brightrun.finetuning import resume_job

    with console.status("uploading and creating the job"):
        job = resume_job(open_workspace(workspace), job_id, base_url=base_url)
    if json_out:
        _dump(job.model_dump())
        return
    console.print(f"Job [bold]{job.job_id}[/] is at OpenAI as {job.external_job_id} ({job.status}).")


@finetune_app.command("cancel")
def cancel(job_id: JobArg, workspace: WorkspaceOpt = None, base_url: BaseUrlOpt = None) -> None:
    """Cancel a job (at OpenAI when it has it)."""
    from brightrun.finetuning import cancel_job

    job = cancel_job(open_workspace(workspace), job_id, base_url=base_url)
    console.print(f"Job [bold]{job.job_id}[/] is {job.status}.")


@finetune_app.command("deploy")
def deploy(
    model_id: Annotated[str, typer.Argument(help="The fine-tuned model id (ft:...).")],
    environment: Annotated[str, typer.Argument(help="staging, production, or none to take it out.")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Record which fine-tuned model serves an environment (one per environment and training file)."""
    from brightrun.finetuning import deploy_model

    row = deploy_model(open_workspace(workspace), model_id, environment)
    console.print(f"{row['model_id']} ({row['training_file']} {row['version_label']}) is now in {row['environment']}.")
