"""Benchmark: a training file of 1,000,000 training pairs: adding conversations, building its JSON + JSONL, exporting.

The budget (from the design): export writes JSONL at no less than half the speed of a plain polars
`write_ndjson` of the same rows. The issue: a training file of 1,000,000 training pairs exported to
JSONL, compared in the same run with a plain polars `write_ndjson` of the same rows (at least half its
speed); adding 100,000 conversations at once timed. Issue 15 (printed at the end, `issue15_budgets`): on
1,000,000 pairs, `export openai_sft` under 4 GiB peak and within 3x of the build's own (median) time;
adding 100,000 conversations to a 100,000-member file under 30 s.

Every stage has a baseline measured in the same run, on the same data, and the ratio is printed:

  add 100,000  `create_training_file` + `add_conversations(ws, name, ids)` with 100,000 ids in one call
               (eligibility, duplicates, near-duplicate clusters for the splits, records_hash, the
               membership rows and the version row). Baseline: plain DuckDB reading the same ids'
               enrichment status, tier, arc and training-pair counts straight from the tables' Parquet
               files, checking them, and polars writing 100,000 membership rows (hash split) to one
               Parquet file. Ratio = baseline time / our time (our speed / its speed)
  add rest     `add_conversations` with the remaining ids, in one call, until the file holds at least
               --pairs training pairs (the split is recomputed over all members); same baseline
  build        `build_version`: training.json + training.jsonl + manifest.json, each synced, renamed
               into place. Baseline: the members' rows of the `training_pairs` table (every column but
               created_at) as one polars DataFrame in memory, `DataFrame.write_ndjson(path)`; only the
               write is timed for the ratio (its read, and an fsync after it, are reported apart).
               After the export, the baseline write and our build (of the same version, its folder
               removed first) alternate for three rounds each, and the medians are compared: this VM's
               speed drifts by a third over minutes. Ratio = the baseline's median seconds / ours (our
               pairs/s over its); also our JSONL bytes/s over its bytes/s.
               The baseline runs after the export: polars keeps part of the memory of its 3 GiB
               DataFrame after freeing it, which would otherwise count in the export's memory
  export       `export_version(ws, name, "openai_sft", out, force_reason="benchmark")`: records_of
               (from the version's built training.jsonl; the build stage has made it), the writer, the
               validator and the cost estimate (openai_sft's targets), each timed apart inside the call.
               Baseline: the same records (`records_of` output) as a polars DataFrame, `write_ndjson`
               (DataFrame construction reported apart). Ratio = our records/s / the baseline's

Fresh processes (bench/_fresh.py): after those stages, the build and the export each run again in a new
process, 3 rounds alternating, as the CLI runs them (a process that made two adds and a build first carries
their memory: the same export took about 95 s in it and 70 s in a new process); then the two adds into a new
training file in one new process, the second timed. Issue 15's ratio is printed for both ways.

Memory: VmHWM (this process's peak resident memory) is reset before each stage and read after it, so
each stage reports its own peak (which includes what the process already held at its start, also
shown). Inside our stages, named package functions are wrapped with timers (no code changed) to show
where the time goes, and the few large calls also with their own peak resident memory.

The workspace: a scripted one of --conversations conversations, built and enriched as
bench_workspace.py does (not timed for any ratio), or the one in --workspace, topped up only when it
holds fewer conversations. The training file gets a new name each run; its built files, the export
and the baseline files are deleted at the end unless --keep-outputs (they take about 3x the JSONL).

Run:  .venv/bin/python bench/bench_training_export.py [--conversations 202000] [--workspace DIR --keep] [--json]
"""

from __future__ import annotations

import os

# Pin to one core before polars, duckdb or pyarrow start their thread pools.
CPU = os.environ.get("BRIGHTRUN_BENCH_CPU", "0")  # "all": not pinned (then each process may use every core)
if CPU != "all":
    os.sched_setaffinity(0, {int(CPU)})

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import functools  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from datetime import UTC, date, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _fresh  # noqa: E402
import duckdb  # noqa: E402
import polars as pl  # noqa: E402
from _common import (  # noqa: E402
    SEED,
    create_scripted_job,
    disk_bytes,
    hwm_kib,
    mib,
    peak_rss_kib,
    reset_hwm,
    rss_now_kib,
    run_scripted_job,
)
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from brightrun.enrichment.pipeline import enrich  # noqa: E402
from brightrun.exports import FORMATS  # noqa: E402
from brightrun.exports import checks as export_checks  # noqa: E402
from brightrun.exports import common as export_common  # noqa: E402
from brightrun.quality import signature_store  # noqa: E402
from brightrun.training_files import add_conversations, build_version, create_training_file  # noqa: E402
from brightrun.training_files import build as tf_build  # noqa: E402
from brightrun.training_files import chunks as tf_chunks  # noqa: E402
from brightrun.training_files import core as tf_core  # noqa: E402
from brightrun.training_files import export as tf_export  # noqa: E402
from brightrun.training_files import pairs_index as tf_pairs_index  # noqa: E402
from brightrun.training_files import signatures as tf_signatures  # noqa: E402
from brightrun.training_files import splits as tf_splits  # noqa: E402
from brightrun.training_files.export import export_version  # noqa: E402
from brightrun.workspace import Workspace  # noqa: E402
from brightrun.workspace.files import StreamFile  # noqa: E402

BUDGET_RATIO = 0.5
FORMAT = "openai_sft"
RECORDS_HASH = "records_hash (each member pair's id and write stamp, chunks.RecordsHash)"
console = Console(width=None if sys.stdout.isatty() else 200)


# -- measuring ----------------------------------------------------------------------------------------


class Peaks:
    """Peak resident memory (VmHWM) of a stage and of measured calls inside it, which may nest. VmHWM is
    reset whenever a frame opens or closes, and the peak reached since the last reset is folded into
    every frame still open, so each frame ends with the peak over its whole duration."""

    def __init__(self) -> None:
        self.resettable = reset_hwm()
        self.frames: list[int] = []

    def _fold(self) -> None:
        peak = hwm_kib()
        reset_hwm()
        self.frames = [max(f, peak) for f in self.frames]

    def push(self) -> None:
        if self.resettable:
            self._fold()
        self.frames.append(0)

    def pop(self) -> int:
        if self.resettable:
            self._fold()
            return self.frames.pop()
        self.frames.pop()
        return peak_rss_kib()


PEAKS = Peaks()


class Meter:
    """Wall time, CPU time (user + system of this process) and the peak resident memory of one stage."""

    def __enter__(self) -> Meter:
        gc.collect()
        self.rss_start_kib = rss_now_kib()
        PEAKS.push()
        self.cpu0 = time.process_time()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0
        self.cpu_seconds = time.process_time() - self.cpu0
        self.peak_kib = PEAKS.pop()

    def as_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "cpu_seconds": self.cpu_seconds, "rss_start_kib": self.rss_start_kib,
                "peak_rss_kib": self.peak_kib, "peak_is_stage_own": PEAKS.resettable}


class Probe:
    """Timers around named package functions for the length of a stage (module attributes are swapped
    for timing wrappers and restored after; no package code changes). Generators are timed per item."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.peaks: dict[str, int] = {}
        self._undo: list[Callable[[], None]] = []
        self.order: list[str] = []

    def replace(self, owner: Any, attr: str, value: Any) -> None:
        original = getattr(owner, attr)
        setattr(owner, attr, value)
        self._undo.append(lambda: setattr(owner, attr, original))

    def wrap(self, owner: Any, attr: str, label: str | None = None, *, generator: bool = False,
             peak: bool = False) -> None:
        """Time every call of owner.attr under `label`; with `peak`, also its peak resident memory (two
        reads of /proc per call: only for functions called a few times)."""
        original = getattr(owner, attr, None)
        if original is None:  # the package no longer has it (it changes while this benchmark stays)
            return
        label = label or attr
        self.order.append(label)
        seconds, calls, peaks = self.seconds, self.calls, self.peaks

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if peak:
                PEAKS.push()
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                seconds[label] += time.perf_counter() - start
                calls[label] += 1
                if peak:
                    peaks[label] = max(peaks.get(label, 0), PEAKS.pop())

        @functools.wraps(original)
        def timed_gen(*args: Any, **kwargs: Any) -> Iterator[Any]:
            calls[label] += 1
            start = time.perf_counter()
            inner = original(*args, **kwargs)
            seconds[label] += time.perf_counter() - start
            while True:
                start = time.perf_counter()
                try:
                    item = next(inner)
                except StopIteration:
                    seconds[label] += time.perf_counter() - start
                    return
                seconds[label] += time.perf_counter() - start
                yield item

        self.replace(owner, attr, timed_gen if generator else timed)

    def wrap_sql(self, ws: Workspace) -> None:
        """Time ws.sql per statement (labelled by its first words), to tell the queries apart."""
        original = ws.sql
        seconds, calls, order = self.seconds, self.calls, self.order

        @functools.wraps(original)
        def timed(query: str, params: Any = None) -> Any:
            label = "  ws.sql: " + " ".join(query.split())[:46]
            if label not in calls:
                order.append(label)
            start = time.perf_counter()
            try:
                return original(query, params)
            finally:
                seconds[label] += time.perf_counter() - start
                calls[label] += 1

        self.replace(ws, "sql", timed)

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *exc: object) -> None:
        while self._undo:
            self._undo.pop()()

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {k: {"seconds": self.seconds[k], "calls": self.calls[k], "peak_rss_kib": self.peaks.get(k)}
                for k in self.order if k in self.calls}


def probe_add(ws: Workspace) -> Probe:
    probe = Probe()
    probe.wrap(tf_core, "ineligible", "ineligible (eligibility query)", peak=True)
    probe.wrap(tf_core, "records_hash", RECORDS_HASH, peak=True)
    probe.wrap(tf_splits, "split_members", "split_members (total)", peak=True)
    probe.wrap(tf_splits, "member_texts", "  member_texts (turns query)", peak=True)
    probe.wrap(tf_splits, "exact_duplicates", "  exact_duplicates", peak=True)
    probe.wrap(tf_splits, "near_duplicate_clusters", "  near_duplicate_clusters", peak=True)
    probe.wrap(tf_splits, "grown_groups", "  grown_groups (groups grown from the new members)", peak=True)
    probe.wrap(signature_store, "fingerprints", "    signature_store.fingerprints (every conversation's turns)")
    probe.wrap(signature_store, "load", "    signature_store.load (the kept keys and signatures)", peak=True)
    probe.wrap(signature_store, "sign_missing", "    signature_store.sign_missing (sign and keep the unsigned)",
               peak=True)
    probe.wrap(signature_store, "load_sets", "      signature_store.load_sets (the shingle sets checks need)",
               peak=True)
    probe.wrap(tf_signatures, "_near_links", "    _near_links (LSH candidates with a new member, checks)",
               peak=True)
    probe.wrap(tf_signatures, "_candidates", "      _candidates (LSH buckets, estimates)")
    probe.wrap(tf_signatures, "_link_exact", "      _link_exact (exact Jaccard checks)")
    probe.wrap(ws, "append", "ws.append (membership + version rows)", peak=True)
    probe.wrap_sql(ws)
    return probe


def probe_build(ws: Workspace) -> Probe:
    """Wall-clock timers around the build's parts in the calling thread. The writer thread (copying into
    the O_DIRECT buffer, sha256, waiting for the disk) runs at the same time on the same core, so these
    include time the writer took from them; only the total is exact."""
    probe = Probe()
    probe.wrap(tf_build, "_write_files", "_write_files (total)", peak=True)
    probe.wrap(tf_build, "iter_chunks", "  iter_chunks (total)", generator=True)
    probe.wrap(tf_chunks, "_read_pairs", "    _read_pairs (polars over the Parquet parts)")
    probe.wrap(tf_chunks, "_shaped", "    _shaped (polars structs)")
    probe.wrap(tf_chunks.Buffers, "ndjson", "    Buffers.ndjson (write_ndjson into a reused buffer)")
    probe.wrap(tf_build._JsonPieces, "__call__", "  _JsonPieces (the JSON's commas and heads)")
    probe.wrap(tf_build._Writer, "put", "  _Writer.put (waits while the writer is a chunk behind)")
    probe.wrap(StreamFile, "finish", "  StreamFile.finish (tail, fsync)")
    probe.wrap(tf_pairs_index.IndexWriter, "add", "  IndexWriter.add (pairs.parquet, a row group per chunk; in the writer thread)")
    probe.wrap(tf_pairs_index.IndexWriter, "finish", "  IndexWriter.finish (close, fsync, sha256)")
    return probe


def probe_export(ws: Workspace, keep: dict[str, Any]) -> Probe:
    """Times the parts of export_version, and keeps the records it made (for the baseline) in `keep`."""
    probe = Probe()
    records_of = tf_export.records_of

    def keeping(*args: Any, **kwargs: Any) -> list[dict]:
        keep["records"] = records_of(*args, **kwargs)
        return keep["records"]

    probe.replace(tf_export, "records_of", keeping)
    probe.wrap(tf_export, "records_of", "records_of (total)", peak=True)
    probe.wrap(tf_export, "version_file", "  version_file (the version's build, made when missing)", peak=True)
    probe.wrap(tf_export, "_conversations", "  _conversations (read training.jsonl: fields from pairs.parquet, each last pair parsed, sha256)",
               generator=True)
    probe.wrap(tf_export, "sft_records_from_enriched", "  sft_records_from_enriched")
    spec = FORMATS[FORMAT]
    parts = SimpleNamespace(writer=spec.writer, validator=spec.validator)
    probe.wrap(parts, "writer", "writer (write_openai_sft)", peak=True)
    probe.wrap(parts, "validator", "validator (validate_openai_sft, total)", peak=True)
    FORMATS[FORMAT] = dataclasses.replace(spec, writer=parts.writer, validator=parts.validator)
    probe._undo.append(lambda: FORMATS.__setitem__(FORMAT, spec))
    probe.wrap(export_common, "iter_jsonl", "  iter_jsonl (read + parse)", generator=True)
    probe.wrap(export_checks, "count_example", "  count_example (token counts, once)")
    probe.wrap(export_checks, "_duplicates", "  _duplicates", peak=True)
    probe.wrap(export_checks, "_leakage", "  _leakage (total)", peak=True)
    probe.wrap(export_checks, "near_duplicate_clusters", "    near_duplicate_clusters (leakage)", peak=True)
    probe.wrap(tf_export, "_with_cluster_leaks", "  _with_cluster_leaks (the training file's groups)")
    probe.wrap(tf_export, "estimate_all", "estimate_all (cost, the models that train openai_sft)", peak=True)
    probe.wrap_sql(ws)
    return probe


# -- workspace ------------------------------------------------------------------------------------------


def eligible_pairs(ws: Workspace) -> pl.DataFrame:
    """(conversation_id, pairs) of every conversation that may enter a training file, by id."""
    return ws.sql(
        "SELECT c.conversation_id, p.pairs FROM conversations c JOIN (SELECT conversation_id, count(*) AS pairs "
        "FROM training_pairs GROUP BY 1) p USING (conversation_id) WHERE c.enrichment_status = 'completed' "
        "ORDER BY c.conversation_id")


def prepare_workspace(ws: Workspace, wanted: int, summary: dict[str, Any], presign: bool = True) -> None:
    """Top the workspace up to `wanted` conversations (a scripted job), enrich what is pending, sign what an
    older enrichment left unsigned (with `presign`), compact."""
    have = ws.scalar("SELECT count(*) FROM conversations") or 0
    setup: dict[str, Any] = {"conversations_before": have}
    if have < wanted:
        jobs = ws.scalar("SELECT count(*) FROM batch_jobs WHERE job_id LIKE 'bench-tf%'") or 0
        job_id = "bench-tf" if jobs == 0 else f"bench-tf-{jobs + 1}"
        n = wanted - have
        console.print(f"[bold]build[/]: {n:,} scripted conversations (job {job_id}), not timed for any ratio")
        start = time.perf_counter()
        job, _ = create_scripted_job(ws, n, seed=SEED + jobs, job_id=job_id, note="bench_training_export")
        done = run_scripted_job(ws, job.job_id)
        setup["build_seconds"] = time.perf_counter() - start
        setup["built"] = done.done
        console.print(f"  {done.done:,} made, {done.failed} failed in {setup['build_seconds']:,.1f} s")
    pending = ws.scalar("SELECT count(*) FROM conversations WHERE enrichment_status <> 'completed'") or 0
    if pending:
        console.print(f"[bold]enrich[/]: {pending:,} conversations, not timed for any ratio")
        start = time.perf_counter()
        result = enrich(ws)
        setup["enrich_seconds"] = time.perf_counter() - start
        setup["enriched"] = result.enriched
        setup["enrich_failed"] = result.failed
        console.print(f"  {result.enriched:,} enriched ({result.pairs:,} pairs), {result.failed} failed in "
                      f"{setup['enrich_seconds']:,.1f} s")
    if presign:
        sign_as_enrichment(ws, setup)
    start = time.perf_counter()
    absorbed = ws.compact()
    setup["compact_seconds"] = time.perf_counter() - start
    setup["compact_absorbed"] = sum(absorbed.values())
    setup["peak_rss_kib"] = peak_rss_kib()
    summary["setup"] = setup


def sign_as_enrichment(ws: Workspace, setup: dict[str, Any], chunk: int = 20_000) -> None:
    """Keep the near-duplicate features of every enriched conversation that has none, as enrichment keeps
    them since issue 15 (a workspace enriched before that has none): not timed for any ratio, reported."""
    ids = eligible_pairs(ws)["conversation_id"].to_list()
    turns = signature_store.fingerprints(ws)
    have = set(signature_store.load(ws, ids, turns).ids)
    missing = [cid for cid in ids if cid not in have]
    setup["presigned"] = len(missing)
    if not missing:
        return
    console.print(f"[bold]sign[/]: {len(missing):,} enriched conversations without kept features (enrichment keeps "
                  f"them now), not timed for any ratio")
    start, cpu = time.perf_counter(), time.process_time()
    for k in range(0, len(missing), chunk):
        part = missing[k:k + chunk]
        texts = tf_splits.member_texts(ws, part)
        signature_store.write(ws, signature_store.compute(part, [texts.get(c, "") for c in part]), turns)
    setup["presign_seconds"], setup["presign_cpu_seconds"] = time.perf_counter() - start, time.process_time() - cpu
    console.print(f"  {len(missing):,} signed in {setup['presign_seconds']:,.1f} s ({setup['presign_cpu_seconds']:,.1f} s "
                  f"CPU, {1000 * setup['presign_cpu_seconds'] / len(missing):.2f} ms each)")


def table_paths(ws: Workspace, table: str) -> tuple[list[str], bool]:
    files = ws.table_files(table)
    return [str(p) for p in (*files.base, *files.deltas)], bool(files.deltas)


def read_parquet(paths: list[str]) -> str:
    return "read_parquet([" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "], union_by_name = true)"


# -- baselines --------------------------------------------------------------------------------------------


def baseline_add(ws: Workspace, ids: list[str], out: Path) -> dict[str, Any]:
    """The plain equivalent of adding `ids`: status, tier, arc and pair counts straight from the Parquet
    files (latest row per key), checked, and one Parquet file of membership rows (hash split 80/10/10)."""
    con = duckdb.connect()
    con.execute("SET threads = 1")
    conv, _ = table_paths(ws, "conversations")
    status, _ = table_paths(ws, "conversation_status")
    pairs, _ = table_paths(ws, "training_pairs")
    with Meter() as m:
        con.register("wanted", pl.DataFrame({"conversation_id": ids}).to_arrow())
        frame = con.sql(f"""
            WITH c AS (SELECT conversation_id, arg_max(tier, _seq) AS tier, arg_max(arc_key, _seq) AS arc_key
                       FROM {read_parquet(conv)} WHERE conversation_id IN (SELECT conversation_id FROM wanted)
                       GROUP BY 1),
                 s AS (SELECT conversation_id, arg_max(status, _seq) AS status
                       FROM {read_parquet(status)} WHERE conversation_id IN (SELECT conversation_id FROM wanted)
                       GROUP BY 1),
                 p AS (SELECT conversation_id, count(DISTINCT pair_id) AS pairs
                       FROM {read_parquet(pairs)} WHERE conversation_id IN (SELECT conversation_id FROM wanted)
                       GROUP BY 1)
            SELECT w.conversation_id, c.tier, c.arc_key, c.conversation_id IS NOT NULL AS known, s.status,
                   coalesce(p.pairs, 0) AS pairs
            FROM wanted w LEFT JOIN c USING (conversation_id) LEFT JOIN s USING (conversation_id)
                 LEFT JOIN p USING (conversation_id)""").pl()
        bad = frame.filter(~pl.col("known") | (pl.col("status") != "completed") | pl.col("status").is_null()
                           | (pl.col("pairs") == 0))
        repeated = frame["conversation_id"].is_duplicated().sum()
        if bad.height or repeated:
            raise RuntimeError(f"baseline: {bad.height} ineligible, {repeated} repeated ids")
        bucket = pl.col("conversation_id").hash(seed=0) % 10
        rows = frame.select(
            pl.lit("baseline").alias("name"), pl.lit(1).alias("version"), "conversation_id",
            pl.when(bucket < 8).then(pl.lit("train")).when(bucket < 9).then(pl.lit("validation"))
            .otherwise(pl.lit("test")).alias("split"), "tier", "arc_key",
            pl.lit(datetime.now(UTC)).alias("created_at"))
        rows.write_parquet(out)
    con.close()
    result = m.as_dict() | {"rows": rows.height, "pairs": int(frame["pairs"].sum()), "bytes": out.stat().st_size}
    out.unlink()
    return result


def baseline_pairs_frame(ws: Workspace, member_ids: list[str]) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The members' rows of `training_pairs` (every column but created_at), in member then turn order,
    read straight from the Parquet files into one polars DataFrame."""
    paths, has_deltas = table_paths(ws, "training_pairs")
    con = duckdb.connect()
    con.execute("SET threads = 1")
    latest = " QUALIFY row_number() OVER (PARTITION BY pair_id ORDER BY _seq DESC) = 1" if has_deltas else ""
    with Meter() as m:
        con.register("members", pl.DataFrame({"conversation_id": member_ids}).to_arrow())
        frame = con.sql(f"SELECT * EXCLUDE (created_at, _seq) FROM {read_parquet(paths)} "
                        f"WHERE conversation_id IN (SELECT conversation_id FROM members){latest} "
                        f"ORDER BY conversation_id, turn_number").pl()
    con.close()
    return frame, m.as_dict() | {"rows": frame.height, "files": len(paths), "deltas": has_deltas}


def baseline_write(frame: pl.DataFrame, path: Path) -> dict[str, Any]:
    """`frame.write_ndjson(path)` timed alone, then an fsync of the file timed apart."""
    with Meter() as m:
        frame.write_ndjson(path)
    start = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_seconds = time.perf_counter() - start
    size = path.stat().st_size
    path.unlink()
    return m.as_dict() | {"rows": frame.height, "bytes": size, "fsync_seconds": fsync_seconds}


# -- stages ---------------------------------------------------------------------------------------------


def stage_add(ws: Workspace, name: str, ids: list[str], pairs: int, scratch: Path, *, create: bool,
              label: str) -> dict[str, Any]:
    console.print(f"[bold]{label}[/]: {len(ids):,} conversations ({pairs:,} training pairs) in one call")
    with probe_add(ws) as probe, Meter() as m:
        if create:
            create_training_file(ws, name, description="bench_training_export")
        version = add_conversations(ws, name, ids, workers=None)  # as the CLI: the cores it may use
    ours = m.as_dict() | {"version": version.version, "members": len(version.member_ids),
                          "breakdown": probe.as_dict()}
    base = baseline_add(ws, ids, scratch / "baseline-membership.parquet")
    if base["pairs"] != pairs:
        raise RuntimeError(f"baseline counted {base['pairs']:,} pairs, expected {pairs:,}")
    ratio = base["seconds"] / ours["seconds"]
    console.print(f"  ours {ours['seconds']:,.2f} s ({len(ids) / ours['seconds']:,.0f} conv/s, peak RSS "
                  f"{mib(ours['peak_rss_kib']):,.0f} MiB); baseline {base['seconds']:,.2f} s "
                  f"({len(ids) / base['seconds']:,.0f} conv/s); ours / baseline speed = {ratio:.3f} ({1 / ratio:,.1f}x slower)")
    print_breakdown(ours["breakdown"], ours["seconds"])
    return {"name": label, "items": len(ids), "pairs": pairs, "ours": ours, "baseline": base, "ratio": ratio,
            "ratio_cpu": base["cpu_seconds"] / ours["cpu_seconds"]}


def stage_build(ws: Workspace, name: str) -> dict[str, Any]:
    console.print("[bold]build[/]: build_version (training.json + training.jsonl + manifest.json)")
    with probe_build(ws) as probe, Meter() as m:
        built = build_version(ws, name)
    jsonl_bytes, json_bytes = built.jsonl_path.stat().st_size, built.json_path.stat().st_size
    ours = m.as_dict() | {"pairs": built.training_pairs, "conversations": built.conversations,
                          "jsonl_bytes": jsonl_bytes, "json_bytes": json_bytes,
                          "manifest_bytes": built.manifest_path.stat().st_size, "folder": str(built.jsonl_path.parent),
                          "content_hash": built.content_hash,
                          "breakdown": probe.as_dict()}
    console.print(f"  ours {ours['seconds']:,.2f} s: {built.training_pairs:,} pairs, JSONL "
                  f"{mib(jsonl_bytes, from_bytes=True):,.0f} MiB + JSON {mib(json_bytes, from_bytes=True):,.0f} MiB; "
                  f"peak RSS {mib(ours['peak_rss_kib']):,.0f} MiB")
    print_breakdown(ours["breakdown"], ours["seconds"])
    return {"name": "build", "items": built.training_pairs, "ours": ours}


REBUILDS = 2
FRESH_ROUNDS = 3
"""Rounds of (build, export), each in a new process, after the in-process stages (_fresh.py)."""
"""Rounds of (baseline write, our rebuild) after the first build: this VM's speed drifts by a third
over minutes, so each side is timed three times, interleaved, and the medians are compared."""


def baseline_build(ws: Workspace, stage: dict[str, Any], name: str, member_ids: list[str], scratch: Path) -> None:
    """The build's baseline, run after the export so that the memory polars keeps after freeing its
    3 GiB DataFrame does not count in the export's resident memory. Interleaved with REBUILDS more
    builds of ours (the built folder removed first, untimed)."""
    ours, pairs = stage["ours"], stage["items"]
    jsonl_bytes, json_bytes = ours["jsonl_bytes"], ours["json_bytes"]
    console.print("[bold]build baseline[/]: the members' training_pairs rows, polars write_ndjson, "
                  f"interleaved with {REBUILDS} more builds of ours")
    frame, read = baseline_pairs_frame(ws, member_ids)
    if frame.height != pairs:
        raise RuntimeError(f"baseline read {frame.height:,} pairs, the build wrote {pairs:,}")
    console.print(f"  baseline read: {read['seconds']:,.2f} s, {frame.height:,} rows, "
                  f"{frame.estimated_size() / 2**20:,.0f} MiB in memory, peak RSS {mib(read['peak_rss_kib']):,.0f} MiB")
    writes, builds = [], [ours["seconds"]]
    for round_ in range(REBUILDS + 1):
        writes.append(baseline_write(frame, scratch / "baseline-pairs.jsonl"))
        console.print(f"  round {round_ + 1}: baseline write_ndjson {writes[-1]['seconds']:,.2f} s"
                      + ("" if round_ == 0 else f", our build {builds[-1]:,.2f} s"))
        if round_ < REBUILDS:
            shutil.rmtree(Path(ours["folder"]), ignore_errors=True)
            with Meter() as again:
                rebuilt = build_version(ws, name)
            if rebuilt.content_hash != ours["content_hash"]:
                raise RuntimeError("a rebuild gave other bytes")
            builds.append(again.seconds)
    console.print(f"  round 3 build: {builds[-1]:,.2f} s")
    del frame
    gc.collect()
    write_seconds = [w["seconds"] for w in writes]
    median_write, median_build = statistics.median(write_seconds), statistics.median(builds)
    write = writes[write_seconds.index(median_write)]
    ratio = median_write / median_build  # our pairs/s over the baseline's, on the medians
    bytes_ratio = (jsonl_bytes / median_build) / (write["bytes"] / median_write)
    console.print(f"  baseline write_ndjson {', '.join(f'{x:.2f}' for x in write_seconds)} s (median "
                  f"{median_write:,.2f} s, {pairs / median_write:,.0f} pairs/s, "
                  f"{mib(write['bytes'], from_bytes=True) / median_write:,.0f} MiB/s); ours "
                  f"{', '.join(f'{x:.2f}' for x in builds)} s (median {median_build:,.2f} s, "
                  f"{pairs / median_build:,.0f} pairs/s, JSONL {mib(jsonl_bytes, from_bytes=True) / median_build:,.0f} "
                  f"MiB/s, JSON + JSONL {mib(jsonl_bytes + json_bytes, from_bytes=True) / median_build:,.0f} MiB/s)")
    verdict = "[green]met[/]" if ratio >= BUDGET_RATIO else "[red]NOT met[/]"
    console.print(f"  ratio (pairs/s, ours / baseline, medians) = {ratio:.3f} (budget >= {BUDGET_RATIO}: {verdict}); "
                  f"JSONL bytes/s ratio = {bytes_ratio:.3f}; every round: "
                  f"{', '.join(f'{w / b:.3f}' for w, b in zip(write_seconds, builds, strict=True))}")
    stage |= {"baseline_read": read, "baseline": write, "baseline_writes": write_seconds, "builds": builds,
              "ratio": ratio, "bytes_ratio": bytes_ratio,
              "ratio_cpu": write["cpu_seconds"] / ours["cpu_seconds"],
              "ratio_read_and_write": (read["seconds"] + median_write) / median_build}


def stage_export(ws: Workspace, name: str, out: Path, scratch: Path) -> dict[str, Any]:
    console.print(f"[bold]export[/]: export_version(..., {FORMAT!r}, force_reason='benchmark')")
    keep: dict[str, Any] = {}
    with probe_export(ws, keep) as probe, Meter() as m:
        exported = export_version(ws, name, FORMAT, out, force_reason="benchmark")
    data = [p for p in exported.files if p.suffix == ".jsonl"]
    data_bytes = sum(p.stat().st_size for p in data)
    records = keep.pop("records")
    ours = m.as_dict() | {"records": len(records), "files": [str(p) for p in exported.files], "data_bytes": data_bytes,
                          "valid": exported.validation.ok, "errors": len(exported.validation.errors),
                          "warnings": len(getattr(exported.validation, "warnings", []) or []),
                          "cost_models": len(exported.costs), "breakdown": probe.as_dict()}
    console.print(f"  ours {ours['seconds']:,.2f} s: {len(records):,} records, "
                  f"{mib(data_bytes, from_bytes=True):,.0f} MiB of JSONL in {len(data)} files, valid={exported.validation.ok}, "
                  f"{len(exported.costs)} cost estimates; peak RSS {mib(ours['peak_rss_kib']):,.0f} MiB")
    print_breakdown(ours["breakdown"], ours["seconds"])

    with Meter() as frame_m:
        frame = pl.DataFrame(records)
    del records
    gc.collect()
    write = baseline_write(frame, scratch / "baseline-records.jsonl")
    n = frame.height
    del frame
    gc.collect()
    b = ours["breakdown"]
    writer_seconds = b.get("writer (write_openai_sft)", {}).get("seconds", float("nan"))
    ratio = (n / ours["seconds"]) / (n / write["seconds"])
    console.print(f"  baseline pl.DataFrame(records) {frame_m.seconds:,.2f} s, write_ndjson {write['seconds']:,.2f} s "
                  f"({n / write['seconds']:,.0f} records/s, {mib(write['bytes'], from_bytes=True):,.0f} MiB); "
                  f"ratio (records/s, whole export / baseline write) = {ratio:.3f}; writer alone "
                  f"{write['seconds'] / writer_seconds:.3f}")
    return {"name": "export", "items": n, "ours": ours, "baseline_frame": frame_m.as_dict(), "baseline": write,
            "ratio": ratio, "writer_ratio": write["seconds"] / writer_seconds,
            "ratio_cpu": write["cpu_seconds"] / ours["cpu_seconds"]}


# -- report -----------------------------------------------------------------------------------------------


def print_breakdown(breakdown: dict[str, dict[str, float]], total: float) -> None:
    for label, row in breakdown.items():
        peak = f"peak RSS {mib(row['peak_rss_kib']):7,.0f} MiB" if row.get("peak_rss_kib") else ""
        console.print(f"    {label:<58} {row['seconds']:9.2f} s {100 * row['seconds'] / total:5.1f}%  "
                      f"{int(row['calls']):>7,} calls  {peak}")


def report(summary: dict[str, Any]) -> None:
    t = Table(title=f"Training file benchmark: {summary['pairs']:,} training pairs in {summary['members']:,} "
                    f"conversations, pinned to CPU {summary['cpu']}")
    for col in ("stage", "items", "ours s", "ours CPU s", "ours /s", "baseline", "baseline s", "baseline /s",
                "ratio", "ratio (CPU)", "RSS start MiB", "peak RSS MiB", "baseline peak MiB"):
        t.add_column(col, justify="left" if col in ("stage", "baseline") else "right")
    for s in summary["stages"]:
        o, b = s["ours"], s["baseline"]
        base_peak = max(x.get("peak_rss_kib", 0) for x in (b, s.get("baseline_read", {}), s.get("baseline_frame", {})))
        unit = {"build": "pairs", "export": "records"}.get(s["name"], "conv")
        what = {"build": "pairs write_ndjson",
                "export": "records write_ndjson"}.get(s["name"], "DuckDB + Parquet")
        t.add_row(s["name"], f"{s['items']:,} {unit}", f"{o['seconds']:,.2f}", f"{o['cpu_seconds']:,.2f}",
                  f"{s['items'] / o['seconds']:,.0f}",
                  what, f"{b['seconds']:,.2f}", f"{s['items'] / b['seconds']:,.0f}", f"{s['ratio']:.3f}",
                  f"{s['ratio_cpu']:.3f}",
                  f"{mib(o['rss_start_kib']):,.0f}", f"{mib(o['peak_rss_kib']):,.0f}",
                  f"{mib(base_peak):,.0f}")
    console.print(t)
    build = next((s for s in summary["stages"] if s["name"] == "build"), None)
    if build:
        o = build["ours"]
        console.print(f"build: JSONL {mib(o['jsonl_bytes'], from_bytes=True):,.0f} MiB at "
                      f"{mib(o['jsonl_bytes'], from_bytes=True) / o['seconds']:,.0f} MiB/s (baseline "
                      f"{mib(build['baseline']['bytes'], from_bytes=True) / build['baseline']['seconds']:,.0f} MiB/s, "
                      f"bytes ratio {build['bytes_ratio']:.3f}); with the JSON "
                      f"{mib(o['jsonl_bytes'] + o['json_bytes'], from_bytes=True) / o['seconds']:,.0f} MiB/s; "
                      f"against the baseline's read + write: {build['ratio_read_and_write']:.3f}")
        verdict = "[green]met[/]" if build["ratio"] >= BUDGET_RATIO else "[red]NOT met[/]"
        console.print(f"Budget: JSONL at >= {BUDGET_RATIO} of plain polars write_ndjson: {verdict} "
                      f"({build['ratio']:.3f})")
    console.print(f"Largest peak RSS of any stage: {mib(summary['peak_rss_kib']):,.0f} MiB")
    for line in issue15_budgets(summary):
        console.print(line)


def issue15_budgets(summary: dict[str, Any]) -> list[str]:
    """Issue 15's budgets (stated for 1,000,000 pairs and a 100,000 + 100,000 add): the export within 3x of
    the build's own (median) time and under 4 GiB peak; the second add under 30 s."""
    by = {s["name"]: s for s in summary.get("stages", [])}
    out = []
    build, export = by.get("build"), by.get("export")
    if build and export:
        rounds = build.get("builds") or [build["ours"]["seconds"]]
        times = export["ours"]["seconds"] / statistics.median(rounds)
        peak = mib(export["ours"]["peak_rss_kib"])
        out.append(f"Issue 15: export / build (median) = {times:.2f}x (budget <= 3x: {'met' if times <= 3 else 'NOT met'}); "
                   f"export peak {peak:,.0f} MiB (budget < 4,096: {'met' if peak < 4096 else 'NOT met'})")
    fresh = summary.get("fresh")
    if fresh:
        peak = fresh["export_peak_kib"] / 1024
        out.append(f"Issue 15, fresh processes: export / build (medians of {len(fresh['builds'])}) = "
                   f"{fresh['export_median']:,.2f} / {fresh['build_median']:,.2f} s = {fresh['ratio']:.2f}x (budget <= 3x: "
                   f"{'met' if fresh['ratio'] <= 3 else 'NOT met'}); export peak {peak:,.0f} MiB")
        if "add" in fresh:
            seconds = fresh["add"]["seconds"]
            out.append(f"Issue 15, fresh process: the second add in {seconds:,.1f} s (budget < 30 s: "
                       f"{'met' if seconds < 30 else 'NOT met'})")
    second = next((s for name, s in by.items() if name.startswith("add") and name.endswith("more")), None)
    if second:
        seconds = second["ours"]["seconds"]
        out.append(f"Issue 15: {second['name']} in {seconds:,.1f} s (budget < 30 s for 100,000 added to 100,000: "
                   f"{'met' if seconds < 30 else 'NOT met'} at this size)")
    return out


# -- main ----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=202_000,
                        help="conversations the workspace should hold (default: enough for 1,000,000 pairs)")
    parser.add_argument("--pairs", type=int, default=1_000_000,
                        help="stop adding members once the training file holds this many training pairs")
    parser.add_argument("--first", type=int, default=100_000, help="conversations added in the first call")
    parser.add_argument("--workspace", type=Path, default=None,
                        help="workspace folder; one built earlier is reused (topped up if it holds fewer "
                             "conversations). Default: a temporary folder, removed unless --keep")
    parser.add_argument("--keep", action="store_true", help="keep a temporary workspace at the end")
    parser.add_argument("--keep-outputs", action="store_true",
                        help="keep the built training file, the export and the scratch folder")
    parser.add_argument("--name", default=None, help="training file name (default: bench-<time>)")
    parser.add_argument("--json", action="store_true", help="also print a JSON summary")
    parser.add_argument("--no-presign", action="store_true",
                        help="leave conversations an older enrichment did not sign unsigned: the adds sign them")
    args = parser.parse_args(argv)

    temp = args.workspace is None
    root = Path(tempfile.mkdtemp(prefix="brightrun-bench-tf-")) if temp else args.workspace
    name = args.name or f"bench-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    console.print(f"BrightRun training file benchmark in {root}; training file {name!r}; pinned to CPU "
                  f"{sorted(os.sched_getaffinity(0))}; DuckDB threads=1; python {platform.python_version()}, "
                  f"duckdb {duckdb.__version__}, polars {pl.__version__}; load average "
                  f"{os.getloadavg()[0]:.2f}")
    summary: dict[str, Any] = {"date": date.today().isoformat(), "started": datetime.now().isoformat(timespec="seconds"),
                               "workspace": str(root), "name": name, "cpu": CPU, "python": platform.python_version(),
                               "duckdb": duckdb.__version__, "polars": pl.__version__,
                               "loadavg_start": os.getloadavg()}
    scratch = root / "bench_outputs" / name
    out = scratch / FORMAT
    started = time.perf_counter()
    ws = None
    try:
        ws = Workspace.open(root, threads=1)
        prepare_workspace(ws, args.conversations, summary, presign=not args.no_presign)
        eligible = eligible_pairs(ws)
        ids, counts = eligible["conversation_id"].to_list(), eligible["pairs"].to_list()
        first = min(args.first, len(ids))
        total = sum(counts[:first])
        end = first
        while end < len(ids) and total < args.pairs:
            total += counts[end]
            end += 1
        summary |= {"eligible_conversations": len(ids), "eligible_pairs": int(sum(counts)), "members": end,
                    "pairs": int(total), "first": first}
        if total < args.pairs:
            console.print(f"[yellow]the workspace holds only {total:,} training pairs in {len(ids):,} eligible "
                          f"conversations; the training file will hold all of them (ask for more --conversations)[/]")
        console.print(f"workspace: {len(ids):,} eligible conversations, {sum(counts):,} training pairs; the training "
                      f"file takes {end:,} of them ({total:,} pairs): {first:,} in the first call, "
                      f"{end - first:,} in the second")
        scratch.mkdir(parents=True, exist_ok=True)

        stages = [stage_add(ws, name, ids[:first], int(sum(counts[:first])), scratch, create=True,
                            label=f"add {first:,}")]
        if end > first:
            stages.append(stage_add(ws, name, ids[first:end], int(sum(counts[first:end])), scratch, create=False,
                                    label=f"add {end - first:,} more"))
        build = stage_build(ws, name)
        stages.append(build)
        stages.append(stage_export(ws, name, out, scratch))
        baseline_build(ws, build, name, ids[:end], scratch)
        console.print(f"[bold]fresh processes[/]: build and export of {name!r}, each in a new process (as the CLI "
                      f"runs them), {FRESH_ROUNDS} rounds; then the two adds into a new training file, the second timed")
        summary["fresh"] = fresh = _fresh.fresh_rounds(root, name, out, FRESH_ROUNDS, console.print)
        fresh["add"] = _fresh.run("add", root, f"{name}-fresh", ids=ids[:end], first=first, scratch=scratch)
        console.print(f"  fresh add of {end - first:,} more: {fresh['add']['seconds']:,.2f} s")

        summary["stages"] = stages
        summary["peak_rss_kib"] = max(s["ours"]["peak_rss_kib"] for s in stages)
        summary["wall_seconds"] = time.perf_counter() - started
        summary["loadavg_end"] = os.getloadavg()
        summary["disk_bytes_with_outputs"] = disk_bytes(root)
        summary["budget_met"] = build["ratio"] >= BUDGET_RATIO
        report(summary)
        if args.json:
            print(json.dumps(summary, indent=2, default=str))
        return 0 if summary["budget_met"] else 1
    finally:
        if ws is not None and not args.keep_outputs:
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.rmtree(root / "training_files" / name, ignore_errors=True)
            shutil.rmtree(root / "training_files" / f"{name}-fresh", ignore_errors=True)
            if scratch.parent.exists() and not any(scratch.parent.iterdir()):
                scratch.parent.rmdir()
        if ws is not None:
            ws.close()
        if temp and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        elif temp or args.keep:
            console.print(f"workspace kept at {root} ({mib(disk_bytes(root), from_bytes=True):,.0f} MiB)")


if __name__ == "__main__":
    sys.exit(main())
