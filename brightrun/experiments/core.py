"""Defining, assigning and running experiments. Definitions live in the `experiments` table (the latest
row per id is the current state). Generated arms are balanced by construction:
every chosen scaffold cell gets `per_arm` conversations in each arm, each arm one batch job."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence

import orjson
from pydantic import ValidationError

from brightrun.errors import BrightRunError, validation_problem
from brightrun.experiments.model import Experiment, Status, Variant
from brightrun.generation import create_job, load_job, resume_job, run_job
from brightrun.generation.jobs import PlannedCell, record_template_versions, template_at_version
from brightrun.workspace import Workspace, utcnow

TRANSITIONS: dict[str, set[str]] = {"draft": {"running"}, "running": {"paused", "completed"},
                                    "paused": {"running", "completed"}, "completed": set()}


class ExperimentError(BrightRunError):
    """An experiment cannot be defined, changed or run as asked."""


def assign(experiment_id: str, unit_id: str, arms: Sequence[str], weights: Sequence[float] | None = None) -> str:
    """The arm of a unit (a user, a session, a conversation): sha256 of experiment and unit, cut by the
    weights. Stable across runs and machines, independent between experiments."""
    weights = list(weights) if weights is not None else [1.0] * len(arms)
    if len(weights) != len(arms) or not arms or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ExperimentError("assignment needs one non-negative weight per arm. Fix: e.g. weights 1 1.")
    digest = hashlib.sha256(f"{experiment_id}\x00{unit_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * sum(weights)
    edge = 0.0
    for arm, weight in zip(arms, weights, strict=True):
        edge += weight
        if point < edge:
            return arm
    return arms[-1]


def _save(ws: Workspace, exp: Experiment) -> None:
    ws.append("experiments", [{"experiment_id": exp.experiment_id, "status": exp.status,
                               "definition": exp.model_dump_json(), "updated_at": exp.updated_at}])


def create_experiment(ws: Workspace, *, experiment_id: str, name: str, template_key: str, control: Variant | Mapping,
                      variants: Sequence[Variant | Mapping], hypothesis: str = "", success_metric: str = "thumbs_up",
                      guardrails: Sequence[str] = ("failed",), personas: Sequence[str] = (),
                      topics: Sequence[str] = (), per_arm: int = 1, seed: int = 0) -> Experiment:
    """Define an experiment (status draft). Every variant's template version must be recorded in the
    workspace (or be the current one); personas and topics must exist."""
    if load_experiment(ws, experiment_id, missing_ok=True) is not None:
        raise ExperimentError(f"experiment {experiment_id!r} already exists. Fix: choose another id.")
    scaffolding = ws.scaffolding
    if template_key not in scaffolding.templates:
        raise ExperimentError(f"no template {template_key!r}. Fix: use one of {', '.join(sorted(scaffolding.templates))}.")
    now = utcnow()
    try:
        exp = Experiment(experiment_id=experiment_id, name=name, hypothesis=hypothesis, template_key=template_key,
                         control=control, variants=list(variants), success_metric=success_metric,
                         guardrails=list(guardrails), personas=list(personas), topics=list(topics),
                         per_arm=per_arm, seed=seed, created_at=now, updated_at=now)
    except ValidationError as exc:
        raise ExperimentError(validation_problem(exc, f"experiment {experiment_id!r}",
                                                 "correct it and create it again")) from exc
    current = record_template_versions(ws, {template_key})[template_key]
    pinned = []
    for arm in exp.arms:  # every arm is pinned to a recorded version: later YAML edits change nothing
        if arm.template_version is not None:
            try:
                template_at_version(ws, template_key, arm.template_version)
            except BrightRunError as exc:
                raise ExperimentError(f"arm {arm.name!r}: {exc}") from exc
        pinned.append(arm.model_copy(update={"template_version": arm.template_version or current}))
    exp = exp.model_copy(update={"control": pinned[0], "variants": pinned[1:]})
    cells(ws, exp)  # checks personas and topics
    _save(ws, exp)
    return exp


def load_experiment(ws: Workspace, experiment_id: str, *, missing_ok: bool = False) -> Experiment | None:
    frame = ws.sql("SELECT definition FROM experiments WHERE experiment_id = ?", [experiment_id])
    if not frame.height:
        if missing_ok:
            return None
        raise ExperimentError(f"no experiment {experiment_id!r}. Fix: list them with `brightrun experiments list`.")
    return Experiment.model_validate(orjson.loads(frame.item()))


def list_experiments(ws: Workspace) -> list[Experiment]:
    frame = ws.sql("SELECT definition FROM experiments ORDER BY updated_at DESC")
    return [Experiment.model_validate(orjson.loads(d)) for d in frame["definition"].to_list()]


def set_status(ws: Workspace, experiment_id: str, status: Status) -> Experiment:
    exp = load_experiment(ws, experiment_id)
    if status != exp.status and status not in TRANSITIONS[exp.status]:
        raise ExperimentError(f"experiment {experiment_id!r} is {exp.status}; it cannot become {status}. "
                              f"Fix: from {exp.status} it can become {', '.join(sorted(TRANSITIONS[exp.status])) or 'nothing'}.")
    exp = exp.model_copy(update={"status": status, "updated_at": utcnow()})
    _save(ws, exp)
    return exp


def cells(ws: Workspace, exp: Experiment):
    """The scaffold cells of the experiment: the template's arc x chosen personas x chosen topics."""
    arc = ws.scaffolding.templates[exp.template_key].arc_type
    return ws.scaffolding.cells(exp.personas or None, [arc], exp.topics or None)


def plan_arm(ws: Workspace, exp: Experiment, arm: Variant) -> list[PlannedCell]:
    return [PlannedCell(cell=c, count=exp.per_arm, template_version=arm.template_version) for c in cells(ws, exp)]


def run_experiment(ws: Workspace, experiment_id: str, *, provider: str = "scripted", provider_options: dict | None = None,
                   concurrency: int = 8, progress: Callable[[str], None] | None = None,
                   api_key: str | None = None) -> Experiment:
    """Generate every arm (one job each, balanced over the cells) and mark the experiment running.
    Re-running resumes unfinished arms; finished ones are not generated again. `api_key`: a key typed with the
    base URL, for this run only (never stored)."""
    exp = load_experiment(ws, experiment_id)
    if exp.status == "completed":
        raise ExperimentError(f"experiment {experiment_id!r} is completed. Fix: create a new one to run again.")
    if exp.status != "running":
        exp = set_status(ws, experiment_id, "running")
    say = progress or (lambda _msg: None)
    options = dict(provider_options or {})
    for index, arm in enumerate(exp.arms):
        job_id = exp.job_id(arm.name)
        job = load_job(ws, job_id)
        if job is None:
            model = arm.model or ("scripted-1" if provider == "scripted" else "")
            create_job(ws, plan_arm(ws, exp, arm), provider=provider, model=model, seed=exp.seed + 1000 * index,
                       job_id=job_id, note=f"experiment {experiment_id}, arm {arm.name}",
                       provider_options={"seed": exp.seed + index} if provider == "scripted" else options,
                       concurrency=concurrency, temperature=arm.temperature)
            say(f"arm {arm.name}: generating")
            run_job(ws, job_id, api_key=api_key)
        elif job.status not in ("completed", "failed", "cancelled"):
            say(f"arm {arm.name}: resuming")
            resume_job(ws, job_id, api_key=api_key)
        else:
            say(f"arm {arm.name}: already generated")
    return exp
