"""Power, sample size and minimum detectable effect (statsmodels `NormalIndPower`, `TTestIndPower`,
`proportion_effectsize`), two-sided tests.

Rates use Cohen's h = 2 asin(sqrt(p_t)) - 2 asin(sqrt(p_c)) with the normal power function (the z test);
means and ratings use Cohen's d = difference / SD with the t test (or the z test with test="z").
`ratio` = n_treatment / n_control, as in statsmodels. Sample sizes are rounded up to whole users; the
unrounded value is kept in `n_exact`. Written here: the conversion of a detectable h back to a rate
(p_t = sin^2(asin(sqrt(p_c)) + h / 2)), one line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import proportion_effectsize

from brightrun.stats._common import StatsError, check_alpha


@dataclass(frozen=True)
class SampleSize:
    """Users needed in each arm. `effect_size` is Cohen's h (rates) or d (means)."""

    n_control: int
    n_treatment: int
    n_exact: float
    effect_size: float
    effect_kind: str
    alpha: float
    power: float
    ratio: float
    method: str

    @property
    def total(self) -> int:
        return self.n_control + self.n_treatment


@dataclass(frozen=True)
class DetectableEffect:
    """The smallest effect detected with the given power at n_control (and ratio * n_control) users.
    For rates: `p_treatment` (upward effect; None above 1), `diff` = p_treatment - p_control, `relative`."""

    n_control: int
    effect_size: float
    effect_kind: str
    diff: float | None
    p_treatment: float | None = None
    relative: float | None = None


def _check(alpha: float, power: float, ratio: float) -> None:
    check_alpha(alpha)
    if not 0 < power < 1:
        raise StatsError(f"power={power!r} must lie strictly between 0 and 1 (0.8 is usual).")
    if ratio <= 0:
        raise StatsError(f"ratio={ratio!r} (n_treatment / n_control) must be positive.")


def _check_rate(p: float, name: str) -> None:
    if not 0 < p < 1:
        raise StatsError(f"{name}={p!r} must be a rate strictly between 0 and 1.")


def _engine(test: str):
    if test not in ("t", "z"):
        raise StatsError(f"test={test!r} is unknown: use 't' (default for means) or 'z'.")
    return TTestIndPower() if test == "t" else NormalIndPower()


def sample_size_rates(p_control: float, p_treatment: float, *, alpha: float = 0.05, power: float = 0.8,
                      ratio: float = 1.0) -> SampleSize:
    """Users per arm to detect p_control -> p_treatment with a two-sided z test."""
    _check(alpha, power, ratio)
    _check_rate(p_control, "p_control")
    _check_rate(p_treatment, "p_treatment")
    if p_control == p_treatment:
        raise StatsError("sample_size_rates: the two rates are equal; give the smallest change worth detecting.")
    h = float(proportion_effectsize(p_treatment, p_control))
    n = float(NormalIndPower().solve_power(effect_size=abs(h), alpha=alpha, power=power, ratio=ratio))
    return SampleSize(math.ceil(n), math.ceil(n * ratio), n, h, "Cohen's h", alpha, power, ratio,
                      "NormalIndPower (two-proportion z)")


def sample_size_means(effect_size: float | None = None, *, diff: float | None = None, sd: float | None = None,
                      alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0,
                      test: str = "t") -> SampleSize:
    """Users per arm to detect a standardized effect d (`effect_size`), or `diff` in units with outcome SD `sd`."""
    _check(alpha, power, ratio)
    if effect_size is None:
        if diff is None or not sd or sd <= 0:
            raise StatsError("sample_size_means: give effect_size (Cohen's d), or diff and a positive sd.")
        effect_size = diff / sd
    if effect_size == 0:
        raise StatsError("sample_size_means: the effect is 0; give the smallest change worth detecting.")
    n = float(_engine(test).solve_power(effect_size=abs(effect_size), alpha=alpha, power=power, ratio=ratio))
    return SampleSize(math.ceil(n), math.ceil(n * ratio), n, float(effect_size), "Cohen's d", alpha, power,
                      ratio, "TTestIndPower (Welch/Student t)" if test == "t" else "NormalIndPower (z)")


def power_rates(p_control: float, p_treatment: float, n_control: float, *, alpha: float = 0.05,
                ratio: float = 1.0) -> float:
    """Power of the two-sided z test at n_control users in control and ratio * n_control in treatment."""
    _check(alpha, 0.5, ratio)
    _check_rate(p_control, "p_control")
    _check_rate(p_treatment, "p_treatment")
    h = abs(float(proportion_effectsize(p_treatment, p_control)))
    return float(NormalIndPower().power(effect_size=h, nobs1=n_control, alpha=alpha, ratio=ratio))


def power_means(effect_size: float, n_control: float, *, alpha: float = 0.05, ratio: float = 1.0,
                test: str = "t") -> float:
    """Power of the two-sided t (or z) test for Cohen's d at the given sizes."""
    _check(alpha, 0.5, ratio)
    return float(_engine(test).power(effect_size=abs(effect_size), nobs1=n_control, alpha=alpha, ratio=ratio))


def mde_rates(p_control: float, n_control: int, *, alpha: float = 0.05, power: float = 0.8,
              ratio: float = 1.0) -> DetectableEffect:
    """Smallest upward change from p_control detectable at this size (two-sided z test)."""
    _check(alpha, power, ratio)
    _check_rate(p_control, "p_control")
    h = float(NormalIndPower().solve_power(nobs1=n_control, alpha=alpha, power=power, ratio=ratio))
    angle = math.asin(math.sqrt(p_control)) + h / 2
    p_t = math.sin(angle) ** 2 if angle <= math.pi / 2 else None
    return DetectableEffect(int(n_control), h, "Cohen's h", None if p_t is None else p_t - p_control, p_t,
                            None if p_t is None else p_t / p_control - 1)


def mde_means(n_control: int, *, sd: float | None = None, alpha: float = 0.05, power: float = 0.8,
              ratio: float = 1.0, test: str = "t") -> DetectableEffect:
    """Smallest standardized effect d detectable at this size; `diff` = d * sd when sd is given."""
    _check(alpha, power, ratio)
    d = float(_engine(test).solve_power(nobs1=n_control, alpha=alpha, power=power, ratio=ratio))
    return DetectableEffect(int(n_control), d, "Cohen's d", None if sd is None else d * sd)
