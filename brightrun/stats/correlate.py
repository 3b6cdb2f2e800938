"""Relating prompt features to outcomes: rank correlations and regressions with persona and topic as
controls. Features are not randomized, so every result carries `associational=True` and a label saying it
is an association, not a cause (docs/experiments.md).

Spearman (scipy `spearmanr`) and Kendall tau-b (scipy `kendalltau`) handle ties in 1-5 ratings. Their
intervals are written here: Fisher's z transform with the Fieller, Hartley & Pearson (1957) variances,
1.06 / (n - 3) for Spearman and 0.437 / (n - 4) for Kendall (scipy gives no interval for either; the
bootstrap would be slower and random). p-values across features are adjusted with Benjamini-Hochberg by
default (exploration). Regressions: statsmodels formulas, OLS with HC1 robust errors or logit, with
`C(persona) + C(topic)` controls, cluster-robust errors by user when `cluster` is given.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats as sps

from brightrun.stats._common import ASSOCIATIONAL_LABEL, StatsError, check_alpha, finite
from brightrun.stats.multiple import adjust_pvalues

FISHER_VARIANCE = {"spearman": (1.06, 3), "kendall": (0.437, 4)}


@dataclass(frozen=True)
class Correlation:
    feature: str
    outcome: str
    method: str
    n: int
    estimate: float | None
    p_value: float | None
    low: float | None
    high: float | None
    p_adjusted: float | None = None
    adjust_method: str | None = None
    ci_method: str = "Fisher z (Fieller-Hartley-Pearson variance)"
    associational: bool = True
    label: str = ASSOCIATIONAL_LABEL


def _pairs(x: Iterable[float], y: Iterable[float]) -> tuple[np.ndarray, np.ndarray]:
    xs = np.asarray([np.nan if v is None else v for v in x], dtype=float)
    ys = np.asarray([np.nan if v is None else v for v in y], dtype=float)
    if xs.shape != ys.shape:
        raise StatsError(f"correlation: x has {xs.size} values and y {ys.size}; give one pair per item.")
    keep = np.isfinite(xs) & np.isfinite(ys)
    return xs[keep], ys[keep]


def _correlate(x, y, method: str, alpha: float, feature: str, outcome: str) -> Correlation:
    xs, ys = _pairs(x, y)
    n = int(xs.size)
    if n < 3 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return Correlation(feature, outcome, method, n, None, None, None, None)
    result = (sps.spearmanr if method == "spearman" else sps.kendalltau)(xs, ys)
    r, p = float(result.statistic), float(result.pvalue)
    factor, offset = FISHER_VARIANCE[method]
    low = high = None
    if n > offset:
        if abs(r) >= 1.0:
            low = high = r
        else:
            half = float(sps.norm.ppf(1 - check_alpha(alpha) / 2)) * math.sqrt(factor / (n - offset))
            low, high = math.tanh(math.atanh(r) - half), math.tanh(math.atanh(r) + half)
    return Correlation(feature, outcome, method, n, r, p, low, high)


def spearman(x: Iterable[float], y: Iterable[float], *, alpha: float = 0.05, feature: str = "x",
             outcome: str = "y") -> Correlation:
    """Spearman's rho with p-value (scipy) and a Fisher-z interval. Estimate None when n < 3 or a variable
    is constant; interval None when n < 4."""
    return _correlate(x, y, "spearman", alpha, feature, outcome)


def kendall(x: Iterable[float], y: Iterable[float], *, alpha: float = 0.05, feature: str = "x",
            outcome: str = "y") -> Correlation:
    """Kendall's tau-b with p-value (scipy) and a Fisher-z interval (None when n < 5)."""
    return _correlate(x, y, "kendall", alpha, feature, outcome)


def correlate_features(frame: pl.DataFrame, features: Sequence[str], outcome: str, *, method: str = "spearman",
                       adjust: str = "bh", alpha: float = 0.05) -> list[Correlation]:
    """Correlate each feature column with the outcome column, adjusting p-values across the features."""
    if method not in FISHER_VARIANCE:
        raise StatsError(f"correlation method {method!r} is unknown: use 'spearman' or 'kendall'.")
    missing = [c for c in [*features, outcome] if c not in frame.columns]
    if missing:
        raise StatsError(f"correlate_features: column(s) {missing} not in the frame ({frame.columns}).")
    results = [_correlate(frame[f].cast(pl.Float64).to_list(), frame[outcome].cast(pl.Float64).to_list(),
                          method, alpha, f, outcome) for f in features]
    adjustment = adjust_pvalues([r.p_value for r in results], method=adjust, alpha=alpha)
    return [replace(r, p_adjusted=a, adjust_method=adjustment.method)
            for r, a in zip(results, adjustment.adjusted, strict=True)]


@dataclass(frozen=True)
class Coefficient:
    """One feature's coefficient: a change in the outcome (OLS) or in its log-odds (logit; `odds_ratio` =
    exp(estimate)) per unit of the feature, holding the controls fixed."""

    term: str
    estimate: float
    se: float
    p_value: float
    low: float
    high: float
    p_adjusted: float | None = None
    odds_ratio: float | None = None


@dataclass(frozen=True)
class Regression:
    outcome: str
    kind: str
    formula: str
    n: int
    coefficients: list[Coefficient]
    controls: list[str]
    cov_type: str
    fit_statistic: float | None
    fit_statistic_name: str
    adjust_method: str | None = None
    notes: list[str] = field(default_factory=list)
    associational: bool = True
    label: str = ASSOCIATIONAL_LABEL


def _quote(name: str) -> str:
    if '"' in name or "\\" in name:
        raise StatsError(f"regress: column name {name!r} contains a quote or backslash; rename the column.")
    return f'Q("{name}")'


def _ols(formula: str, data, outcome: str, features: Sequence[str], controls: Sequence[str], cov: dict):
    """OLS by formula, or, with no categorical controls, on the arrays directly (the same model; patsy's
    design step dominates the time of a small fit, e.g. one row per template version)."""
    if controls:
        return smf.ols(formula, data).fit(**cov)
    exog = data[list(features)].astype(float).set_axis([_quote(f) for f in features], axis=1)
    return sm.OLS(data[outcome].astype(float), sm.add_constant(exog, has_constant="add")).fit(**cov)


def regress(frame: pl.DataFrame, outcome: str, features: Sequence[str], *,
            controls: Sequence[str] = ("persona", "topic"), kind: str = "ols", cluster: str | None = None,
            adjust: str = "bh", alpha: float = 0.05, robust: bool = True) -> Regression:
    """Regress the outcome on the features with categorical controls (`C(persona) + C(topic)`).

    kind="ols" (ratings, scores, log length; HC1 robust errors) or "logit" (0/1 outcomes such as thumbs).
    `cluster`: a column (user id) for cluster-robust errors when one user contributes several rows.
    `robust=False`: classical OLS errors with the t distribution on the residual degrees of freedom (for
    few rows, such as one per template version, where HC1 errors are too small).
    Rows with a missing value in any column used are dropped. Feature p-values are adjusted across the
    features (not the controls) with `adjust`."""
    alpha = check_alpha(alpha)
    if kind not in ("ols", "logit"):
        raise StatsError(f"regression kind {kind!r} is unknown: use 'ols' or 'logit'.")
    columns = [outcome, *features, *controls, *([cluster] if cluster else [])]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise StatsError(f"regress: column(s) {missing} not in the frame ({frame.columns}).")
    data = frame.select(columns).drop_nulls().to_pandas()
    notes = []
    if len(data) < len(frame):
        notes.append(f"{len(frame) - len(data)} row(s) with missing values dropped")
    used_controls = [c for c in controls if data[c].nunique() > 1]
    notes += [f"control {c!r} has a single value and was left out" for c in controls if c not in used_controls]
    rhs = [_quote(f) for f in features] + [f"C({_quote(c)})" for c in used_controls]
    formula = f"{_quote(outcome)} ~ {' + '.join(rhs) if rhs else '1'}"
    if len(data) <= len(features) + 1:
        raise StatsError(f"regress: {len(data)} complete row(s) for {len(features)} feature(s); collect more.")
    if cluster:
        cov = {"cov_type": "cluster",
               "cov_kwds": {"groups": data[cluster].astype("category").cat.codes.to_numpy()}}
    else:
        cov = {"cov_type": "HC1" if kind == "ols" and robust else "nonrobust"}
    cov_type = cov["cov_type"]
    try:
        if kind == "ols":
            model = _ols(formula, data, outcome, features, used_controls, cov)
            fit_stat, fit_name = finite(model.rsquared), "R-squared"
        else:
            model = smf.logit(formula, data).fit(disp=0, **cov)
            fit_stat, fit_name = finite(model.prsquared), "McFadden pseudo R-squared"
    except (np.linalg.LinAlgError, ValueError) as exc:  # perfect separation, singular design
        raise StatsError(f"regress: the model could not be fitted ({exc}). Drop features that are constant "
                         "or that predict the outcome perfectly, or collect more varied data.") from exc
    ci = model.conf_int(alpha=alpha)
    coefficients = []
    for feature in features:
        term = _quote(feature)
        est = float(model.params[term])
        coefficients.append(Coefficient(feature, est, float(model.bse[term]), float(model.pvalues[term]),
                                        float(ci.loc[term, 0]), float(ci.loc[term, 1]),
                                        odds_ratio=finite(math.exp(est)) if kind == "logit" else None))
    adjustment = adjust_pvalues([c.p_value for c in coefficients], method=adjust, alpha=alpha)
    coefficients = [replace(c, p_adjusted=a) for c, a in zip(coefficients, adjustment.adjusted, strict=True)]
    return Regression(outcome, kind, formula, int(model.nobs), coefficients, used_controls, cov_type, fit_stat,
                      fit_name, adjustment.method, notes)


def unit_means(frame: pl.DataFrame, outcome: str, unit: str, *, controls: Sequence[str] = ("persona", "topic"),
               count: str | None = None) -> tuple[pl.DataFrame, list[str]]:
    """One row per unit (e.g. template version): `n` rows with the outcome, the raw `mean` and the
    `adjusted` mean, i.e. the unit's mean at the average mix of the categorical controls.

    `adjusted` comes from OLS of the outcome on unit indicators and control indicators (no intercept:
    y = b_unit + c_persona + c_topic + e); adjusted_u = b_u + the mean of the control part over all rows.
    A unit's rows are averaged into one value, so the units, not the rows, are what later tests count.
    Controls with a single value, or that would make the units unidentifiable (a control level seen in
    one unit only, say), are left out and named in the returned notes. With `count`, each row of `frame`
    stands for `count` rows already summed: `outcome` holds their sum (what a SQL GROUP BY hands over)."""
    missing = [c for c in [outcome, unit, *controls] if c not in frame.columns]
    if missing:
        raise StatsError(f"unit_means: column(s) {missing} not in the frame ({frame.columns}).")
    data = frame.drop_nulls([outcome, unit]).with_columns(pl.col(unit).cast(pl.String))
    if data.is_empty():
        raise StatsError(f"unit_means: no row has both {outcome!r} and {unit!r}.")
    # The design holds indicators only, so every row of one (unit, controls) cell has the same design row: OLS
    # over the rows is weighted least squares over the cells' means, weighted by the cells' row counts (the
    # same normal equations; the rank, which decides what is left out, is the rank of the distinct design
    # rows). A few hundred cells instead of millions of rows: at 5M training pairs the dense row-level design
    # took most of the Prompts page's 31 s first load.
    cells = data.with_columns(pl.col(c).cast(pl.String).fill_null("(none)") for c in controls).group_by(
        [unit, *controls]).agg(pl.len().alias("_n") if count is None else pl.col(count).sum().alias("_n"),
                               pl.col(outcome).cast(pl.Float64).sum().alias("_sum")).sort([unit, *controls])
    weight = cells["_n"].cast(pl.Float64).to_numpy()
    y = (cells["_sum"] / cells["_n"]).to_numpy()
    units = cells.select(unit).to_dummies()
    design = units.to_numpy().astype(float)
    notes: list[str] = []
    parts = []
    for control in controls:
        values = cells[control]
        if values.n_unique() < 2:
            notes.append(f"control {control!r} has a single value and was left out")
            continue
        dummies = values.to_frame(control).to_dummies(drop_first=True).to_numpy().astype(float)
        trial = np.column_stack([design, *parts, dummies])
        if np.linalg.matrix_rank(trial) < trial.shape[1]:
            notes.append(f"control {control!r} left out: some of its values occur within a single {unit} only, "
                         f"so its effect cannot be told apart from the {unit}'s")
            continue
        parts.append(dummies)
    root = np.sqrt(weight)
    coef = np.linalg.lstsq(np.column_stack([design, *parts]) * root[:, None], y * root, rcond=None)[0]
    control_mean = 0.0
    if parts:
        control_mean = float(weight @ (np.column_stack(parts) @ coef[design.shape[1]:]) / weight.sum())
    names = [c.removeprefix(f"{unit}_") for c in units.columns]
    adjusted = coef[:design.shape[1]] + control_mean
    summary = cells.group_by(unit).agg(pl.col("_n").sum().alias("n"), pl.col("_sum").sum().alias("_sum")
                                       ).with_columns((pl.col("_sum") / pl.col("n")).alias("mean")).drop("_sum")
    table = summary.join(pl.DataFrame({unit: names, "adjusted": adjusted}), on=unit, how="left").sort(unit)
    return table, notes
