"""Benchmark: build, enrich, compact and query a large scripted workspace on one core.

The budget (from the design): on one core, a 100,000-conversation workspace is built, enriched and
queried without running out of memory (under 4 GiB resident); dashboard (overview) queries answer in
under 200 ms at that size.

Every figure is compared with a baseline measured in the same run, and the ratio is printed:

  build      the scripted provider alone (`ScriptedProvider.complete` in a loop on prebuilt requests,
             no storage) on a sample of the same items; ratio = provider rate / build rate, i.e. how
             much slower the whole pipeline (requests, retries, records, Parquet writes) is
  queries    the same SQL run by a plain fresh DuckDB connection (threads=1) straight on the
             compacted base Parquet files; ratio = ours / baseline

Run:  .venv/bin/python bench/bench_workspace.py --conversations 100000 [--json] [--keep]
"""

from __future__ import annotations

import os

# Pin to one core before polars, duckdb or pyarrow start their thread pools.
CPU = int(os.environ.get("BRIGHTRUN_BENCH_CPU", "0"))
os.sched_setaffinity(0, {CPU})

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402
import polars as pl  # noqa: E402
from _common import MEMORY_BUDGET_KIB, SEED, disk_bytes, mib, parquet_files, peak_rss_kib, rss_now_kib  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from brightrun.enrichment.pipeline import enrich  # noqa: E402
from brightrun.explore import overview  # noqa: E402
from brightrun.explore.browse import ConversationFilter, list_conversations  # noqa: E402
from brightrun.generation import build_request, create_job, plan_spread, run_job  # noqa: E402
from brightrun.generation.jobs import item_seed  # noqa: E402
from brightrun.models import BatchItem  # noqa: E402
from brightrun.providers import ScriptedProvider  # noqa: E402
from brightrun.workspace import Workspace  # noqa: E402
from brightrun.workspace.tables import TABLES  # noqa: E402

QUERY_BUDGET_MS = 200.0
console = Console(width=None if sys.stdout.isatty() else 150)


# -- measuring ----------------------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    seconds: float
    items: int | None = None
    rate: float | None = None
    peak_rss_kib: int = 0
    rss_kib: int = 0
    disk_bytes: int = 0
    parquet_files: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def finish_stage(ws: Workspace, name: str, seconds: float, items: int | None = None, **extra: Any) -> Stage:
    stage = Stage(name, seconds, items, (items / seconds) if items and seconds > 0 else None,
                  peak_rss_kib(), rss_now_kib(), disk_bytes(ws.root), parquet_files(ws.root), extra)
    rate = f", {stage.rate:,.0f}/s" if stage.rate else ""
    console.print(f"[bold]{name}[/]: {seconds:,.2f} s{rate}; peak RSS {mib(stage.peak_rss_kib):,.0f} MiB, "
                  f"RSS now {mib(stage.rss_kib):,.0f} MiB; disk {mib(stage.disk_bytes, from_bytes=True):,.1f} MiB "
                  f"in {stage.parquet_files} Parquet files" + (f"; {extra}" if extra else ""))
    return stage


def timed(fn: Callable[[], Any], runs: int, warmups: int = 1) -> tuple[float, list[float], Any]:
    """(first call ms, ms of each timed run, last result) for `warmups` untimed calls then `runs`."""
    first = None
    result = None
    for _ in range(warmups):
        start = time.perf_counter()
        result = fn()
        if first is None:
            first = (time.perf_counter() - start) * 1000
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - start) * 1000)
    return (first if first is not None else samples[0]), samples, result


# -- build ----------------------------------------------------------------------------------------


def provider_baseline(ws: Workspace, job_id: str, job_seed: int, total: int, sample: int) -> dict[str, Any]:
    """The scripted provider alone on an evenly spaced sample of the job's items, without storage."""
    step = max(1, total // sample)
    rows = ws.sql("SELECT * FROM batch_items WHERE job_id = ? AND item_index % ? = 0 ORDER BY item_index LIMIT ?",
                  [job_id, step, sample])
    items = [BatchItem.model_validate(r) for r in rows.iter_rows(named=True)]
    provider = ScriptedProvider()

    start = time.perf_counter()
    requests = [build_request(ws, item, item_seed(job_seed, item.item_index), 1, None) for item in items]
    request_seconds = time.perf_counter() - start

    async def complete_all() -> int:
        size = 0
        for request in requests:
            size += len((await provider.complete(request)).text)
        return size

    start = time.perf_counter()
    output_chars = asyncio.run(complete_all())
    provider_seconds = time.perf_counter() - start
    n = len(items)
    return {
        "sample": n,
        "provider_seconds": provider_seconds,
        "provider_rate": n / provider_seconds,
        "request_seconds": request_seconds,
        "request_and_provider_rate": n / (request_seconds + provider_seconds),
        "mean_output_chars": output_chars / n,
    }


# -- queries ------------------------------------------------------------------------------------

# The SQL the package runs (brightrun/explore/overview.py, brightrun/explore/browse.py), with each view written as a
# placeholder so that the baseline can read the compacted base files directly.
TOTALS_SQL = """
    SELECT
      (SELECT count(*) FROM {conversations}) AS conversations,
      (SELECT count(*) FROM {conversations} WHERE enrichment_status = 'completed') AS enriched,
      (SELECT count(*) FROM {conversations} WHERE enrichment_status = 'failed') AS enrichment_failed,
      (SELECT count(*) FROM {training_pairs}) AS training_pairs,
      (SELECT count(*) FROM {batch_jobs}) AS jobs,
      (SELECT count(*) FROM {batch_jobs} WHERE status IN ('queued', 'processing')) AS jobs_running,
      (SELECT count(*) FROM {llm_calls}) AS llm_calls,
      (SELECT count(*) FROM {llm_calls} WHERE status = 'error') AS failed_calls,
      (SELECT count(*) FROM {failed_generations}) AS failed_generations,
      (SELECT coalesce(sum(input_tokens), 0)::BIGINT FROM {llm_calls}) AS input_tokens,
      (SELECT coalesce(sum(output_tokens), 0)::BIGINT FROM {llm_calls}) AS output_tokens,
      (SELECT coalesce(sum(cost_usd), 0) FROM {llm_calls}) AS cost_usd,
      (SELECT coalesce(avg(is_scripted::INT), 0) FROM {conversations}) AS scripted_share
"""
COVERAGE_SQL = "SELECT {r} AS r, {c} AS c, count(*) AS n FROM {conversations} GROUP BY 1, 2"
RECENT_JOBS_SQL = """
    SELECT job_id, status, tier, provider, model, total, done, failed,
           input_tokens + output_tokens AS tokens, cost_usd, created_at, finished_at, note
    FROM {batch_jobs} ORDER BY created_at DESC LIMIT ?"""
BY_DIMENSION_SQL = """
    SELECT c.arc_key AS key, count(*) AS conversations, avg(c.turn_count) AS mean_turns,
           sum(l.input_tokens + l.output_tokens)::BIGINT AS tokens, sum(l.cost_usd) AS cost_usd
    FROM {conversations} c LEFT JOIN {llm_calls} l ON l.call_id = c.call_id
    GROUP BY 1 ORDER BY 2 DESC"""
LIST_SQL = """
    SELECT c.conversation_id, c.title, c.persona_key, c.arc_key, c.topic_key, c.template_key,
           c.template_version, c.tier, c.turn_count, c.enrichment_status, c.provider, c.model,
           c.created_at
    FROM {conversations} c WHERE c.persona_key IN (SELECT unnest(?)) AND c.tier IN (SELECT unnest(?))
    ORDER BY c.created_at DESC, c.conversation_id LIMIT ?"""
PAIRS_SQL = ("SELECT persona_key, arc_key, count(*) AS n FROM {training_pairs} "
             "GROUP BY persona_key, arc_key ORDER BY persona_key, arc_key")

VIEWS = {name: name for name in ("conversations", "training_pairs", "batch_jobs", "llm_calls",
                                  "failed_generations")}


@dataclass
class Query:
    name: str
    ours: Callable[[], Any]
    sql: str
    params: list | None
    check_ours: Callable[[Any], Any]
    check_base: Callable[[pl.DataFrame], Any]


def queries(ws: Workspace) -> list[Query]:
    persona = next(iter(ws.scaffolding.personas))
    tier = "template"
    filt = ConversationFilter(personas=[persona], tiers=[tier])

    def pairs() -> pl.DataFrame:
        return ws.sql(PAIRS_SQL.format(**VIEWS))

    def cov_sum(frame: pl.DataFrame) -> int:
        return int(frame.drop(frame.columns[0]).sum_horizontal().sum())

    return [
        # overview.totals keeps its result per data version (Workspace.memo): the memo is emptied before each
        # run so that the query is what is timed, as on the first load after a change
        Query("totals", lambda: (ws._memo.clear(), overview.totals(ws))[1], TOTALS_SQL, None,
              lambda t: (t.conversations, t.enriched, t.training_pairs, t.llm_calls, t.input_tokens),
              lambda f: tuple(f.row(0, named=True)[k] for k in
                              ("conversations", "enriched", "training_pairs", "llm_calls", "input_tokens"))),
        Query("coverage persona x arc", lambda: overview.coverage(ws, "persona", "arc"),
              COVERAGE_SQL.replace("{r}", "persona_key").replace("{c}", "arc_key"), None,
              cov_sum, lambda f: int(f["n"].sum())),
        Query("coverage persona x topic", lambda: overview.coverage(ws, "persona", "topic"),
              COVERAGE_SQL.replace("{r}", "persona_key").replace("{c}", "topic_key"), None,
              cov_sum, lambda f: int(f["n"].sum())),
        Query("recent_jobs", lambda: overview.recent_jobs(ws), RECENT_JOBS_SQL, [10],
              lambda f: f["job_id"].to_list(), lambda f: f["job_id"].to_list()),
        Query("by_dimension arc", lambda: overview.by_dimension(ws, "arc"), BY_DIMENSION_SQL, None,
              lambda f: (int(f["conversations"].sum()), int(f["tokens"].sum())),
              lambda f: (int(f["conversations"].sum()), int(f["tokens"].sum()))),
        Query(f"list_conversations persona={persona} tier={tier}", lambda: list_conversations(ws, filt),
              LIST_SQL, [[persona], [tier], filt.limit],
              lambda f: f["conversation_id"].to_list(), lambda f: f["conversation_id"].to_list()),
        Query("training_pairs by persona x arc", pairs, PAIRS_SQL, None,
              lambda f: f.rows(), lambda f: f.rows()),
    ]


def baseline_connection(ws: Workspace) -> tuple[duckdb.DuckDBPyConnection, dict[str, str]]:
    """A plain DuckDB connection and, per view, a relation reading the compacted base files."""
    con = duckdb.connect()
    con.execute("SET threads = 1")

    def source(table: str) -> str:
        files = ws.table_files(table)
        if files.base and files.deltas:
            raise SystemExit(f"table {table} still has {len(files.deltas)} parts after compaction")
        paths = files.base or files.deltas
        if len(paths) > 1 and not files.base:
            raise SystemExit(f"table {table} has {len(paths)} uncompacted parts")
        if not paths:  # an empty table has no file at all
            con.register(f"empty_{table}", pl.DataFrame(schema=TABLES[table].schema).to_arrow())
            return f"empty_{table}"
        listing = ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths)
        return f"read_parquet([{listing}])"

    relations = {t: source(t) for t in ("training_pairs", "batch_jobs", "llm_calls", "failed_generations")}
    relations["conversations"] = (
        "(SELECT c.*, coalesce(s.status, 'not_started') AS enrichment_status, s.enrichment_version, "
        f"s.updated_at AS enrichment_updated_at FROM {source('conversations')} c "
        f"LEFT JOIN {source('conversation_status')} s USING (conversation_id))"
    )
    return con, relations


def run_queries(ws: Workspace, runs: int, *, with_baseline: bool) -> list[dict[str, Any]]:
    results = []
    con, relations = baseline_connection(ws) if with_baseline else (None, {})
    for q in queries(ws):
        first, samples, ours = timed(q.ours, runs)
        row: dict[str, Any] = {"query": q.name, "first_ms": first, "ms": statistics.median(samples),
                               "max_ms": max(samples), "runs": runs}
        if con is not None:
            sql = q.sql.format(**relations)
            b_first, b_samples, base = timed(lambda sql=sql, q=q: con.sql(sql, params=q.params).pl(), runs)
            row |= {"baseline_ms": statistics.median(b_samples), "baseline_first_ms": b_first}
            row["ratio"] = row["ms"] / row["baseline_ms"]
            ok = q.check_ours(ours) == q.check_base(base)
            row["same_result"] = ok
            if not ok:
                console.print(f"[red]result mismatch[/] for {q.name}: ours {q.check_ours(ours)!r} "
                              f"vs baseline {q.check_base(base)!r}")
        row["under_budget"] = row["ms"] < QUERY_BUDGET_MS
        results.append(row)
        base_txt = (f", baseline {row['baseline_ms']:.1f} ms, ratio {row['ratio']:.2f}x"
                    if "baseline_ms" in row else "")
        console.print(f"  {q.name}: {row['ms']:.1f} ms median (first {first:.1f}, max {row['max_ms']:.1f})"
                      f"{base_txt}  {'OK' if row['under_budget'] else 'OVER 200 ms'}")
    if con is not None:
        con.close()
    return results


# -- compaction ---------------------------------------------------------------------------------


def compact(ws: Workspace, fallback_memory: str) -> dict[str, Any]:
    """`ws.compact()` as shipped, timed per table. If a table fails (e.g. out of memory), the error is
    recorded and every remaining table is compacted on its own, first as shipped, then (if that fails
    too and `fallback_memory` is set) with that DuckDB memory limit, so that the compacted queries can
    still be measured and every table's behaviour under the shipped settings is known."""
    shipped = "default (1GB)"
    tables: dict[str, dict[str, Any]] = {}
    errors: list[dict[str, Any]] = []
    last = time.perf_counter()

    def progress(table: str, absorbed: int) -> None:
        nonlocal last
        now = time.perf_counter()
        tables[table] = {"absorbed": absorbed, "seconds": now - last, "peak_rss_kib": peak_rss_kib(),
                         "memory_limit": shipped}
        console.print(f"  compacted {table}: {absorbed} parts in {now - last:.2f} s")
        last = now

    def failure(table: str, limit: str, seconds: float, exc: Exception) -> None:
        errors.append({"table": table, "memory_limit": limit, "seconds": seconds, "peak_rss_kib": peak_rss_kib(),
                       "error": f"{type(exc).__name__}: {exc}".split("\n")[0]})
        console.print(f"[red]  compacting {table} with memory limit {limit} failed after {seconds:.1f} s:[/] "
                      f"{errors[-1]['error']}")

    try:
        ws.compact(progress, publish=False)  # the Delta copies are timed on their own (stage "publish")
        return {"tables": tables, "errors": errors, "complete": True, "fallback_memory": None}
    except Exception as exc:  # noqa: BLE001 - the failure is the measurement
        failure(next(t for t in TABLES if t not in tables), shipped, time.perf_counter() - last, exc)
    for table in [t for t in TABLES if t not in tables]:
        attempts = [shipped] if table != errors[0]["table"] else []
        attempts += [fallback_memory] if fallback_memory else []
        for limit in attempts:
            start = time.perf_counter()
            try:
                absorbed = (ws.store.compact(table) if limit == shipped
                            else ws.store.compact(table, memory_limit=limit))
            except Exception as exc:  # noqa: BLE001
                failure(table, limit, time.perf_counter() - start, exc)
                continue
            tables[table] = {"absorbed": absorbed, "seconds": time.perf_counter() - start,
                             "peak_rss_kib": peak_rss_kib(), "memory_limit": limit}
            console.print(f"  compacted {table} (memory limit {limit}): {absorbed} parts in "
                          f"{tables[table]['seconds']:.2f} s, peak RSS {mib(peak_rss_kib()):,.0f} MiB")
            break
    return {"tables": tables, "errors": errors, "complete": len(tables) == len(TABLES),
            "fallback_memory": fallback_memory}


def budgets_of(summary: dict[str, Any], root: Path) -> dict[str, Any]:
    budgets: dict[str, Any] = {"peak_rss_kib": peak_rss_kib(), "memory_met": peak_rss_kib() < MEMORY_BUDGET_KIB,
                               "disk_bytes": disk_bytes(root),
                               "compaction_met": not summary.get("compaction", {}).get("errors")}
    if summary.get("queries"):
        slowest = max(summary["queries"], key=lambda r: r["ms"])
        budgets |= {"queries_met": all(r["under_budget"] for r in summary["queries"]),
                    "slowest_query": slowest["query"], "slowest_ms": slowest["ms"]}
    else:
        budgets |= {"queries_met": False, "slowest_query": "(not measured)", "slowest_ms": float("nan")}
    if summary.get("queries_before_compaction"):
        slow = max(summary["queries_before_compaction"], key=lambda r: r["ms"])
        budgets |= {"queries_before_compaction_met": all(r["under_budget"]
                                                         for r in summary["queries_before_compaction"]),
                    "slowest_before_compaction_query": slow["query"],
                    "slowest_before_compaction_ms": slow["ms"]}
    return budgets


# -- report -------------------------------------------------------------------------------------


def report(summary: dict[str, Any]) -> None:
    stages = {s["name"]: s for s in summary["stages"]}
    gen, base = stages["build"], summary["generation_baseline"]

    t = Table(title=f"BrightRun workspace benchmark: {summary['conversations']:,} conversations, "
                    f"pinned to CPU {summary['cpu']}", show_lines=False)
    for col in ("stage", "seconds", "rate /s", "baseline /s", "ratio", "peak RSS MiB", "disk MiB", "files"):
        t.add_column(col, justify="left" if col == "stage" else "right")

    def stage_row(name: str, label: str, baseline: str = "", ratio: str = "") -> None:
        s = stages[name]
        t.add_row(label, f"{s['seconds']:,.2f}", f"{s['rate']:,.0f}" if s["rate"] else "", baseline, ratio,
                  f"{mib(s['peak_rss_kib']):,.0f}", f"{mib(s['disk_bytes'], from_bytes=True):,.1f}",
                  str(s["parquet_files"]))

    t.add_row("provider alone (sample)", f"{base['provider_seconds']:,.2f}", f"{base['provider_rate']:,.0f}",
              "", "", "", "", "")
    t.add_row("requests + provider (sample)", f"{base['request_seconds'] + base['provider_seconds']:,.2f}",
              f"{base['request_and_provider_rate']:,.0f}", "", "", "", "", "")
    stage_row("create_job", "create_job (plan + items)")
    stage_row("build", "build (create_job + run_job)", f"{base['provider_rate']:,.0f}",
              f"{base['provider_rate'] / gen['rate']:.1f}x slower")
    stage_row("enrich", f"enrich ({stages['enrich']['extra']['pairs']:,} pairs)")
    if "queries_before_compaction" in stages:
        stage_row("queries_before_compaction", "queries before compaction")
    stage_row("compact", "compact" + (" (FAILED, see below)" if summary["compaction"]["errors"] else ""))
    if "publish" in stages:
        stage_row("publish", "publish (Delta copies)")
    if "queries" in stages:
        stage_row("queries", "queries (compacted)")
    console.print(t)

    c = Table(title="Compaction per table")
    for col in ("table", "parts absorbed", "seconds", "memory limit", "peak RSS MiB", "result"):
        c.add_column(col, justify="left" if col in ("table", "result") else "right")
    for name in TABLES:
        for err in (e for e in summary["compaction"]["errors"] if e["table"] == name):
            c.add_row(name, "", f"{err['seconds']:.2f}", err["memory_limit"], f"{mib(err['peak_rss_kib']):,.0f}",
                      f"[red]{err['error'][:100]}[/]")
        if name in summary["compaction"]["tables"]:
            row = summary["compaction"]["tables"][name]
            c.add_row(name, str(row["absorbed"]), f"{row['seconds']:.2f}", row["memory_limit"],
                      f"{mib(row['peak_rss_kib']):,.0f}", "ok")
    console.print(c)

    q = Table(title=f"Dashboard queries: median of {summary['query_runs']} runs after 1 warm-up "
                    f"(budget {QUERY_BUDGET_MS:.0f} ms); before compaction: median of 3")
    for col in ("query", "ours ms", "first ms", "max ms", "baseline ms", "ratio", "same", "< 200 ms",
                "before compaction ms"):
        q.add_column(col, justify="left" if col == "query" else "right")
    after = {r["query"]: r for r in summary.get("queries", [])}
    before = {r["query"]: r for r in summary.get("queries_before_compaction", [])}
    for name in dict.fromkeys([*after, *before]):
        r, b = after.get(name), before.get(name)
        cells = ([f"{r['ms']:.1f}", f"{r['first_ms']:.1f}", f"{r['max_ms']:.1f}", f"{r['baseline_ms']:.1f}",
                  f"{r['ratio']:.2f}x", "yes" if r["same_result"] else "[red]NO[/]",
                  "[green]yes[/]" if r["under_budget"] else "[red]NO[/]"] if r else ["-"] * 7)
        q.add_row(name, *cells, (f"{b['ms']:.1f}" + ("" if b["under_budget"] else " [red](over)[/]")) if b else "")
    console.print(q)

    b = summary["budgets"]
    console.print(f"Peak RSS {mib(b['peak_rss_kib']):,.0f} MiB vs 4096 MiB budget: "
                  + ("[green]met[/]" if b["memory_met"] else "[red]NOT met[/]"))
    console.print("Compaction (ws.compact() as shipped): " + ("[green]ok[/]" if b["compaction_met"] else
                  "[red]FAILED[/] on " + ", ".join(e["table"] for e in summary["compaction"]["errors"])))
    console.print(f"Dashboard queries (compacted) under {QUERY_BUDGET_MS:.0f} ms: "
                  + ("[green]met[/]" if b["queries_met"] else "[red]NOT met[/]")
                  + f" (slowest {b['slowest_query']} at {b['slowest_ms']:.1f} ms)")
    if "queries_before_compaction_met" in b:
        console.print(f"Dashboard queries before compaction under {QUERY_BUDGET_MS:.0f} ms: "
                      + ("[green]met[/]" if b["queries_before_compaction_met"] else "[red]NOT met[/]")
                      + f" (slowest {b['slowest_before_compaction_query']} at "
                        f"{b['slowest_before_compaction_ms']:.1f} ms)")


# -- main ---------------------------------------------------------------------------------------


def queries_only(root: Path, runs: int, as_json: bool) -> int:
    """Time the queries on a kept workspace: the same measurements as the full run's compacted queries."""
    if not (root / "tables").is_dir():
        console.print(f"[red]{root} holds no workspace tables[/]. Fix: pass a folder kept by --keep.")
        return 2
    ws = Workspace.open(root, create=False, threads=1)
    conversations = ws.scalar("SELECT count(*) FROM _t_conversations")
    console.print(f"Dashboard queries on {root} ({conversations:,} conversations), pinned to CPU "
                  f"{sorted(os.sched_getaffinity(0))}; DuckDB threads=1; median of {runs} runs after 1 warm-up")
    rows = run_queries(ws, runs, with_baseline=True)
    if as_json:
        print(json.dumps({"workspace": str(root), "conversations": conversations, "queries": rows,
                          "load_average": os.getloadavg()}, indent=2, default=str))
    return 0 if all(r["same_result"] for r in rows) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=100_000, help="conversations to generate")
    parser.add_argument("--workspace", type=Path, default=None,
                        help="workspace folder (must be new or empty; default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the workspace folder at the end")
    parser.add_argument("--json", action="store_true", help="also print a JSON summary")
    parser.add_argument("--baseline-sample", type=int, default=5000, help="items in the provider baseline")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per query (after 1 warm-up)")
    parser.add_argument("--skip-precompaction-queries", action="store_true",
                        help="do not time the queries before compaction")
    parser.add_argument("--compact-fallback-memory", default="3GB",
                        help="if ws.compact() fails, compact the remaining tables with this DuckDB memory "
                             "limit so the compacted queries can still be measured ('' to stop instead)")
    parser.add_argument("--queries-only", type=Path, default=None, metavar="WORKSPACE",
                        help="only time the dashboard queries (and their baselines) on an existing, compacted "
                             "workspace, e.g. one kept by --keep, with the code as it is now")
    args = parser.parse_args(argv)
    if args.queries_only is not None:
        return queries_only(args.queries_only, args.runs, args.json)
    n = args.conversations

    temp = args.workspace is None
    root = Path(tempfile.mkdtemp(prefix="brightrun-bench-")) if temp else args.workspace
    if root.exists() and (root / "tables").exists() and any((root / "tables").iterdir()):
        parser.error(f"{root} already holds tables; use a new or empty folder")

    console.print(f"BrightRun workspace benchmark: {n:,} conversations in {root}; pinned to CPU "
                  f"{sorted(os.sched_getaffinity(0))}; DuckDB threads=1; python {platform.python_version()}, "
                  f"duckdb {duckdb.__version__}, polars {pl.__version__}")
    stages: list[Stage] = []
    summary: dict[str, Any] = {"conversations": n, "cpu": CPU, "date": date.today().isoformat(),
                               "workspace": str(root), "duckdb": duckdb.__version__, "polars": pl.__version__,
                               "python": platform.python_version(), "query_runs": args.runs}
    try:
        ws = Workspace.open(root, threads=1)
        scaffolding = ws.scaffolding
        cells = scaffolding.cells()

        # 1. build: plan, create the job, baseline the provider alone, run the job.
        start = time.perf_counter()
        plan = plan_spread(cells, n, SEED, scaffolding)
        job = create_job(ws, plan, provider="scripted", model=ScriptedProvider.default_model, seed=SEED,
                         job_id="bench", note="bench_workspace")
        create_seconds = time.perf_counter() - start
        stages.append(finish_stage(ws, "create_job", create_seconds, n, cells=len(cells),
                                   cells_used=len(plan)))

        baseline = provider_baseline(ws, job.job_id, job.seed, n, min(args.baseline_sample, n))
        summary["generation_baseline"] = baseline
        console.print(f"[bold]baseline[/]: provider alone {baseline['provider_rate']:,.0f} conv/s, "
                      f"requests + provider {baseline['request_and_provider_rate']:,.0f} conv/s "
                      f"on {baseline['sample']:,} items")

        start = time.perf_counter()
        done = run_job(ws, job.job_id, ScriptedProvider(), concurrency=8, flush_items=1000)
        run_seconds = time.perf_counter() - start
        build = finish_stage(ws, "build", create_seconds + run_seconds, done.done, run_job_seconds=run_seconds,
                             failed=done.failed, status=done.status)
        build.extra["baseline_ratio"] = baseline["provider_rate"] / build.rate
        build.extra["request_and_provider_ratio"] = baseline["request_and_provider_rate"] / build.rate
        stages.append(build)
        console.print(f"  build is {build.extra['baseline_ratio']:.1f}x slower than the provider alone, "
                      f"{build.extra['request_and_provider_ratio']:.1f}x slower than requests + provider")
        if done.done != n:
            console.print(f"[red]only {done.done:,} of {n:,} conversations were made ({done.failed} failed)[/]")

        # 2. enrich
        start = time.perf_counter()
        result = enrich(ws)
        stages.append(finish_stage(ws, "enrich", time.perf_counter() - start, result.enriched,
                                   pairs=result.pairs, failed=result.failed))

        # 2b. the dashboard as a user sees it right after the job, before anyone compacts.
        if not args.skip_precompaction_queries:
            console.print("[bold]queries before compaction[/] (median of 3 after 1 warm-up)")
            start = time.perf_counter()
            summary["queries_before_compaction"] = run_queries(ws, 3, with_baseline=False)
            stages.append(finish_stage(ws, "queries_before_compaction", time.perf_counter() - start))

        # 3. compact
        start = time.perf_counter()
        compaction = compact(ws, args.compact_fallback_memory)
        summary["compaction"] = compaction
        stages.append(finish_stage(ws, "compact", time.perf_counter() - start,
                                   parts_absorbed=sum(t["absorbed"] for t in compaction["tables"].values()),
                                   failed=[e["table"] for e in compaction["errors"]]))
        if not compaction["complete"]:
            console.print("[red]compaction did not finish; the queries on base files cannot be measured[/]")
            summary["queries"] = []
            summary["stages"] = [asdict(s) for s in stages]
            summary["budgets"] = budgets_of(summary, root)
            report(summary)
            if args.json:
                print(json.dumps(summary, indent=2, default=str))
            return 1

        # 3b. publish the Delta copies for other engines (enrich already published its own tables)
        start = time.perf_counter()
        published = ws.publish()
        summary["publish"] = {t: {"version": p.version, "rows": p.rows, "seconds": p.seconds}
                              for t, p in published.items()}
        stages.append(finish_stage(ws, "publish", time.perf_counter() - start,
                                   tables_written=sum(p.rows is not None for p in published.values()),
                                   rows_written=sum(p.rows or 0 for p in published.values())))

        # 4. queries, against a plain DuckDB connection on the base files
        console.print(f"[bold]queries after compaction[/] (median of {args.runs} after 1 warm-up)")
        start = time.perf_counter()
        summary["queries"] = run_queries(ws, args.runs, with_baseline=True)
        stages.append(finish_stage(ws, "queries", time.perf_counter() - start))
        ws.close()

        summary["stages"] = [asdict(s) for s in stages]
        summary["budgets"] = budgets = budgets_of(summary, root)
        report(summary)
        if args.json:
            print(json.dumps(summary, indent=2, default=str))
        ok = (budgets["memory_met"] and budgets["queries_met"] and not compaction["errors"]
              and all(r["same_result"] for r in summary["queries"]))
        return 0 if ok else 1
    finally:
        if temp and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        elif temp:
            console.print(f"workspace kept at {root}")


if __name__ == "__main__":
    sys.exit(main())
