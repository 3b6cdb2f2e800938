"""An always-valid view of an experiment: the mixture sequential probability ratio test (mSPRT) of Johari,
Pekelis & Walsh ("Peeking at A/B tests", KDD 2017). Looking at the results at any time (every day, every
20 conversations) is safe only for decisions taken on these always-valid p-values and intervals: the
fixed-sample p-values and intervals of the same report are valid at the planned sample size only, and
re-reading them look after look inflates false positives (about 20% two-sided with ten looks).

Written here (no scipy/statsmodels equivalent). For an estimated difference D with variance V (V = s_t^2 /
n_t + s_c^2 / n_c; for rates p(1 - p) / n per arm) and a normal mixture N(theta0, tau^2) over the effect,
    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 (D - theta0)^2 / (2 V (V + tau^2))),
which with n users per arm and V = 2 sigma^2 / n is the paper's formula.
Under the null, Lambda is a martingale with mean 1, so by Ville's inequality P(ever Lambda >= 1/alpha)
<= alpha: the always-valid p-value p_n = min(p_{n-1}, 1 / Lambda_n) (p_0 = 1) may be read at every look.
The always-valid interval at a look is {theta0 : Lambda(theta0) < 1/alpha}:
    D +- sqrt(2 V (V + tau^2) / tau^2 * (log(1/alpha) + log((V + tau^2) / V) / 2)),
intersected with the intervals of all earlier looks. The variance is estimated (plug-in), so validity is
asymptotic: with few users per arm it is approximate. tests/test_stats.py checks the false-positive rate
of repeated looks by simulation.

`tau` is the size of effect you expect or care about (in metric units, e.g. 0.03 for 3 points of thumbs-up
rate): tests are most powerful for effects near tau.

All functions take arrays of cumulative results per look (the last axis is the look), so many simulated
experiments can be evaluated at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from brightrun.stats._common import StatsError, check_alpha


@dataclass(frozen=True)
class SequentialView:
    """Per look (last axis): the difference, its variance, the mixture likelihood ratio, the always-valid
    p-value and interval (running min / intersection), and whether the null was rejected by that look."""

    diff: np.ndarray
    variance: np.ndarray
    likelihood_ratio: np.ndarray
    p_value: np.ndarray
    low: np.ndarray
    high: np.ndarray
    rejected: np.ndarray
    tau: float
    alpha: float


def _check_tau(tau: float | None) -> float:
    if tau is None or not tau > 0:
        raise StatsError("sequential: give tau > 0, the effect size you expect or care about, in metric units "
                         "(for example the minimum detectable effect).")
    return float(tau)


def mixture_likelihood_ratio(diff, variance, tau: float, theta0: float = 0.0) -> np.ndarray:
    """Lambda for each (diff, variance); 1 (no evidence) where the variance is 0."""
    tau2 = _check_tau(tau) ** 2
    d, v = np.asarray(diff, dtype=float), np.asarray(variance, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_lr = 0.5 * np.log(v / (v + tau2)) + tau2 * (d - theta0) ** 2 / (2 * v * (v + tau2))
    return np.where(v > 0, np.exp(np.minimum(log_lr, 700.0)), 1.0)


def planned_tau(sd: float | None, planned_n: int, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """tau = the minimum detectable effect at the planned size, (z_{1-alpha/2} + z_power) * sd * sqrt(2 / n):
    the mixture is centred on effects the experiment was sized to find. None when sd is 0 or missing."""
    if not sd or planned_n < 1:
        return None
    z = float(sps.norm.ppf(1 - check_alpha(alpha) / 2) + sps.norm.ppf(power))
    return z * float(sd) * float(np.sqrt(2.0 / planned_n))


def always_valid(diff, variance, tau: float, alpha: float = 0.05) -> SequentialView:
    """The always-valid view from cumulative differences and variances per look (last axis = look)."""
    alpha, tau = check_alpha(alpha), _check_tau(tau)
    d, v = np.atleast_1d(np.asarray(diff, dtype=float)), np.atleast_1d(np.asarray(variance, dtype=float))
    if d.shape != v.shape:
        raise StatsError(f"always_valid: diff has shape {d.shape} and variance {v.shape}; give one per look.")
    lr = mixture_likelihood_ratio(d, v, tau)
    p = np.minimum.accumulate(np.minimum(1.0, 1.0 / lr), axis=-1)
    tau2 = tau * tau
    with np.errstate(divide="ignore", invalid="ignore"):
        half = np.sqrt(2 * v * (v + tau2) / tau2 * (np.log(1 / alpha) + 0.5 * np.log((v + tau2) / v)))
    half = np.where(v > 0, half, np.inf)
    low = np.maximum.accumulate(d - half, axis=-1)
    high = np.minimum.accumulate(d + half, axis=-1)
    return SequentialView(d, v, lr, p, low, high, p <= alpha, tau, alpha)


def sequential_rates(x_t, n_t, x_c, n_c, tau: float, alpha: float = 0.05) -> SequentialView:
    """Always-valid view of the difference of rates from cumulative counts per look (arrays, last axis =
    look). Variance per look: p_t (1 - p_t) / n_t + p_c (1 - p_c) / n_c."""
    x_t, n_t, x_c, n_c = (np.asarray(a, dtype=float) for a in (x_t, n_t, x_c, n_c))
    if (n_t <= 0).any() or (n_c <= 0).any():
        raise StatsError("sequential_rates: every look needs at least one user in each arm.")
    p_t, p_c = x_t / n_t, x_c / n_c
    return always_valid(p_t - p_c, p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c, tau, alpha)


def sequential_means(sum_t, sumsq_t, n_t, sum_c, sumsq_c, n_c, tau: float,
                     alpha: float = 0.05) -> SequentialView:
    """Always-valid view of the difference of means from cumulative sums, sums of squares and counts per
    look (cumulative sums are what a dashboard can keep cheaply)."""
    arrays = [np.asarray(a, dtype=float) for a in (sum_t, sumsq_t, n_t, sum_c, sumsq_c, n_c)]
    s_t, q_t, n_t, s_c, q_c, n_c = arrays
    if (n_t < 2).any() or (n_c < 2).any():
        raise StatsError("sequential_means: every look needs at least two values in each arm.")
    m_t, m_c = s_t / n_t, s_c / n_c
    var_t = np.maximum(q_t - n_t * m_t**2, 0) / (n_t - 1)
    var_c = np.maximum(q_c - n_c * m_c**2, 0) / (n_c - 1)
    return always_valid(m_t - m_c, var_t / n_t + var_c / n_c, tau, alpha)
