"""Fine-tuning: the jobs submitted to OpenAI (status, estimated and actual cost, the fine-tuned model), the models
they produced, refreshing their status, and a form that submits a training-file version after showing what it
is estimated to cost."""

import streamlit as st

from brightrun import ui
from brightrun.errors import BrightRunError
from brightrun.finetuning import (
    ENVIRONMENTS,
    deploy_model,
    estimate_job,
    refresh_jobs,
    submit_job,
)
from brightrun.finetuning import tables as uif

st.title("Fine-tuning")
st.caption("Submit a training-file version to OpenAI fine-tuning and follow the job. Each job records the "
           "version it trained on, the estimated cost before it ran and the actual cost (trained tokens × the "
           "training price) once it finished.")


@st.cache_data(show_spinner="Estimating the cost…", max_entries=64, ttl=300)
def estimate(root: str, name: str, version: int, model: str, epochs: int | None):
    """The estimate of a version (immutable) on a model; `root` keys the cache by workspace."""
    return estimate_job(ui.workspace(), name, model, version=version, epochs=epochs)


def done(message: str) -> None:
    st.session_state["ft_flash"] = message
    st.rerun()


with ui.guard():
    ws = ui.workspace()
    if flash := st.session_state.pop("ft_flash", None):
        st.success(flash, icon=":material/check_circle:")
    key_problem = uif.key_problem()

    st.subheader("Jobs")
    jobs = uif.jobs_table(ws)
    if st.button("Refresh status", key="ft_refresh", icon=":material/refresh:", disabled=key_problem is not None,
                 help="Ask OpenAI about every job that has not ended."):
        try:
            changed = refresh_jobs(ws)
        except BrightRunError as exc:
            st.error(ui.defang(str(exc)))
        else:
            done(f"Refreshed: {len(changed)} job(s) changed.")
    if jobs.is_empty():
        st.info("No fine-tuning jobs yet: submit one below.")
    else:
        st.dataframe(jobs, hide_index=True, key="ft_jobs")
        for job_id in uif.resumable_jobs(ws):
            st.caption(f":material/warning: `{job_id}` never reached OpenAI: finish it with "
                       f"`brightrun finetune resume {job_id}` (its error is in the table).")

    st.subheader("Models")
    models = uif.models_table(ws)
    if models.is_empty():
        st.caption("A model appears here once its job has succeeded (refresh the status).")
    else:
        st.dataframe(models, hide_index=True, key="ft_models")
        row = st.columns([3, 1, 1], vertical_alignment="bottom")
        model = row[0].selectbox("Model", models["model"].to_list(), key="ft_deploy_model")
        environment = row[1].selectbox("Environment", ENVIRONMENTS, index=1, key="ft_deploy_env")
        if row[2].button("Set", key="ft_deploy", help="One model per environment and training file."):
            try:
                deploy_model(ws, model, environment)
            except BrightRunError as exc:
                st.error(ui.defang(str(exc)))
            else:
                done(f"{model} is now in {environment}.")

    st.subheader("Submit a job")
    choices = uif.training_file_choices(ws)
    if not choices:
        st.info("No training file with conversations yet. Make one on the Training files page, or with "
                "`brightrun training-file create NAME` and `brightrun training-file add NAME --persona ...`, "
                "then come back to submit it.")
        st.stop()
    a, b, c = st.columns([2, 1, 2])
    name = a.selectbox("Training file", list(choices), key="ft_file")
    version = b.selectbox("Version", choices[name], key=f"ft_version_{name}", help="Newest first.")
    base_model = c.selectbox("Base model", uif.model_choices(ws), key="ft_model",
                             help="The OpenAI models of the training price table.")
    d, e = st.columns(2)
    epochs = d.number_input("Epochs", min_value=1, max_value=50, value=None, step=1, key="ft_epochs",
                            placeholder="auto (OpenAI chooses)")
    suffix = e.text_input("Model name suffix", max_chars=64, key="ft_suffix", placeholder="optional, e.g. advisor")
    cost = estimate(str(ws.root), name, version, base_model, int(epochs) if epochs else None)
    st.metric("Estimated cost", uif.fmt_cost(cost.cost_usd), border=True)
    st.caption(uif.estimate_text(cost))
    force_reason = None
    if problem := uif.contracts_problem(ws):
        st.warning(f"{problem} A submission is blocked until they pass, unless you say why you submit anyway.")
        force_reason = st.text_input("Reason to submit anyway (recorded with the job)", key="ft_force") or None
    if key_problem:
        st.warning(key_problem)
    if st.button("Submit to OpenAI", type="primary", key="ft_submit", icon=":material/rocket_launch:",
                 disabled=key_problem is not None):
        try:
            with st.spinner("Exporting, validating and uploading…"):
                job = submit_job(ws, name, base_model=base_model, version=version, suffix=suffix or None,
                                 hyperparameters={"n_epochs": int(epochs)} if epochs else {},
                                 force_reason=force_reason)
        except BrightRunError as exc:
            st.error(ui.defang(str(exc)))
        else:
            done(f"Submitted {job.job_id}: OpenAI job {job.external_job_id} is {job.status}.")
