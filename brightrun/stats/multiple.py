"""Adjusting p-values across variants and metrics (statsmodels `multipletests`).

Holm controls the family-wise error rate (use it to decide what ships); Benjamini-Hochberg controls the
false discovery rate (use it when exploring many features or metrics). Missing p-values (None or NaN, a test
that could not run) are left out of the family and come back as None, never rejected.

Holm is written here (sort, multiply the i-th smallest by m - i + 1, running maximum, cap at 1) rather
than taken from statsmodels: statsmodels 0.15's `multipletests(method="holm")` calls `gc.collect()` on
every call (about 60 ms in a loaded process), too slow for a results page with many metrics or for
simulations. tests/test_stats.py checks it against statsmodels. BH and Bonferroni use statsmodels.
A hypothesis is rejected when its adjusted p-value is <= alpha, as in statsmodels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from statsmodels.stats.multitest import multipletests

from brightrun.stats._common import StatsError, check_alpha

METHODS = {"holm": "holm", "bh": "fdr_bh", "fdr_bh": "fdr_bh", "bonferroni": "bonferroni"}
LABELS = {"holm": "Holm", "fdr_bh": "Benjamini-Hochberg", "bonferroni": "Bonferroni"}


@dataclass(frozen=True)
class Adjustment:
    """Adjusted p-values in the input order; `reject[i]` is adjusted[i] <= alpha for the chosen method."""

    method: str
    alpha: float
    adjusted: list[float | None]
    reject: list[bool]

    @property
    def n_rejected(self) -> int:
        return sum(self.reject)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values, in the input order."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p, kind="stable")
    m = p.size
    stepped = np.minimum(np.maximum.accumulate(p[order] * np.arange(m, 0, -1)), 1.0)
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return adjusted


def adjust_pvalues(pvalues: Sequence[float | None], method: str = "holm", alpha: float = 0.05) -> Adjustment:
    """Adjust a family of p-values. `method`: "holm" (default), "bh" (Benjamini-Hochberg) or "bonferroni"."""
    key = METHODS.get(method)
    if key is None:
        raise StatsError(f"adjustment method {method!r} is unknown: use 'holm', 'bh' or 'bonferroni'.")
    alpha = check_alpha(alpha)
    present = [i for i, p in enumerate(pvalues) if p is not None and not math.isnan(p)]
    for i in present:
        if not 0 <= pvalues[i] <= 1:
            raise StatsError(f"p-value #{i} is {pvalues[i]!r}; p-values lie between 0 and 1.")
    adjusted: list[float | None] = [None] * len(pvalues)
    reject = [False] * len(pvalues)
    if present:
        values = np.asarray([pvalues[i] for i in present], dtype=float)
        if key == "holm":
            adj = holm(values)
            rej = adj <= alpha
        else:
            rej, adj, _, _ = multipletests(values, alpha=alpha, method=key)
        for i, r, a in zip(present, rej, adj, strict=True):
            adjusted[i], reject[i] = float(a), bool(r)
    return Adjustment(LABELS[key], alpha, adjusted, reject)
