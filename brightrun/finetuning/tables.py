"""What the Fine-tuning page (and `brightrun finetune list`) shows, as plain data: the jobs and models tables
with formatted costs, the choices of the submit form, the cost estimate in words, and whether the data
contracts and the API key allow a submission. No Streamlit here."""

from __future__ import annotations

import polars as pl

from brightrun.exports.cost import CostEstimate
from brightrun.finetuning import api_key_from_environment, base_models, list_jobs, list_models
from brightrun.training_files import list_training_files, versions
from brightrun.workspace import Workspace

DASH = "–"


def fmt_cost(value: float | None) -> str:
    if value is None:
        return DASH
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:,.4f}"


def _cost_expr(column: str) -> pl.Expr:
    return pl.col(column).map_elements(fmt_cost, return_dtype=pl.String).fill_null(DASH)


def jobs_table(ws: Workspace) -> pl.DataFrame:
    """One row per job, newest first, in the words of the page."""
    jobs = list_jobs(ws)
    return jobs.select(
        pl.col("job_id").alias("job"),
        pl.col("status"),
        pl.col("base_model").alias("base model"),
        pl.format("{} v{}", "training_file", "training_file_version").alias("training file"),
        pl.col("hyperparameters"),
        _cost_expr("estimated_cost_usd").alias("estimated cost"),
        _cost_expr("actual_cost_usd").alias("actual cost"),
        pl.col("trained_tokens").alias("trained tokens"),
        pl.col("external_job_id").fill_null(DASH).alias("OpenAI job"),
        pl.col("fine_tuned_model").fill_null(DASH).alias("fine-tuned model"),
        pl.col("error").fill_null(""),
        pl.col("updated_at").alias("updated"),
    )


def models_table(ws: Workspace) -> pl.DataFrame:
    """One row per fine-tuned model, newest first."""
    return list_models(ws).select(
        pl.col("model_id").alias("model"),
        pl.col("version_label").alias("version"),
        pl.col("environment"),
        pl.col("base_model").alias("base model"),
        pl.format("{} v{}", "training_file", "training_file_version").alias("training file"),
        pl.col("job_id").alias("job"),
        pl.col("trained_tokens").alias("trained tokens"),
        _cost_expr("actual_cost_usd").alias("cost"),
        pl.col("created_at").alias("created"),
    )


def resumable_jobs(ws: Workspace) -> list[str]:
    """Jobs whose submission broke before OpenAI had them (resume them, or submit again)."""
    return list_jobs(ws).filter(pl.col("external_job_id").is_null()
                                & pl.col("status").is_in(["created", "uploading", "failed"]))["job_id"].to_list()


def training_file_choices(ws: Workspace) -> dict[str, list[int]]:
    """Training file name -> its versions that have conversations, newest first (files without any left out)."""
    names = list_training_files(ws)["name"].to_list()
    choices = {name: [v.version for v in reversed(versions(ws, name)) if v.member_ids] for name in names}
    return {name: found for name, found in choices.items() if found}


def model_choices(ws: Workspace) -> list[str]:
    """The OpenAI base models of the training price table."""
    return base_models(ws)


def estimate_text(estimate: CostEstimate) -> str:
    """The estimate in one sentence, honest about being one."""
    epochs = f"{estimate.epochs} epoch(s), {estimate.epochs_rule}"
    tokens = f"{estimate.examples:,} training examples, {estimate.charged_tokens:,} charged tokens ({epochs})"
    if estimate.cost_usd is None:
        return f"No price for {estimate.model} in the training price table: cost unknown. {tokens}."
    return (f"About {fmt_cost(estimate.cost_usd)} for {tokens} at ${estimate.usd_per_million_training_tokens:g} per "
            f"million training tokens (prices recorded {estimate.price_recorded}); validation tokens are free.")


def contracts_problem(ws: Workspace) -> str | None:
    """Why a submission needs a force reason (None when the last data-contract run passed)."""
    from brightrun.validation import latest_report

    report = latest_report(ws)
    if report is None:
        return "The data contracts have never run on this workspace (`brightrun validate`)."
    if not report.success:
        return "The last data-contract run failed (see the Quality page, or `brightrun validate`)."
    return None


def key_problem() -> str | None:
    """Why nothing can be submitted (None when an OpenAI key is set)."""
    if api_key_from_environment():
        return None
    return ("OPENAI_API_KEY is not set: submitting and refreshing need it. Set it in the environment that runs the "
            "app (or in .streamlit/secrets.toml) and reload.")
