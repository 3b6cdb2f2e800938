"""An experiment's results: per arm and metric, the estimate with its interval, lift, the test for the
metric type, p-values adjusted across variants and metrics (Holm; Benjamini-Hochberg when exploratory),
P(beat control), a sample-ratio check, per-persona and per-topic effects with the Mantel-Haenszel (or
post-stratified) estimate beside the naive one, and a winner or "no winner yet"."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from brightrun.experiments.core import load_experiment
from brightrun.experiments.model import METRICS, Experiment
from brightrun.stats import ArmResult, Decision, Metric, compare_metrics, decide_winner
from brightrun.stats.srm import SRMResult, srm_check
from brightrun.stats.strata import stratified_means, stratified_rates_from_frame
from brightrun.workspace import Workspace

OUTCOMES_SQL = """
WITH arms AS (SELECT unnest(?::VARCHAR[]) AS job_id, unnest(?::VARCHAR[]) AS arm),
fb AS (
    SELECT p.conversation_id, avg(f.helpful::INT) AS up_share, count(f.helpful) AS thumbs,
           avg(f.rating) AS mean_rating, max((f.edited_response IS NOT NULL)::INT) AS any_edit, count(*) AS judged
    FROM feedback_latest f JOIN training_pairs p ON f.target_type = 'training_pair' AND p.pair_id = f.target_id
    WHERE f.source = 'review' GROUP BY 1),
words AS (SELECT conversation_id, avg(response_word_count) AS response_words FROM training_pairs GROUP BY 1)
SELECT a.arm, i.item_id, i.status, i.persona_key, i.topic_key, c.conversation_id, c.quality_score,
       CASE WHEN fb.thumbs > 0 THEN (fb.up_share > 0.5)::INT END AS thumbs_up,
       fb.mean_rating, CASE WHEN fb.judged > 0 THEN fb.any_edit END AS edited, words.response_words,
       CASE WHEN i.status = 'pending' THEN NULL ELSE (i.status = 'failed')::INT END AS failed, l.cost_usd
FROM batch_items i JOIN arms a USING (job_id)
LEFT JOIN conversations c ON c.conversation_id = i.conversation_id
LEFT JOIN fb ON fb.conversation_id = c.conversation_id
LEFT JOIN words ON words.conversation_id = c.conversation_id
LEFT JOIN llm_calls l ON l.call_id = c.call_id
ORDER BY a.arm, i.item_id
"""


@dataclass
class ExperimentReport:
    experiment: Experiment
    outcomes: pl.DataFrame
    """One row per planned conversation: arm, persona, topic and every metric's value (null: not measured)."""
    arms: pl.DataFrame
    results: list[ArmResult]
    decision: Decision
    srm: SRMResult | None
    strata: dict[str, dict[str, object]] = field(default_factory=dict)
    """variant -> 'persona' / 'topic' -> StratifiedRates or StratifiedMeans of the success metric."""
    warnings: list[str] = field(default_factory=list)


def outcomes(ws: Workspace, exp: Experiment) -> pl.DataFrame:
    names = [a.name for a in exp.arms]
    return ws.sql(OUTCOMES_SQL, [[exp.job_id(n) for n in names], names])


def experiment_report(ws: Workspace, experiment_id: str, *, alpha: float = 0.05,
                      exploratory: bool = False) -> ExperimentReport:
    exp = load_experiment(ws, experiment_id)
    frame = outcomes(ws, exp)
    control = exp.control.name
    arms = frame.group_by("arm", maintain_order=True).agg(
        pl.len().alias("planned"), pl.col("conversation_id").is_not_null().sum().alias("conversations"),
        pl.col("thumbs_up").is_not_null().sum().alias("reviewed"),
        *(pl.col(m).mean().alias(m) for m in METRICS))
    warnings: list[str] = []
    metrics, measured = [], {}
    for name in [exp.success_metric, *exp.guardrails]:
        spec = METRICS[name]
        values = {arm.name: frame.filter(pl.col("arm") == arm.name)[name].drop_nulls().to_list() for arm in exp.arms}
        measured[name] = values
        if any(len(v) < 2 for v in values.values()):
            warnings.append(f"{name}: fewer than 2 measured conversations in an arm; review more conversations "
                            "(Review page) before reading this metric.")
            continue
        metrics.append(Metric(name=name, metric_type=spec.kind, control=values[control],
                              variants={a: v for a, v in values.items() if a != control},
                              higher_is_better=spec.higher_is_better, guardrail=name != exp.success_metric))
    results = compare_metrics(metrics, control_name=control, alpha=alpha, exploratory=exploratory) if metrics else []
    generated = dict(zip(arms["arm"].to_list(), arms["conversations"].to_list(), strict=True))
    srm = srm_check(generated) if sum(generated.values()) and len(generated) > 1 else None
    decision = (decide_winner(results, alpha, primary=exp.success_metric, srm=srm)
                if any(not r.guardrail for r in results) else
                Decision(None, None, f"No winner yet: {exp.success_metric} is not measured in every arm."))
    strata = _strata(exp, frame, warnings)
    return ExperimentReport(exp, frame, arms, results, decision, srm, strata, warnings)


def _strata(exp: Experiment, frame: pl.DataFrame, warnings: list[str]) -> dict[str, dict[str, object]]:
    spec, metric, control = METRICS[exp.success_metric], exp.success_metric, exp.control.name
    out: dict[str, dict[str, object]] = {}
    measured = frame.filter(pl.col(metric).is_not_null())
    for variant in exp.variants:
        out[variant.name] = {}
        for by, column in (("persona", "persona_key"), ("topic", "topic_key")):
            pair = measured.filter(pl.col("arm").is_in([variant.name, control]))
            if pair.select(pl.col("arm").n_unique()).item() < 2:
                continue
            if spec.kind == "rate":
                result = stratified_rates_from_frame(pair.rename({column: by}), arm="arm", outcome=metric, by=by,
                                                     treatment=variant.name,
                                                     control=control, higher_is_better=spec.higher_is_better)
            else:
                groups = {key: (g.filter(pl.col("arm") == variant.name)[metric].to_list(),
                                g.filter(pl.col("arm") == control)[metric].to_list())
                          for (key,), g in pair.group_by(column)}
                result = stratified_means(groups, by=by, higher_is_better=spec.higher_is_better)
            out[variant.name][by] = result
            if result.simpson_warning:
                warnings.append(f"{variant.name} vs {control}, by {by}: {result.simpson_warning}")
    return out


def results_frame(report: ExperimentReport) -> pl.DataFrame:
    """The results as a table for pages, the CLI and notebooks."""
    rows = [{"metric": r.metric, "guardrail": r.guardrail, "arm": r.arm, "n": r.n, "estimate": r.estimate,
             "low": r.low, "high": r.high, "control": r.control_estimate, "abs_lift": r.abs_lift,
             "abs_low": r.abs_low, "abs_high": r.abs_high, "rel_lift": r.rel_lift, "test": r.test,
             "p_value": r.p_value, "p_adjusted": r.p_adjusted, "prob_beat_control": r.prob_beat_control,
             "significant": r.significant} for r in report.results]
    return pl.DataFrame(rows, infer_schema_length=None)
