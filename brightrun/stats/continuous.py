"""Ratings (1-5) and continuous scores (length, judge scores): means with t intervals, Welch's t test with
the interval of the difference, Mann-Whitney U with an effect size, and the relative lift by the delta method.

Library calls: statsmodels `DescrStatsW.tconfint_mean`, scipy `ttest_ind(equal_var=False)` and its
`confidence_interval`, scipy `mannwhitneyu`. Written here: the relative-lift delta method (GrowthBook's
formula, docs/experiments.md; no library offers it) and the Mann-Whitney effect sizes (one line each).

Arm 1 is the treatment, arm 2 the control: positive differences favour the treatment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps
from statsmodels.stats.weightstats import DescrStatsW

from brightrun.stats._common import StatsError, check_alpha, clean_values, finite

EXACT_MAX_N = 8
"""Mann-Whitney "auto": the exact null distribution when the smaller sample has at most 8 values and there
are no ties (scipy's own rule, made explicit so the method used can be reported); otherwise the
tie-corrected normal approximation with continuity correction."""


@dataclass(frozen=True)
class MeanEstimate:
    """One arm's mean with a t interval (None with fewer than 2 values or no spread)."""

    n: int
    mean: float
    sd: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class MeanTest:
    """Welch's t test of treatment mean - control mean, with the Welch interval of the difference.
    `p_value` is None when neither arm has any spread (no test is possible)."""

    test: str
    statistic: float | None
    p_value: float | None
    df: float | None
    diff: float
    diff_low: float | None
    diff_high: float | None


@dataclass(frozen=True)
class RankTest:
    """Mann-Whitney U. `u_treatment` = U of the treatment sample (scipy's statistic); `prob_superiority`
    = U_t / (n_t n_c) = P(T > C) + P(T = C) / 2; `rank_biserial` = 2 * prob_superiority - 1."""

    test: str
    method: str
    u_treatment: float
    u_control: float
    p_value: float
    prob_superiority: float
    rank_biserial: float


@dataclass(frozen=True)
class RelativeLift:
    """Treatment mean / control mean - 1 with a delta-method normal interval (None when the control mean
    is 0)."""

    rel_lift: float | None
    low: float | None
    high: float | None
    method: str = "delta"


def mean_estimate(values: Iterable[float], alpha: float = 0.05, name: str = "arm") -> MeanEstimate:
    """Mean, standard deviation and t interval of one arm (statsmodels `DescrStatsW.tconfint_mean`)."""
    x = clean_values(values, name)
    if x.size < 2:
        return MeanEstimate(1, float(x[0]), None, None, None)
    sd = float(x.std(ddof=1))
    if sd == 0.0:
        return MeanEstimate(int(x.size), float(x.mean()), 0.0, float(x.mean()), float(x.mean()))
    low, high = DescrStatsW(x).tconfint_mean(alpha=check_alpha(alpha))
    return MeanEstimate(int(x.size), float(x.mean()), sd, float(low), float(high))


def welch_test(treatment: Iterable[float], control: Iterable[float], alpha: float = 0.05) -> MeanTest:
    """Welch's unequal-variance t test and the Welch interval of the difference of means
    (scipy `ttest_ind(equal_var=False)` and `.confidence_interval`)."""
    t = clean_values(treatment, "treatment", min_n=2)
    c = clean_values(control, "control", min_n=2)
    alpha = check_alpha(alpha)
    diff = float(t.mean() - c.mean())
    if t.std() == 0 and c.std() == 0:
        return MeanTest("Welch t", None, None, None, diff, None, None)
    result = sps.ttest_ind(t, c, equal_var=False)
    ci = result.confidence_interval(confidence_level=1 - alpha)
    return MeanTest("Welch t", float(result.statistic), float(result.pvalue), float(result.df), diff,
                    float(ci.low), float(ci.high))


def mann_whitney(treatment: Iterable[float], control: Iterable[float], method: str = "auto") -> RankTest:
    """Two-sided Mann-Whitney U test (scipy `mannwhitneyu`) with the probability of superiority and the
    rank-biserial correlation as effect sizes. `method`: "auto" (see EXACT_MAX_N), "exact", "asymptotic"."""
    t = clean_values(treatment, "treatment")
    c = clean_values(control, "control")
    if method == "auto":
        ties = np.unique(np.concatenate([t, c])).size < t.size + c.size
        method = "exact" if min(t.size, c.size) <= EXACT_MAX_N and not ties else "asymptotic"
    if method not in ("exact", "asymptotic"):
        raise StatsError(f"Mann-Whitney method {method!r} is unknown: use 'auto', 'exact' or 'asymptotic'.")
    result = sps.mannwhitneyu(t, c, alternative="two-sided", method=method)
    u1 = float(result.statistic)
    prob = u1 / (t.size * c.size)
    return RankTest("Mann-Whitney U", method, u1, t.size * c.size - u1, float(result.pvalue), prob,
                    2 * prob - 1)


def relative_lift_delta(mean_t: float, var_t: float, n_t: int, mean_c: float, var_c: float, n_c: int,
                        alpha: float = 0.05) -> RelativeLift:
    """Relative lift mean_t / mean_c - 1 with its delta-method interval.

    Written here (GrowthBook's delta-method formula, docs/experiments.md):
    var = var_c * mean_t^2 / (mean_c^4 * n_c) + var_t / (mean_c^2 * n_t), interval = lift +- z * sqrt(var).
    `var_*` are the sample variances of the outcomes (not of the means)."""
    if mean_c == 0:
        return RelativeLift(None, None, None)
    rel = mean_t / mean_c - 1.0
    var = var_c * mean_t**2 / (mean_c**4 * n_c) + var_t / (mean_c**2 * n_t)
    half = float(sps.norm.ppf(1 - check_alpha(alpha) / 2)) * float(np.sqrt(var))
    return RelativeLift(float(rel), finite(rel - half), finite(rel + half))

