"""The pre-launch estimate: tokens and cost of a plan, before anything is paid."""

from __future__ import annotations

from dataclasses import dataclass

from brightrun.generation.jobs import PlannedCell, item_seed
from brightrun.generation.requests import OUTPUT_SCHEMA, build_request
from brightrun.models import BatchItem
from brightrun.providers.pricing import price_table
from brightrun.workspace import Workspace, utcnow

CHARS_PER_TOKEN = 4.0
"""The offline token estimate: about four characters of English per token."""
FALLBACK_TOKENS_PER_TURN = 110


@dataclass(frozen=True)
class Estimate:
    items: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    priced: bool
    basis: str
    """How the output was estimated: from recent calls, or from the templates' turn counts."""

    @property
    def summary(self) -> str:
        price = f"${self.cost_usd:,.2f}" if self.priced else "unknown (model not in the price table)"
        return (f"{self.items:,} conversation(s), about {self.input_tokens:,} input and {self.output_tokens:,} "
                f"output tokens, estimated cost {price} ({self.basis})")


def estimate_plan(ws: Workspace, plan: list[PlannedCell], *, provider: str, model: str | None,
                  batch: bool = False, seed: int = 0) -> Estimate:
    """Input tokens from the rendered prompts themselves; output tokens from the recent average of
    successful calls of the same template (and model), else from the templates' turn counts. Computed once
    per plan and data version (`Workspace.memo`: the ledger, the scaffolding, the workspace's prices.yaml):
    the Generate page asks again on every rerun, and rendering a request per cell takes ~0.15 s for 320."""
    prices = ws.root / "prices.yaml"
    key = ("estimate_plan", provider, model, batch, seed, prices.stat().st_mtime_ns if prices.exists() else None,
           tuple((tuple(p.cell.model_dump().values()), p.count) for p in plan))
    return ws.memo(key, lambda: _estimate(ws, plan, provider=provider, model=model, batch=batch, seed=seed),
                   tables=["llm_calls"])


def _estimate(ws: Workspace, plan: list[PlannedCell], *, provider: str, model: str | None, batch: bool,
              seed: int) -> Estimate:
    templates = ws.scaffolding.templates
    # The mean over each template's 200 latest calls: `max_by(..., 200)` keeps a top 200 per template as it
    # scans, where a window numbering the calls sorted every call in the ledger first.
    recent = ws.sql("""
        SELECT template_key, list_avg(max_by(output_tokens, created_at, 200)) AS out
        FROM llm_calls WHERE status = 'ok' AND NOT cache_hit AND provider = ? AND (? IS NULL OR model = ?)
        GROUP BY 1""", [provider, model, model])
    average = dict(zip(recent["template_key"].to_list(), recent["out"].to_list(), strict=True))
    schema_tokens = len(str(OUTPUT_SCHEMA)) / CHARS_PER_TOKEN
    items = input_tokens = output_tokens = 0
    cost, priced, used_history = 0.0, True, False
    table = price_table(ws.root)
    now = utcnow()
    for planned in plan:
        if planned.count == 0:
            continue
        cell = planned.cell
        template = templates[cell.template_key]
        probe = BatchItem(item_id="estimate", job_id="estimate", item_index=0, **cell.model_dump(),
                          template_version=ws.scaffolding.versions[cell.template_key], updated_at=now)
        request = build_request(ws, probe, item_seed(seed, 0), 1, model)
        tokens_in = (len(request.system) + len(request.prompt)) / CHARS_PER_TOKEN + schema_tokens
        if cell.template_key in average:
            tokens_out, used_history = average[cell.template_key], True
        else:
            tokens_out = (template.turns.min + template.turns.max) / 2 * FALLBACK_TOKENS_PER_TURN
        n = planned.count
        items += n
        input_tokens += int(tokens_in * n)
        output_tokens += int(tokens_out * n)
        chosen = model or template.model_settings.model
        if provider == "scripted":
            continue
        if not table.knows(chosen):
            priced = False
        cost += table.cost(chosen, int(tokens_in * n), int(tokens_out * n), batch=batch)
    basis = "output from recent calls" if used_history else "output from the templates' turn counts"
    return Estimate(items, input_tokens, output_tokens, round(cost, 4), priced, basis)
