"""Drawing pieces of the Experiments page: value formatting, the forest plot of lifts, the results table,
the per-stratum tables and the power calculator. Streamlit only; the numbers come from brightrun.experiments
and brightrun.stats."""

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from brightrun.errors import BrightRunError
from brightrun.experiments import METRICS
from brightrun.stats import power
from brightrun.ui.common import defang, fmt_p

MARGIN = {"l": 10, "r": 10, "t": 30, "b": 10}

# ------------------------------------------------------------------------------------------ formatting

def fmt_value(v, kind: str, *, lift: bool = False) -> str:
    if v is None:
        return "–"
    if kind == "rate" and round(v * 100, 1) == 0 or kind != "rate" and float(f"{v:.3g}") == 0:
        v = 0.0  # no "-0.0"
    if kind == "rate":
        return f"{v * 100:+.1f} pts" if lift else f"{v:.1%}"
    return f"{v:+.3g}" if lift else f"{v:.3g}"


def fmt_bounds(low, high, kind: str, *, lift: bool = False) -> str:
    if low is None or high is None:
        return ""
    return f"[{fmt_value(low, kind, lift=lift)}, {fmt_value(high, kind, lift=lift)}]"


def fmt_interval(v, low, high, kind: str, *, lift: bool = False) -> str:
    return f"{fmt_value(v, kind, lift=lift)} {fmt_bounds(low, high, kind, lift=lift)}".strip()


def fmt_relative(r) -> str:
    if r.rel_lift is None:
        return "–"
    text = f"{r.rel_lift:+.1%}"
    return text + (f" [{r.rel_low:+.1%}, {r.rel_high:+.1%}]" if r.rel_low is not None and r.rel_high is not None
                   else "")


def significant(r, fixed_sample: bool) -> bool:
    """Significant on the p-value the report decides with: the always-valid one unless the report is the
    single planned fixed-sample look (guardrails: unadjusted, the success metric: adjusted)."""
    if fixed_sample:
        return r.significant
    p = r.seq_p_value if r.guardrail else r.seq_p_adjusted
    return p is not None and p <= r.alpha


def verdict(r, fixed_sample: bool) -> str:
    if not significant(r, fixed_sample):
        return "not significant"
    return "better" if r.improves else "worse"


def flash(message: str, icon: str = ":material/check_circle:") -> None:
    st.session_state["ex_flash"] = (message, icon)


# --------------------------------------------------------------------------------------- the results

def forest(report) -> None:
    """Absolute lift of every variant on every metric with its interval: one panel per metric (own units)."""
    metrics = list(dict.fromkeys(r.metric for r in report.results))
    kinds = {r.metric: r.metric_type for r in report.results}
    fig = make_subplots(rows=len(metrics), cols=1, vertical_spacing=0.3 / len(metrics),
                        subplot_titles=[f"{m} ({'guardrail' if m in report.experiment.guardrails else 'success metric'})"
                                        f" · {'points' if kinds[m] == 'rate' else 'difference'}, variant − control"
                                        for m in metrics])
    for row, metric in enumerate(metrics, start=1):
        rows = [r for r in report.results if r.metric == metric]
        scale = 100.0 if rows[0].metric_type == "rate" else 1.0
        lift = [r.abs_lift * scale for r in rows]
        high = [(r.abs_high * scale - x) if r.abs_high is not None else 0.0 for r, x in zip(rows, lift, strict=True)]
        low = [(x - r.abs_low * scale) if r.abs_low is not None else 0.0 for r, x in zip(rows, lift, strict=True)]
        fixed = report.fixed_sample
        color = ["#2ca02c" if significant(r, fixed) and r.improves else "#d62728" if significant(r, fixed)
                 else "#7f7f7f" for r in rows]
        fig.add_trace(go.Scatter(
            x=lift, y=[r.arm for r in rows], mode="markers", name=metric, showlegend=False,
            marker={"size": 12, "color": color, "symbol": "diamond" if rows[0].guardrail else "circle"},
            error_x={"type": "data", "symmetric": False, "array": high, "arrayminus": low},
            customdata=[[f"p = {fmt_p(r.p_value)} (guardrail: unadjusted)" if r.guardrail else
                         f"adjusted p = {fmt_p(r.p_adjusted)} ({r.adjust_method})", f"{r.prob_beat_control:.3f}",
                         verdict(r, fixed)] for r in rows],
            hovertemplate="%{y}: %{x:+.3g}" + (" points" if scale == 100 else "")
                          + "<br>%{customdata[0]}<br>P(beat control) %{customdata[1]}<br>%{customdata[2]}<extra>"
                          + metric + "</extra>",
        ), row=row, col=1)
        fig.add_vline(x=0, line_dash="dot", line_color="#999", row=row, col=1)
    fig.update_layout(height=60 + 170 * len(metrics), margin=MARGIN)
    st.plotly_chart(fig, key="ex_forest")
    st.caption(f"Absolute lift of each variant over {report.experiment.control.name} with its "
               f"{1 - report.results[0].alpha:.0%} interval (not adjusted for multiplicity). Circles: the success "
               "metric; diamonds: guardrails. Green: significantly better, red: significantly worse (success metric: "
               f"{'' if report.fixed_sample else 'always-valid '}adjusted p; guardrails: "
               f"{'' if report.fixed_sample else 'always-valid '}unadjusted p), grey: not significant. "
               "Rates in percentage points.")


def results_table(report) -> None:
    rows = []
    for r in report.results:
        kind = r.metric_type
        rows.append({
            "metric": r.metric, "role": "guardrail" if r.guardrail else "success", "arm": r.arm, "n": r.n,
            "control n": r.control_n, "estimate [CI]": fmt_interval(r.estimate, r.low, r.high, kind),
            "control [CI]": fmt_interval(r.control_estimate, r.control_low, r.control_high, kind),
            "abs lift [CI]": fmt_interval(r.abs_lift, r.abs_low, r.abs_high, kind, lift=True),
            "rel lift [CI]": fmt_relative(r), "test": r.test, "p": fmt_p(r.p_value), "adjusted p": fmt_p(r.p_adjusted),
            "always-valid p": fmt_p(r.seq_p_value), "always-valid adjusted p": fmt_p(r.seq_p_adjusted),
            "always-valid interval": fmt_bounds(r.seq_low, r.seq_high, kind, lift=True) or "–",
            "adjustment": r.adjust_method or ("none (guardrail)" if r.guardrail else "–"),
            "P(beat control)": r.prob_beat_control,
            "effect size": (f"{r.effect_size:.3g} ({r.effect_size_name})" if r.effect_size is not None else "–"),
            "verdict": verdict(r, report.fixed_sample), "notes": "; ".join(r.notes)})
    st.dataframe(rows, hide_index=True, key="ex_results", column_config={
        "P(beat control)": st.column_config.NumberColumn(format="%.3f")})


def strata_section(report, names: dict[str, dict[str, str]], alpha: float) -> None:
    exp = report.experiment
    metric, kind = exp.success_metric, METRICS[exp.success_metric].kind
    st.subheader("Per persona and per topic")
    st.caption(f"The success metric ({metric}) compared within each persona and each topic, beside the naive "
               "estimate pooled over them. Rates: Mantel-Haenszel risk difference (Sato's variance) and odds ratio; "
               "means: post-stratified difference (strata weighted by their size). A warning needs tests: the chi-square "
               "balance test of the mix between the arms (and a gap between naive and stratified), or Breslow-Day / "
               "the interaction F test for an effect that differs between groups.")
    if not any(report.strata.values()):
        st.caption("Nothing to stratify yet: the success metric is not measured in both arms.")
        return
    for variant, by_kind in report.strata.items():
        for by in ("persona", "topic"):
            result = by_kind.get(by)
            if result is None:
                continue
            label = names["personas" if by == "persona" else "topics"]
            st.markdown(f"**{variant} vs {exp.control.name}, by {by}**"
                        + (" · :orange[see the warning above]"
                           if result.simpson_warning or result.heterogeneity_warning else ""))
            if kind == "rate":
                rows = [{by: label.get(s.stratum, s.stratum), variant: f"{s.x_t}/{s.n_t} ({s.rate_t:.1%})",
                         exp.control.name: f"{s.x_c}/{s.n_c} ({s.rate_c:.1%})",
                         "difference [CI]": fmt_interval(s.diff, s.diff_low, s.diff_high, "rate", lift=True),
                         "odds ratio [CI]": fmt_interval(s.odds_ratio, s.or_low, s.or_high, "ratio")}
                        for s in result.strata]
                pooled = [
                    {"estimate": "difference", "naive (pooled)": fmt_value(result.naive_diff, "rate", lift=True),
                     "Mantel-Haenszel": fmt_value(result.mh_diff, "rate", lift=True)},
                    {"estimate": f"{1 - alpha:.0%} interval",
                     "naive (pooled)": fmt_bounds(result.naive_diff_low, result.naive_diff_high, "rate", lift=True),
                     "Mantel-Haenszel": fmt_bounds(result.mh_diff_low, result.mh_diff_high, "rate", lift=True)},
                    {"estimate": "odds ratio", "naive (pooled)": fmt_value(result.naive_odds_ratio, "ratio"),
                     "Mantel-Haenszel": fmt_interval(result.mh_odds_ratio, result.mh_or_low, result.mh_or_high,
                                                  "ratio")}]
                extra = (f"Cochran-Mantel-Haenszel p = {fmt_p(result.cmh_p)} (continuity-corrected, as R; "
                         f"uncorrected {fmt_p(result.cmh_p_uncorrected)}); Breslow-Day homogeneity p = "
                         f"{fmt_p(result.homogeneity_p)} (a small one: the effect differs between {by} groups); "
                         f"chi-square balance test of the {by} mix between the arms p = {fmt_p(result.balance_p)}. "
                         f"Per {by}: successes/measured (rate).")
            else:
                rows = [{by: label.get(s.stratum, s.stratum), f"{variant} n": s.n_t, f"{variant} mean": s.mean_t,
                         f"{exp.control.name} n": s.n_c, f"{exp.control.name} mean": s.mean_c,
                         "difference": s.diff} for s in result.strata]
                pooled = [
                    {"estimate": "difference", "naive (pooled)": fmt_value(result.naive_diff, kind, lift=True),
                     "post-stratified": fmt_value(result.adjusted_diff, kind, lift=True)},
                    {"estimate": f"{1 - alpha:.0%} interval", "naive (pooled)": "–",
                     "post-stratified": fmt_bounds(result.adjusted_low, result.adjusted_high, kind, lift=True)}]
                extra = (f"F test of the arm x {by} interaction p = {fmt_p(result.interaction_p)}; chi-square "
                         f"balance test of the {by} mix between the arms p = {fmt_p(result.balance_p)}.")
            st.dataframe(rows, hide_index=True, key=f"ex_strata_{variant}_{by}")
            left, right = st.columns([3, 2])
            left.dataframe(pooled, hide_index=True, key=f"ex_pooled_{variant}_{by}")
            skipped = f" Left out (an arm has too few measured conversations): {', '.join(result.skipped)}." \
                if result.skipped else ""
            if extra or skipped:
                right.caption(extra + skipped)


def calculator() -> None:
    st.caption("How many conversations each arm needs (two-sided tests, equal arms). Formulas: statsmodels "
               "`NormalIndPower` with Cohen's h = 2·asin(√p₂) − 2·asin(√p₁) for rates (the two-proportion z test) and "
               "`TTestIndPower` with Cohen's d for means and ratings (brightrun/stats/power.py; Cohen 1988, "
               "Statistical Power Analysis for the Behavioral Sciences). Count only conversations that get a "
               "measurement: for thumbs and ratings, the reviewed ones.")
    st.markdown("**Rates** (thumbs up, edited, failed): conversations per arm")
    cols = st.columns(4)
    p0 = cols[0].number_input("Baseline rate (control)", 0.001, 0.999, 0.60, 0.01, format="%.3f", key="ex_calc_p0")
    p1 = cols[1].number_input("Expected rate (variant)", 0.001, 0.999, 0.65, 0.01, format="%.3f", key="ex_calc_p1")
    alpha = cols[2].number_input("Alpha", 0.001, 0.5, 0.05, 0.01, format="%.3f", key="ex_calc_alpha")
    wanted = cols[3].number_input("Power", 0.5, 0.99, 0.80, 0.05, format="%.2f", key="ex_calc_power")
    try:
        size = power.sample_size_rates(p0, p1, alpha=alpha, power=wanted)
    except BrightRunError as exc:
        st.error(defang(str(exc)))
    else:
        a, b = st.columns(2)
        a.metric("Conversations per arm (rates)", f"{size.n_control:,}")
        b.metric("Both arms", f"{size.total:,}")
        st.caption(f"{p0:.1%} → {p1:.1%}: Cohen's h = {size.effect_size:.4f}, n = {size.n_exact:,.1f} per arm before "
                   f"rounding up ({size.method}).")
    st.markdown("*Minimum detectable effect at a given size* (same baseline, alpha and power)")
    cols = st.columns(4)
    n_mde = cols[0].number_input("Conversations per arm", 2, 10_000_000, 500, 50, key="ex_calc_mde_n")
    try:
        mde = power.mde_rates(p0, int(n_mde), alpha=alpha, power=wanted)
    except BrightRunError as exc:
        st.error(defang(str(exc)))
    else:
        if mde.p_treatment is None:
            cols[1].metric("Smallest detectable rate", "–")
            st.caption("No upward change from this baseline is detectable at this size.")
        else:
            cols[1].metric("Smallest detectable rate", f"{mde.p_treatment:.1%}")
            cols[2].metric("Minimum detectable lift", f"{mde.diff * 100:+.1f} pts")
            cols[3].metric("Relative", f"{mde.relative:+.1%}")
            st.caption(f"With {int(n_mde):,} per arm from a baseline of {p0:.1%}: Cohen's h = {mde.effect_size:.4f}.")

    st.markdown("**Means** (ratings, quality score, words, cost)")
    cols = st.columns(4)
    given = cols[0].radio("Effect given as", ["Cohen's d", "difference and SD"], key="ex_calc_mean_mode")
    if given == "Cohen's d":
        d = cols[1].number_input("Effect size d", 0.01, 5.0, 0.2, 0.05, key="ex_calc_d")
        diff, sd = None, None
    else:
        d = None
        diff = cols[1].number_input("Difference", 0.0001, 1e6, 0.2, 0.05, format="%.4g", key="ex_calc_diff")
        sd = cols[2].number_input("Standard deviation", 0.0001, 1e6, 1.0, 0.05, format="%.4g", key="ex_calc_sd")
    test = cols[3].radio("Test", ["t", "z"], horizontal=True, key="ex_calc_test")
    try:
        size = power.sample_size_means(d, diff=diff, sd=sd, alpha=alpha, power=wanted, test=test)
    except BrightRunError as exc:
        st.error(defang(str(exc)))
    else:
        a, b = st.columns(2)
        a.metric("Conversations per arm (means)", f"{size.n_control:,}")
        b.metric("Both arms (means)", f"{size.total:,}")
        st.caption(f"Cohen's d = {size.effect_size:.4g}, n = {size.n_exact:,.1f} per arm before rounding up "
                   f"({size.method}); alpha and power as above.")
