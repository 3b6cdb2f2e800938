"""The demo workspace: realistic scripted data over the whole scaffold grid.

May import: applogs, enrichment, errors, generation, models, providers, workspace.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from brightrun.enrichment import EnrichResult, enrich
from brightrun.errors import BrightRunError
from brightrun.generation import JobProgress, create_job, plan_spread, run_job
from brightrun.models import BatchJob
from brightrun.providers import ScriptedProvider
from brightrun.workspace import Workspace

if TYPE_CHECKING:
    from brightrun.applogs import ImportResult

DEFAULT_CONVERSATIONS = 600


@dataclass
class DemoResult:
    jobs: list[BatchJob]
    enrichment: EnrichResult
    app_log: ImportResult | None = None
    """The imported log of the life-vision coaching app (None with app_log=False)."""


def build_demo(
    ws: Workspace,
    conversations: int = DEFAULT_CONVERSATIONS,
    *,
    seed: int = 42,
    progress: Callable[[JobProgress], None] | None = None,
    enrich_progress: Callable[[int, int], None] | None = None,
    app_log: bool = True,
) -> DemoResult:
    """Generate exactly `conversations` scripted conversations spread unevenly over every cell (some
    thin), in two jobs (template tier, then edge cases), with a few recovered faults, then enrich.
    With `app_log`, also import a life-vision coaching app's log (2,000 calls at the default size,
    proportionally fewer for a smaller demo; see brightrun.applogs.demo_log)."""
    if ws.scalar("SELECT count(*) FROM conversations"):
        raise BrightRunError(f"{ws.root} already holds conversations. Fix: use an empty folder for the demo, "
                             f"or `brightrun generate` to add to this one.")
    scaffolding = ws.scaffolding
    plan = plan_spread(scaffolding.cells(), conversations, seed, scaffolding)
    jobs = []
    for index, tier in enumerate(("template", "edge_case")):
        part = [p for p in plan if scaffolding.arcs[p.cell.arc_key].tier == tier]
        if not part:
            continue
        job = create_job(ws, part, provider="scripted", model=ScriptedProvider.default_model, seed=seed + index,
                         job_id=f"demo-{tier.replace('_', '-')}", note=f"demo workspace, {tier} tier")
        provider = ScriptedProvider(failure_rate=0.03, seed=seed)
        jobs.append(run_job(ws, job.job_id, provider, progress=progress))
    result = DemoResult(jobs=jobs, enrichment=enrich(ws, progress=enrich_progress))
    if app_log:
        from brightrun.applogs.demo_log import demo_log_rows, import_demo_log

        result.app_log = import_demo_log(ws, demo_log_rows(conversations), seed=seed)
    return result
