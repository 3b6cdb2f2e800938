"""Prompts: every template version with its labels and outcomes, labelling, and two versions side by side."""

import plotly.graph_objects as go
import streamlit as st

from brightrun import ui
from brightrun.prompts import effectiveness as eff
from brightrun.prompts import registry as prompts


def _effectiveness_section(ws) -> None:
    """Prompt features against outcomes over every template: correlations, regression, app-log chain."""
    st.subheader("Effectiveness")
    st.info(f"**Associational.** {eff.ASSOCIATIONAL_LABEL}", icon="⚠️")
    names = list(eff.OUTCOMES)
    a, b = st.columns(2)
    outcome = a.selectbox("Outcome", names, index=names.index("quality"), key="pr_eff_outcome",
                          format_func=lambda k: f"{k} · {eff.OUTCOMES[k][0]}")
    method = b.selectbox("Rank correlation", ["spearman", "kendall"], key="pr_eff_method")
    report = eff.effectiveness(ws, outcome, method=method)
    st.caption(f"Unit: the {report.unit} ({report.n:,} with this outcome), over every template. Features: words and "
               "questions of the template version's prompt, its keyword focus (empathy, questions, action), the "
               "edge-case tier and the version's rank. p-values adjusted across features with Benjamini-Hochberg; "
               "regression controls for persona and topic, errors clustered by conversation.")
    if not report.ok:
        st.warning(report.message)
    else:
        table = report.table()
        name = table.columns[1]
        rows = table.drop_nulls(name).reverse()
        st.plotly_chart(go.Figure([
            go.Scatter(x=rows[name].to_list(), y=rows["feature"].to_list(), mode="markers",
                       marker={"size": 10, "color": ["#d62728" if (p or 1) <= 0.05 else "#1f77b4"
                                                     for p in rows["p_adjusted"].to_list()]},
                       error_x={"type": "data", "symmetric": False,
                                "array": (rows["high"] - rows[name]).fill_null(0).to_list(),
                                "arrayminus": (rows[name] - rows["low"]).fill_null(0).to_list()},
                       hovertext=[f"adjusted p = {p:.3g}" if p is not None else "" for p in rows["p_adjusted"]]),
        ]).add_vline(x=0, line_dash="dot").update_layout(
            height=80 + 40 * rows.height, xaxis_title=f"{name} with {outcome} (95% interval; red: adjusted p <= 0.05)",
            xaxis_range=[-1, 1], margin={"l": 10, "r": 10, "t": 10, "b": 10}), key="pr_eff_forest")
        st.dataframe(table, hide_index=True, key="pr_eff_correlations")
        st.markdown("**Regression with persona and topic controls**")
        if report.regression is not None:
            r = report.regression
            fit = "n/a" if r.fit_statistic is None else f"{r.fit_statistic:.3f}"
            st.caption(f"{r.kind.upper()} on {r.n:,} pairs · {r.fit_statistic_name} {fit} · errors: {r.cov_type} · "
                       f"`{r.formula}`")
            st.dataframe(report.coefficients(), hide_index=True, key="pr_eff_coefficients")
        for note in report.notes:
            st.caption(f"· {note}")

    st.markdown("**Imported app logs: prompt -> answer length -> later-step richness**")
    chain = eff.app_log_chain(ws)
    if not chain.ok:
        st.caption(chain.message)
    else:
        st.caption(f"Unit: the session ({chain.sessions.height:,} with user answers). Prompt words: the questions "
                   "put to the user; answer words: the user's answers as they arrive in a step's input; later richness: words and "
                   "distinct words per output of the blueprint, scene and assembly steps. Spearman, BH-adjusted.")
        st.dataframe(chain.table(), hide_index=True, key="pr_eff_chain")


st.title("Prompts")

with ui.guard():
    ws = ui.workspace()
    table = prompts.versions(ws)
    if table.is_empty():
        st.info("No prompt templates yet: the scaffolding's templates appear here (data/scaffolding/templates).")
        st.stop()
    names = dict(zip(table["template_key"].to_list(), table["name"].to_list(), strict=False))
    keys = sorted(names)
    template = st.selectbox("Template", keys, format_func=lambda k: f"{names[k]} · {k}", key="pr_template")
    versions = prompts.versions(ws, template)
    st.caption("A version is the hash of the template's content: editing the YAML makes a new one and jobs keep the "
               "version they were planned with. Thumbs, ratings and edits come from the Review page.")
    st.dataframe(versions.select(
        "version", "labels", "is_current", "first_used_at", "conversations", "mean_quality", "thumbs_up_rate",
        "mean_rating", "edit_rate", "failure_rate", "tokens", "cost_usd", "mean_latency_ms"),
        hide_index=True, key="pr_versions")

    st.subheader("Labels")
    ids = versions["version"].to_list()
    with st.form("pr_label_form"):
        a, b, c = st.columns(3)
        version = a.selectbox("Version", ids, key="pr_label_version")
        label = b.selectbox("Label", prompts.SUGGESTED_LABELS, key="pr_label_name", accept_new_options=True,
                            help="Or type a new one: lower-case letters, digits, '-' and '_'.")
        by = c.text_input("Your name", key="pr_label_by")
        if st.form_submit_button("Set label"):
            prompts.set_label(ws, template, version, label, by=by)
            st.toast(f"{label} -> {version}")
            st.rerun()
    current = prompts.labels(ws).filter(template_key=template)
    if current.height:
        for row in current.to_dicts():
            cols = st.columns([3, 1])
            cols[0].markdown(f"**{row['label']}** → `{row['version']}`"
                             + (f" · set by {row['set_by']}" if row["set_by"] else "") + f" · {row['set_at']:%Y-%m-%d %H:%M}")
            if cols[1].button("Remove", key=f"pr_remove_{row['label']}"):
                prompts.remove_label(ws, template, row["label"])
                st.rerun()
    with st.expander("Label history"):
        st.dataframe(prompts.label_history(ws, template), hide_index=True, key="pr_label_history")

    st.subheader("Compare two versions")
    if len(ids) < 2:
        st.caption("This template has one version. Edit its YAML and generate to make another, then compare them here.")
    else:
        a, b = st.columns(2)
        first = a.selectbox("A", ids, index=len(ids) - 1, key="pr_a")
        second = b.selectbox("B", ids, index=0, key="pr_b")
        d = prompts.diff(ws, template, first, second)
        st.dataframe(d.metrics, hide_index=True, key="pr_metrics")
        st.caption("Associational: versions ran at different times on different cells; run an experiment for a "
                   "causal comparison.")
        for part, title in (("system_prompt", "System prompt"), ("body", "Body")):
            changed = d.system_diff if part == "system_prompt" else d.body_diff
            st.markdown(f"**{title}**" + ("" if changed else " · no change"))
            if changed:
                st.html(d.html(part))

    _effectiveness_section(ws)
