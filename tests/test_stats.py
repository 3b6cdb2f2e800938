"""The statistics core (brightrun.stats): seven known answers F1-F7 (each test holds its inputs and the
answer it checks; docs/experiments.md names each method and its reference), and simulations where the
truth is known.

Simulation tolerances: a rate estimated from N independent replicates has binomial SD sqrt(q(1-q)/N); we
accept +-3 SD (a correct method fails such a check with probability about 0.3%). The replicates use fixed
seeds, so every run is identical.
"""

from __future__ import annotations

import gc
import math
import re

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from brightrun.errors import BrightRunError
from brightrun.stats import (
    ASSOCIATIONAL_LABEL,
    Counts,
    Metric,
    StatsError,
    bayes,
    compare_arms,
    compare_metrics,
    continuous,
    correlate,
    decide_winner,
    multiple,
    power,
    rates,
    sequential,
    srm,
    strata,
)
from brightrun.stats.results import always_valid_results, arms_from_frame


def band(q: float, n: int, k: float = 3.0) -> tuple[float, float]:
    """q +- k binomial standard deviations for a rate estimated from n replicates."""
    sd = math.sqrt(q * (1 - q) / n)
    return q - k * sd, q + k * sd


# --- F1-F7: known answers --------------------------------------------------------------------------------

def test_f1_two_proportion_z():
    result = rates.two_proportion_ztest(5, 83, 12, 99)
    assert result.statistic == pytest.approx(-1.4078304151258787, rel=1e-9)
    assert result.p_value == pytest.approx(0.15918129181156992, rel=1e-9)
    assert round(result.p_value, 3) == 0.159
    chi = rates.rates_chisquare([5, 12], [83, 99])
    assert chi.statistic == pytest.approx(1.98199, abs=1e-5)
    assert chi.statistic == pytest.approx(result.statistic**2, rel=1e-9)
    assert chi.p_value == pytest.approx(result.p_value, rel=1e-9)
    assert rates.rate_test(5, 83, 12, 99).test == "two-proportion z"  # every expected cell >= 5
    one = rates.one_proportion_ztest(5, 83, 0.05)
    assert one.statistic == pytest.approx(0.39213, abs=1e-5)
    assert one.p_value == pytest.approx(0.695, abs=5e-4)


def test_f2_mann_whitney():
    males, females = [19, 22, 16, 29, 24], [20, 11, 17, 12]
    auto = continuous.mann_whitney(males, females)
    assert (auto.u_treatment, auto.u_control) == (17, 3)
    assert auto.method == "exact"  # 4 and 5 values, no ties
    assert auto.p_value == pytest.approx(0.1111111111111111, rel=1e-9)
    assert auto.prob_superiority == pytest.approx(17 / 20, rel=1e-12)
    assert auto.rank_biserial == pytest.approx(0.7, rel=1e-12)
    asym = continuous.mann_whitney(males, females, method="asymptotic")
    assert asym.p_value == pytest.approx(0.11134688653314041, rel=1e-9)


def test_f3_fisher_exact():
    result = rates.fisher_exact_test(8, 10, 1, 6)  # the table [[8, 2], [1, 5]]
    assert result.statistic == pytest.approx(20.0, rel=1e-9)
    assert result.p_value == pytest.approx(0.034965034965034975, rel=1e-9)
    assert rates.needs_exact(8, 10, 1, 6)  # expected control successes 3.375 < 5
    assert rates.rate_test(8, 10, 1, 6).test == "Fisher exact"


def test_f4_wilson():
    assert rates.wilson_interval(100, 200) == pytest.approx((0.4313609, 0.5686391), abs=1e-7)
    assert rates.wilson_interval(81, 263) == pytest.approx((0.25529, 0.36621), abs=1e-5)
    est = rates.rate_estimate(81, 263)
    assert (est.rate, est.method) == (81 / 263, "wilson")


F5 = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240, 0.4262, 0.5719,
      0.6528, 0.7590, 1.000]


def test_f5_multiple_testing():
    bh = multiple.adjust_pvalues(F5, "bh", 0.05)
    assert bh.n_rejected == 4
    assert bh.adjusted[:4] == pytest.approx([0.0015, 0.0030, 0.0095, 0.0356], abs=1e-4)
    assert multiple.adjust_pvalues(F5, "holm").n_rejected == 3
    assert multiple.adjust_pvalues(F5, "bonferroni").n_rejected == 3
    assert bh.method == "Benjamini-Hochberg"


def test_f6_power():
    assert power.power_means(1, 30) == pytest.approx(0.967708258242517, rel=1e-9)
    assert power.sample_size_means(0.5).n_exact == pytest.approx(63.77, abs=5e-3)
    assert power.sample_size_means(0.5, test="z").n_exact == pytest.approx(62.79, abs=5e-3)
    assert power.sample_size_means(0.2).n_exact == pytest.approx(393.4, abs=0.05)
    thumbs = power.sample_size_rates(0.60, 0.65)
    assert thumbs.effect_size == pytest.approx(0.10333, abs=1e-5)
    assert thumbs.n_exact == pytest.approx(1470, abs=0.5)
    assert (thumbs.n_control, thumbs.n_treatment) == (1471, 1471)  # rounded up to whole users
    p1, p2, z_a, z_b = 0.60, 0.65, sps.norm.ppf(0.975), sps.norm.ppf(0.8)  # classical formula: 1,470.5
    pbar = (p1 + p2) / 2
    classical = (z_a * math.sqrt(2 * pbar * (1 - pbar)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 \
        / (p1 - p2) ** 2
    assert classical == pytest.approx(1470.5, abs=0.05)
    assert abs(thumbs.n_exact - classical) < 1


def test_f7_spearman():
    result = correlate.spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7])
    assert result.estimate == pytest.approx(0.8207826816681233, rel=1e-9)
    assert result.p_value == pytest.approx(0.08858700531354381, rel=1e-9)
    assert result.low < result.estimate < result.high
    assert result.associational and result.label == ASSOCIATIONAL_LABEL


# --- building blocks ------------------------------------------------------------------------------------

def test_rate_lift_intervals_and_edges():
    lift = rates.rate_lift(60, 100, 50, 100)
    assert lift.diff == pytest.approx(0.10)
    assert lift.diff_low < 0.10 < lift.diff_high and lift.diff_method == "newcombe"
    assert lift.rel_lift == pytest.approx(0.2)
    assert lift.rel_low < 0.2 < lift.rel_high and lift.ratio_method == "katz-log"
    no_control = rates.rate_lift(3, 100, 0, 100)
    assert no_control.rel_lift is None and no_control.diff_low < 0.03
    zero_treatment = rates.rate_lift(0, 100, 5, 100)
    assert zero_treatment.rel_lift == -1 and zero_treatment.ratio_method == "katz-log-adjusted"
    assert rates.two_proportion_ztest(0, 50, 0, 50).p_value == 1.0
    with pytest.raises(StatsError, match="between 0 and n"):
        rates.rate_lift(11, 10, 1, 10)
    with pytest.raises(BrightRunError, match="no observations"):
        rates.wilson_interval(0, 0)


def test_welch_and_means():
    t, c = [1.0, 2, 3, 4], [2.0, 3, 5, 6, 7]
    welch = continuous.welch_test(t, c)
    ref = sps.ttest_ind(t, c, equal_var=False)
    assert welch.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert (welch.diff_low, welch.diff_high) == pytest.approx(tuple(ref.confidence_interval()), rel=1e-12)
    est = continuous.mean_estimate([1, 2, 3, None, float("nan")])
    assert (est.n, est.mean) == (3, 2.0)
    assert (est.low, est.high) == pytest.approx(sps.t.interval(0.95, 2, loc=2, scale=1 / math.sqrt(3)))
    assert continuous.welch_test([3, 3, 3], [3, 3, 3]).p_value is None
    with pytest.raises(StatsError, match="at least 2"):
        continuous.welch_test([1], [1, 2])


def test_relative_lift_delta_method_against_simulation():
    rng = np.random.default_rng(7)
    lifts = [continuous.relative_lift_delta(*_mv(rng.normal(11, 3, 400)), *_mv(rng.normal(10, 3, 400)))
             for _ in range(400)]
    covered = np.mean([lf.low <= 0.1 <= lf.high for lf in lifts])
    low, high = band(0.95, 400)
    assert low <= covered <= high


def _mv(x: np.ndarray) -> tuple[float, float, int]:
    return float(x.mean()), float(x.var(ddof=1)), x.size


def test_holm_matches_statsmodels_and_skips_missing(monkeypatch):
    # statsmodels' Holm branch calls gc.collect() on every call (why multiple.holm exists); skip it here
    monkeypatch.setattr(gc, "collect", lambda *args: 0)
    rng = np.random.default_rng(3)
    for _ in range(100):
        p = rng.uniform(size=rng.integers(1, 25)) ** 2
        p[: p.size // 3] = p[0]  # ties
        for method, key in (("holm", "holm"), ("bh", "fdr_bh"), ("bonferroni", "bonferroni")):
            ours = multiple.adjust_pvalues(p.tolist(), method)
            reject, adjusted, _, _ = multipletests(p, method=key)
            assert ours.adjusted == pytest.approx(adjusted.tolist(), rel=1e-12)
            assert ours.reject == reject.tolist()
    partial = multiple.adjust_pvalues([0.01, None, 0.04, float("nan")], "holm")
    assert partial.adjusted == [pytest.approx(0.02), None, pytest.approx(0.04), None]
    assert partial.reject == [True, False, True, False]


def test_bayes_closed_form_against_monte_carlo():
    rng = np.random.default_rng(11)
    t, c = rng.beta(1 + 60, 1 + 40, 1_000_000), rng.beta(1 + 50, 1 + 50, 1_000_000)
    exact = bayes.beat_control_rates(60, 100, 50, 100)
    assert exact.prob_beat_control == pytest.approx((t > c).mean(), abs=2e-3)
    assert exact.risk_treatment == pytest.approx(np.maximum(c - t, 0).mean(), abs=2e-4)
    assert exact.risk_control == pytest.approx(np.maximum(t - c, 0).mean(), abs=2e-4)
    assert bayes.beat_control_rates(30, 100, 30, 100).prob_beat_control == pytest.approx(0.5, abs=1e-12)
    lower = bayes.beat_control_rates(60, 100, 50, 100, higher_is_better=False)
    assert lower.prob_beat_control == pytest.approx(1 - exact.prob_beat_control, abs=1e-12)
    means = bayes.beat_control_means(10.5, 4.0, 100, 10.0, 4.0, 100)
    assert means.prob_beat_control == pytest.approx(sps.norm.cdf(0.5 / math.sqrt(0.08)), rel=1e-12)
    d = rng.normal(0.5, math.sqrt(0.08), 1_000_000)
    assert means.risk_treatment == pytest.approx(np.maximum(-d, 0).mean(), abs=5e-4)
    best = bayes.prob_best_rates([50, 60, 55], [100, 100, 100])
    assert sum(best) == pytest.approx(1.0) and max(best) == best[1]


def test_srm():
    assert srm.srm_check({"A": 5200, "B": 4800}).mismatch  # 52/48 at 10,000 users: p = 6e-5
    small = srm.srm_check({"A": 503, "B": 497})  # 50.3/49.7 at 1,000 users: p = 0.85
    assert not small.mismatch and small.p_value > 0.5
    planned = srm.srm_check({"A": 700, "B": 300}, {"A": 7, "B": 3})
    assert not planned.mismatch and planned.expected == {"A": 700.0, "B": 300.0}
    assert "broken" in srm.srm_check({"A": 5200, "B": 4800}).message
    with pytest.raises(StatsError, match="weight"):
        srm.srm_check({"A": 1, "B": 2}, {"A": 1})


# --- Simpson's paradox ------------------------------------------------------------------------------------

# Variant better for novices (93% vs 87%) and for experts (73% vs 69%), but it was mostly shown to
# experts, who give fewer thumbs-up: pooled, it looks worse (78.0% vs 82.6%).
CONFOUNDED = {"novice": (81, 87, 234, 270), "expert": (192, 263, 55, 80)}


def _rows(cells: dict[str, tuple[int, int, int, int]]) -> pl.DataFrame:
    rows = []
    for persona, (x_t, n_t, x_c, n_c) in cells.items():
        rows += [("B", persona, int(i < x_t)) for i in range(n_t)]
        rows += [("A", persona, int(i < x_c)) for i in range(n_c)]
    return pl.DataFrame(rows, schema=["arm", "persona", "thumbs"], orient="row")


def test_simpson_paradox_warning():
    result = strata.stratified_rates(CONFOUNDED, by="persona")
    assert all(s.diff > 0 for s in result.strata)
    assert result.naive_diff < 0 < result.mh_diff
    assert result.naive_odds_ratio < 1 < result.mh_odds_ratio
    assert result.mh_diff_low < result.mh_diff < result.mh_diff_high
    assert result.simpson_warning is not None
    assert result.simpson_warning.startswith("Simpson's paradox")
    assert "persona mix differs" in result.simpson_warning and "better in 2 of 2" in result.simpson_warning
    assert result.homogeneity_p > 0.05  # the variant's effect is similar in both personas
    lower_better = strata.stratified_rates(CONFOUNDED, by="persona", higher_is_better=False).simpson_warning
    assert "looks better than control" in lower_better and "better in 0 of 2" in lower_better

    frame = _rows(CONFOUNDED)
    from_frame = strata.stratified_rates_from_frame(frame, arm="arm", outcome="thumbs", by="persona",
                                                    treatment="B", control="A")
    assert from_frame.mh_odds_ratio == pytest.approx(result.mh_odds_ratio, rel=1e-12)
    assert from_frame.simpson_warning == result.simpson_warning
    assert srm.balance_check(frame, arm="arm", by="persona").imbalanced
    naive = compare_arms(Counts(273, 350), {"B": Counts(289, 350)}, "rate")  # just the pooled rates
    assert naive[0].abs_lift > 0


def test_no_warning_when_mix_is_balanced_and_margin_warning():
    balanced = {"novice": (90, 100, 85, 100), "expert": (70, 100, 65, 100)}
    assert strata.stratified_rates(balanced, by="persona").simpson_warning is None
    # same direction, but the mix inflates the pooled effect by far more than 10%
    inflated = {"novice": (180, 200, 43, 50), "expert": (35, 50, 130, 200)}
    result = strata.stratified_rates(inflated, by="persona")
    assert result.naive_diff > result.mh_diff > 0
    assert result.simpson_warning.startswith("The pooled and persona-stratified estimates differ by more than 10%")
    # a null effect: a sign flip between two estimates that are both ~1 is not a warning
    assert strata.simpson_warning(math.log(1.01), math.log(0.995), by="persona") is None


def test_mantel_haenszel_risk_difference_coverage():
    rng = np.random.default_rng(5)
    n_t, n_c, base = np.array([80, 200, 40]), np.array([200, 60, 40]), np.array([0.3, 0.6, 0.8])
    covered = 0
    for _ in range(400):
        x_t, x_c = rng.binomial(n_t, base + 0.1), rng.binomial(n_c, base)
        rd, low, high = strata._mh_risk_difference(np.column_stack([x_t, n_t, x_c, n_c]), 0.05)
        covered += low <= 0.1 <= high
    low, high = band(0.95, 400)
    assert low <= covered / 400 <= high


def test_stratified_means_confounded():
    rng = np.random.default_rng(2)
    cells = {"novice": (rng.normal(4.5, 0.5, 50), rng.normal(4.3, 0.5, 400)),
             "expert": (rng.normal(3.2, 0.5, 400), rng.normal(3.0, 0.5, 50))}
    result = strata.stratified_means(cells, by="persona")
    assert result.naive_diff < 0 < result.adjusted_diff
    assert result.adjusted_low < 0.2 < result.adjusted_high
    assert result.simpson_warning.startswith("Simpson's paradox")


# --- simulations: A/A rejects at the nominal rate, A/B detected with the predicted power -------------------

def _draw(kind: str, rng: np.random.Generator, size: int, shift: float = 0.0) -> np.ndarray:
    if kind == "rate":
        return rng.binomial(1, 0.3 + shift, size)
    if kind == "rating":
        return rng.choice([1, 2, 3, 4, 5], size, p=[0.1, 0.15, 0.25, 0.3, 0.2])
    return rng.lognormal(5 + shift, 0.8, size)  # skewed, like response length


@pytest.mark.parametrize("kind", ["rate", "rating", "continuous"])
def test_aa_rejects_at_nominal_rate(kind):
    reps, n = 400, 300
    rng = np.random.default_rng({"rate": 101, "rating": 102, "continuous": 103}[kind])
    draws = [(_draw(kind, rng, n), _draw(kind, rng, n)) for _ in range(reps)]
    results = [compare_arms(c, {"B": t}, kind)[0] for c, t in draws]
    rejected = np.mean([r.significant for r in results])
    low, high = band(0.05, reps)  # 0.05 +- 3 * 0.0109
    assert low <= rejected <= high, rejected
    covered = np.mean([r.abs_low <= 0 <= r.abs_high for r in results])  # the true difference is 0
    low, high = band(0.95, reps)
    assert low <= covered <= high, covered
    # P(beat control) is uniform under the null: mean 0.5, SD of the mean sqrt(1/12/400) = 0.014
    assert abs(np.mean([r.prob_beat_control for r in results]) - 0.5) < 3 * math.sqrt(1 / 12 / reps)


def test_aa_small_samples_use_fisher_and_stay_below_nominal():
    rng = np.random.default_rng(104)
    results = [compare_arms(rng.binomial(1, 0.1, 20), {"B": rng.binomial(1, 0.1, 20)}, "rate")[0]
               for _ in range(400)]
    # z only when 10+ successes of 40 (expected cells >= 5): P(Binomial(40, 0.1) >= 10) = 0.4%
    assert np.mean([r.test == "Fisher exact" for r in results]) > 0.97
    assert np.mean([r.significant for r in results]) <= band(0.05, 400)[1]  # Fisher is conservative


def test_aa_three_arms_family_wise_and_decision():
    rng = np.random.default_rng(105)
    winners = 0
    for _ in range(400):
        arms = [rng.binomial(1, 0.3, 300) for _ in range(3)]
        results = compare_arms(arms[0], {"B": arms[1], "C": arms[2]}, "rate")
        winners += decide_winner(results).winner is not None
    assert winners / 400 <= band(0.05, 400)[1]  # Holm keeps the family-wise error <= 5%


def test_ab_detected_with_calculated_power():
    plan = power.sample_size_rates(0.60, 0.65)
    predicted = power.power_rates(0.60, 0.65, plan.n_control)
    rng = np.random.default_rng(106)
    reps = 400
    results = [compare_arms(Counts(int(rng.binomial(plan.n_control, 0.60)), plan.n_control),
                            {"B": Counts(int(rng.binomial(plan.n_treatment, 0.65)), plan.n_treatment)},
                            "rate")[0] for _ in range(reps)]
    detected = np.mean([r.significant for r in results])
    low, high = band(predicted, reps)  # 0.80 +- 3 * 0.02
    assert low <= detected <= high, detected
    covered = np.mean([r.abs_low <= 0.05 <= r.abs_high for r in results])  # Newcombe covers the true lift
    low, high = band(0.95, reps)
    assert low <= covered <= high, covered

    d_plan = power.sample_size_means(0.5)
    rng = np.random.default_rng(107)
    welch = [compare_arms(rng.normal(0, 1, d_plan.n_control), {"B": rng.normal(0.5, 1, d_plan.n_treatment)},
                          "continuous")[0].significant for _ in range(reps)]
    low, high = band(power.power_means(0.5, d_plan.n_control), reps)
    assert low <= np.mean(welch) <= high


def test_mde_round_trip():
    mde = power.mde_rates(0.60, 1471)
    assert mde.p_treatment == pytest.approx(0.65, abs=1e-3)
    assert power.mde_means(64, sd=2.0).diff == pytest.approx(2 * 0.499, abs=2e-3)


# --- sequential ----------------------------------------------------------------------------------------

def test_sequential_peeking_is_safe():
    rng = np.random.default_rng(108)
    reps, looks, per_look = 2000, 20, 100
    n = np.arange(1, looks + 1) * per_look
    x_t = rng.binomial(per_look, 0.3, (reps, looks)).cumsum(axis=1)
    x_c = rng.binomial(per_look, 0.3, (reps, looks)).cumsum(axis=1)
    view = sequential.sequential_rates(x_t, n, x_c, n, tau=0.05)
    assert view.rejected[:, -1].mean() <= band(0.05, reps)[1]  # ever rejected over 20 looks
    assert (np.diff(view.p_value, axis=1) <= 0).all() and (np.diff(view.high - view.low, axis=1) <= 0).all()
    covered = ((view.low <= 0) & (view.high >= 0)).all(axis=1).mean()  # the interval at every look
    assert covered >= band(0.95, reps)[0]
    p_t, p_c, pool = x_t / n, x_c / n, (x_t + x_c) / (2 * n)
    naive = 2 * sps.norm.sf(np.abs(p_t - p_c) / np.sqrt(pool * (1 - pool) * 2 / n))
    assert (naive <= 0.05).any(axis=1).mean() > 0.15  # peeking at a fixed-horizon test: ~25% false alarms
    effect = sequential.sequential_rates(rng.binomial(per_look, 0.4, (200, looks)).cumsum(axis=1), n,
                                         rng.binomial(per_look, 0.3, (200, looks)).cumsum(axis=1), n, tau=0.05)
    assert effect.rejected[:, -1].mean() > 0.9


def test_sequential_means_matches_always_valid():
    rng = np.random.default_rng(109)
    t, c = rng.normal(1, 2, 500), rng.normal(0, 2, 500)
    cuts = np.array([100, 200, 500])
    view = sequential.sequential_means([t[:k].sum() for k in cuts], [(t[:k] ** 2).sum() for k in cuts], cuts,
                                       [c[:k].sum() for k in cuts], [(c[:k] ** 2).sum() for k in cuts], cuts,
                                       tau=0.5)
    last = view.diff[-1]
    assert last == pytest.approx(t.mean() - c.mean())
    assert view.variance[-1] == pytest.approx(t.var(ddof=1) / 500 + c.var(ddof=1) / 500)
    with pytest.raises(StatsError, match="tau"):
        sequential.always_valid([0.1], [0.01], tau=0)


# --- correlation and regression --------------------------------------------------------------------------

def test_spearman_kendall_intervals_cover():
    rng = np.random.default_rng(110)
    true_rho_s = 6 / math.pi * math.asin(0.5 / 2)  # Spearman's rho of a bivariate normal with r = 0.5
    true_tau = 2 / math.pi * math.asin(0.5)
    hits_s = hits_k = 0
    for _ in range(300):
        x = rng.normal(size=60)
        y = 0.5 * x + math.sqrt(0.75) * rng.normal(size=60)
        s, k = correlate.spearman(x, y), correlate.kendall(x, y)
        hits_s += s.low <= true_rho_s <= s.high
        hits_k += k.low <= true_tau <= k.high
    low, high = band(0.95, 300)
    assert low <= hits_s / 300 <= high and low <= hits_k / 300 <= high
    k = correlate.kendall([1, 2, 3, 4, 5, 6], [1, 3, 2, 5, 4, 6])
    assert k.estimate == pytest.approx(sps.kendalltau([1, 2, 3, 4, 5, 6], [1, 3, 2, 5, 4, 6]).statistic)
    assert correlate.spearman([1, 1, 1, 1], [1, 2, 3, 4]).estimate is None


def _prompt_frame(seed: int = 111, n: int = 600) -> pl.DataFrame:
    """Hard topics get longer prompts and lower ratings; length itself has no effect."""
    rng = np.random.default_rng(seed)
    topic = rng.choice(["easy", "hard"], n)
    persona = rng.choice(["novice", "expert", "casual"], n)
    hard = topic == "hard"
    tokens = rng.normal(200 + 300 * hard, 50)
    questions = rng.poisson(2, n).astype(float)
    rating = 4.0 - 1.0 * hard + 0.3 * (persona == "novice") + 0.2 * questions + rng.normal(0, 0.7, n)
    return pl.DataFrame({"n_tokens": tokens, "n_questions": questions, "rating": rating,
                         "thumbs": (rating > 3.5).astype(int), "topic": topic, "persona": persona,
                         "user_id": rng.integers(0, 150, n)})


def test_correlations_adjusted_and_labelled():
    frame = _prompt_frame()
    results = correlate.correlate_features(frame, ["n_tokens", "n_questions"], "rating")
    raw = [r.p_value for r in results]
    assert [r.p_adjusted for r in results] == pytest.approx(multipletests(raw, method="fdr_bh")[1].tolist())
    assert results[0].estimate < -0.3  # long prompts "predict" low ratings: confounded by topic
    assert all(r.associational and "not cause" in r.label for r in results)


def test_regression_with_controls_removes_the_confounder():
    frame = _prompt_frame()
    naive = correlate.regress(frame, "rating", ["n_tokens", "n_questions"], controls=())
    adjusted = correlate.regress(frame, "rating", ["n_tokens", "n_questions"], cluster="user_id")
    tokens_naive, tokens_adj = naive.coefficients[0], adjusted.coefficients[0]
    assert tokens_naive.p_value < 1e-6 and tokens_naive.estimate < 0
    assert tokens_adj.low < 0 < tokens_adj.high  # no effect once topic is controlled
    questions = adjusted.coefficients[1]
    assert questions.low < 0.2 < questions.high
    assert adjusted.controls == ["persona", "topic"] and adjusted.cov_type == "cluster"
    assert adjusted.associational and adjusted.label == ASSOCIATIONAL_LABEL
    logit = correlate.regress(frame, "thumbs", ["n_questions"], kind="logit")
    assert logit.coefficients[0].estimate > 0 and logit.coefficients[0].odds_ratio > 1
    with pytest.raises(StatsError, match="not in the frame"):
        correlate.regress(frame, "rating", ["missing"])


# --- results and the decision ----------------------------------------------------------------------------

def test_compare_arms_fields_for_each_metric_type():
    rate = compare_arms([1, 0, 1, 1, 0, 1] * 50, {"B": Counts(230, 300)}, "rate", metric="thumbs")[0]
    assert (rate.metric, rate.arm, rate.n, rate.control_n) == ("thumbs", "B", 300, 300)
    assert rate.estimate == pytest.approx(230 / 300) and rate.control_estimate == pytest.approx(2 / 3)
    assert rate.low < rate.estimate < rate.high and rate.abs_low < rate.abs_lift < rate.abs_high
    assert rate.rel_lift == pytest.approx((230 / 300) / (2 / 3) - 1)
    assert rate.test == "two-proportion z" and rate.adjust_method == "Holm"
    assert rate.p_adjusted == rate.p_value and 0.5 < rate.prob_beat_control <= 1
    rating = compare_arms([3, 4, 5, 4, 3] * 20, {"B": [4, 5, 5, 4, 3] * 20}, "rating")[0]
    assert rating.test == "Mann-Whitney U (asymptotic)" and rating.effect_size > 0.5
    cont = compare_arms([10.0, 12, 11, 13], {"B": [20.0, 22, 21, 23]}, "continuous", higher_is_better=False)[0]
    assert cont.test == "Welch t" and not cont.improves and cont.prob_beat_control < 0.01
    with pytest.raises(StatsError, match="0/1"):
        compare_arms([1, 2, 3], {"B": [1, 0]}, "rate")
    with pytest.raises(StatsError, match="metric_type"):
        compare_arms([1, 0], {"B": [1, 0]}, "ratio")


def test_compare_metrics_adjusts_across_variants_and_metrics():
    rng = np.random.default_rng(112)
    metrics = [Metric("thumbs", "rate", rng.binomial(1, 0.5, 400),
                      {"B": rng.binomial(1, 0.56, 400), "C": rng.binomial(1, 0.5, 400)}),
               Metric("rating", "rating", rng.integers(1, 6, 400),
                      {"B": rng.integers(1, 6, 400), "C": rng.integers(1, 6, 400)}),
               Metric("length", "continuous", rng.normal(300, 50, 400),
                      {"B": rng.normal(300, 50, 400), "C": rng.normal(300, 50, 400)},
                      higher_is_better=False, guardrail=True)]
    results = compare_metrics(metrics)
    family = [r for r in results if not r.guardrail]
    expected = multipletests([r.p_value for r in family], method="holm")[1]
    assert [r.p_adjusted for r in family] == pytest.approx(expected.tolist())
    assert all(r.p_adjusted is None for r in results if r.guardrail)
    bh = compare_metrics(metrics, exploratory=True)
    assert {r.adjust_method for r in bh if not r.guardrail} == {"Benjamini-Hochberg"}


def test_decide_winner_clear_null_guardrail_and_srm():
    control = Counts(1000, 2000)
    clear = compare_arms(control, {"B": Counts(1200, 2000), "C": Counts(1010, 2000)}, "rate", metric="thumbs")
    decision = decide_winner(clear)
    assert decision.winner == "B" and decision.confidence > 0.999 and decision.metric == "thumbs"
    assert "beats control" in decision.reason and decision.candidates == ["B"]

    null = decide_winner(compare_arms(control, {"B": Counts(1010, 2000)}, "rate"))
    assert null.winner is None and null.confidence is None and null.reason.startswith("No winner yet")

    rng = np.random.default_rng(113)
    guard = compare_metrics([
        Metric("thumbs", "rate", control, {"B": Counts(1200, 2000)}),
        Metric("refusals", "rate", Counts(40, 2000), {"B": Counts(90, 2000)}, higher_is_better=False,
               guardrail=True),
        Metric("length", "continuous", rng.normal(300, 50, 500), {"B": rng.normal(300, 50, 500)},
               higher_is_better=False, guardrail=True)])
    blocked = decide_winner(guard)
    assert blocked.winner is None and "guardrail" in blocked.reason
    assert list(blocked.failed_guardrails) == ["B"] and "refusals" in blocked.failed_guardrails["B"][0]

    mismatch = srm.srm_check({"control": 2000, "B": 2600})
    assert decide_winner(clear, srm=mismatch).winner is None

    two = decide_winner(compare_arms(control, {"B": Counts(1150, 2000), "C": Counts(1250, 2000)}, "rate"))
    assert two.winner == "C" and "not tested against each other" in two.reason

    worse = decide_winner(compare_arms(control, {"B": Counts(800, 2000)}, "rate"))
    assert worse.winner is None and "Significantly worse than control: B" in worse.reason


def test_arms_from_frame():
    frame = pl.DataFrame({"variant": ["A", "B", "A", "B", "B"], "rating": [4, 5, None, 3, 4]})
    arms = arms_from_frame(frame, arm="variant", value="rating")
    assert arms["A"].tolist() == [4.0] and arms["B"].tolist() == [5.0, 3.0, 4.0]


def test_repeated_looks_with_the_always_valid_decision_keep_false_positives_below_alpha():
    """A/A, 200 conversations per arm planned, the report read every 20 per arm up to the planned size. The
    decision on the always-valid p (experiment_report's default) keeps false alarms below alpha; peeking at
    the fixed-sample test does not (switching to it at the planned size after earlier looks gave ~7%)."""
    rng = np.random.default_rng(111)
    reps, planned = 150, 200
    fixed_alarms = safe_alarms = 0
    for _ in range(reps):
        a, b = rng.binomial(1, 0.3, planned), rng.binomial(1, 0.3, planned)
        fixed = safe = False
        for n in range(20, planned + 1, 20):
            results = always_valid_results(compare_arms(Counts(int(a[:n].sum()), n),
                                                        {"B": Counts(int(b[:n].sum()), n)}, "rate"), planned)
            r = results[0]
            assert r.seq_low <= r.abs_lift <= r.seq_high and r.seq_p_value >= r.p_value
            fixed |= r.p_adjusted <= 0.05
            safe |= r.seq_p_adjusted <= 0.05
            safe_winner = decide_winner(results, interim=True).winner is not None
            assert not safe_winner or safe
        fixed_alarms += fixed
        safe_alarms += safe
    assert fixed_alarms / reps > 0.12  # peeking at the fixed-sample test: about 20% false alarms
    assert safe_alarms / reps <= 0.05, safe_alarms / reps


@pytest.mark.parametrize("reviewed_share", [1.0, 0.5])
def test_balanced_a_a_strata_warnings_fire_at_about_alpha(reviewed_share):
    """A/A with four personas of very different thumbs-up rates, assigned in equal numbers to both arms; then
    every conversation or a random half of them is measured (reviewed). The old 10%-change rule warned in
    12.6% and 51.9% of such runs; tested warnings (balance test and Breslow-Day, each at alpha) at about alpha."""
    rng = np.random.default_rng(112 if reviewed_share == 1 else 113)
    reps, per_cell, rates = 300, 60, {"novice": 0.3, "saver": 0.5, "expert": 0.7, "retiree": 0.85}
    confounding = heterogeneity = 0
    for _ in range(reps):
        cells = {}
        for persona, rate in rates.items():
            n_t, n_c = (rng.binomial(per_cell, reviewed_share) for _ in range(2))
            cells[persona] = (int(rng.binomial(n_t, rate)), int(n_t), int(rng.binomial(n_c, rate)), int(n_c))
        result = strata.stratified_rates(cells, by="persona")
        confounding += result.simpson_warning is not None
        heterogeneity += result.heterogeneity_warning is not None
        if result.simpson_warning:
            assert re.search(r"chi-square balance test of the persona mix between the arms: p (= 0\.\d+|< 0\.0001); "
                             r"alpha 0\.05\)", result.simpson_warning), result.simpson_warning
    assert confounding / reps <= band(0.05, reps)[1], confounding / reps
    assert heterogeneity / reps <= band(0.05, reps)[1], heterogeneity / reps
    assert (confounding + heterogeneity) / reps <= band(0.10, reps)[1]  # two tests at alpha: at most ~2 alpha


def test_stratified_means_interaction_and_balance_tests():
    rng = np.random.default_rng(114)
    same = {"a": (rng.normal(1, 1, 80), rng.normal(0, 1, 80)), "b": (rng.normal(3, 1, 80), rng.normal(2, 1, 80))}
    result = strata.stratified_means(same, by="persona")
    assert result.balance_p == pytest.approx(1.0) and result.simpson_warning is None
    assert result.interaction_p > 0.05 and result.heterogeneity_warning is None
    opposite = {"a": (rng.normal(1, 1, 80), rng.normal(0, 1, 80)), "b": (rng.normal(0, 1, 80), rng.normal(1, 1, 80))}
    hetero = strata.stratified_means(opposite, by="persona")
    assert hetero.interaction_p < 1e-6
    assert hetero.heterogeneity_warning.startswith("The variant's effect differs between persona groups (F test of "
                                                   "the arm x persona interaction: p < 0.0001; alpha 0.05)")


# --- edge cases and the Cochran-Mantel-Haenszel continuity correction -------------------------------------

# UC Berkeley admissions 1973 (R's UCBAdmissions): per department, (male admitted, male applicants,
# female admitted, female applicants).
BERKELEY = {"A": (512, 825, 89, 108), "B": (353, 560, 17, 25), "C": (120, 325, 202, 593),
            "D": (138, 417, 131, 375), "E": (53, 191, 94, 393), "F": (22, 373, 24, 341)}


def test_cmh_uses_the_continuity_correction_by_default_like_r():
    """R: mantelhaen.test(UCBAdmissions) gives Mantel-Haenszel X-squared = 1.4269, p = 0.2323 (continuity
    correction, R's default); without it X-squared = 1.5246, p = 0.2169. Common odds ratio 0.9047. Checked by running
    R 4.2.2 (Debian's r-base-core) on 2026-12-03: these exact figures."""
    result = strata.stratified_rates(BERKELEY, by="department")
    assert result.cmh_p == pytest.approx(0.23226346281704802, rel=1e-9)
    assert result.cmh_p_uncorrected == pytest.approx(0.21692369705551817, rel=1e-9)
    assert sps.chi2.isf(result.cmh_p, 1) == pytest.approx(1.4269462, rel=1e-6)
    assert result.mh_odds_ratio == pytest.approx(0.9046968, rel=1e-6)


@pytest.mark.parametrize("counts", [(0, 50, 5, 50), (1, 1, 1, 1), (5, 5, 3, 5), (50, 50, 50, 50), (0, 20, 20, 20)])
def test_rate_lift_intervals_contain_their_estimates(counts):
    lift = rates.rate_lift(*counts)
    assert lift.diff_low <= lift.diff <= lift.diff_high
    assert lift.rel_low <= lift.rel_lift <= lift.rel_high
    assert lift.rel_high > lift.rel_low  # never a zero-width interval (1/1 vs 1/1 gave (0, 0))


def test_zero_spread_arms_behave_the_same_for_ratings_and_continuous_metrics():
    rating = compare_arms([4] * 20, {"B": [5] * 20}, "rating")[0]
    score = compare_arms([4.0] * 20, {"B": [5.0] * 20}, "continuous")[0]
    for r in (rating, score):
        assert r.p_value is None and r.abs_low is None and not r.significant
        assert r.abs_lift == 1.0 and r.low == r.estimate == r.high == 5.0
        assert any("no spread in either arm" in note for note in r.notes)
    assert decide_winner([rating]).winner is None and decide_winner([score]).winner is None


def test_z_test_reason_reports_the_smallest_expected_cell():
    assert rates.two_proportion_ztest(30, 100, 40, 100).reason == "every expected cell is at least 5 (smallest 35)"
    small = rates.two_proportion_ztest(1, 10, 3, 10).reason
    assert small.startswith("chosen although the smallest expected cell is 2 (< 5)")


def test_messages_print_p_values_as_people_read_them() -> None:
    """No '3e-19' or '0.0000000000000000003' in a sentence: below 0.0001 it reads '< 0.0001'."""
    from brightrun.stats.text import fmt_p, p_is

    assert [fmt_p(p) for p in (3e-19, 0.00009, 0.0001, 0.01234, 0.5, None, float("nan"))] == \
        ["< 0.0001", "< 0.0001", "0.0001", "0.012", "0.5", "–", "–"]
    assert p_is(3e-19) == "p < 0.0001" and p_is(0.2323, "adjusted p") == "adjusted p = 0.23"
    mismatch = srm.srm_check({"a": 1000, "b": 500}).message
    assert mismatch.startswith("Sample ratio mismatch (p < 0.0001, below the 0.001 threshold)"), mismatch
    assert "e-" not in mismatch
