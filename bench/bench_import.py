"""Benchmark: import a 1,000,000-row production app log (JSONL) on one core.

The issue asks that a 1,000,000-row log imports in a benchmark with rows per second and peak memory
recorded. The log is the demo's life-vision coaching app log (`build_coaching_log`, with its seven
deliberately broken rows and planted personal data), generated first and not timed.

Each measured run is a fresh child process pinned to the same core, so its wall time, CPU time and
peak resident memory (VmHWM) are its own:

  import      `import_log(ws, log)` into a new workspace (Workspace.open(..., threads=1)), timed whole:
              hashing the file, reading it in 32 MiB chunks, validating every row, call ids, personal
              data counts, writing llm_calls / feedback / import_errors parts and the final compaction
  re-import   the same call again on that workspace: reads and checks everything, writes nothing
  baseline    plain polars on the same rows: `pl.read_ndjson(log, schema=every column as String)` +
              `write_parquet(zstd)`. Plain polars cannot read a file with a broken line at all, so it
              reads a copy of the log without its one line that is not JSON (made before, not timed)
  duckdb      a second reference on the very same file: DuckDB (threads=1)
              `COPY (SELECT * FROM read_json(log, format='newline_delimited', ignore_errors=true)) TO
              'x.parquet' (FORMAT parquet, COMPRESSION zstd)`

Ratio = import seconds / baseline seconds (how much slower the import is than plain read + write).

Run:  .venv/bin/python bench/bench_import.py --rows 1000000 [--json] [--keep] [--workdir DIR]
"""

from __future__ import annotations

import os

# Pin to one core before polars, duckdb or pyarrow start their thread pools.
CPU = int(os.environ.get("BRIGHTRUN_BENCH_CPU", "0"))
os.sched_setaffinity(0, {CPU})

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import MEMORY_BUDGET_KIB, SEED, disk_bytes, hwm_kib, mib  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

console = Console(stderr=True, width=None if sys.stderr.isatty() else 150)
COLUMNS = ["ts", "user_id", "session_id", "step", "category", "prompt", "response", "model", "prompt_tokens",
           "completion_tokens", "latency_ms", "thumbs", "rating", "feedback"]


# -- the child processes ------------------------------------------------------------------------------


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(kind: str, log: Path, target: Path) -> dict[str, Any]:
    """One measured run; returns its figures (printed as JSON on stdout by the child)."""
    import duckdb
    import polars as pl

    from brightrun.applogs import import_log
    from brightrun.workspace import Workspace

    figures: dict[str, Any] = {"kind": kind}
    if kind in ("import", "reimport"):
        ws = Workspace.open(target, threads=1)
        compact, compaction = ws.compact, {"seconds": 0.0, "parts": 0}

        def timed_compact(*args: Any, **kwargs: Any) -> dict[str, int]:  # how much of the time is compaction
            began = time.perf_counter()
            merged = compact(*args, **kwargs)
            compaction["seconds"] += time.perf_counter() - began
            compaction["parts"] += sum(merged.values())
            return merged

        ws.compact = timed_compact  # type: ignore[method-assign]
        cpu, start = cpu_seconds(), time.perf_counter()
        result = import_log(ws, log)
        figures.update(seconds=time.perf_counter() - start, cpu=cpu_seconds() - cpu, rows=result.rows,
                       imported=result.imported, new_calls=result.new_calls, already_present=result.already_present,
                       bad_rows=result.bad_rows, feedback=result.new_feedback, pii=result.pii,
                       calls_in_workspace=ws.scalar("SELECT count(*) FROM llm_calls"),
                       feedback_in_workspace=ws.scalar("SELECT count(*) FROM feedback"),
                       disk_bytes=disk_bytes(target), compaction=compaction)
    elif kind == "polars":
        cpu, start = cpu_seconds(), time.perf_counter()
        frame = pl.read_ndjson(log, schema={c: pl.String for c in COLUMNS})
        frame.write_parquet(target, compression="zstd")
        figures.update(seconds=time.perf_counter() - start, cpu=cpu_seconds() - cpu, rows=frame.height,
                       disk_bytes=target.stat().st_size)
    elif kind == "duckdb":
        con = duckdb.connect()
        con.execute("SET threads = 1")
        cpu, start = cpu_seconds(), time.perf_counter()
        con.execute(f"COPY (SELECT * FROM read_json('{log}', format = 'newline_delimited', ignore_errors = true)) "
                    f"TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
        seconds = time.perf_counter() - start
        figures.update(seconds=seconds, cpu=cpu_seconds() - cpu,
                       rows=con.sql(f"SELECT count(*) FROM '{target}'").fetchall()[0][0],
                       disk_bytes=target.stat().st_size)
    figures["peak_rss_kib"] = hwm_kib()
    figures["cpu_total"] = cpu_seconds()  # the whole process, imports included
    figures["rate"] = figures["rows"] / figures["seconds"]
    return figures


def busy_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def run_child(kind: str, log: Path, target: Path) -> dict[str, Any]:
    env = dict(os.environ, BRIGHTRUN_BENCH_CPU=str(CPU))
    busy0, _ = busy_jiffies()
    wall0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", kind, "--log", str(log), "--target", str(target)],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{proc.stderr[-4000:]}")
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    busy1, _ = busy_jiffies()
    wall = time.perf_counter() - wall0
    # Other work on the machine meanwhile, in cores: all busy CPU time minus this child's (whole run).
    figures["other_cores"] = max(0.0, ((busy1 - busy0) / os.sysconf("SC_CLK_TCK") - figures["cpu_total"]) / wall)
    figures["cpu_rate"] = figures["rows"] / figures["cpu"]
    console.print(f"[bold]{kind}[/]: {figures['seconds']:,.1f} s, {figures['rate']:,.0f} rows/s, CPU "
                  f"{figures['cpu']:,.1f} s ({figures['cpu_rate']:,.0f} rows per CPU second), peak RSS "
                  f"{mib(figures['peak_rss_kib']):,.0f} MiB; other work on the machine "
                  f"{figures['other_cores']:.2f} cores")
    return figures


# -- main ---------------------------------------------------------------------------------------------


def make_log(folder: Path, rows: int) -> tuple[Path, Path, dict[str, Any]]:
    import orjson

    from brightrun.applogs.demo_log import build_coaching_log

    log = folder / "coaching_app.jsonl"
    clean = folder / "coaching_app.clean.jsonl"  # for plain polars: without the line that is not JSON
    meta = folder / "coaching_app.json"
    if meta.exists() and log.exists() and clean.exists():  # made by an earlier run in this --workdir
        info = json.loads(meta.read_text())
        if info["rows"] == rows and info["bytes"] == log.stat().st_size:
            console.print(f"log: reusing {log} ({rows:,} rows, {info['bytes'] / 1e6:,.0f} MB)")
            return log, clean, info
    start = time.perf_counter()
    summary = build_coaching_log(log, rows, SEED)
    seconds = time.perf_counter() - start
    with open(log, "rb") as source, open(clean, "wb") as out:
        for line in source:
            try:
                orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            out.write(line)
    info = {"rows": rows, "bytes": log.stat().st_size, "generate_seconds": seconds,
            "bad_rows": len(summary.bad_rows), "planted_pii": summary.planted_pii,
            "feedback_rows": summary.feedback_rows}
    meta.write_text(json.dumps(info))
    console.print(f"log: {rows:,} rows, {info['bytes'] / 1e6:,.0f} MB, generated in {seconds:,.0f} s (not timed); "
                  f"{len(summary.bad_rows)} broken rows, planted PII {summary.planted_pii}")
    return log, clean, info


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median time (of an odd number; the lower middle of an even one)."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    return {**ordered[(len(ordered) - 1) // 2], "all_seconds": [round(r["seconds"], 2) for r in runs],
            "all_cpu": [round(r["cpu"], 2) for r in runs]}


def report(summary: dict[str, Any]) -> None:
    runs = summary["median"]
    base = runs["polars"]["seconds"]
    t = Table(title=f"Import of a {summary['log']['rows']:,}-row JSONL log ({summary['log']['bytes'] / 1e6:,.0f} MB), "
                    f"one core, {summary['date']}: the median of {summary['repeats']} runs each")
    for col in ("run", "seconds", "rows/s", "ratio to polars", "CPU s", "rows per CPU s", "CPU ratio",
                "peak RSS MiB", "output MiB", "other load (cores)"):
        t.add_column(col, justify="left" if col == "run" else "right")
    for name in ("import", "reimport", "polars", "duckdb"):
        r = runs[name]
        t.add_row(name, f"{r['seconds']:,.1f}", f"{r['rate']:,.0f}", f"{r['seconds'] / base:.2f}x", f"{r['cpu']:,.1f}",
                  f"{r['cpu_rate']:,.0f}", f"{r['cpu'] / runs['polars']['cpu']:.2f}x",
                  f"{mib(r['peak_rss_kib']):,.0f}", f"{mib(r['disk_bytes'], from_bytes=True):,.0f}",
                  f"{r['other_cores']:.2f}")
    console.print(t)
    for name in ("import", "reimport", "polars", "duckdb"):
        console.print(f"{name}: every run {runs[name]['all_seconds']} s, CPU {runs[name]['all_cpu']} s")
    imp = runs["import"]
    console.print(f"import: of which compaction {imp['compaction']['seconds']:,.1f} s "
                  f"({imp['compaction']['parts']} parts merged)")
    console.print(f"import: {imp['imported']:,} good rows, {imp['bad_rows']} bad, {imp['new_calls']:,} new calls, "
                  f"{imp['feedback']:,} feedback rows; re-import: {runs['reimport']['new_calls']} new calls, "
                  f"{runs['reimport']['already_present']:,} already present")
    console.print(f"peak RSS {mib(imp['peak_rss_kib']):,.0f} MiB vs 4096 MiB: "
                  + ("[green]under[/]" if imp["peak_rss_kib"] < MEMORY_BUDGET_KIB else "[red]OVER[/]"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=None, help="folder for the log and outputs (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    parser.add_argument("--repeats", type=int, default=3, help="measured runs of each kind, interleaved")
    parser.add_argument("--child", choices=["import", "reimport", "polars", "duckdb"], help=argparse.SUPPRESS)
    parser.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--target", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        sys.stdout.write(json.dumps(child(args.child, args.log, args.target), default=str) + "\n")
        return 0

    import duckdb
    import polars as pl

    folder = args.workdir or Path(tempfile.mkdtemp(prefix="brightrun-bench-import-"))
    folder.mkdir(parents=True, exist_ok=True)
    console.print(f"BrightRun import benchmark: {args.rows:,} rows in {folder}; pinned to CPU {CPU}; python "
                  f"{platform.python_version()}, duckdb {duckdb.__version__}, polars {pl.__version__}")
    summary: dict[str, Any] = {"date": date.today().isoformat(), "cpu": CPU, "python": platform.python_version(),
                               "duckdb": duckdb.__version__, "polars": pl.__version__}
    try:
        log, clean, summary["log"] = make_log(folder, args.rows)
        runs: dict[str, list[dict[str, Any]]] = {"polars": [], "import": [], "reimport": [], "duckdb": []}
        for repeat in range(args.repeats):
            console.print(f"-- run {repeat + 1} of {args.repeats}")
            ws = folder / "ws"
            shutil.rmtree(ws, ignore_errors=True)
            runs["polars"].append(run_child("polars", clean, folder / "polars.parquet"))
            runs["import"].append(run_child("import", log, ws))
            runs["reimport"].append(run_child("reimport", log, ws))
            runs["duckdb"].append(run_child("duckdb", log, folder / "duckdb.parquet"))
        shutil.rmtree(folder / "ws", ignore_errors=True)
        summary.update(repeats=args.repeats, runs=runs, median={k: median_run(v) for k, v in runs.items()})
        report(summary)
        if args.json:
            sys.stdout.write(json.dumps(summary, default=str) + "\n")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
