"""Generation: batch jobs over scaffold cells, run by any provider."""

from brightrun.generation.jobs import (
    PlannedCell,
    create_job,
    load_job,
    plan_spread,
    plan_uniform,
)
from brightrun.generation.runner import JobProgress, build_request, job_is_running, run_job

__all__ = ["JobProgress", "PlannedCell", "build_request", "create_job", "job_is_running", "load_job",
           "plan_spread", "plan_uniform", "run_job"]
