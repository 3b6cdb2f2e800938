"""The quality report: the costly signals (duplicate clusters, diversity per cell) computed once and kept
in the workspace (a summary in `reports/quality.json`, the groups' members beside it: `report_store`), plus a
summary of the scores. `brightrun quality report` and the Quality page's "Recompute" write it; the page reads it
and says when it is out of date."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from brightrun.quality import report_store, signature_store
from brightrun.quality.diversity import cell_diversity
from brightrun.quality.duplicates import FEATURE_CHUNK, Features
from brightrun.quality.findings import Scratch, features_of
from brightrun.quality.report_store import (
    CellDiversity,
    DuplicateFindings,
    DuplicateGroup,
    QualityReport,
    QualitySummary,
    ScoreSummary,
    summary_of,
)
from brightrun.workspace import Workspace
from brightrun.workspace.pool import check_workers, map_ordered, pool_kept, workers_for
from brightrun.workspace.workspace import utcnow

Counts = Callable[[str, int, int], None]
"""Progress of a long step: (what, done, total)."""

LOW_DIVERSITY = 0.5
MIN_CELL = 3
"""Cells of at least MIN_CELL conversations whose distinct-bigram share is below LOW_DIVERSITY, or
whose openings repeat in over half the conversations, are flagged as collapsing into stock text
(two conversations sharing an opening is chance, not collapse)."""


def _findings(scratch: Scratch, workers: int, what: str, counts: Counts) -> DuplicateFindings:
    exact, clusters = scratch.findings(workers, lambda done, total: counts(f"linking {what} (LSH bands)", done, total))
    return DuplicateFindings(exact=[DuplicateGroup(ids=list(g), similarity=1.0) for g in exact],
                             near=[DuplicateGroup(ids=list(c.ids), similarity=c.similarity) for c in clusters])


def _conversation_features(ws: Workspace, scratch: Scratch, workers: int, counts: Counts) -> None:
    """Each conversation's features: those kept by enrichment (the signature store) while its turns are unchanged;
    the others computed from its text by the workers, and kept."""
    turns = signature_store.fingerprint_frame(ws)
    total = turns.height
    kept, missing = signature_store.current(ws, turns, FEATURE_CHUNK)
    for signed in kept:
        scratch.add(signed.ids, Features(signed.keys, signed.signatures, signed.sets or []))
        counts("reading conversation signatures", scratch.texts, total)
    made = dict(zip(turns["conversation_id"].to_list(), turns["turns_hash"].to_list(), strict=True)) if missing else {}
    del turns
    chunks = signature_store.texts_by_range(ws, missing, FEATURE_CHUNK)
    for (ids, _), f in map_ordered(features_of, chunks, workers_for(workers, -(-len(missing) // FEATURE_CHUNK))):
        signature_store.write(ws, signature_store.Signed(ids, f.keys, f.signatures, f.sets), made)
        scratch.add(ids, f)
        counts("signing conversations", scratch.texts, total)


def _pair_features(ws: Workspace, scratch: Scratch, workers: int, counts: Counts, total: int) -> None:
    """Each training pair's target response's features, computed by the workers as the table streams past."""
    batches = ws.stream("training_pairs", ["pair_id", "target_response"], FEATURE_CHUNK)
    chunks = ((b.column(0).to_pylist(), [t or "" for t in b.column(1).to_pylist()]) for b in batches)
    for (ids, _), f in map_ordered(features_of, chunks, workers_for(workers, -(-total // FEATURE_CHUNK))):
        scratch.add(ids, f)
        counts("signing training pairs", scratch.texts, total)


def build_quality_report(ws: Workspace, progress: Callable[[str], None] | None = None, *, workers: int | None = 1,
                         engine: str = "local", counts: Counts | None = None) -> QualityReport:
    """Compute duplicates across conversations and training pairs, diversity per scaffold cell and a
    score summary. Takes seconds on the demo, about 1.5 minutes at 100,000 conversations and 23 at 1,000,000
    with 2 workers (docs/benchmarks.md).
    `workers` processes share the MinHash features and the checks of candidate pairs (None: one per core);
    engine="ray" computes the features with Ray Data over the published Delta tables (docs/scale.md). The
    report is the same either way. `progress(step)` names each step as it starts; `counts(what, done, total)`
    reports the long ones as they go. Memory holds about 100-200 bytes per text, and each linking worker 128 per
    distinct text (the rest waits in a scratch folder in the temporary directory, `brightrun.quality.findings`)."""
    workers = check_workers(workers)
    say, count = progress or (lambda _msg: None), counts or (lambda _what, _done, _total: None)
    with pool_kept(workers, ["brightrun.quality.duplicates", "brightrun.quality.findings"]):
        return _build(ws, say, count, workers, engine)


def _build(ws: Workspace, say: Callable[[str], None], counts: Counts, workers: int, engine: str) -> QualityReport:
    started = time.perf_counter()
    say("summarizing scores")  # rounded: DuckDB's parallel sums differ from run to run in the last bits
    row = ws.sql("""
        SELECT count(*) AS conversations,
               count_if(enrichment_status = 'completed')::BIGINT AS enriched,
               round(avg(quality_score), 9) AS mean_quality,
               round(quantile_cont(quality_score, 0.1), 9) AS p10_quality,
               round(median(quality_score), 9) AS median_quality,
               round(avg(arc_adherence), 9) AS mean_arc_adherence,
               count_if(quality_score < 6)::BIGINT AS below_6
        FROM conversations""").row(0, named=True)
    pairs = int(ws.scalar("SELECT count(*) FROM training_pairs"))
    found = {}
    for which, what in (("conversations", "conversations"), ("training_pairs", "training pairs")):
        say(f"finding duplicate {what}")
        with Scratch() as scratch:
            if engine == "ray":
                from brightrun.quality.on_ray import ray_features

                scratch.add(*ray_features(ws, which))
            elif which == "conversations":
                _conversation_features(ws, scratch, workers, counts)
            else:
                _pair_features(ws, scratch, workers, counts, pairs)
            found[which] = _findings(scratch, workers, what, counts)
    say("measuring diversity per scaffold cell")
    diversity = [
        CellDiversity(**r, low=r["conversations"] >= MIN_CELL
                      and (r["distinct_2"] < LOW_DIVERSITY or r["repeated_openings"] > 0.5))
        for r in cell_diversity(ws).to_dicts()
    ]
    conversations = row.pop("conversations")
    return QualityReport(
        computed_at=utcnow(), seconds=round(time.perf_counter() - started, 2), conversations=conversations,
        training_pairs=pairs, scores=ScoreSummary(**row), conversation_duplicates=found["conversations"],
        pair_duplicates=found["training_pairs"], diversity=diversity)


def save_quality_report(ws: Workspace, report: QualityReport) -> Path:
    """Keep the report: its summary in reports/quality.json, its groups beside it (`report_store`)."""
    return report_store.save(ws, report)


def latest_quality_report(ws: Workspace) -> QualityReport | None:
    """The last saved report, whole (every group's members), or None if none was computed yet. The Quality page
    reads `report_store.latest_summary` and the groups it lists instead."""
    return report_store.latest_report(ws)


def staleness(ws: Workspace, report: QualityReport | QualitySummary) -> str | None:
    """Why the report no longer describes the workspace, or None if it still does."""
    now = int(ws.scalar("SELECT count(*) FROM conversations"))
    pairs = int(ws.scalar("SELECT count(*) FROM training_pairs"))
    if (now, pairs) != (report.conversations, report.training_pairs):
        return (f"computed over {report.conversations:,} conversations and {report.training_pairs:,} training "
                f"pairs; the workspace now has {now:,} and {pairs:,}")
    return None


def summarize(report: QualityReport | QualitySummary) -> str:
    if isinstance(report, QualityReport):
        report = summary_of(report)
    s = report.scores
    lines = [
        f"{report.conversations:,} conversations ({s.enriched:,} enriched), {report.training_pairs:,} training pairs",
        f"quality: mean {_f(s.mean_quality)}, 10th percentile {_f(s.p10_quality)}, median {_f(s.median_quality)}; "
        f"{s.below_6:,} conversation(s) under 6",
        f"arc adherence: mean {_f(s.mean_arc_adherence, 3)}",
    ]
    for name, scope in (("conversations", "conversations"), ("training pairs", "training_pairs")):
        found = report.duplicates[scope]
        lines.append(f"duplicate {name}: {found.exact} exact group(s), {found.near} near-duplicate "
                     f"cluster(s), {found.redundant:,} redundant record(s)")
    low = report.low_diversity
    lines.append(f"diversity: {len(low)} of {len(report.diversity)} scaffold cell(s) look collapsed"
                 + (f" (e.g. {low[0].persona_key} / {low[0].arc_key} / {low[0].topic_key})" if low else ""))
    drew = [c for c in report.diversity if c.variation_draws]
    if drew:
        lines.append(f"variation: {len(drew)} of {len(report.diversity)} scaffold cell(s) drew declared variation, "
                     f"{sum(c.variation_draws for c in drew):,} distinct draw(s) in all")
    lines.append(f"computed in {report.seconds:.1f} s at {report.computed_at:%Y-%m-%d %H:%M} UTC")
    return "\n".join(lines)


def _f(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"
