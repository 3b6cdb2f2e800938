"""Generation: batch jobs over scaffold cells, run by any provider.

May import: aio, errors, models, providers, scaffolding, workspace.
"""

from brightrun.generation.control import (
    change_provider_settings,
    job_is_running,
    launch_background,
    provider_for_job,
    resume_job,
    retry_failed,
    run_job,
)
from brightrun.generation.jobs import (
    PlannedCell,
    cancel_requested,
    create_job,
    load_job,
    make_plan,
    plan_quota,
    plan_spread,
    plan_uniform,
    request_cancel,
)
from brightrun.generation.progress import JobProgress, RunSettings
from brightrun.generation.requests import build_request

__all__ = ["JobProgress", "change_provider_settings", "PlannedCell", "RunSettings", "build_request", "cancel_requested", "create_job",
           "job_is_running", "launch_background", "load_job", "make_plan", "plan_quota", "plan_spread", "plan_uniform",
           "provider_for_job", "request_cancel", "resume_job", "retry_failed", "run_job"]
