"""Shared helpers of the statistics core: the error type, input cleaning and the associational label."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from brightrun.errors import BrightRunError

ASSOCIATIONAL_LABEL = (
    "Association, not cause: prompt features were not randomized, so this relationship may come from "
    "something else that varies with them (topic difficulty, persona, reviewer). Test a causal claim with "
    "a randomized prompt experiment."
)


class StatsError(BrightRunError):
    """A statistic cannot be computed from the data given (empty arm, too few values, bad parameter)."""


def finite(value: float | None) -> float | None:
    """The value as a float, or None when it is missing, NaN or infinite."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def clean_values(values: Iterable[float | None], name: str, *, min_n: int = 1) -> np.ndarray:
    """The finite values as a float array; None and NaN (a missing outcome) are dropped.

    Raises StatsError when fewer than `min_n` values remain."""
    array = np.asarray([np.nan if v is None else v for v in values], dtype=float).ravel()
    array = array[np.isfinite(array)]
    if array.size < min_n:
        raise StatsError(
            f"{name}: {array.size} usable value(s), at least {min_n} needed. "
            "Collect more outcomes for this arm or leave it out of the comparison.")
    return array


def check_count(successes: int, n: int, name: str) -> tuple[int, int]:
    """Validate a (successes, n) pair: integers with 0 <= successes <= n and n > 0."""
    if n is None or successes is None or int(n) != n or int(successes) != successes:
        raise StatsError(f"{name}: counts must be whole numbers, got successes={successes!r}, n={n!r}.")
    successes, n = int(successes), int(n)
    if n <= 0:
        raise StatsError(f"{name}: no observations (n={n}). Wait for data in this arm or leave it out.")
    if not 0 <= successes <= n:
        raise StatsError(f"{name}: successes={successes} must lie between 0 and n={n}. Check the counts.")
    return successes, n


def check_alpha(alpha: float) -> float:
    if not 0 < alpha < 1:
        raise StatsError(f"alpha={alpha!r} must lie strictly between 0 and 1 (0.05 is usual).")
    return float(alpha)
