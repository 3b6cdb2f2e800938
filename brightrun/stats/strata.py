"""Per-stratum effects (by persona, topic or both) beside the naive pooled effect, and the Simpson's-paradox
warning when the two disagree.

Rates: per-stratum risk difference (Newcombe) and odds ratio (Woolf logit interval, 0.5 added to zero cells;
statsmodels `Table2x2`); Mantel-Haenszel pooled odds ratio (Robins-Breslow-Greenland interval), the
Cochran-Mantel-Haenszel test and the Breslow-Day homogeneity test (statsmodels `StratifiedTable`).
Written here because statsmodels has no pooled risk difference: the Mantel-Haenszel risk difference with
Sato's (1989, Biometrics 45:1323) variance, weights n_t n_c / N per stratum.
Means: a post-stratified difference of means (strata weighted by their share of all users, as GrowthBook's
post-stratification), written here; variance sum w_k^2 (s_tk^2 / n_tk + s_ck^2 / n_ck).

Warnings are tests, each at the report's alpha, and their text names the test and its p:
- Confounding (`simpson_warning`): the stratum mix of the compared units differs between the arms -- the
  balance test, a chi-square test of independence of arm x stratum counts (`srm.mix_test`, the test of
  `srm.balance_check`), p < alpha -- AND the naive and stratified estimates differ by more than `margin`:
  for rates |log OR_naive - log OR_MH| > log(1 + margin) (default 10%, the change-in-estimate rule of
  Greenland 1989 / Maldonado & Greenland 1993), for means by more than `margin` standard deviations of the
  outcome (0.1 SD). The balance test makes the claim "the mix differs" a tested one, so balanced A/A
  experiments warn at about alpha; the margin keeps a tested but harmless imbalance quiet. When the two
  estimates point in opposite directions the message says so (Simpson's paradox).
- Heterogeneity (`heterogeneity_warning`): the variant's effect differs between strata -- for rates the
  Breslow-Day test of equal odds ratios (statsmodels `StratifiedTable.test_equal_odds`, Breslow & Day 1980),
  for means the F test of the arm x stratum interaction in OLS `y ~ arm * C(stratum)` against
  `y ~ arm + C(stratum)` (statsmodels `compare_f_test`) -- p < alpha.
The Cochran-Mantel-Haenszel test uses the continuity correction by default, as R's `mantelhaen.test`
does (`cmh_p`); the uncorrected p is `cmh_p_uncorrected`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import statsmodels.api as sm
from scipy import stats as sps
from statsmodels.stats.contingency_tables import StratifiedTable, Table2x2

from brightrun.stats._common import StatsError, check_alpha, check_count, clean_values, finite
from brightrun.stats.rates import rate_lift
from brightrun.stats.srm import mix_test
from brightrun.stats.text import p_is

MARGIN = 0.10


@dataclass(frozen=True)
class StratumRates:
    stratum: str
    x_t: int
    n_t: int
    x_c: int
    n_c: int
    rate_t: float
    rate_c: float
    diff: float
    diff_low: float
    diff_high: float
    odds_ratio: float | None
    or_low: float | None
    or_high: float | None


@dataclass(frozen=True)
class StratifiedRates:
    """Naive (pooled over strata) and Mantel-Haenszel (stratified) estimates, treatment vs control."""

    by: str
    strata: list[StratumRates]
    naive_diff: float
    naive_diff_low: float
    naive_diff_high: float
    naive_odds_ratio: float | None
    mh_diff: float
    mh_diff_low: float
    mh_diff_high: float
    mh_odds_ratio: float | None
    mh_or_low: float | None
    mh_or_high: float | None
    cmh_p: float | None
    homogeneity_p: float | None
    simpson_warning: str | None
    skipped: list[str] = field(default_factory=list)
    cmh_p_uncorrected: float | None = None
    balance_p: float | None = None
    heterogeneity_warning: str | None = None


def _direction(value: float, higher_is_better: bool) -> str:
    value = value if higher_is_better else -value
    return "better" if value > 0 else "worse" if value < 0 else "no different"


def simpson_warning(naive: float, stratified: float, *, by: str, scale: str = "log odds ratio",
                    margin: float = MARGIN, sd: float | None = None,
                    strata_effects: Sequence[float] = (), describe: str = "",
                    higher_is_better: bool = True, balance_p: float | None = None,
                    alpha: float = 0.05) -> str | None:
    """The warning text when the stratum mix differs between the arms (balance test p < alpha) and the
    naive and stratified estimates disagree (rule in the module docstring), else None. `naive` and
    `stratified` are on the log-odds-ratio scale ("log odds ratio") or differences of means ("difference",
    then `sd` is the outcome's standard deviation). `balance_p`: the balance test's p (None: not tested,
    then only the margin rule applies). `describe` adds the estimates in readable units;
    `higher_is_better` chooses the words better/worse."""
    if balance_p is not None and not balance_p < alpha:
        return None
    if scale == "log odds ratio":
        disagree = abs(naive - stratified) > math.log1p(margin)
        size = f"by more than {margin:.0%}"
    elif scale == "difference":
        if not sd:
            return None
        disagree = abs(naive - stratified) > margin * sd
        size = f"by more than {margin:g} standard deviations"
    else:
        raise StatsError(f"simpson_warning: scale {scale!r} is unknown: use 'log odds ratio' or 'difference'.")
    if not disagree:
        return None
    within = ""
    if strata_effects:
        better = sum((e > 0) if higher_is_better else (e < 0) for e in strata_effects)
        within = f"; better in {better} of {len(strata_effects)} {by} groups"
    details = f" ({describe}{within})" if describe or within else ""
    tested = (f" (chi-square balance test of the {by} mix between the arms: {p_is(balance_p)}; alpha {alpha:g})"
              if balance_p is not None else "")
    if naive * stratified < 0:
        return (f"Simpson's paradox: pooled over {by}, the variant looks {_direction(naive, higher_is_better)} than control, "
                f"but compared within each {by} it is {_direction(stratified, higher_is_better)}{details}. The {by} mix "
                f"differs between the arms{tested}, so the pooled comparison is confounded. Report the "
                f"{by}-stratified estimate and check how users were assigned (or reviewed) in each arm.")
    return (f"The pooled and {by}-stratified estimates differ {size}{details}: the {by} mix differs between "
            f"the arms{tested} and distorts the pooled comparison. Prefer the stratified estimate and check how "
            f"users were assigned (or reviewed) in each arm.")


def heterogeneity_warning(p_value: float | None, *, by: str, test: str, alpha: float = 0.05) -> str | None:
    """The warning text when the test that the variant's effect is the same in every stratum rejects."""
    if p_value is None or not p_value < alpha:
        return None
    return (f"The variant's effect differs between {by} groups ({test}: {p_is(p_value)}; alpha {alpha:g}): one pooled "
            f"effect hides that. Read the per-{by} rows before deciding, and check the groups where it is worse.")


def _mh_risk_difference(tables: np.ndarray, alpha: float) -> tuple[float, float, float]:
    """Mantel-Haenszel risk difference with Sato's variance; tables is K x 4 of (x_t, n_t, x_c, n_c)."""
    a, n1, c, n0 = (tables[:, i].astype(float) for i in range(4))
    total = n1 + n0
    w = n1 * n0 / total
    rd = float(np.sum(w * (a / n1 - c / n0)) / w.sum())
    p_k = (n1**2 * c - n0**2 * a + n1 * n0 * (n0 - n1) / 2) / total**2
    q_k = (a * (n0 - c) + c * (n1 - a)) / (2 * total)
    var = max((rd * p_k.sum() + q_k.sum()) / w.sum() ** 2, 0.0)
    half = float(sps.norm.ppf(1 - alpha / 2)) * math.sqrt(var)
    return rd, rd - half, rd + half


def _odds(x_t: int, n_t: int, x_c: int, n_c: int, alpha: float) -> tuple[float | None, ...]:
    table = Table2x2(np.array([[x_t, n_t - x_t], [x_c, n_c - x_c]], dtype=float), shift_zeros=True)
    low, high = table.oddsratio_confint(alpha=alpha)
    return finite(table.oddsratio), finite(low), finite(high)


def stratified_rates(strata: Mapping[str, tuple[int, int, int, int]], *, by: str = "stratum",
                     alpha: float = 0.05, margin: float = MARGIN,
                     higher_is_better: bool = True) -> StratifiedRates:
    """Compare treatment and control rates within each stratum and pooled two ways.

    `strata` maps a stratum name to (treatment successes, treatment n, control successes, control n).
    Strata where an arm has no users cannot compare the arms and are listed in `skipped`."""
    alpha = check_alpha(alpha)
    rows, skipped = [], []
    for name, (x_t, n_t, x_c, n_c) in strata.items():
        if not n_t or not n_c:
            skipped.append(str(name))
            continue
        check_count(x_t, n_t, f"{by} {name!r} treatment")
        check_count(x_c, n_c, f"{by} {name!r} control")
        lift = rate_lift(x_t, n_t, x_c, n_c, alpha)
        rows.append(StratumRates(str(name), int(x_t), int(n_t), int(x_c), int(n_c), x_t / n_t, x_c / n_c,
                                 lift.diff, lift.diff_low, lift.diff_high, *_odds(x_t, n_t, x_c, n_c, alpha)))
    if not rows:
        raise StatsError(f"stratified_rates: no {by} group has users in both arms; nothing to compare.")
    counts = np.array([[r.x_t, r.n_t, r.x_c, r.n_c] for r in rows], dtype=float)
    xt, nt, xc, nc = (int(v) for v in counts.sum(axis=0))
    naive = rate_lift(xt, nt, xc, nc, alpha)
    naive_or = _odds(xt, nt, xc, nc, alpha)[0]
    mh_rd, mh_low, mh_high = _mh_risk_difference(counts, alpha)
    tables = np.stack([np.array([[r.x_t, r.n_t - r.x_t], [r.x_c, r.n_c - r.x_c]], dtype=float) for r in rows],
                      axis=2)
    # zero cells give inf/nan inside statsmodels; they become None here
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        st = StratifiedTable(tables)
        mh_or = finite(st.oddsratio_pooled)
        or_low, or_high = ((finite(v) for v in st.oddsratio_pooled_confint(alpha=alpha)) if mh_or
                           else (None, None))
        cmh_p = finite(st.test_null_odds(correction=True).pvalue)
        cmh_p_uncorrected = finite(st.test_null_odds(correction=False).pvalue)
        homogeneity_p = finite(st.test_equal_odds(adjust=False).pvalue) if len(rows) > 1 else None
    balance_p = mix_test(counts[:, [1, 3]].T)[1]
    warning = None
    if naive_or and mh_or:
        describe = (f"pooled odds ratio {naive_or:.2f}, difference {naive.diff * 100:+.1f} points; "
                    f"Mantel-Haenszel odds ratio {mh_or:.2f}, difference {mh_rd * 100:+.1f} points")
        warning = simpson_warning(math.log(naive_or), math.log(mh_or), by=by, margin=margin,
                                  strata_effects=[r.diff for r in rows], describe=describe,
                                  higher_is_better=higher_is_better, balance_p=balance_p, alpha=alpha)
    hetero = heterogeneity_warning(homogeneity_p, by=by, alpha=alpha,
                                   test="Breslow-Day test of equal odds ratios across the groups")
    return StratifiedRates(by, rows, naive.diff, naive.diff_low, naive.diff_high, naive_or, mh_rd, mh_low,
                           mh_high, mh_or, or_low, or_high, cmh_p, homogeneity_p, warning, skipped,
                           cmh_p_uncorrected, balance_p, hetero)


def _strata_key(frame: pl.DataFrame, by: str | Sequence[str]) -> tuple[pl.DataFrame, str]:
    columns = [by] if isinstance(by, str) else list(by)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise StatsError(f"stratify: column(s) {missing} not in the frame ({frame.columns}).")
    key = pl.concat_str([pl.col(c).cast(pl.String).fill_null("(none)") for c in columns], separator=" / ")
    return frame.with_columns(key.alias("__stratum")), " × ".join(columns)


def stratified_rates_from_frame(frame: pl.DataFrame, *, arm: str, outcome: str, by: str | Sequence[str],
                                treatment: str, control: str, alpha: float = 0.05,
                                margin: float = MARGIN, higher_is_better: bool = True) -> StratifiedRates:
    """`stratified_rates` from one row per user: `arm` names the arm, `outcome` is 0/1 (or bool), `by` is
    one column (persona) or several (persona and topic: strata are their combinations)."""
    frame, label = _strata_key(frame.filter(pl.col(outcome).is_not_null()), by)
    grouped = (frame.filter(pl.col(arm).is_in([treatment, control]))
               .group_by("__stratum", arm)
               .agg(pl.col(outcome).cast(pl.Int64).sum().alias("x"), pl.len().alias("n")))
    cells: dict[str, list[int]] = {}
    for row in grouped.iter_rows(named=True):
        slot = cells.setdefault(row["__stratum"], [0, 0, 0, 0])
        offset = 0 if row[arm] == treatment else 2
        slot[offset], slot[offset + 1] = int(row["x"]), int(row["n"])
    return stratified_rates({k: tuple(v) for k, v in sorted(cells.items())}, by=label, alpha=alpha,
                            margin=margin, higher_is_better=higher_is_better)


@dataclass(frozen=True)
class StratumMeans:
    stratum: str
    n_t: int
    n_c: int
    mean_t: float
    mean_c: float
    diff: float


@dataclass(frozen=True)
class StratifiedMeans:
    by: str
    strata: list[StratumMeans]
    naive_diff: float
    adjusted_diff: float
    adjusted_low: float
    adjusted_high: float
    simpson_warning: str | None
    skipped: list[str] = field(default_factory=list)
    balance_p: float | None = None
    interaction_p: float | None = None
    heterogeneity_warning: str | None = None


def _interaction_p(t_parts: Sequence[np.ndarray], c_parts: Sequence[np.ndarray]) -> float | None:
    """F test of the arm x stratum interaction: OLS y ~ arm * C(stratum) against y ~ arm + C(stratum)."""
    if len(t_parts) < 2:
        return None
    y = np.concatenate([np.concatenate([t, c]) for t, c in zip(t_parts, c_parts, strict=True)])
    arm = np.concatenate([np.r_[np.ones(t.size), np.zeros(c.size)] for t, c in zip(t_parts, c_parts, strict=True)])
    group = np.concatenate([np.full(t.size + c.size, k) for k, (t, c) in enumerate(zip(t_parts, c_parts,
                                                                                       strict=True))])
    dummies = (group[:, None] == np.arange(1, len(t_parts))[None, :]).astype(float)
    additive = np.column_stack([np.ones(y.size), arm, dummies])
    full = np.column_stack([additive, dummies * arm[:, None]])
    small, large = sm.OLS(y, additive).fit(), sm.OLS(y, full).fit()
    if large.df_resid <= 0 or large.ssr <= 0:
        return None
    return finite(large.compare_f_test(small)[1])


def stratified_means(strata: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, by: str = "stratum",
                     alpha: float = 0.05, margin: float = MARGIN,
                     higher_is_better: bool = True) -> StratifiedMeans:
    """Naive and post-stratified differences of means; `strata` maps a stratum to (treatment values,
    control values). Strata with fewer than 2 values in an arm are skipped (no variance)."""
    alpha = check_alpha(alpha)
    rows, skipped, weights, variances, all_t, all_c = [], [], [], [], [], []
    for name, (t_values, c_values) in strata.items():
        t = clean_values(t_values, f"{by} {name!r} treatment", min_n=0)
        c = clean_values(c_values, f"{by} {name!r} control", min_n=0)
        if t.size < 2 or c.size < 2:
            skipped.append(str(name))
            continue
        all_t.append(t)
        all_c.append(c)
        rows.append(StratumMeans(str(name), t.size, c.size, float(t.mean()), float(c.mean()),
                                 float(t.mean() - c.mean())))
        weights.append(t.size + c.size)
        variances.append(t.var(ddof=1) / t.size + c.var(ddof=1) / c.size)
    if not rows:
        raise StatsError(f"stratified_means: no {by} group has 2+ values in both arms; nothing to compare.")
    w = np.asarray(weights, dtype=float) / sum(weights)
    adjusted = float(np.sum(w * [r.diff for r in rows]))
    half = float(sps.norm.ppf(1 - alpha / 2)) * math.sqrt(float(np.sum(w**2 * np.asarray(variances))))
    pooled_t, pooled_c = np.concatenate(all_t), np.concatenate(all_c)
    naive = float(pooled_t.mean() - pooled_c.mean())
    sd = float(np.concatenate([pooled_t, pooled_c]).std(ddof=1))
    balance_p = mix_test([[r.n_t for r in rows], [r.n_c for r in rows]])[1]
    warning = simpson_warning(naive, adjusted, by=by, scale="difference", margin=margin, sd=sd,
                              strata_effects=[r.diff for r in rows],
                              describe=f"pooled difference {naive:+.3g}, stratified {adjusted:+.3g}",
                              higher_is_better=higher_is_better, balance_p=balance_p, alpha=alpha)
    interaction_p = _interaction_p(all_t, all_c)
    hetero = heterogeneity_warning(interaction_p, by=by, alpha=alpha,
                                   test=f"F test of the arm x {by} interaction")
    return StratifiedMeans(by, rows, naive, adjusted, adjusted - half, adjusted + half, warning, skipped,
                           balance_p, interaction_p, hetero)
