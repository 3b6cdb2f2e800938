"""Statistics core for prompt experiments and prompt-feature analysis (pure functions, no storage or UI).

Modules: rates (Wilson, z / Fisher, lifts), continuous (t intervals, Welch, Mann-Whitney), multiple (Holm,
BH), bayes (P(beat control), expected loss), srm (sample-ratio mismatch, mix balance), strata (per-stratum
and Mantel-Haenszel estimates, Simpson warning), power (sample size, MDE), sequential (always-valid mSPRT),
correlate (Spearman/Kendall, regression with controls; associational), results (compare_arms,
decide_winner). The methods, and the known answers the tests check them against: docs/experiments.md.

May import: errors.
Outside BrightRun, only: numpy, polars, scipy, statsmodels.
"""

from brightrun.stats._common import ASSOCIATIONAL_LABEL, StatsError
from brightrun.stats.results import (
    ArmResult,
    Counts,
    Decision,
    Metric,
    adjust_family,
    arms_from_frame,
    compare_arms,
    compare_metrics,
    decide_winner,
)

__all__ = [
    "ASSOCIATIONAL_LABEL",
    "ArmResult",
    "Counts",
    "Decision",
    "Metric",
    "StatsError",
    "adjust_family",
    "arms_from_frame",
    "compare_arms",
    "compare_metrics",
    "decide_winner",
]
