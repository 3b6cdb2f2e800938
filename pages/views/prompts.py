"""Prompts: every template version with its labels and outcomes, labelling, and two versions side by side."""

import streamlit as st

from brightrun import prompts, ui

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
