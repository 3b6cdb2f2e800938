"""Batch jobs: planning the cells, creating a job with its items, and reading its state."""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass

import orjson

from brightrun.errors import ID_RULE, JobError, check_name, id_pattern
from brightrun.models import BatchItem, BatchJob, Cell, PromptTemplate
from brightrun.scaffolding import Scaffolding, template_rows
from brightrun.workspace import Workspace, utcnow

_JOB_ID = id_pattern(64)


@dataclass(frozen=True)
class PlannedCell:
    cell: Cell
    count: int
    start_index: int = 0
    """The sample index of the cell's first new item: new samples never repeat earlier ones."""
    template_version: str | None = None
    """Generate with this recorded version of the cell's template instead of the current one (experiments)."""


def plan_uniform(cells: list[Cell], count: int) -> list[PlannedCell]:
    """`count` conversations in every cell."""
    if count < 1:
        raise JobError(f"count per cell is {count}. Fix: ask for at least 1 conversation per cell.")
    return [PlannedCell(c, count) for c in cells]


def plan_spread(cells: list[Cell], total: int, seed: int, scaffolding: Scaffolding) -> list[PlannedCell]:
    """Exactly `total` conversations spread unevenly over `cells`: some cells deep, some thin or
    empty, edge-case arcs thinner, the way real datasets grow. Deterministic for `seed`."""
    if total < 1:
        raise JobError(f"asked for {total} conversations. Fix: ask for at least 1.")
    rng = random.Random(seed)
    weights = []
    for cell in cells:
        w = rng.lognormvariate(0, 0.9)
        if scaffolding.arcs[cell.arc_key].tier == "edge_case":
            w *= 0.45
        if rng.random() < 0.12:
            w *= 0.05  # a deliberately thin cell
        weights.append(w)
    scale = total / sum(weights)
    raw = [w * scale for w in weights]
    counts = [math.floor(r) for r in raw]
    order = sorted(range(len(cells)), key=lambda i: raw[i] - counts[i], reverse=True)
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return [PlannedCell(c, n) for c, n in zip(cells, counts, strict=True) if n > 0]


def plan_quota(ws: Workspace, cells: list[Cell], target: int) -> list[PlannedCell]:
    """What is missing for every cell to hold `target` conversations that are approved or pending:
    conversations already made, plus items still pending in jobs that are not cancelled or failed."""
    if target < 1:
        raise JobError(f"quota {target} per cell. Fix: ask for at least 1 conversation per cell.")
    have = ws.sql("""
        SELECT persona_key, arc_key, topic_key, count(*) AS n, max(sample_index) AS top FROM (
            SELECT c.persona_key, c.arc_key, c.topic_key, coalesce(i.sample_index, 0) AS sample_index
            FROM conversations c LEFT JOIN batch_items i USING (item_id)
            UNION ALL
            SELECT i.persona_key, i.arc_key, i.topic_key, i.sample_index FROM batch_items i
            JOIN batch_jobs j USING (job_id)
            WHERE i.status = 'pending' AND j.status IN ('queued', 'processing')
        ) GROUP BY ALL""")
    counts = {(r["persona_key"], r["arc_key"], r["topic_key"]): (r["n"], r["top"]) for r in have.iter_rows(named=True)}
    plan = []
    for cell in cells:
        n, top = counts.get((cell.persona_key, cell.arc_key, cell.topic_key), (0, -1))
        if n < target:
            plan.append(PlannedCell(cell, target - n, start_index=(top or 0) + 1 if n else 0))
    return plan


def require_model(provider: str, model: str | None) -> None:
    """An OpenAI-compatible server runs a model of its own: without its id, the templates' Claude model name
    would be sent to it (and priced as Claude)."""
    if provider == "openai-compatible" and not model:
        raise JobError("an OpenAI-compatible server needs its model id. Fix: pass --model NAME (in the app: the "
                       "Model field); `brightrun doctor --provider openai-compatible --base-url URL` lists the "
                       "server's models.")


def new_job_id() -> str:
    return f"job-{utcnow():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"


def item_seed(job_seed: int, item_index: int) -> int:
    return (job_seed * 1_000_003 + item_index * 7_919) % (2**31 - 1)


def load_job(ws: Workspace, job_id: str) -> BatchJob | None:
    frame = ws.sql("SELECT * FROM batch_jobs WHERE job_id = ?", [job_id])
    return BatchJob.model_validate(frame.row(0, named=True)) if frame.height else None


def create_job(
    ws: Workspace,
    plan: list[PlannedCell],
    *,
    provider: str,
    model: str,
    seed: int = 0,
    job_id: str | None = None,
    note: str = "",
    provider_options: dict | None = None,
    concurrency: int = 8,
    batch_api: bool = False,
    max_attempts: int = 3,
    temperature: float | None = None,
    max_tokens: int | None = None,
) -> BatchJob:
    """Write a queued job and one pending item per conversation to generate. `provider_options` are
    the provider's settings (base URL, timeout...), stored so the job can be resumed; never a key."""
    require_model(provider, model)
    scaffolding = ws.scaffolding
    job_id = job_id or new_job_id()
    check_name(job_id, "job id", _JOB_ID, f"1 to 64 {ID_RULE}", JobError)
    total = sum(p.count for p in plan)
    if total == 0:
        raise JobError("the plan has no conversations to generate. Fix: choose at least one cell and count.")
    now = utcnow()
    with ws.lock("jobs"):
        if load_job(ws, job_id) is not None:
            raise JobError(f"job {job_id!r} already exists. Fix: resume it with "
                           f"`brightrun generate --resume {job_id}` or choose another id.")
        _record_template_versions(ws, scaffolding, {p.cell.template_key for p in plan})
        for planned in plan:
            if planned.template_version is not None:
                template_at_version(ws, planned.cell.template_key, planned.template_version)  # recorded, or JobError
        items, index = [], 0
        for planned in plan:
            for k in range(planned.count):
                items.append(BatchItem(
                    item_id=f"{job_id}-{index:06d}", job_id=job_id, item_index=index,
                    sample_index=planned.start_index + k,
                    **planned.cell.model_dump(),
                    template_version=planned.template_version or scaffolding.versions[planned.cell.template_key],
                    updated_at=now,
                ))
                index += 1
        tiers = {scaffolding.templates[p.cell.template_key].tier for p in plan}
        job = BatchJob(
            job_id=job_id, status="queued", tier=tiers.pop() if len(tiers) == 1 else "mixed",
            provider=provider, model=model, seed=seed, total=total, created_at=now, updated_at=now, note=note,
            provider_options=orjson.dumps(provider_options or {}).decode(), concurrency=concurrency,
            batch_api=batch_api, max_attempts=max_attempts, temperature=temperature, max_tokens=max_tokens,
        )
        ws.append_models("batch_items", items)  # items first: the job row is the commit point
        ws.append_models("batch_jobs", [job])
    return job


def record_template_versions(ws: Workspace, keys: set[str] | None = None) -> dict[str, str]:
    """Record the current version of these templates (default all), so they can be used after the YAML
    changes; returns {template_key: current version}."""
    scaffolding = ws.scaffolding
    keys = set(scaffolding.templates) if keys is None else keys
    _record_template_versions(ws, scaffolding, keys)
    return {k: scaffolding.versions[k] for k in keys}


def _record_template_versions(ws: Workspace, scaffolding: Scaffolding, keys: set[str]) -> None:
    """Keep every template version a job uses, so it can be read and rerun after the YAML changes."""
    known = ws.sql("SELECT template_key, version FROM _t_template_versions")
    have = set(zip(known["template_key"].to_list(), known["version"].to_list(), strict=True))
    rows = [
        {**row, "first_used_at": utcnow()}
        for row in template_rows(scaffolding)
        if row["template_key"] in keys and (row["template_key"], row["version"]) not in have
    ]
    if rows:
        ws.append("template_versions", rows)


def _cancel_flag(ws: Workspace, job_id: str):
    return ws.root / "documents" / "cancel" / job_id


def request_cancel(ws: Workspace, job_id: str) -> None:
    """Ask the process running `job_id` to stop: no new calls, in-flight ones land."""
    from brightrun.workspace.files import atomic_write_bytes

    if load_job(ws, job_id) is None:
        raise JobError(f"no job {job_id!r}. Fix: list jobs with `brightrun jobs list`.")
    atomic_write_bytes(_cancel_flag(ws, job_id), utcnow().isoformat().encode())


def cancel_requested(ws: Workspace, job_id: str) -> bool:
    return _cancel_flag(ws, job_id).exists()


def clear_cancel(ws: Workspace, job_id: str) -> None:
    _cancel_flag(ws, job_id).unlink(missing_ok=True)


def template_at_version(ws: Workspace, key: str, version: str) -> PromptTemplate:
    """The exact template version an item was planned with."""
    scaffolding = ws.scaffolding
    if key in scaffolding.templates and scaffolding.versions[key] == version:
        return scaffolding.templates[key]
    frame = ws.sql("SELECT definition FROM _t_template_versions WHERE template_key = ? AND version = ?",
                   [key, version])
    if not frame.height:
        raise JobError(f"template {key!r} version {version} is not recorded in this workspace. "
                       f"Fix: restore the template's YAML as it was, or create a new job.")
    return PromptTemplate.model_validate(orjson.loads(frame.item(0, 0)))


def make_plan(ws: Workspace, personas: list[str] | None = None, arcs: list[str] | None = None,
              topics: list[str] | None = None, *, count: int | None = None,
              quota: int | None = None) -> list[PlannedCell]:
    """The plan for the chosen cells (empty choice: all): `count` per cell, or fill each to `quota`."""
    cells = ws.scaffolding.cells(personas, arcs, topics)
    if quota is not None:
        return plan_quota(ws, cells, quota)
    return plan_uniform(cells, count if count is not None else 1)
