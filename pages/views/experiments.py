"""Experiments: define A/B experiments on template versions and model settings, generate their arms, read the
results (winner or "no winner yet", a forest plot of lifts, the results table, the sample-ratio check,
per-persona and per-topic effects) and size the next one with the power calculator."""

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from brightrun import prompts, ui
from brightrun.browse import filter_options
from brightrun.enrichment import enrich
from brightrun.errors import BrightRunError
from brightrun.experiments import (
    METRICS,
    create_experiment,
    experiment_report,
    list_experiments,
    load_experiment,
    run_experiment,
    set_status,
)
from brightrun.experiments.core import TRANSITIONS, cells
from brightrun.experiments.report import outcomes
from brightrun.generation import load_job
from brightrun.providers.claude import api_key_from_environment
from brightrun.stats import power

st.title("Experiments")
PROVIDERS = {"scripted": "Scripted (offline, free)", "anthropic": "Claude (Anthropic API)",
             "openai-compatible": "OpenAI-compatible endpoint"}
STATUS_COLOR = {"draft": "gray", "running": "blue", "paused": "orange", "completed": "green"}
ACTIONS = {"paused": ("Pause", ":material/pause:"), "running": ("Resume", ":material/play_arrow:"),
           "completed": ("Complete", ":material/flag:")}
REVIEWED_METRICS = {"thumbs_up", "mean_rating", "edited"}
MARGIN = {"l": 10, "r": 10, "t": 30, "b": 10}


# ------------------------------------------------------------------------------------------ formatting

def _value(v, kind: str, *, lift: bool = False) -> str:
    if v is None:
        return "–"
    if kind == "rate":
        return f"{v * 100:+.1f} pts" if lift else f"{v:.1%}"
    return f"{v:+.3g}" if lift else f"{v:.3g}"


def _bounds(low, high, kind: str, *, lift: bool = False) -> str:
    if low is None or high is None:
        return ""
    return f"[{_value(low, kind, lift=lift)}, {_value(high, kind, lift=lift)}]"


def _interval(v, low, high, kind: str, *, lift: bool = False) -> str:
    return f"{_value(v, kind, lift=lift)} {_bounds(low, high, kind, lift=lift)}".strip()


def _relative(r) -> str:
    if r.rel_lift is None:
        return "–"
    text = f"{r.rel_lift:+.1%}"
    return text + (f" [{r.rel_low:+.1%}, {r.rel_high:+.1%}]" if r.rel_low is not None and r.rel_high is not None
                   else "")


def _p(v) -> str:
    return "–" if v is None else f"{v:.3g}"


def _verdict(r) -> str:
    if not r.significant:
        return "not significant"
    return "better" if r.improves else "worse"


def _flash(message: str, icon: str = ":material/check_circle:") -> None:
    st.session_state["ex_flash"] = (message, icon)


# --------------------------------------------------------------------------------------- the results

def _forest(report) -> None:
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
        color = ["#2ca02c" if r.significant and r.improves else "#d62728" if r.significant else "#7f7f7f"
                 for r in rows]
        fig.add_trace(go.Scatter(
            x=lift, y=[r.arm for r in rows], mode="markers", name=metric, showlegend=False,
            marker={"size": 12, "color": color, "symbol": "diamond" if rows[0].guardrail else "circle"},
            error_x={"type": "data", "symmetric": False, "array": high, "arrayminus": low},
            customdata=[[f"p = {_p(r.p_value)} (guardrail: unadjusted)" if r.guardrail else
                         f"adjusted p = {_p(r.p_adjusted)} ({r.adjust_method})", f"{r.prob_beat_control:.3f}",
                         _verdict(r)] for r in rows],
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
               "adjusted p; guardrails: unadjusted p), grey: not significant. Rates in percentage points.")


def _results_table(report) -> None:
    rows = []
    for r in report.results:
        kind = r.metric_type
        rows.append({
            "metric": r.metric, "role": "guardrail" if r.guardrail else "success", "arm": r.arm, "n": r.n,
            "control n": r.control_n, "estimate [CI]": _interval(r.estimate, r.low, r.high, kind),
            "control [CI]": _interval(r.control_estimate, r.control_low, r.control_high, kind),
            "abs lift [CI]": _interval(r.abs_lift, r.abs_low, r.abs_high, kind, lift=True),
            "rel lift [CI]": _relative(r), "test": r.test, "p": r.p_value, "adjusted p": r.p_adjusted,
            "adjustment": r.adjust_method or ("none (guardrail)" if r.guardrail else "–"),
            "P(beat control)": r.prob_beat_control,
            "effect size": (f"{r.effect_size:.3g} ({r.effect_size_name})" if r.effect_size is not None else "–"),
            "verdict": _verdict(r), "notes": "; ".join(r.notes)})
    st.dataframe(rows, hide_index=True, key="ex_results", column_config={
        "p": st.column_config.NumberColumn(format="%.3g"),
        "adjusted p": st.column_config.NumberColumn(format="%.3g"),
        "P(beat control)": st.column_config.NumberColumn(format="%.3f")})


def _strata_section(report, names: dict[str, dict[str, str]], alpha: float) -> None:
    exp = report.experiment
    metric, kind = exp.success_metric, METRICS[exp.success_metric].kind
    st.subheader("Per persona and per topic")
    st.caption(f"The success metric ({metric}) compared within each persona and each topic, beside the naive "
               "estimate pooled over them. Rates: Mantel-Haenszel risk difference (Sato's variance) and odds ratio; "
               "means: post-stratified difference (strata weighted by their size). When the two disagree the mix of "
               "reviewed conversations differs between the arms and the pooled number is confounded.")
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
                        + (" · :orange[naive and stratified disagree: see the warning above]"
                           if result.simpson_warning else ""))
            if kind == "rate":
                rows = [{by: label.get(s.stratum, s.stratum), variant: f"{s.x_t}/{s.n_t} ({s.rate_t:.1%})",
                         exp.control.name: f"{s.x_c}/{s.n_c} ({s.rate_c:.1%})",
                         "difference [CI]": _interval(s.diff, s.diff_low, s.diff_high, "rate", lift=True),
                         "odds ratio [CI]": _interval(s.odds_ratio, s.or_low, s.or_high, "ratio")}
                        for s in result.strata]
                pooled = [
                    {"estimate": "difference", "naive (pooled)": _value(result.naive_diff, "rate", lift=True),
                     "Mantel-Haenszel": _value(result.mh_diff, "rate", lift=True)},
                    {"estimate": f"{1 - alpha:.0%} interval",
                     "naive (pooled)": _bounds(result.naive_diff_low, result.naive_diff_high, "rate", lift=True),
                     "Mantel-Haenszel": _bounds(result.mh_diff_low, result.mh_diff_high, "rate", lift=True)},
                    {"estimate": "odds ratio", "naive (pooled)": _value(result.naive_odds_ratio, "ratio"),
                     "Mantel-Haenszel": _interval(result.mh_odds_ratio, result.mh_or_low, result.mh_or_high,
                                                  "ratio")}]
                extra = (f"Cochran-Mantel-Haenszel p = {_p(result.cmh_p)}; Breslow-Day homogeneity p = "
                         f"{_p(result.homogeneity_p)} (a small one: the effect differs between {by} groups). "
                         f"Per {by}: successes/measured (rate).")
            else:
                rows = [{by: label.get(s.stratum, s.stratum), f"{variant} n": s.n_t, f"{variant} mean": s.mean_t,
                         f"{exp.control.name} n": s.n_c, f"{exp.control.name} mean": s.mean_c,
                         "difference": s.diff} for s in result.strata]
                pooled = [
                    {"estimate": "difference", "naive (pooled)": _value(result.naive_diff, kind, lift=True),
                     "post-stratified": _value(result.adjusted_diff, kind, lift=True)},
                    {"estimate": f"{1 - alpha:.0%} interval", "naive (pooled)": "–",
                     "post-stratified": _bounds(result.adjusted_low, result.adjusted_high, kind, lift=True)}]
                extra = ""
            st.dataframe(rows, hide_index=True, key=f"ex_strata_{variant}_{by}")
            left, right = st.columns([3, 2])
            left.dataframe(pooled, hide_index=True, key=f"ex_pooled_{variant}_{by}")
            skipped = f" Left out (an arm has too few measured conversations): {', '.join(result.skipped)}." \
                if result.skipped else ""
            if extra or skipped:
                right.caption(extra + skipped)


def _results(ws, exp, names) -> None:
    st.subheader("Results")
    a, b = st.columns(2)
    alpha = a.select_slider("Significance level (alpha)", [0.01, 0.05, 0.1], value=0.05, key="ex_alpha")
    exploratory = b.toggle("Exploratory (Benjamini-Hochberg instead of Holm)", key="ex_exploratory",
                           help="Holm controls the chance of any false winner; Benjamini-Hochberg the share of "
                                "false discoveries, for exploring many variants and metrics.")
    started = set(outcomes(ws, exp)["arm"].to_list())
    if not started:
        st.info("No arm has been generated yet: generate the arms above, then review their conversations.")
        return
    if missing := [arm.name for arm in exp.arms if arm.name not in started]:
        st.info(f"Not every arm has been generated yet (missing: {', '.join(missing)}): generate the arms above.")
        return
    report = experiment_report(ws, exp.experiment_id, alpha=alpha, exploratory=exploratory)
    st.dataframe(report.arms, hide_index=True, key="ex_arms")
    st.caption("Per arm: planned and generated conversations, how many have a review (thumbs), and the mean of every "
               "metric (rates as shares).")

    d = report.decision
    if d.winner:
        st.success(f"**Winner: {d.winner}** · confidence {d.confidence:.1%} (P(beat control)). {d.reason}",
                   icon=":material/emoji_events:")
    else:
        st.info(f"**No winner yet.** {d.reason.removeprefix('No winner yet: ')}", icon=":material/hourglass_top:")
    for arm, failures in d.failed_guardrails.items():
        st.error(f"**Guardrail failed for {arm}:** " + "; ".join(failures), icon=":material/gpp_bad:")
    if report.srm is None:
        st.caption("Sample ratio check: not yet (it needs generated conversations in every arm).")
    elif report.srm.mismatch:
        st.error(f"**Sample ratio check:** {report.srm.message}", icon=":material/balance:")
    else:
        st.caption(f":material/balance: Sample ratio check (chi-square, threshold p < {report.srm.threshold:g}): "
                   f"{report.srm.message}")
    for warning in report.warnings:
        st.warning(warning)

    if any(m in REVIEWED_METRICS for m in [exp.success_metric, *exp.guardrails]):
        reviewed = ", ".join(f"{r['arm']} {r['reviewed']:,} of {r['conversations']:,}"
                             for r in report.arms.to_dicts())
        st.caption("Thumbs, ratings and edits come from people: a reviewer must judge the arms' conversations on the "
                   f"Review page (filter the queue by template version). Reviewed so far: {reviewed}.")
        st.page_link("pages/views/review.py", label="Judge the arms' conversations on the Review page",
                     icon=":material/rate_review:")

    if report.results:
        _forest(report)
        _results_table(report)
        main = next((r for r in report.results if r.metric == exp.success_metric), None)
        if main is not None and main.metric_type == "rate" and 0 < main.control_estimate < 1:
            try:
                mde = power.mde_rates(main.control_estimate, main.control_n, alpha=alpha)
            except BrightRunError:
                mde = None
            if mde is not None and mde.diff is not None:
                st.caption(f"With {main.control_n:,} measured conversations in control at "
                           f"{main.control_estimate:.1%}, a true lift of {mde.diff * 100:+.1f} points (to "
                           f"{mde.p_treatment:.1%}) would be found with 80% power; smaller lifts need more "
                           "reviews (Calculator tab).")
    _strata_section(report, names, alpha)


# ------------------------------------------------------------------------------------ one experiment

def _definition(ws, exp, names) -> None:
    st.markdown(f"### {exp.name}")
    head = st.container(horizontal=True, vertical_alignment="center")
    head.badge(exp.status, color=STATUS_COLOR[exp.status])
    head.caption(f"`{exp.experiment_id}` · template {names['templates'].get(exp.template_key, exp.template_key)} "
                    f"(`{exp.template_key}`) · created {exp.created_at:%Y-%m-%d %H:%M} · updated "
                    f"{exp.updated_at:%Y-%m-%d %H:%M} UTC")
    if exp.hypothesis:
        st.markdown(f"**Hypothesis.** {exp.hypothesis}")
    settings = {r["version"]: r for r in ws.sql(
        "SELECT version, model, temperature FROM prompt_templates WHERE template_key = ?",
        [exp.template_key]).to_dicts()}
    labels = {r["version"]: r["labels"] for r in prompts.versions(ws, exp.template_key).to_dicts()}
    arms = []
    for arm in exp.arms:
        own = settings.get(arm.template_version, {})
        job = load_job(ws, exp.job_id(arm.name))
        model = arm.model or (job.model if job and job.model else f"{own.get('model') or '–'} (the version's)")
        arms.append({
            "arm": arm.name, "role": "control" if arm is exp.control else "test",
            "template version": arm.template_version, "labels": labels.get(arm.template_version) or "",
            "model": model + (f" · {job.provider}" if job else ""),
            "temperature": (f"{arm.temperature:g}" if arm.temperature is not None
                            else f"{own['temperature']:g} (the version's)" if own.get("temperature") is not None
                            else "the version's"),
            "job": exp.job_id(arm.name), "generation": (f"{job.status}: {job.done:,} of {job.total:,}"
                                                        + (f", {job.failed:,} failed" if job.failed else "")
                                                        if job else "not started")})
    st.dataframe(arms, hide_index=True, key="ex_arms_definition")
    planned = len(cells(ws, exp))
    personas = ", ".join(names["personas"].get(p, p) for p in exp.personas) or "every persona"
    topics = ", ".join(names["topics"].get(t, t) for t in exp.topics) or "every topic"
    st.markdown(f"**Success metric:** `{exp.success_metric}` — {METRICS[exp.success_metric].description} "
                f"({'higher' if METRICS[exp.success_metric].higher_is_better else 'lower'} is better).")
    if exp.guardrails:
        st.markdown("**Guardrails:** " + "; ".join(f"`{g}` — {METRICS[g].description}" for g in exp.guardrails))
    else:
        st.markdown("**Guardrails:** none")
    st.caption(f"Cells: {planned} ({personas} × {topics}, the template's arc) · {exp.per_arm} conversation(s) per arm "
               f"per cell: {planned * exp.per_arm:,} per arm · seed {exp.seed} · unit of randomisation and "
               "analysis: the conversation")


def _controls(ws, exp) -> None:
    st.markdown("**Status**")
    jobs = [load_job(ws, exp.job_id(arm.name)) for arm in exp.arms]
    unfinished = any(job is None or job.status not in ("completed", "failed", "cancelled") for job in jobs)
    if exp.status == "draft" or (exp.status == "running" and unfinished):
        cols = st.columns(4)
        provider = cols[0].selectbox("Provider", list(PROVIDERS), format_func=PROVIDERS.get, key="ex_provider")
        concurrency = cols[1].number_input("Concurrency", 1, 256, 8, key="ex_concurrency")
        base_url = None
        if provider != "scripted":
            base_url = cols[2].text_input("Base URL", key=f"ex_base_url_{provider}",
                                          placeholder="default" if provider == "anthropic"
                                          else "http://localhost:8000/v1") or None
            if provider == "anthropic" and not api_key_from_environment():
                st.warning("ANTHROPIC_API_KEY is not set. Set it in the environment or in .streamlit/secrets.toml "
                           "before generating.")
            st.caption("The page waits while the arms generate. For long runs use the terminal: "
                       f"`brightrun experiments run {exp.experiment_id} --provider {provider}`.")
        enrich_after = cols[3].toggle("Enrich when done", value=True, key="ex_enrich",
                                      help="Enrichment makes the training pairs reviewers judge and the quality "
                                           "scores.")
        label = "Generate the arms" if exp.status == "draft" else "Generate missing arms"
        if st.button(label, type="primary", key="ex_run", icon=":material/play_circle:",
                     help="One balanced job per arm; the experiment becomes running. Finished arms are not "
                          "generated again."):
            ok = False
            with st.status(f"Generating the arms of {exp.experiment_id}…", expanded=True) as box:
                try:
                    options = {"base_url": base_url} if base_url else {}
                    run_experiment(ws, exp.experiment_id, provider=provider, provider_options=options,
                                   concurrency=int(concurrency), progress=st.write)
                    if enrich_after:
                        st.write("enriching")
                        enrich(ws)
                    box.update(label=f"{exp.experiment_id}: arms generated", state="complete")
                    ok = True
                except BrightRunError as exc:
                    box.update(label=f"{exp.experiment_id}: generation failed", state="error")
                    st.error(str(exc))
            if ok:
                _flash(f"{exp.experiment_id}: arms generated; review their conversations on the Review page.")
                st.rerun()
    moves = [s for s in ("paused", "running", "completed") if s in TRANSITIONS[exp.status] and exp.status != "draft"]
    if moves:
        row = st.container(horizontal=True)
        for target in moves:
            text, icon = ACTIONS[target]
            if row.button(text, key=f"ex_status_{target}", icon=icon,
                          help="Final: a completed experiment cannot generate again." if target == "completed"
                          else None):
                try:
                    set_status(ws, exp.experiment_id, target)
                except BrightRunError as exc:
                    st.error(str(exc))
                else:
                    _flash(f"{exp.experiment_id} is {target}.")
                    st.rerun()
    elif exp.status == "completed":
        st.caption("Completed: the results below are final. Create a new experiment to run again.")
    else:
        st.caption("A draft starts running when its arms are generated.")


def _experiments_tab(ws, names) -> None:
    experiments = list_experiments(ws)
    if not experiments:
        st.info("No experiments yet. Define one on the **New experiment** tab: a control and test variants of one "
                "template, a success metric and guardrails.")
        return
    st.dataframe([{"id": e.experiment_id, "name": e.name, "template": e.template_key, "status": e.status,
                   "arms": ", ".join(a.name for a in e.arms), "success metric": e.success_metric,
                   "updated": e.updated_at} for e in experiments], hide_index=True, key="ex_list",
                 column_config={"updated": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")})
    ids = [e.experiment_id for e in experiments]
    by_id = {e.experiment_id: e for e in experiments}
    pending = st.session_state.pop("ex_pending_open", None)
    if pending in ids:
        st.session_state["ex_open"] = pending
    elif st.session_state.get("ex_open") not in ids:  # first visit or after a reload: the address's experiment
        wanted = st.query_params.get("experiment")
        st.session_state["ex_open"] = wanted if wanted in ids else ids[0]
    opened = st.selectbox("Open experiment", ids, key="ex_open",
                          format_func=lambda i: f"{by_id[i].name} · {i} · {by_id[i].status}")
    st.query_params["experiment"] = opened
    exp = load_experiment(ws, opened)
    _definition(ws, exp, names)
    _controls(ws, exp)
    _results(ws, exp, names)


# -------------------------------------------------------------------------------------- new experiment

def _version_label(row: dict) -> str:
    parts = [row["version"]]
    if row["labels"]:
        parts.append(row["labels"])
    if row["is_current"]:
        parts.append("current")
    parts.append(f"first used {row['first_used_at']:%Y-%m-%d %H:%M}" if row["first_used_at"] else "not used yet")
    parts.append(f"{row['conversations']:,} conversation(s)")
    return " · ".join(parts)


def _new_tab(ws, names) -> None:
    templates = names["templates"]
    st.caption("Compare versions of one template (and, optionally, model settings). Every arm is generated over the "
               "same cells with the same count, so the arms are balanced by construction; edit the template's YAML "
               "to make a new version (Prompts page lists them).")
    top = st.columns(2)
    template = top[0].selectbox("Template", list(templates), format_func=lambda k: f"{templates[k]} · {k}",
                                key="ex_new_template")
    n_variants = top[1].number_input("Test variants", 1, 5, 1, key="ex_new_variants")
    versions = prompts.versions(ws, template).to_dicts()
    ids = [r["version"] for r in versions]
    labelled = {r["version"]: _version_label(r) for r in versions}
    production = next((i for i, r in enumerate(versions) if "production" in (r["labels"] or "").split(", ")), None)
    if len(ids) < 2:
        st.caption("This template has one version: an experiment can still compare model settings, or edit its YAML "
                   "to make a second version.")
    with st.form("ex_new_form"):
        a, b = st.columns([1, 2])
        experiment_id = a.text_input("Id", key="ex_new_id", placeholder="e.g. warm-prompt",
                                     help="Lower-case letters, digits, '-' and '_'.")
        name = b.text_input("Name", key="ex_new_name", placeholder="e.g. Warmer opening")
        hypothesis = st.text_area("Hypothesis", key="ex_new_hypothesis", height=80,
                                  placeholder="What you expect to change, on which metric, and why.")
        arms = []
        for i in range(int(n_variants) + 1):
            role = "Control" if i == 0 else f"Test variant {i}"
            cols = st.columns([2, 4, 2, 2])
            default_name = "control" if i == 0 else ("variant" if i == 1 else f"variant-{i}")
            default_version = (production if production is not None else min(1, len(ids) - 1)) if i == 0 else 0
            arm_name = cols[0].text_input(f"{role}: name", value=default_name, key=f"ex_new_arm_name_{i}")
            version = cols[1].selectbox(f"{role}: template version", ids, index=default_version if ids else None,
                                        format_func=labelled.get, key=f"ex_new_arm_version_{template}_{i}")
            model = cols[2].text_input(f"{role}: model", key=f"ex_new_arm_model_{i}",
                                       placeholder="the version's", help="Empty: the version's own model.")
            temperature = cols[3].number_input(f"{role}: temperature", 0.0, 1.0, value=None, step=0.05,
                                               key=f"ex_new_arm_temp_{i}", placeholder="the version's")
            arms.append({"name": arm_name.strip(), "template_version": version, "model": model.strip() or None,
                         "temperature": temperature})
        metric_names = list(METRICS)
        a, b = st.columns(2)
        success = a.selectbox("Success metric", metric_names, key="ex_new_metric",
                              format_func=lambda m: f"{m} — {METRICS[m].description}")
        guardrails = b.multiselect("Guardrails", metric_names, default=["failed"], key="ex_new_guardrails",
                                   help="A guardrail fails when a variant is significantly worse on it (unadjusted "
                                        "p); a failing guardrail holds the winner back.")
        st.caption("Metrics: " + "; ".join(f"**{m}** {d.description} ({'higher' if d.higher_is_better else 'lower'} "
                                           "is better)" for m, d in METRICS.items()) + ".")
        a, b = st.columns(2)
        personas = a.multiselect("Personas", list(names["personas"]), format_func=names["personas"].get,
                                 key="ex_new_personas", placeholder="All")
        topics = b.multiselect("Topics", list(names["topics"]), format_func=names["topics"].get,
                               key="ex_new_topics", placeholder="All")
        a, b = st.columns(2)
        per_arm = a.number_input("Conversations per arm in each cell", 1, 1000, 1, key="ex_new_per_arm",
                                 help="The cells are the template's arc × the chosen personas × topics.")
        seed = b.number_input("Seed", 0, 2**31 - 1, 0, key="ex_new_seed")
        submitted = st.form_submit_button("Create experiment", type="primary", key="ex_new_submit")
    if submitted:
        try:
            exp = create_experiment(ws, experiment_id=experiment_id.strip(), name=name.strip() or experiment_id.strip(),
                                    template_key=template, control=arms[0], variants=arms[1:],
                                    hypothesis=hypothesis.strip(), success_metric=success, guardrails=guardrails,
                                    personas=personas, topics=topics, per_arm=int(per_arm), seed=int(seed))
        except BrightRunError as exc:
            st.error(str(exc))
        else:
            planned = len(cells(ws, exp)) * exp.per_arm
            _flash(f"Experiment {exp.experiment_id} created (draft): {planned:,} conversations per arm. Generate its "
                   "arms on the Experiments tab.")
            st.session_state["ex_pending_open"] = exp.experiment_id
            st.rerun()


# ------------------------------------------------------------------------------------------ calculator

def _calculator_tab() -> None:
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
        st.error(str(exc))
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
        st.error(str(exc))
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
        st.error(str(exc))
    else:
        a, b = st.columns(2)
        a.metric("Conversations per arm (means)", f"{size.n_control:,}")
        b.metric("Both arms (means)", f"{size.total:,}")
        st.caption(f"Cohen's d = {size.effect_size:.4g}, n = {size.n_exact:,.1f} per arm before rounding up "
                   f"({size.method}); alpha and power as above.")


with ui.guard():
    ws = ui.workspace()
    flash = st.session_state.pop("ex_flash", None)
    if flash:
        st.toast(flash[0], icon=flash[1])
    names = filter_options(ws)
    experiments_tab, new_tab, calculator_tab = st.tabs(["Experiments", "New experiment", "Calculator"])
    with experiments_tab:
        _experiments_tab(ws, names)
    with new_tab:
        _new_tab(ws, names)
    with calculator_tab:
        _calculator_tab()
