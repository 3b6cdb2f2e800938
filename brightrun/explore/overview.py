"""What the Overview page and `brightrun status` show: counts, spend, coverage, recent jobs."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from brightrun.errors import BrightRunError
from brightrun.workspace import Workspace

# Dimension name -> (column in `conversations`, scaffolding collection for labels and full axes).
DIMENSIONS = {
    "persona": "persona_key",
    "arc": "arc_key",
    "topic": "topic_key",
    "template": "template_key",
    "tier": "tier",
}


@dataclass(frozen=True)
class Totals:
    conversations: int
    enriched: int
    enrichment_failed: int
    training_pairs: int
    jobs: int
    jobs_running: int
    llm_calls: int
    failed_calls: int
    failed_generations: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    scripted_share: float
    generated_calls: int
    """Calls BrightRun made (generation, judge, ...); the rest of llm_calls were imported from app logs."""
    generated_tokens: int
    generated_cost_usd: float
    imported_calls: int
    imported_tokens: int
    imported_cost_usd: float


def totals(ws: Workspace) -> Totals:
    """Counts, tokens and spend, in all and apart for the calls BrightRun made and those imported from app logs;
    each view is scanned once, once per data version (`Workspace.memo`: the sidebar and the page share it)."""
    return ws.memo("totals", lambda: _totals(ws))


# The queries below read the conversations table itself (_t_conversations) where they need none of the columns the
# `conversations` view joins in (enrichment status, quality): the view's two joins over every conversation were
# most of their time (at 200,905 conversations, totals 132 -> 61 ms; docs/benchmarks.md). The enrichment counts
# come from the status table alone: only enrichment writes it, one row per conversation it took up.
CONVERSATIONS = "_t_conversations"


def _totals(ws: Workspace) -> Totals:
    # A compacted table's row count is in its Parquet footers: the training pairs, the biggest table, are not
    # scanned then (at 1M conversations, 5M pairs: ~110 ms of the query's 269 ms; docs/benchmarks.md).
    pairs = ws.store.row_count("training_pairs")
    pairs_sql = f"SELECT {pairs}::BIGINT AS training_pairs" if pairs is not None else \
        "SELECT count(*) AS training_pairs FROM training_pairs"
    row = ws.sql(f"""
        SELECT c.*, s.*, p.*, j.*, l.*, f.*
        FROM (SELECT count(*) AS conversations, coalesce(avg(is_scripted::INT), 0) AS scripted_share
              FROM {CONVERSATIONS}) c,
             (SELECT coalesce(count_if(status = 'completed'), 0)::BIGINT AS enriched,
                     coalesce(count_if(status = 'failed'), 0)::BIGINT AS enrichment_failed
              FROM _t_conversation_status) s,
             ({pairs_sql}) p,
             (SELECT count(*) AS jobs, coalesce(count_if(status IN ('queued', 'processing')), 0)::BIGINT AS jobs_running
              FROM batch_jobs) j,
             (SELECT count(*) AS llm_calls, coalesce(count_if(status = 'error'), 0)::BIGINT AS failed_calls,
                     coalesce(sum(input_tokens), 0)::BIGINT AS input_tokens,
                     coalesce(sum(output_tokens), 0)::BIGINT AS output_tokens,
                     coalesce(sum(cost_usd), 0) AS cost_usd,
                     coalesce(count_if(import_id IS NULL), 0)::BIGINT AS generated_calls,
                     coalesce(sum(input_tokens + output_tokens) FILTER (import_id IS NULL), 0)::BIGINT
                         AS generated_tokens,
                     coalesce(sum(cost_usd) FILTER (import_id IS NULL), 0) AS generated_cost_usd,
                     coalesce(count_if(import_id IS NOT NULL), 0)::BIGINT AS imported_calls,
                     coalesce(sum(input_tokens + output_tokens) FILTER (import_id IS NOT NULL), 0)::BIGINT
                         AS imported_tokens,
                     coalesce(sum(cost_usd) FILTER (import_id IS NOT NULL), 0) AS imported_cost_usd
              FROM llm_calls) l,
             (SELECT count(*) AS failed_generations FROM failed_generations) f
    """).row(0, named=True)
    return Totals(**row)


def dimension_labels(ws: Workspace, dimension: str) -> dict[str, str]:
    """Display names of a dimension's keys: short persona names, arc, topic and template names, tiers."""
    s = ws.scaffolding
    if dimension == "persona":
        return {k: v.name.split(" - ")[0] for k, v in s.personas.items()}
    if dimension == "arc":
        return {k: v.name for k, v in s.arcs.items()}
    if dimension == "topic":
        return {k: v.name for k, v in s.topics.items()}
    if dimension == "template":
        return {k: v.name for k, v in s.templates.items()}
    return {"template": "template", "scenario": "scenario", "edge_case": "edge case"}


def coverage(ws: Workspace, rows: str = "persona", columns: str = "arc",
             enriched_only: bool = False) -> pl.DataFrame:
    """A rows x columns count matrix over every scaffold value (empty cells are 0). The first column
    is the row label; the other columns are the column labels in scaffolding order."""
    for dim in (rows, columns):
        if dim not in DIMENSIONS:
            raise BrightRunError(f"unknown dimension {dim!r}. Fix: use one of {', '.join(DIMENSIONS)}.")
    if rows == columns:
        raise BrightRunError("rows and columns are the same dimension. Fix: choose two different ones.")
    r, c = DIMENSIONS[rows], DIMENSIONS[columns]
    where = ("WHERE conversation_id IN (SELECT conversation_id FROM _t_conversation_status WHERE status = 'completed')"
             if enriched_only else "")
    counts = ws.sql(f"SELECT {r} AS r, {c} AS c, count(*) AS n FROM {CONVERSATIONS} {where} GROUP BY 1, 2")
    row_labels, col_labels = dimension_labels(ws, rows), dimension_labels(ws, columns)
    found = {(a, b): n for a, b, n in counts.iter_rows()}
    extra_rows = sorted({a for a, _ in found} - set(row_labels))
    extra_cols = sorted({b for _, b in found} - set(col_labels))
    row_keys, col_keys = [*row_labels, *extra_rows], [*col_labels, *extra_cols]
    data = {rows: [row_labels.get(k, k) for k in row_keys]}
    for ck in col_keys:
        data[col_labels.get(ck, ck)] = [found.get((rk, ck), 0) for rk in row_keys]
    return pl.DataFrame(data)


def recent_jobs(ws: Workspace, limit: int = 10) -> pl.DataFrame:
    return ws.sql("""
        SELECT job_id, status, tier, provider, model, total, done, failed,
               input_tokens + output_tokens AS tokens, cost_usd, created_at, finished_at, note
        FROM batch_jobs ORDER BY created_at DESC LIMIT ?""", [limit])


def job_enrichment(ws: Workspace, job_id: str) -> dict[str, int]:
    """How far a job's conversations are enriched: conversations, completed, failed. Counted once per data
    version of the two tables (`Workspace.memo`): the Generate page shows it on every load and, while a job
    runs, every second, and for a job of a million conversations the count takes about 240 ms."""
    return dict(ws.memo(("job_enrichment", job_id), lambda: tuple(_job_enrichment(ws, job_id).items()),
                        tables=["conversations", "conversation_status"]))


def _job_enrichment(ws: Workspace, job_id: str) -> dict[str, int]:
    row = ws.sql(f"""
        SELECT count(*), coalesce(count_if(s.status = 'completed'), 0)::BIGINT,
               coalesce(count_if(s.status = 'failed'), 0)::BIGINT
        FROM {CONVERSATIONS} c LEFT JOIN _t_conversation_status s USING (conversation_id)
        WHERE c.job_id = ?""", [job_id]).row(0)
    return dict(zip(("conversations", "completed", "failed"), (int(v) for v in row), strict=True))


def by_dimension(ws: Workspace, dimension: str) -> pl.DataFrame:
    """Conversations, training pairs, mean turns and tokens per value of one dimension."""
    if dimension not in DIMENSIONS:
        raise BrightRunError(f"unknown dimension {dimension!r}. Fix: use one of {', '.join(DIMENSIONS)}.")
    col = DIMENSIONS[dimension]
    # A conversation carries its producing call's tokens and cost; one written before it did has NULL there,
    # and only then is llm_calls joined in, by call_id (at 1M conversations, 345 ms with the join for every
    # conversation; docs/benchmarks.md). The check reads one column and is answered mostly from its statistics.
    legacy = ws.sql(f"SELECT count(*) AS n FROM {CONVERSATIONS} WHERE cost_usd IS NULL").item()
    if legacy:
        source = f"""
            SELECT c.{col} AS key, c.turn_count, coalesce(c.input_tokens + c.output_tokens,
                   l.input_tokens + l.output_tokens) AS tokens, coalesce(c.cost_usd, l.cost_usd) AS cost_usd
            FROM {CONVERSATIONS} c LEFT JOIN llm_calls l ON c.cost_usd IS NULL AND l.call_id = c.call_id"""
    else:
        source = f"SELECT {col} AS key, turn_count, input_tokens + output_tokens AS tokens, cost_usd FROM {CONVERSATIONS}"
    frame = ws.sql(f"""
        SELECT key, count(*) AS conversations, avg(turn_count) AS mean_turns,
               sum(tokens)::BIGINT AS tokens, sum(cost_usd) AS cost_usd
        FROM ({source}) GROUP BY 1 ORDER BY 2 DESC""")
    labels = dimension_labels(ws, dimension)
    return frame.with_columns(pl.col("key").replace_strict(labels, default=pl.col("key")).alias(dimension))
