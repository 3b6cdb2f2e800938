"""Generate: plan cells (or fill to a quota), see the estimate, launch, watch, cancel, retry failures."""

import streamlit as st

from brightrun import ui
from brightrun.doctor import estimate_probe, run_doctor
from brightrun.enrichment import enrichment_state
from brightrun.explore import filter_options, job_enrichment
from brightrun.generation import create_job, launch_background, make_plan, request_cancel, retry_failed
from brightrun.generation.estimate import estimate_plan
from brightrun.generation.views import job_failures, job_state, job_table
from brightrun.providers.base import JSON_MODES
from brightrun.providers.claude import DEFAULT_MODEL, api_key_from_environment
from brightrun.ui.common import metric_row

st.title("Generate")
PROVIDERS = {"scripted": "Scripted (offline, free)", "anthropic": "Claude (Anthropic API)",
             "openai-compatible": "OpenAI-compatible endpoint"}

with ui.guard():
    ws = ui.workspace()
    options = filter_options(ws)

    st.subheader("Plan")
    cols = st.columns(3)
    personas = cols[0].multiselect("Personas", list(options["personas"]), format_func=options["personas"].get,
                                   key="g_personas", placeholder="All")
    arcs = cols[1].multiselect("Emotional arcs", list(options["arcs"]), format_func=options["arcs"].get,
                               key="g_arcs", placeholder="All")
    topics = cols[2].multiselect("Topics", list(options["topics"]), format_func=options["topics"].get,
                                 key="g_topics", placeholder="All")
    left, right = st.columns(2)
    mode = left.radio("How many", ["Per cell", "Fill to quota"], horizontal=True, key="g_mode",
                      help="Fill to quota generates only what each cell lacks to reach the number.")
    number = right.number_input("Conversations per cell" if mode == "Per cell" else "Quota per cell",
                                min_value=1, max_value=1000, value=1, key="g_number")

    st.subheader("Provider")
    cols = st.columns(4)
    provider = cols[0].selectbox("Provider", list(PROVIDERS), format_func=PROVIDERS.get, key="g_provider")
    default_model = {"scripted": "scripted-1", "anthropic": DEFAULT_MODEL, "openai-compatible": ""}[provider]
    model = cols[1].text_input("Model", value=default_model, key=f"g_model_{provider}",
                               help="Empty: each template's own model setting." if provider != "openai-compatible"
                               else "Required: the server's model id (Check provider lists them).")
    concurrency = cols[2].number_input("Concurrency", min_value=1, max_value=256, value=8, key="g_concurrency")
    max_attempts = cols[3].number_input("Attempts per item", min_value=1, max_value=10, value=3, key="g_attempts")
    with st.expander("Model settings (default: each template's own)"):
        override = st.toggle("Override the templates' temperature and max tokens", key="g_override")
        cols = st.columns(2)
        temperature = cols[0].slider("Temperature", 0.0, 1.0, 0.8, 0.05, key="g_temperature", disabled=not override,
                                     help="Claude 5-series models ignore it: they refuse sampling parameters.")
        max_tokens = cols[1].number_input("Max tokens", 256, 128_000, 4096, 256, key="g_max_tokens",
                                          disabled=not override)
    base_url, typed_key, batch_api, failure_rate, server_options = None, None, False, 0.0, {}
    if provider == "scripted":
        failure_rate = st.slider("Simulated fault rate (first attempts)", 0.0, 0.5, 0.0, 0.05, key="g_faults")
    else:
        base_url = st.text_input("Base URL", key=f"g_base_url_{provider}",
                                 placeholder="default" if provider == "anthropic" else "http://localhost:8000/v1")
        typed_key = ui.key_for_base_url(base_url, key=f"g_api_key_{provider}")
        if provider == "openai-compatible":
            cols = st.columns(2)
            server_options["json_mode"] = cols[0].selectbox(
                "JSON mode", JSON_MODES, key="g_json_mode",
                help="auto: ask for the schema (json_schema) and, if the server refuses it, fall back to json_object "
                     "(llama.cpp, Ollama); the job's note says so. none: the prompt alone asks for JSON.")
            server_options["fold_system"] = cols[1].toggle(
                "Fold the system prompt into the first message", key="g_fold_system",
                help="For chat templates without a system role (e.g. Gemma): otherwise the server drops it.")
        if provider == "anthropic":
            batch_api = st.toggle("Message Batches API (half price, results within 24 hours)", key="g_batch")
            if not api_key_from_environment():
                st.warning("ANTHROPIC_API_KEY is not set. Set it in the environment or in "
                           ".streamlit/secrets.toml before launching.")
    with st.expander("Check provider: key, models, and one tiny live request"):
        st.caption("Checks the provider, model and base URL chosen above. Keys are never shown.")
        chosen = (provider, model or None, base_url or None)
        if st.button("Check provider", key="g_doctor"):
            st.session_state["g_doctor_report"] = (chosen, run_doctor([provider], model=chosen[1], base_url=chosen[2],
                                                                      ws=ws, api_key=typed_key).providers[0])
        checked_for, checked = st.session_state.get("g_doctor_report", (None, None))
        if checked_for == chosen and provider != "scripted":
            estimate = estimate_probe(provider, chosen[1], ws)
            st.markdown(f"**Live check**: one tiny structured request to {estimate.model}, {estimate.summary}.")
            if st.button("Send the live check", key="g_doctor_live"):
                checked = run_doctor([provider], model=chosen[1], base_url=chosen[2], live=True, ws=ws,
                                     api_key=typed_key).providers[0]
                st.session_state["g_doctor_report"] = (chosen, checked)
        if checked_for == chosen:
            if checked.ok:
                st.success(f"{checked.provider} ({checked.model}): every check that ran passed.")
            else:
                st.error(f"{checked.provider} ({checked.model}): a check failed; its message says the fix.")
            st.table(checked.rows())

    plan = make_plan(ws, personas, arcs, topics, count=number if mode == "Per cell" else None,
                     quota=number if mode == "Fill to quota" else None)
    if not plan:
        st.success("Every chosen cell already reaches the quota: nothing to generate.")
    else:
        estimate = estimate_plan(ws, plan, provider=provider, model=model or None, batch=batch_api)
        st.info(f"**Estimate**: {estimate.summary}.")
        st.toggle("Enrich when done", value=True, key="g_enrich",
                  help="Enrichment makes the training pairs that Review judges and training files hold, with their "
                       "quality scores. It runs in the job's process when the job ends (failures retried too).")
        if st.button("Launch job", type="primary", key="g_launch"):
            options_ = ({"failure_rate": failure_rate} if provider == "scripted"
                        else ({"base_url": base_url} if base_url else {}) | server_options)
            job = create_job(ws, plan, provider=provider, model=model or "", seed=ui.new_seed(),
                             provider_options=options_, concurrency=int(concurrency), batch_api=batch_api,
                             max_attempts=int(max_attempts), temperature=temperature if override else None,
                             max_tokens=int(max_tokens) if override else None)
            launch_background(ws, job.job_id, enrich=st.session_state["g_enrich"], api_key=typed_key)
            st.session_state["g_watch_select"] = job.job_id
            st.query_params["job"] = job.job_id

    st.subheader("Jobs")
    jobs = job_table(ws)
    if jobs.height == 0:
        st.caption("No jobs yet.")
        st.stop()
    ids = jobs["job_id"].to_list()
    if st.session_state.get("g_watch_select") not in ids:  # first visit or after a reload: the URL's job
        st.session_state["g_watch_select"] = st.query_params.get("job") if st.query_params.get("job") in ids \
            else ids[0]
    watched = st.selectbox("Watch job", ids, key="g_watch_select")
    st.query_params["job"] = watched


def active(state: dict) -> bool:
    """Whether the watched job may still change: it runs, is queued to start, or its enrichment runs."""
    return bool(state["running"] or state["state"] in ("queued", "processing")
                or (state["state"] == "completed" and enrichment_state(ws).running))


def live(job_id: str) -> None:
    """The watched job's progress, redrawn every second when the page was drawn while the job could still
    change (until the next full run). A settled job is drawn once: its panel does not rerun every second
    beside the form above, where a rerun racing an edit lost the edit."""
    with ui.guard():
        state = job_state(ws, job_id)
        st.progress(state["progress"], text=f"{state['job_id']}: {state['state']}"
                    + (" (cancel requested)" if state["cancel_requested"] and state["running"] else ""))
        metric_row([
            ("Done", f"{state['done']:,} / {state['total']:,}", None),
            ("Failed", f"{state['failed']:,}", None),
            ("Rate", f"{state['rate_per_minute']:,.0f}/min" if state["rate_per_minute"] else "–", None),
            ("ETA", ui.fmt_duration(state["eta_seconds"]), None),
            ("Tokens", ui.fmt_int(state["input_tokens"] + state["output_tokens"]), None),
            ("Spend", ui.fmt_usd(state["cost_usd"]), None),
        ])
        if state["note"]:
            st.caption(ui.plain(state["note"]))
        made = job_enrichment(ws, job_id)
        if made["conversations"]:
            enriching = state["state"] == "completed" and enrichment_state(ws).running
            st.caption(f"Enrichment: {made['completed']:,} of {made['conversations']:,} conversation(s) enriched"
                       + (f", {made['failed']:,} failed" if made["failed"] else "")
                       + (" · enriching now…" if enriching else ""))
        if state["done"]:
            st.page_link("pages/views/conversations.py", label=f"Its conversations ({state['done']:,})",
                         icon=":material/forum:", query_params={"f_jobs": job_id})
        if state["running"] and st.button("Cancel job", key="g_cancel"):
            request_cancel(ws, job_id)
            st.toast("Cancel requested: no new calls start; calls in flight land.")
        failures = job_failures(ws, job_id)
        st.markdown(f"**Failures** ({failures.height})")
        if failures.height:
            st.dataframe(failures.drop("raw_response"), hide_index=True, key="g_failures")
            if not state["running"] and st.button("Retry failed items", key="g_retry"):
                retry_failed(ws, job_id)
                launch_background(ws, job_id, enrich=st.session_state.get("g_enrich", True))
                st.toast(f"Retrying {failures.height} item(s).")
        else:
            st.caption("No failures.")


st.fragment(live, run_every=1.0 if active(job_state(ws, watched)) else None)(watched)
history = st.expander(f"Job history · the {jobs.height} newest job(s)", icon=":material/history:",
                      key="g_history_open", on_change="rerun")
if history.open:  # drawn when opened: a page's first table loads the data grid in the browser, about 0.35 s
    history.dataframe(jobs, hide_index=True, key="g_history",  # of the first run (docs/benchmarks.md)
                      column_config={"cost_usd": st.column_config.NumberColumn("cost", format="$%.4f")})
