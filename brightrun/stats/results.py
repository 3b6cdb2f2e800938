"""Results per metric for a prompt experiment, and the winner.

`compare_arms` compares every variant with control on one metric; `compare_metrics` does several metrics
and adjusts p-values across the whole family (variants x non-guardrail metrics, as GrowthBook does; Holm
by default, Benjamini-Hochberg when exploratory). `decide_winner` names the winner or says "no winner yet".

Per metric type:
- "rate" (0/1 outcomes or Counts): rate with Wilson interval; difference with Newcombe interval; relative
  lift = risk ratio - 1 with Katz log interval; z test, or Fisher exact when an expected cell is < 5;
  effect size Cohen's h; exact Beta-Binomial P(beat control).
- "rating" (1-5): mean with t interval; difference of means with Welch interval; relative lift by the delta
  method; Mann-Whitney U test (the p-value; it tests the whole distribution, so near alpha it can disagree
  with the Welch interval of the means); effect size P(T > C) + P(T = C) / 2; normal-approximation
  P(beat control).
- "continuous": as "rating", with Welch's t test and Cohen's d.
Intervals are not adjusted for multiplicity (as in GrowthBook); p-values are.
Guardrail metrics are left out of the adjustment family; a guardrail fails when the variant is worse with an
unadjusted p <= alpha (unadjusted, so that harm is caught early).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import polars as pl

from brightrun.stats import bayes, continuous, rates, sequential
from brightrun.stats._common import StatsError, check_alpha, clean_values
from brightrun.stats.multiple import adjust_pvalues
from brightrun.stats.srm import SRMResult
from brightrun.stats.text import p_is

MetricType = Literal["rate", "rating", "continuous"]


@dataclass(frozen=True)
class Counts:
    """A rate arm given as counts instead of 0/1 outcomes."""

    successes: int
    n: int


ArmData = Counts | Iterable[float]


@dataclass(frozen=True)
class ArmResult:
    """One variant against control on one metric.

    estimate/low/high: the variant's rate or mean and interval (control_* the same for control).
    abs_lift: variant - control; rel_lift: variant / control - 1 (None when control is 0); both with intervals.
    test/statistic/p_value: the test used; p_adjusted/adjust_method: across the family (None for guardrails).
    prob_beat_control: posterior P(variant better in the metric's good direction); risk: expected loss, in
    metric units, of shipping the variant if control is really better. effect_size: Cohen's h (rate),
    P(T > C) + P(T = C)/2 (rating) or Cohen's d (continuous).
    `significant`: adjusted p <= alpha (guardrails: unadjusted p <= alpha)."""

    metric: str
    metric_type: str
    arm: str
    control: str
    n: int
    estimate: float
    low: float | None
    high: float | None
    control_n: int
    control_estimate: float
    control_low: float | None
    control_high: float | None
    abs_lift: float
    abs_low: float | None
    abs_high: float | None
    rel_lift: float | None
    rel_low: float | None
    rel_high: float | None
    test: str
    statistic: float | None
    p_value: float | None
    prob_beat_control: float
    risk: float
    effect_size: float | None
    effect_size_name: str
    interval_method: str
    alpha: float = 0.05
    higher_is_better: bool = True
    guardrail: bool = False
    p_adjusted: float | None = None
    adjust_method: str | None = None
    significant: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
    se: float | None = None
    """Unpooled standard error of abs_lift (what the always-valid view uses)."""
    outcome_sd: float | None = None
    """The outcome's standard deviation, both arms pooled (sets the always-valid view's tau)."""
    planned_n: int | None = None
    seq_tau: float | None = None
    seq_p_value: float | None = None
    seq_p_adjusted: float | None = None
    seq_low: float | None = None
    seq_high: float | None = None
    """Always-valid (mSPRT) p-value, adjusted p and interval of abs_lift, valid at every look; None until
    `always_valid_results` adds them (it needs the planned sample size)."""

    @property
    def improves(self) -> bool:
        """The variant moved the metric in its good direction (whatever the significance)."""
        return self.abs_lift > 0 if self.higher_is_better else self.abs_lift < 0


def _rate_counts(data: ArmData, name: str) -> tuple[int, int]:
    if isinstance(data, Counts):
        return data.successes, data.n
    values = clean_values(data, name)
    if not np.isin(values, (0.0, 1.0)).all():
        raise StatsError(f"{name}: a rate metric needs 0/1 outcomes (or Counts); found other values. "
                         "Use metric_type='rating' or 'continuous' for scores.")
    return int(values.sum()), int(values.size)


def _compare_rate(metric: str, arm: str, control: str, treat: ArmData, ctrl: ArmData, alpha: float,
                  higher_is_better: bool, rate_test: str) -> ArmResult:
    x_t, n_t = _rate_counts(treat, arm)
    x_c, n_c = _rate_counts(ctrl, control)
    est_t, est_c = rates.rate_estimate(x_t, n_t, alpha), rates.rate_estimate(x_c, n_c, alpha)
    lift = rates.rate_lift(x_t, n_t, x_c, n_c, alpha)
    test = rates.rate_test(x_t, n_t, x_c, n_c, method=rate_test)
    post = bayes.beat_control_rates(x_t, n_t, x_c, n_c, higher_is_better=higher_is_better)
    h = 2 * math.asin(math.sqrt(est_t.rate)) - 2 * math.asin(math.sqrt(est_c.rate))
    se = math.sqrt(est_t.rate * (1 - est_t.rate) / n_t + est_c.rate * (1 - est_c.rate) / n_c)
    pooled = (x_t + x_c) / (n_t + n_c)
    notes = (f"{test.test}: {test.reason}",) + (("control rate is 0: no relative lift",) if lift.rel_lift is None
                                               else ())
    return ArmResult(metric, "rate", arm, control, n_t, est_t.rate, est_t.low, est_t.high, n_c, est_c.rate,
                     est_c.low, est_c.high, lift.diff, lift.diff_low, lift.diff_high, lift.rel_lift,
                     lift.rel_low, lift.rel_high, test.test, test.statistic, test.p_value,
                     post.prob_beat_control, post.risk_treatment, h, "Cohen's h",
                     f"Wilson; difference {lift.diff_method}; ratio {lift.ratio_method}", alpha,
                     higher_is_better, notes=notes, se=se, outcome_sd=math.sqrt(pooled * (1 - pooled)))


def _compare_mean(metric: str, metric_type: str, arm: str, control: str, treat: ArmData, ctrl: ArmData,
                  alpha: float, higher_is_better: bool) -> ArmResult:
    if isinstance(treat, Counts) or isinstance(ctrl, Counts):
        raise StatsError(f"{metric}: Counts only describe rate metrics; give the {metric_type} values.")
    t = clean_values(treat, f"{metric}/{arm}", min_n=2)
    c = clean_values(ctrl, f"{metric}/{control}", min_n=2)
    est_t, est_c = continuous.mean_estimate(t, alpha), continuous.mean_estimate(c, alpha)
    welch = continuous.welch_test(t, c, alpha)
    var_t, var_c = float(t.var(ddof=1)), float(c.var(ddof=1))
    rel = continuous.relative_lift_delta(est_t.mean, var_t, t.size, est_c.mean, var_c, c.size, alpha)
    post = bayes.beat_control_means(est_t.mean, var_t, t.size, est_c.mean, var_c, c.size, higher_is_better)
    notes: list[str] = []
    if welch.p_value is None:  # no spread in either arm: the same for ratings and continuous metrics
        test = "Mann-Whitney U" if metric_type == "rating" else "Welch t"
        statistic, p = None, None
        effect, effect_name = None, ("P(T > C) + P(T = C)/2" if metric_type == "rating" else "Cohen's d")
    elif metric_type == "rating":
        mw = continuous.mann_whitney(t, c)
        test, statistic, p = f"Mann-Whitney U ({mw.method})", mw.u_treatment, mw.p_value
        effect, effect_name = mw.prob_superiority, "P(T > C) + P(T = C)/2"
    else:
        test, statistic, p = "Welch t", welch.statistic, welch.p_value
        spread = math.sqrt((var_t + var_c) / 2)
        effect, effect_name = (welch.diff / spread if spread else None), "Cohen's d"
    if p is None:
        notes.append("no spread in either arm (every value within an arm is the same): no test and no interval "
                     "of the difference are possible; collect more varied outcomes")
    if rel.rel_lift is None:
        notes.append("control mean is 0: no relative lift")
    return ArmResult(metric, metric_type, arm, control, est_t.n, est_t.mean, est_t.low, est_t.high, est_c.n,
                     est_c.mean, est_c.low, est_c.high, welch.diff, welch.diff_low, welch.diff_high,
                     rel.rel_lift, rel.low, rel.high, test, statistic, p, post.prob_beat_control,
                     post.risk_treatment, effect, effect_name, "t; difference Welch; relative delta method",
                     alpha, higher_is_better, notes=tuple(notes), se=math.sqrt(var_t / t.size + var_c / c.size),
                     outcome_sd=math.sqrt((var_t + var_c) / 2))


def adjust_family(results: Sequence[ArmResult], *, exploratory: bool = False,
                  alpha: float = 0.05) -> list[ArmResult]:
    """Adjust p-values across all non-guardrail results given (Holm, or BH when exploratory) and set
    `significant`. Guardrails keep their unadjusted p (significant when p <= alpha)."""
    alpha = check_alpha(alpha)
    family = [i for i, r in enumerate(results) if not r.guardrail]
    adjustment = adjust_pvalues([results[i].p_value for i in family], "bh" if exploratory else "holm", alpha)
    out = list(results)
    for i, adjusted in zip(family, adjustment.adjusted, strict=True):
        out[i] = replace(out[i], p_adjusted=adjusted, adjust_method=adjustment.method,
                         significant=adjusted is not None and adjusted <= alpha)
    for i, r in enumerate(out):
        if r.guardrail:
            out[i] = replace(r, p_adjusted=None, adjust_method=None,
                             significant=r.p_value is not None and r.p_value <= alpha)
    return out


def _compare_metric(control: ArmData, variants: Mapping[str, ArmData], metric_type: str, *, metric: str,
                    control_name: str, alpha: float, higher_is_better: bool, guardrail: bool,
                    rate_test: str) -> list[ArmResult]:
    alpha = check_alpha(alpha)
    if metric_type not in ("rate", "rating", "continuous"):
        raise StatsError(f"metric_type {metric_type!r} is unknown: use 'rate', 'rating' or 'continuous'.")
    if not variants:
        raise StatsError(f"{metric}: no variants to compare with {control_name!r}. Give at least one.")
    out = []
    for arm, data in variants.items():
        if metric_type == "rate":
            result = _compare_rate(metric, arm, control_name, data, control, alpha, higher_is_better, rate_test)
        else:
            result = _compare_mean(metric, metric_type, arm, control_name, data, control, alpha,
                                   higher_is_better)
        out.append(replace(result, guardrail=guardrail))
    return out


def compare_arms(control: ArmData, variants: Mapping[str, ArmData], metric_type: MetricType, *,
                 metric: str = "metric", control_name: str = "control", alpha: float = 0.05,
                 exploratory: bool = False, higher_is_better: bool = True, guardrail: bool = False,
                 rate_test: str = "auto") -> list[ArmResult]:
    """Compare each variant with control on one metric; p-values adjusted across the variants.
    Arm data: 0/1 outcomes or `Counts` for rates, values for ratings and continuous metrics (None/NaN
    dropped). For several metrics use `compare_metrics`, which adjusts across metrics too."""
    results = _compare_metric(control, variants, metric_type, metric=metric, control_name=control_name,
                              alpha=alpha, higher_is_better=higher_is_better, guardrail=guardrail,
                              rate_test=rate_test)
    return adjust_family(results, exploratory=exploratory, alpha=alpha)


@dataclass(frozen=True)
class Metric:
    """One metric of an experiment for `compare_metrics`."""

    name: str
    metric_type: MetricType
    control: ArmData
    variants: Mapping[str, ArmData]
    higher_is_better: bool = True
    guardrail: bool = False


def compare_metrics(metrics: Sequence[Metric], *, control_name: str = "control", alpha: float = 0.05,
                    exploratory: bool = False, rate_test: str = "auto") -> list[ArmResult]:
    """All variants x all metrics, p-values adjusted across every variant x non-guardrail metric."""
    results = [r for m in metrics for r in _compare_metric(
        m.control, m.variants, m.metric_type, metric=m.name, control_name=control_name, alpha=alpha,
        higher_is_better=m.higher_is_better, guardrail=m.guardrail, rate_test=rate_test)]
    return adjust_family(results, exploratory=exploratory, alpha=alpha)


def always_valid_results(results: Sequence[ArmResult], planned_n: int, *, exploratory: bool = False,
                         power: float = 0.8) -> list[ArmResult]:
    """Add the always-valid (mSPRT, `brightrun.stats.sequential`) p-value and interval to every result.

    tau, the effect the mixture is centred on, is the minimum detectable effect at the planned size:
    (z_{1-alpha/2} + z_{power}) * sd * sqrt(2 / planned_n), sd the outcome's pooled standard deviation.
    The always-valid p-values are adjusted across the same family as the fixed ones (Holm, or BH when
    exploratory); guardrails keep theirs unadjusted."""
    if planned_n is None or planned_n < 1:
        raise StatsError(f"always_valid_results: planned_n={planned_n!r}; give the planned units per arm (>= 1).")
    out = []
    for r in results:
        tau = sequential.planned_tau(r.outcome_sd, planned_n, alpha=r.alpha, power=power)
        if tau is None or r.se is None:
            out.append(replace(r, planned_n=planned_n))
            continue
        view = sequential.always_valid([r.abs_lift], [r.se**2], tau, r.alpha)
        low, high = float(view.low[-1]), float(view.high[-1])
        out.append(replace(r, planned_n=planned_n, seq_tau=tau, seq_p_value=float(view.p_value[-1]),
                           seq_low=low if math.isfinite(low) else None, seq_high=high if math.isfinite(high) else None))
    family = [i for i, r in enumerate(out) if not r.guardrail]
    adjusted = adjust_pvalues([out[i].seq_p_value for i in family], "bh" if exploratory else "holm",
                              check_alpha(out[0].alpha) if out else 0.05).adjusted
    for i, a in zip(family, adjusted, strict=True):
        out[i] = replace(out[i], seq_p_adjusted=a)
    return out


def arms_from_frame(frame: pl.DataFrame, *, arm: str, value: str) -> dict[str, np.ndarray]:
    """One array of `value` per arm, from one row per user (or conversation); nulls dropped."""
    for column in (arm, value):
        if column not in frame.columns:
            raise StatsError(f"arms_from_frame: column {column!r} not in the frame ({frame.columns}).")
    data = frame.filter(pl.col(value).is_not_null()).select(arm, pl.col(value).cast(pl.Float64))
    return {str(k[0]): g[value].to_numpy() for k, g in data.group_by(arm, maintain_order=True)}


@dataclass(frozen=True)
class Decision:
    """`winner` None means "no winner yet"; `confidence` is the winner's posterior P(beat control)."""

    winner: str | None
    confidence: float | None
    reason: str
    metric: str | None = None
    candidates: list[str] = field(default_factory=list)
    failed_guardrails: dict[str, list[str]] = field(default_factory=dict)


def _fmt_lift(r: ArmResult) -> str:
    if r.metric_type == "rate":
        text = f"{r.abs_lift * 100:+.1f} points"
        if r.abs_low is not None:
            text += f" ({1 - r.alpha:.0%} CI {r.abs_low * 100:+.1f} to {r.abs_high * 100:+.1f})"
        return text
    text = f"{r.abs_lift:+.3g}"
    if r.abs_low is not None:
        text += f" ({1 - r.alpha:.0%} CI {r.abs_low:+.3g} to {r.abs_high:+.3g})"
    return text


def decide_winner(results: Sequence[ArmResult], alpha: float = 0.05, *, primary: str | None = None,
                  srm: SRMResult | None = None, interim: bool = False) -> Decision:
    """The winner: among variants that beat control on the primary metric with adjusted p <= alpha and fail
    no guardrail, the one with the largest improvement. Otherwise winner None ("no winner yet") with the
    reason. The primary metric defaults to the first non-guardrail metric; an SRM mismatch blocks any winner.
    Candidates are compared with control, not with each other: the best of two significant variants is
    the larger estimate, not a tested difference (the reason says so).
    `interim`: decide on the always-valid p-values (`always_valid_results`), as before the planned
    sample size, where the fixed-sample p-values are not valid (every look would add false positives)."""
    check_alpha(alpha)
    if srm is not None and srm.mismatch:
        return Decision(None, None, f"No winner yet: {srm.message}")
    primary = primary or next((r.metric for r in results if not r.guardrail), None)
    rows = [r for r in results if r.metric == primary and not r.guardrail]
    if not rows:
        raise StatsError("decide_winner: no non-guardrail result to decide on. Compare the arms first "
                         "(compare_arms or compare_metrics) on a primary metric.")
    method = rows[0].adjust_method or "no"
    p_name = "always-valid adjusted p" if interim else "adjusted p"

    def p_of(r: ArmResult) -> float | None:
        if interim:
            return r.seq_p_value if r.guardrail else r.seq_p_adjusted
        return r.p_value if r.guardrail else r.p_adjusted

    def significant(r: ArmResult) -> bool:
        p = p_of(r)
        return p is not None and p <= alpha

    candidates = [r for r in rows if significant(r) and r.improves]
    failed = {}
    for r in candidates:
        harms = [g for g in results if g.guardrail and g.arm == r.arm and significant(g) and not g.improves]
        if harms:
            failed[r.arm] = [f"{g.metric} {_fmt_lift(g)}, {p_is(p_of(g))}" for g in harms]
    passing = [r for r in candidates if r.arm not in failed]
    names = [r.arm for r in candidates]
    if not candidates:
        tested = [r for r in rows if p_of(r) is not None]
        best = min(tested, key=p_of) if tested else None
        detail = (f"; the closest is {best.arm}: {_fmt_lift(best)}, {p_is(p_of(best), p_name)} "
                  f"({method} adjustment)" if best else "")
        worse = [r.arm for r in rows if significant(r) and not r.improves]
        worse_text = f". Significantly worse than control: {', '.join(worse)}" if worse else ""
        return Decision(None, None, f"No winner yet: no variant beats control on {primary} at alpha = "
                        f"{alpha:g}{detail}{worse_text}. Keep collecting data (see the sample-size calculator) "
                        "or stop if the effect is too small to matter.", primary, names, failed)
    if not passing:
        detail = "; ".join(f"{arm} worsens {', '.join(items)}" for arm, items in failed.items())
        return Decision(None, None, f"No winner yet: {', '.join(names)} beat control on {primary} but fail a "
                        f"guardrail ({detail}). Fix the regression or accept it explicitly before shipping.",
                        primary, names, failed)
    sign = 1 if passing[0].higher_is_better else -1
    best = max(passing, key=lambda r: sign * r.abs_lift)
    others = [r.arm for r in passing if r is not best]
    reason = (f"{best.arm} beats {best.control} on {primary}: {_fmt_lift(best)}, "
              f"{p_is(p_of(best), p_name)} ({method}), P(beat control) = {best.prob_beat_control:.3f}; "
              "no guardrail fails.")
    if others:
        reason += (f" Also beating control: {', '.join(others)}; {best.arm} has the largest estimate, but the "
                   "variants were not tested against each other.")
    return Decision(best.arm, best.prob_beat_control, reason, primary, names, failed)
