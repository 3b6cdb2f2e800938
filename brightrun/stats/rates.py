"""Binary metrics (thumbs-up rate and the like): Wilson intervals, the two-proportion z test or Fisher's
exact test, and the lift between two arms with intervals.

Everything here calls statsmodels or scipy; nothing is a hand-written formula except the choice rule
between z and Fisher (`needs_exact`) and the conversion from a risk ratio to a relative lift (ratio - 1).

Conventions: arm 1 is the treatment (variant), arm 2 the control, so a positive z or difference means the
variant has the higher rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps
from scipy.stats.contingency import expected_freq
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_chisquare,
    proportions_ztest,
)

from brightrun.stats._common import StatsError, check_alpha, check_count, finite

MIN_EXPECTED = 5.0
"""Cochran's rule: the z (= chi-square) approximation is trusted when every expected cell of the 2x2 table
is at least 5; below that Fisher's exact test is used (Cochran 1954, Biometrics 10:417)."""


@dataclass(frozen=True)
class RateEstimate:
    """One arm's rate with its Wilson score interval."""

    successes: int
    n: int
    rate: float
    low: float
    high: float
    method: str = "wilson"


@dataclass(frozen=True)
class RateTest:
    """A test of equal rates. `statistic` is z for the z test, the sample odds ratio for Fisher, chi-square
    for the k-arm test. `reason` says why this test was chosen."""

    test: str
    statistic: float | None
    p_value: float
    reason: str = ""


@dataclass(frozen=True)
class RateLift:
    """Treatment minus control and treatment / control, each with an interval.

    diff: Newcombe hybrid score interval (statsmodels method "newcomb").
    ratio: Katz log interval (statsmodels "log"); with a zero cell (no success, or no failure, in an arm) the
    Katz interval is degenerate (1/1 vs 1/1 gives a zero-width interval), so 0.5 is added to each cell
    ("log-adjusted", Gart's adjustment), and the interval is widened to contain the observed ratio when the
    adjustment moves it away (no success in the variant: ratio 0, so the lower bound is 0).
    rel_lift = ratio - 1, with the ratio's interval shifted by 1. None when the control rate is 0."""

    diff: float
    diff_low: float
    diff_high: float
    ratio: float | None
    ratio_low: float | None
    ratio_high: float | None
    rel_lift: float | None
    rel_low: float | None
    rel_high: float | None
    diff_method: str = "newcombe"
    ratio_method: str = "katz-log"


def wilson_interval(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for one proportion (statsmodels `proportion_confint(method="wilson")`)."""
    successes, n = check_count(successes, n, "wilson_interval")
    low, high = proportion_confint(successes, n, alpha=check_alpha(alpha), method="wilson")
    return float(low), float(high)


def rate_estimate(successes: int, n: int, alpha: float = 0.05) -> RateEstimate:
    """The observed rate of one arm with its Wilson interval."""
    successes, n = check_count(successes, n, "rate_estimate")
    low, high = wilson_interval(successes, n, alpha)
    return RateEstimate(successes, n, successes / n, low, high)


def _table(x1: int, n1: int, x2: int, n2: int) -> np.ndarray:
    return np.array([[x1, n1 - x1], [x2, n2 - x2]], dtype=float)


def expected_counts(x1: int, n1: int, x2: int, n2: int) -> np.ndarray:
    """Expected cells of the 2x2 table [[x1, n1-x1], [x2, n2-x2]] under equal rates (scipy expected_freq)."""
    x1, n1 = check_count(x1, n1, "treatment")
    x2, n2 = check_count(x2, n2, "control")
    return expected_freq(_table(x1, n1, x2, n2))


def needs_exact(x1: int, n1: int, x2: int, n2: int, min_expected: float = MIN_EXPECTED) -> bool:
    """True when any expected cell is below `min_expected` (default 5): use Fisher's exact test."""
    return bool(expected_counts(x1, n1, x2, n2).min() < min_expected)


def two_proportion_ztest(x1: int, n1: int, x2: int, n2: int) -> RateTest:
    """Pooled two-proportion z test (statsmodels `proportions_ztest`); z > 0 when arm 1's rate is higher.

    When both arms are all successes or all failures the pooled variance is 0: no evidence of a difference,
    so p = 1 with statistic None."""
    x1, n1 = check_count(x1, n1, "treatment")
    x2, n2 = check_count(x2, n2, "control")
    pooled = (x1 + x2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return RateTest("two-proportion z", None, 1.0, "both arms have the same all-or-nothing outcome")
    z, p = proportions_ztest(count=[x1, x2], nobs=[n1, n2])
    smallest = float(expected_counts(x1, n1, x2, n2).min())
    reason = (f"every expected cell is at least {MIN_EXPECTED:g} (smallest {smallest:.3g})" if smallest >= MIN_EXPECTED
              else f"chosen although the smallest expected cell is {smallest:.3g} (< {MIN_EXPECTED:g}): "
                   "Fisher's exact test is the safer choice here")
    return RateTest("two-proportion z", float(z), float(p), reason)


def one_proportion_ztest(successes: int, n: int, value: float) -> RateTest:
    """z test of one rate against a fixed value (statsmodels `proportions_ztest`; the variance uses the
    observed rate, statsmodels' default)."""
    successes, n = check_count(successes, n, "one_proportion_ztest")
    if successes in (0, n):
        raise StatsError(f"one_proportion_ztest: the observed rate is {successes / n:g}, so its variance is 0. "
                         "Use an exact binomial test (scipy.stats.binomtest) instead.")
    z, p = proportions_ztest(count=successes, nobs=n, value=value)
    return RateTest("one-proportion z", float(z), float(p), f"rate against {value:g}")


def fisher_exact_test(x1: int, n1: int, x2: int, n2: int) -> RateTest:
    """Fisher's exact test on [[x1, n1-x1], [x2, n2-x2]] (scipy `fisher_exact`, two-sided).
    The statistic is the sample odds ratio (inf or 0 when a cell is 0, reported as None then)."""
    x1, n1 = check_count(x1, n1, "treatment")
    x2, n2 = check_count(x2, n2, "control")
    odds_ratio, p = sps.fisher_exact(_table(x1, n1, x2, n2).astype(int))
    return RateTest("Fisher exact", finite(odds_ratio), float(p), "an expected cell is below 5")


def rate_test(x1: int, n1: int, x2: int, n2: int, method: str = "auto",
              min_expected: float = MIN_EXPECTED) -> RateTest:
    """Test equal rates: "z", "fisher", or "auto" (Fisher when any expected cell < `min_expected`, else z)."""
    if method == "z":
        return two_proportion_ztest(x1, n1, x2, n2)
    if method == "fisher":
        return fisher_exact_test(x1, n1, x2, n2)
    if method != "auto":
        raise StatsError(f"rate test method {method!r} is unknown: use 'auto', 'z' or 'fisher'.")
    if needs_exact(x1, n1, x2, n2, min_expected):
        return fisher_exact_test(x1, n1, x2, n2)
    return two_proportion_ztest(x1, n1, x2, n2)


def rate_lift(x_t: int, n_t: int, x_c: int, n_c: int, alpha: float = 0.05) -> RateLift:
    """Absolute lift (difference of rates, Newcombe interval) and relative lift (risk ratio - 1, Katz log
    interval) of the treatment over the control (statsmodels `confint_proportions_2indep`)."""
    x_t, n_t = check_count(x_t, n_t, "treatment")
    x_c, n_c = check_count(x_c, n_c, "control")
    alpha = check_alpha(alpha)
    diff = x_t / n_t - x_c / n_c
    d_low, d_high = confint_proportions_2indep(x_t, n_t, x_c, n_c, method="newcomb", compare="diff",
                                               alpha=alpha)
    if x_c == 0:
        return RateLift(diff, float(d_low), float(d_high), None, None, None, None, None, None)
    ratio = (x_t / n_t) / (x_c / n_c)
    zero_cell = x_t in (0, n_t) or x_c == n_c  # a zero cell of the 2x2 table; x_c == 0 returned above
    if zero_cell:  # written here: statsmodels' "log-adjusted" adds 0.5 to successes only (1/1 vs 1/1: zero width)
        a_t, m_t, a_c, m_c = x_t + 0.5, n_t + 1.0, x_c + 0.5, n_c + 1.0
        se = math.sqrt(1 / a_t - 1 / m_t + 1 / a_c - 1 / m_c)
        centre, half = math.log((a_t / m_t) / (a_c / m_c)), float(sps.norm.ppf(1 - alpha / 2)) * se
        r_low, r_high = math.exp(centre - half), math.exp(centre + half)
    else:
        r_low, r_high = confint_proportions_2indep(x_t, n_t, x_c, n_c, method="log", compare="ratio", alpha=alpha)
    r_low, r_high = min(float(r_low), ratio), max(float(r_high), ratio)
    return RateLift(diff, float(d_low), float(d_high), ratio, float(r_low), float(r_high),
                    ratio - 1.0, float(r_low) - 1.0, float(r_high) - 1.0,
                    ratio_method="katz-log-adjusted" if zero_cell else "katz-log")


def rates_chisquare(successes: Sequence[int], n: Sequence[int]) -> RateTest:
    """Omnibus test that k arms share one rate: chi-square on the k x 2 table, df = k - 1
    (statsmodels `proportions_chisquare`, the test R's prop.test runs for k groups)."""
    if len(successes) != len(n) or len(n) < 2:
        raise StatsError("rates_chisquare: give one success count and one n per arm, for at least 2 arms.")
    pairs = [check_count(x, m, f"arm {i}") for i, (x, m) in enumerate(zip(successes, n, strict=True))]
    xs, ns = [p[0] for p in pairs], [p[1] for p in pairs]
    if sum(xs) in (0, sum(ns)):
        return RateTest("chi-square k x 2", None, 1.0, "every arm has the same all-or-nothing outcome")
    chi2, p, _ = proportions_chisquare(xs, ns)
    return RateTest("chi-square k x 2", float(chi2), float(p), f"{len(ns)} arms, df = {len(ns) - 1}")
