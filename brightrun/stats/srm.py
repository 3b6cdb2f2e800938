"""Sample-ratio mismatch (SRM): do the arms hold the share of users the assignment planned?

A chi-square goodness-of-fit test of the observed counts against the planned weights (scipy `chisquare`).
The usual industry threshold is p < 0.001 (GrowthBook, Microsoft ExP, Optimizely): the test runs on every
experiment, so a strict threshold keeps false alarms rare, and a real assignment bug gives tiny p-values
at any useful sample size.

`balance_check` tests whether the persona (or topic) mix is the same in every arm (chi-square test of
independence, scipy `chi2_contingency`): an imbalance there is what makes pooled results misleading
(see strata.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import stats as sps

from brightrun.stats._common import StatsError
from brightrun.stats.text import p_is

SRM_THRESHOLD = 0.001


@dataclass(frozen=True)
class SRMResult:
    """`mismatch` is p_value < threshold; `message` says what it means and what to do."""

    observed: dict[str, int]
    expected: dict[str, float]
    chi2: float
    p_value: float
    threshold: float
    mismatch: bool
    message: str


def srm_check(counts: Mapping[str, int], weights: Mapping[str, float] | None = None,
              threshold: float = SRM_THRESHOLD) -> SRMResult:
    """Chi-square test of the arm sizes against the planned weights (equal split when `weights` is None).
    Weights need not sum to 1; they are normalized."""
    arms = list(counts)
    if len(arms) < 2:
        raise StatsError("srm_check: give the user counts of at least two arms.")
    weights = weights or {arm: 1.0 for arm in arms}
    missing = [arm for arm in arms if arm not in weights]
    if missing:
        raise StatsError(f"srm_check: no planned weight for arm(s) {missing}. Give a weight for every arm.")
    observed = np.array([counts[a] for a in arms], dtype=float)
    planned = np.array([weights[a] for a in arms], dtype=float)
    if (observed < 0).any() or (planned <= 0).any():
        raise StatsError("srm_check: counts must be >= 0 and planned weights > 0.")
    total = observed.sum()
    if total == 0:
        raise StatsError("srm_check: no users assigned yet. Run the check once users have been assigned.")
    expected = planned / planned.sum() * total
    chi2, p = sps.chisquare(observed, expected)
    mismatch = bool(p < threshold)
    shares = ", ".join(f"{a} {o / total:.1%} (planned {e / total:.1%})"
                       for a, o, e in zip(arms, observed, expected, strict=True))
    if mismatch:
        message = (f"Sample ratio mismatch ({p_is(p)}, below the {threshold:g} threshold): {shares}. The assignment or the "
                   "logging is broken, so the results are not trustworthy. Find the cause (sticky assignment, "
                   "dropped exposures, bot traffic) before reading any metric.")
    else:
        message = f"No sample ratio mismatch ({p_is(p)}): {shares}."
    return SRMResult({a: int(o) for a, o in zip(arms, observed, strict=True)},
                     {a: float(e) for a, e in zip(arms, expected, strict=True)},
                     float(chi2), float(p), threshold, mismatch, message)


@dataclass(frozen=True)
class BalanceResult:
    """Chi-square test that the `by` mix (persona, topic) is the same in every arm."""

    by: str
    table: dict[str, dict[str, int]]
    chi2: float
    p_value: float
    dof: int
    imbalanced: bool
    message: str


def mix_test(table) -> tuple[float, float, int]:
    """Chi-square test of independence of an arms x groups table of counts (scipy `chi2_contingency`, no
    continuity correction): (chi2, p, dof). Groups empty in every arm are dropped; p = 1 when fewer than
    two arms or groups remain."""
    table = np.asarray(table, dtype=float)
    table = table[:, table.sum(axis=0) > 0]
    table = table[table.sum(axis=1) > 0]
    if table.shape[0] < 2 or table.shape[1] < 2:
        return 0.0, 1.0, 0
    chi2, p, dof, _ = sps.chi2_contingency(table, correction=False)
    return float(chi2), float(p), int(dof)


def balance_check(frame: pl.DataFrame, *, arm: str, by: str, threshold: float = SRM_THRESHOLD) -> BalanceResult:
    """Test whether the mix of `by` values (one row per user or conversation) differs between arms."""
    for column in (arm, by):
        if column not in frame.columns:
            raise StatsError(f"balance_check: column {column!r} not in the frame ({frame.columns}).")
    counts = frame.group_by(arm, by).len().sort(arm, by)
    arms = sorted(counts[arm].unique().to_list())
    levels = sorted(counts[by].unique().to_list())
    if len(arms) < 2 or len(levels) < 2:
        return BalanceResult(by, {}, 0.0, 1.0, 0, False, f"Only one arm or one {by}: nothing to compare.")
    lookup = {(r[arm], r[by]): r["len"] for r in counts.iter_rows(named=True)}
    table = np.array([[lookup.get((a, lv), 0) for lv in levels] for a in arms], dtype=float)
    chi2, p, dof = mix_test(table)
    imbalanced = bool(p < threshold)
    message = (f"The {by} mix differs between arms ({p_is(p)}): compare arms within each {by} "
               f"(stratified results) and check how users were assigned." if imbalanced
               else f"The {by} mix is similar in every arm ({p_is(p)}).")
    return BalanceResult(by, {str(a): {str(lv): int(lookup.get((a, lv), 0)) for lv in levels} for a in arms},
                         float(chi2), float(p), int(dof), imbalanced, message)
