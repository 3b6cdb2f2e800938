"""Experiments: define A/B experiments on template versions and model settings, generate their arms, read the
results (winner or "no winner yet", a forest plot of lifts, the results table, the sample-ratio check,
per-persona and per-topic effects) and size the next one with the power calculator."""

import streamlit as st

from brightrun import ui
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
from brightrun.experiments.report import outcomes, success_mde
from brightrun.explore import filter_options
from brightrun.generation import load_job
from brightrun.prompts import registry as prompts
from brightrun.providers.claude import api_key_from_environment
from brightrun.ui import experiments as uix

st.title("Experiments")
PROVIDERS = {"scripted": "Scripted (offline, free)", "anthropic": "Claude (Anthropic API)",
             "openai-compatible": "OpenAI-compatible endpoint"}
STATUS_COLOR = {"draft": "gray", "running": "blue", "paused": "orange", "completed": "green"}
ACTIONS = {"paused": ("Pause", ":material/pause:"), "running": ("Resume", ":material/play_arrow:"),
           "completed": ("Complete", ":material/flag:")}
REVIEWED_METRICS = {"thumbs_up", "mean_rating", "edited"}


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
        st.info(f"Not every arm has been generated yet (missing: {ui.plain(', '.join(missing))}): generate the arms "
                "above.")
        return
    report = experiment_report(ws, exp.experiment_id, alpha=alpha, exploratory=exploratory)
    if report.simulated:
        st.warning(f"**{report.data_note()}**", icon=":material/science:")
    else:
        st.caption(report.data_note())
    st.dataframe(report.arms, hide_index=True, key="ex_arms")
    st.caption("Per arm: planned and generated conversations, how many have a review (thumbs), the share made by the "
               "scripted provider (simulated), and the mean of every metric (rates as shares).")

    d = report.decision
    if report.simulated:
        st.error(f"**Simulated data: no decision.** {ui.plain(d.reason.removeprefix('Simulated data: no decision. '))}",
                 icon=":material/science:")
    elif d.winner:
        st.success(f"**Winner: {ui.plain(d.winner)}** · confidence {d.confidence:.1%} (P(beat control)). "
                   f"{ui.plain(d.reason)}",
                   icon=":material/emoji_events:")
    else:
        st.info(f"**No winner yet.** {ui.plain(d.reason.removeprefix('No winner yet: '))}", icon=":material/hourglass_top:")
    for arm, failures in d.failed_guardrails.items():
        st.error(f"**Guardrail failed for {ui.plain(arm)}:** " + ui.plain("; ".join(failures)),
                 icon=":material/gpp_bad:")
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
        uix.forest(report)
        uix.results_table(report)
        st.caption(f"Fixed-sample p-values and intervals are valid only at the planned size ({report.planned_n:,} "
                   "conversations per arm), read once. Always-valid p and interval (mSPRT, tau = the minimum "
                   "detectable effect at the planned size) stay valid however often you look. "
                   + report.decision_basis())
        mde = success_mde(report)
        if mde is not None:
            st.caption(f"With {mde['control_n']:,} measured conversations in control at {mde['control_rate']:.1%}, a "
                       f"true lift of {mde['mde_diff'] * 100:+.1f} points (to {mde['mde_rate']:.1%}) would be found "
                       "with 80% power (Cohen's h, the arcsine approximation); smaller lifts need more reviews "
                       "(Calculator tab).")
    uix.strata_section(report, names, alpha)


# ------------------------------------------------------------------------------------ one experiment

def _definition(ws, exp, names) -> None:
    st.markdown(f"### {ui.plain(exp.name)}")
    head = st.container(horizontal=True, vertical_alignment="center")
    head.badge(exp.status, color=STATUS_COLOR[exp.status])
    head.caption(f"`{exp.experiment_id}` · template {names['templates'].get(exp.template_key, exp.template_key)} "
                    f"(`{exp.template_key}`) · created {exp.created_at:%Y-%m-%d %H:%M} · updated "
                    f"{exp.updated_at:%Y-%m-%d %H:%M} UTC")
    if exp.hypothesis:
        st.markdown(f"**Hypothesis.** {ui.plain(exp.hypothesis)}")
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
        base_url, typed_key = None, None
        if provider != "scripted":
            base_url = cols[2].text_input("Base URL", key=f"ex_base_url_{provider}",
                                          placeholder="default" if provider == "anthropic"
                                          else "http://localhost:8000/v1") or None
            typed_key = ui.key_for_base_url(base_url, key=f"ex_api_key_{provider}")
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
                                   concurrency=int(concurrency), progress=st.write, api_key=typed_key)
                    if enrich_after:
                        st.write("enriching")
                        enrich(ws)
                    box.update(label=f"{exp.experiment_id}: arms generated", state="complete")
                    ok = True
                except BrightRunError as exc:
                    box.update(label=f"{exp.experiment_id}: generation failed", state="error")
                    st.error(ui.defang(str(exc)))
            if ok:
                uix.flash(f"{exp.experiment_id}: arms generated; review their conversations on the Review page.")
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
                    st.error(ui.defang(str(exc)))
                else:
                    uix.flash(f"{exp.experiment_id} is {target}.")
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
    # No status in the label: the browser keeps the label it was given while the option stays chosen, so a
    # status in it went stale (the badge by the title says the status).
    opened = st.selectbox("Open experiment", ids, key="ex_open", format_func=lambda i: f"{by_id[i].name} · {i}")
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


def _prefill(ws) -> bool:
    """The Prompts page's "Start an experiment against the current version" (or a link like it) names a template and
    two of its versions in the address: preselect them as control and test variant, once. True if it did."""
    wanted = {k: st.query_params.get(k) for k in ("new_template", "new_control", "new_variant")}
    if not wanted["new_template"]:
        return False
    for k in wanted:
        st.query_params.pop(k, None)
    template = wanted["new_template"]
    known = template in ws.scaffolding.templates
    ids = prompts.versions(ws, template)["version"].to_list() if known else []
    if wanted["new_control"] not in ids or wanted["new_variant"] not in ids:
        return False
    st.session_state.update({"ex_new_template": template,
                             f"ex_new_arm_version_{template}_0": wanted["new_control"],
                             f"ex_new_arm_version_{template}_1": wanted["new_variant"]})
    return True


def _new_tab(ws, names) -> None:
    templates = names["templates"]
    st.caption("Compare versions of one template (and, optionally, model settings). Every arm is generated over the "
               "same cells with the same count, so the arms are balanced by construction; make a new version on the "
               "Prompts page (New version) or by editing the template's YAML.")
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
            preset = f"ex_new_arm_version_{template}_{i}" in st.session_state  # chosen, or set by _prefill
            version = cols[1].selectbox(f"{role}: template version", ids,
                                        index=default_version if ids and not preset else None,
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
            st.error(ui.defang(str(exc)))
        else:
            planned = len(cells(ws, exp)) * exp.per_arm
            uix.flash(f"Experiment {exp.experiment_id} created (draft): {planned:,} conversations per arm. Generate its "
                   "arms on the Experiments tab.")
            st.session_state["ex_pending_open"] = exp.experiment_id
            st.rerun()


# ------------------------------------------------------------------------------------------ calculator

with ui.guard():
    ws = ui.workspace()
    flash = st.session_state.pop("ex_flash", None)
    if flash:
        st.toast(flash[0], icon=flash[1])
    names = filter_options(ws)
    prefilled = _prefill(ws)
    if "ex_pending_open" in st.session_state:  # just created: leave the form and show the new experiment
        st.session_state["ex_tab"] = "Experiments"
    elif prefilled:  # from the Prompts page: the form, with the two versions chosen
        st.session_state["ex_tab"] = "New experiment"
    experiments_tab, new_tab, calculator_tab = st.tabs(["Experiments", "New experiment", "Calculator"],
                                                       key="ex_tab", on_change="rerun")
    # Only the open tab runs: the first run does not draw the New experiment form and the calculator (the page
    # budget, docs/benchmarks.md).
    with experiments_tab:
        if experiments_tab.open:
            _experiments_tab(ws, names)
    with new_tab:
        if new_tab.open:
            _new_tab(ws, names)
    with calculator_tab:
        if calculator_tab.open:
            uix.calculator()
