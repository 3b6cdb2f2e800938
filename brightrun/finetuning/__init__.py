"""Fine-tuning: submit training-file versions to a provider (OpenAI), follow the jobs, and keep the registry of
jobs and of the models they produced (views `finetuning_jobs`, `finetuning_events`, `model_versions`).

    from brightrun.finetuning import submit_job, refresh_jobs, list_jobs
    job = submit_job(ws, "advisor", base_model="gpt-4o-mini-2024-07-18", hyperparameters={"n_epochs": 3})
    refresh_jobs(ws)            # later: status, trained tokens, actual cost, the fine-tuned model

May import: errors, exports, providers, secrets, training_files, validation, workspace.
"""

from brightrun.finetuning.client import api_key_from_environment, openai_client, translate
from brightrun.finetuning.openai_jobs import (
    cancel_job,
    check_hyperparameters,
    find_remote,
    refresh_jobs,
    resume_job,
    submit_job,
)
from brightrun.finetuning.registry import (
    ENVIRONMENTS,
    STATUSES,
    TERMINAL,
    FineTuningError,
    Job,
    actual_cost,
    base_models,
    deploy_model,
    estimate_job,
    get_job,
    job_events,
    job_folder,
    list_jobs,
    list_models,
    load_job,
    map_status,
)

__all__ = [
    "ENVIRONMENTS", "STATUSES", "TERMINAL", "FineTuningError", "Job", "actual_cost", "api_key_from_environment",
    "base_models", "cancel_job", "check_hyperparameters", "deploy_model", "estimate_job", "find_remote", "get_job",
    "job_events", "job_folder", "list_jobs", "list_models", "load_job", "map_status", "openai_client",
    "refresh_jobs", "resume_job", "submit_job", "translate",
]
