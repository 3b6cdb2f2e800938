"""What the Quality page asks of a workspace: scores by group, the records behind a chart, coverage of
approved data. Every function returns a polars frame; the page only draws it."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from brightrun.errors import BrightRunError
from brightrun.explore import dimension_labels
from brightrun.quality.scoring import DIMENSIONS
from brightrun.workspace import Workspace


@dataclass(frozen=True)
class Metric:
    label: str
    level: str  # "conversation" (from the conversations view) or "pair" (from training_pairs)
    low: float
    high: float
    help: str


METRICS: dict[str, Metric] = {
    "quality_score": Metric("Quality score (0-10)", "conversation", 0, 10,
                            "mean of the conversation's training-pair scores (docs/quality.md)"),
    "min_pair_score": Metric("Worst turn score (0-10)", "conversation", 0, 10,
                             "the lowest training-pair score in the conversation"),
    "arc_adherence": Metric("Arc adherence (0-1)", "conversation", 0, 1,
                            "how closely the client's valence follows the arc's stages"),
    "emotion_match_rate": Metric("Emotion match rate (0-1)", "conversation", 0, 1,
                                 "share of client turns whose detected emotion is the stage's emotion"),
    **{d: Metric(f"{d.replace('_', ' ').capitalize()} (0-1, per turn)", "pair", 0, 1,
                 f"the heuristic '{d}' dimension of each advisor turn") for d in DIMENSIONS},
}

# Group name -> (SQL expression over the conversations view or training_pairs, label).
GROUPS: dict[str, str] = {
    "persona": "persona_key",
    "arc": "arc_key",
    "topic": "topic_key",
    "template version": "template_key || ' @ ' || template_version",
    "tier": "tier",
    "model": "model",
}

RECORD_COLUMNS = ["conversation_id", "title", "persona", "arc", "topic", "tier", "template_version", "model",
                  "turn_count", "quality_score", "min_pair_score", "arc_adherence", "emotion_match_rate"]


def _check(group: str, metric: str) -> tuple[str, Metric]:
    if group not in GROUPS:
        raise BrightRunError(f"unknown group {group!r}. Fix: use one of {', '.join(GROUPS)}.")
    if metric not in METRICS:
        raise BrightRunError(f"unknown metric {metric!r}. Fix: use one of {', '.join(METRICS)}.")
    return GROUPS[group], METRICS[metric]


def labels(ws: Workspace, group: str) -> dict[str, str]:
    """Display names of a group's keys (scaffold names; template versions as 'Name @ version')."""
    if group in ("persona", "arc", "topic", "tier"):
        return dimension_labels(ws, group)
    if group == "template version":
        names = dimension_labels(ws, "template")
        rows = ws.sql("SELECT DISTINCT template_key, template_version FROM _t_conversations").iter_rows()
        return {f"{t} @ {v}": f"{names.get(t, t)} @ {v}" for t, v in rows}
    return {}


def with_names(ws: Workspace, frame: pl.DataFrame) -> pl.DataFrame:
    """Add `persona`, `arc` and `topic` display names beside their key columns."""
    return frame.with_columns(
        pl.col(f"{dim}_key").replace_strict(dimension_labels(ws, dim), default=pl.col(f"{dim}_key")).alias(dim)
        for dim in ("persona", "arc", "topic"))


# Each conversation with its scores: the conversations table and the quality table, one join. (The
# `conversations` view also joins the status table to every conversation, which the scores do not need, and does
# not carry the worst turn score.)
SCORED = """(SELECT c.*, q.quality_score, q.min_pair_score, q.arc_adherence, q.emotion_match_rate
             FROM _t_conversations c LEFT JOIN _t_conversation_quality q USING (conversation_id))"""


def _source(metric: Metric) -> str:
    # Pair metrics group over training_pairs of enriched conversations; conversation metrics over SCORED.
    return "training_pairs" if metric.level == "pair" else SCORED


SCORE_TABLES = ["conversations", "conversation_status", "conversation_quality", "training_pairs"]
"""What the scores and records are read from: each result is kept per data version of these (`Workspace.memo`),
so the Quality page's reruns (a drill-down, a score range) reuse the grouping over every conversation."""


def group_scores(ws: Workspace, group: str, metric: str) -> pl.DataFrame:
    """Per group value: n, mean with a 95% interval (normal approximation), the 10th, 50th and 90th
    percentiles, min and max. Rows without a score (not yet enriched) are left out; `key` is the raw
    value, `label` its display name. Sorted by mean, weakest first."""
    _check(group, metric)
    return ws.memo(("group_scores", group, metric), lambda: _group_scores(ws, group, metric), tables=SCORE_TABLES)


def _group_scores(ws: Workspace, group: str, metric: str) -> pl.DataFrame:
    expr, m = _check(group, metric)
    frame = ws.sql(f"""
        SELECT {expr} AS key, count({metric}) AS n, avg({metric}) AS mean, stddev_samp({metric}) AS sd,
               quantile_cont({metric}, 0.1) AS p10, median({metric}) AS median,
               quantile_cont({metric}, 0.9) AS p90, min({metric}) AS min, max({metric}) AS max
        FROM {_source(m)} WHERE {metric} IS NOT NULL GROUP BY 1 ORDER BY mean, key""")
    names = labels(ws, group)
    half = 1.96 * pl.col("sd").fill_null(0) / pl.col("n").cast(pl.Float64).sqrt()
    return frame.with_columns(
        pl.col("key").replace_strict(names, default=pl.col("key")).alias("label"),
        (pl.col("mean") - half).clip(m.low, m.high).alias("ci_low"),
        (pl.col("mean") + half).clip(m.low, m.high).alias("ci_high"),
    ).select("key", "label", "n", "mean", "ci_low", "ci_high", "p10", "median", "p90", "min", "max")


def histogram(ws: Workspace, metric: str, bins: int = 20) -> pl.DataFrame:
    """Counts of the metric in `bins` equal-width bins over its range: bin_low, bin_high, n."""
    _, m = _check("persona", metric)
    width = (m.high - m.low) / bins
    frame = ws.sql(f"""
        SELECT least(floor(({metric} - ?) / ?)::INT, ? - 1) AS bin, count(*) AS n
        FROM {_source(m)} WHERE {metric} IS NOT NULL GROUP BY 1""", [m.low, width, bins])
    found = dict(frame.iter_rows())
    return pl.DataFrame({"bin_low": [m.low + i * width for i in range(bins)],
                         "bin_high": [m.low + (i + 1) * width for i in range(bins)],
                         "n": [found.get(i, 0) for i in range(bins)]})


def records(ws: Workspace, group: str | None, key: str | None, metric: str = "quality_score", *,
            score_range: tuple[float, float] | None = None, limit: int = 500) -> pl.DataFrame:
    """The conversations behind a chart: those in one group value (or all), optionally with the metric
    in a range, weakest first on the metric. Pair metrics use the conversation's mean of that metric."""
    _check(group or "persona", metric)
    key_ = ("records", group, key, metric, None if score_range is None else tuple(score_range), limit)
    return ws.memo(key_, lambda: _records(ws, group, key, metric, score_range, limit), tables=SCORE_TABLES)


def _records(ws: Workspace, group: str | None, key: str | None, metric: str,
             score_range: tuple[float, float] | None, limit: int) -> pl.DataFrame:
    _, m = _check(group or "persona", metric)
    where, params = ["s.status = 'completed'"], []
    if group is not None and key is not None:
        where.append(f"({GROUPS[group].replace('template_key', 'c.template_key')}) = ?")
        params.append(key)
    value = f"q.{metric}" if m.level == "conversation" else "p.value"
    join = ""
    if m.level == "pair":
        join = (f"JOIN (SELECT conversation_id, avg({metric}) AS value FROM training_pairs GROUP BY 1) p "
                "USING (conversation_id)")
    if score_range is not None:
        where.append(f"{value} BETWEEN ? AND ?")
        params += list(score_range)
    frame = ws.sql(f"""
        SELECT c.conversation_id, c.title, c.persona_key, c.arc_key, c.topic_key, c.tier, c.template_version,
               c.model, c.turn_count, q.quality_score, q.min_pair_score, q.arc_adherence, q.emotion_match_rate,
               {value} AS metric
        FROM _t_conversations c JOIN _t_conversation_status s USING (conversation_id)
             LEFT JOIN _t_conversation_quality q USING (conversation_id) {join}
        WHERE {' AND '.join(where)}
        ORDER BY metric NULLS LAST, c.conversation_id LIMIT ?""", [*params, limit])
    return with_names(ws, frame).select(*RECORD_COLUMNS, *(["metric"] if metric not in RECORD_COLUMNS else []))


def pair_scores(ws: Workspace, conversation_id: str) -> pl.DataFrame:
    """One row per advisor turn of a conversation with its heuristic dimensions and overall score."""
    return ws.sql(f"""
        SELECT turn_number, primary_emotion AS client_emotion, expected_stage_emotion, valence,
               {', '.join(DIMENSIONS)}, quality_score
        FROM training_pairs WHERE conversation_id = ? ORDER BY turn_number""", [conversation_id])


def approved_coverage(ws: Workspace, rows: str, columns: str, *, min_quality: float = 6.0,
                      min_adherence: float = 0.0, exclude: set[str] | frozenset[str] = frozenset()) -> pl.DataFrame:
    """A rows x columns matrix of approved conversations: enriched, quality score at least `min_quality`,
    arc adherence at least `min_adherence` (conversations without a measurable adherence pass), and not
    in `exclude` (e.g. the later members of duplicate clusters). Every scaffold value is a row or
    column, so empty cells show as 0. First column: row labels."""
    for dim in (rows, columns):
        if dim not in ("persona", "arc", "topic", "tier"):
            raise BrightRunError(f"coverage cannot use {dim!r}. Fix: use persona, arc, topic or tier.")
    if rows == columns:
        raise BrightRunError("rows and columns are the same dimension. Fix: choose two different ones.")
    r, c = GROUPS[rows], GROUPS[columns]
    frame = ws.sql(f"""
        SELECT conversation_id, {r} AS r, {c} AS c FROM conversations
        WHERE enrichment_status = 'completed' AND quality_score >= ?
          AND coalesce(arc_adherence, 1.0) >= ?""", [min_quality, min_adherence])
    if exclude:
        frame = frame.filter(~pl.col("conversation_id").is_in(list(exclude)))
    counts = {(a, b): n for a, b, n in frame.group_by("r", "c").len().iter_rows()}
    row_labels, col_labels = labels(ws, rows), labels(ws, columns)
    row_keys = [*row_labels, *sorted({a for a, _ in counts} - set(row_labels))]
    col_keys = [*col_labels, *sorted({b for _, b in counts} - set(col_labels))]
    data = {rows: [row_labels.get(k, k) for k in row_keys]}
    for ck in col_keys:
        data[col_labels.get(ck, ck)] = [counts.get((rk, ck), 0) for rk in row_keys]
    return pl.DataFrame(data, schema={rows: pl.String, **{col_labels.get(k, k): pl.Int64 for k in col_keys}})


OFF_ARC = 0.85
"""Arc adherence under this (a mean valence gap over 0.3 on the -1..1 scale) counts as off the arc."""


def adherence_by_arc(ws: Workspace) -> pl.DataFrame:
    """Per arc: conversations, mean arc adherence and emotion match rate, and the share of conversations
    off the arc (adherence under OFF_ARC: the client did not follow the intended trajectory)."""
    frame = ws.sql("""
        SELECT arc_key, count(arc_adherence) AS conversations, avg(arc_adherence) AS mean_adherence,
               avg(emotion_match_rate) AS mean_emotion_match,
               avg((arc_adherence < ?)::INT) AS share_off_arc
        FROM conversations WHERE enrichment_status = 'completed' GROUP BY 1 ORDER BY mean_adherence""", [OFF_ARC])
    arcs = ws.scaffolding.arcs
    return frame.with_columns(
        pl.col("arc_key").replace_strict({k: v.name for k, v in arcs.items()}, default=pl.col("arc_key")).alias("arc"),
        pl.col("arc_key").replace_strict({k: v.tier for k, v in arcs.items()}, default=None).alias("tier"),
    ).select("arc_key", "arc", "tier", "conversations", "mean_adherence", "mean_emotion_match", "share_off_arc")


def trajectory(ws: Workspace, conversation_id: str) -> pl.DataFrame:
    """The client's detected valence at each advisor turn's input beside the arc stage's intended valence."""
    return ws.sql("""
        SELECT turn_number, primary_emotion AS detected_emotion, valence AS detected_valence,
               expected_stage_emotion AS intended_emotion, stage_valence AS intended_valence
        FROM training_pairs WHERE conversation_id = ? ORDER BY turn_number""", [conversation_id])


def record_conversation(ws: Workspace, scope: str, record_id: str) -> str | None:
    """The conversation a duplicate-check record belongs to: itself, or a training pair's conversation."""
    if scope == "conversations":
        return record_id
    found = ws.sql("SELECT conversation_id FROM training_pairs WHERE pair_id = ?", [record_id])
    return found.item() if found.height else None


def record_text(ws: Workspace, scope: str, record_id: str) -> str:
    """The text a duplicate check compared: a conversation's turns ('Client:'/'Advisor:' lines) or a
    training pair's target response."""
    if scope == "conversations":
        frame = ws.sql("SELECT role, content FROM turns WHERE conversation_id = ? ORDER BY turn_number", [record_id])
        names = {"user": "Client", "assistant": "Advisor"}
        return "\n\n".join(f"{names.get(r, r)}: {c}" for r, c in frame.iter_rows())
    if scope == "training pairs":
        value = ws.sql("SELECT target_response FROM training_pairs WHERE pair_id = ?", [record_id])
        return value.item() if value.height else ""
    raise BrightRunError(f"unknown scope {scope!r}. Fix: use 'conversations' or 'training pairs'.")


def conversation_turns(ws: Workspace, conversation_id: str) -> list[dict]:
    return ws.sql("SELECT turn_number, role, content FROM turns WHERE conversation_id = ? ORDER BY turn_number",
                  [conversation_id]).to_dicts()


def diversity_frame(ws: Workspace, report) -> pl.DataFrame:
    """The report's per-cell diversity with scaffold names, collapsed cells first."""
    frame = pl.DataFrame([c.model_dump() for c in report.diversity], schema={
        "persona_key": pl.String, "arc_key": pl.String, "topic_key": pl.String, "conversations": pl.Int64,
        "distinct_2": pl.Float64, "repeated_openings": pl.Float64, "low": pl.Boolean,
        "variation_draws": pl.Int64, "variation_values": pl.String})
    return with_names(ws, frame).select(
        "persona", "arc", "topic", "persona_key", "arc_key", "topic_key", "conversations", "distinct_2",
        "variation_draws", "variation_values", "repeated_openings", "low",
    ).sort(["low", "distinct_2"], descending=[True, False], nulls_last=True)


def filter_diversity(frame: pl.DataFrame, *, only_low: bool = False, personas: list[str] | None = None) -> pl.DataFrame:
    if only_low:
        frame = frame.filter(pl.col("low"))
    if personas:
        frame = frame.filter(pl.col("persona").is_in(personas))
    return frame
