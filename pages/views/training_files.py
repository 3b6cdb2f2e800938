"""Training files: make one, add conversations by filter (its eligible non-members) or by id (all or
nothing), split without leaks, build the full JSON and its JSONL, and export a version to any fine-tuning
stack."""

import streamlit as st

from brightrun import ui
from brightrun.explore import filter_options
from brightrun.training_files import (
    TrainingFileError,
    add_conversations,
    add_matching,
    assign_splits,
    build_version,
    create_training_file,
    get_version,
    match_filter,
    remove_conversations,
    split_counts,
    stored_leakage_report,
)
from brightrun.training_files.export import export_folder, export_version
from brightrun.ui import training as ui_training
from brightrun.ui.enrichment import enrich_panel

st.title("Training files")
st.caption("A training file is a named, versioned set of enriched conversations. Every change makes a new "
           "version you can rebuild byte for byte; splits never put near duplicates on both sides.")


def blocked(error: TrainingFileError) -> None:
    """A refused change: the reason, and the list of every conversation that blocked it."""
    st.error(ui_training.headline(error) if error.problems else str(error))
    if error.problems:
        st.caption(f"Nothing was changed. {len(error.problems):,} conversation(s) blocked it:")
        st.dataframe(ui_training.problems_table(error), hide_index=True, key="blocked_list")


def offer(downloads: list[ui_training.Download]) -> None:
    """An export's files as download buttons, three to a row."""
    cols = st.columns(3)
    for i, item in enumerate(downloads):
        cols[i % 3].download_button(f"Download {item.label}", item.data, item.file_name, item.mime,
                                    key=f"dl_export_{i}", on_click="ignore")


def changed(message: str) -> None:
    """A change went through: say so at the top of the next run, which shows the new version."""
    st.session_state["tf_changed"] = message
    for key in ("add_ids", "remove_ids"):  # the ids just added or removed
        st.session_state.pop(key, None)
    st.rerun()


# Only the open tab runs, and Streamlit forgets the widgets of a run that did not draw them: what was typed or
# picked in these is handed back to Session State at each run, so it is there again when its tab reopens.
KEPT = ("add_personas", "add_arcs", "add_topics", "add_tiers", "add_statuses", "add_min_quality", "add_ids",
        "remove_ids", "export_format")
for key in KEPT:
    if key in st.session_state:
        st.session_state[key] = st.session_state[key]

with ui.guard():
    ws = ui.workspace()
    files = ui_training.files_table(ws)
    enrich_panel(ws, "tf")  # only enriched conversations can be added: enrich the pending ones here

    with st.expander("New training file", expanded=files.is_empty()):
        with st.form("create_file", clear_on_submit=True):
            new_name = st.text_input("Name", placeholder="e.g. coaching-v1",
                                     help="Letters, digits, dashes, underscores and spaces.")
            new_description = st.text_input("Description", placeholder="What it is for")
            if st.form_submit_button("Create", type="primary"):
                try:
                    create_training_file(ws, new_name.strip(), new_description.strip())
                    st.session_state["training_file"] = new_name.strip()
                    st.rerun()
                except TrainingFileError as exc:
                    st.error(ui.defang(str(exc)))

    if files.is_empty():
        st.info("No training file yet. Create one above, or with `brightrun training-file create NAME`.")
        st.stop()

    st.dataframe(files, hide_index=True, key="files_table")
    names = files["name"].to_list()
    # The open file and tab stay in the address (?training_file=...&tf_tab=...): a reload or a shared link keeps them.
    name = st.selectbox("Training file", names, key="training_file", bind="query-params")
    current = get_version(ws, name)
    counts = {s: current.splits.count(s) for s in ("train", "validation", "test")}
    top = st.columns(4)
    top[0].metric("Version", current.version, help=f"last change: {current.change}")
    top[1].metric("Conversations", ui.fmt_int(len(current.member_ids)))
    top[2].metric("Train / validation / test", " / ".join(ui.fmt_int(n) for n in counts.values()))
    top[3].metric("Built", "yes" if current.content_hash else "not yet",
                  help=f"content hash {current.content_hash}" if current.content_hash else "Build it below.")

    notice = st.container()  # on every run, so the tabs below keep their place when there is no message
    if message := st.session_state.pop("tf_changed", None):
        notice.success(message)

    add_tab, remove_tab, split_tab, build_tab, export_tab, history_tab = st.tabs(
        ["Add", "Remove", "Split", "Build", "Export", "Versions"], key="tf_tab", bind="query-params")

    if add_tab.open:  # only the open tab runs (the others cost every click their queries)
        with add_tab:
            by_filter, by_id = st.columns(2)
            with by_filter:
                st.markdown("**By filter**")
                options = filter_options(ws)
                chosen = {}
                for field, label in [("personas", "Persona"), ("arcs", "Emotional arc"), ("topics", "Topic"),
                                     ("tiers", "Tier"), ("statuses", "Enrichment status")]:
                    labels = options[field]
                    chosen[field] = st.multiselect(label, list(labels), format_func=labels.get,
                                                   key=f"add_{field}", placeholder="Any")
                min_quality = st.number_input("Quality score at least", 0.0, 10.0, step=0.5, key="add_min_quality",
                                              help="0 means any")
                conditions = ui_training.saved_filter(chosen, min_quality)
                match = match_filter(ws, name, conditions)
                st.caption(f"{match.matched:,} conversation(s) match this filter.")
                if match.left_out:  # its table is drawn when opened (a closed expander's table costs the run)
                    reasons = ", ".join(f"{n:,} {k}" for k, n in match.counts().items())
                    left_out = st.expander(f"Left out: {reasons}", key="add_left_out_open", on_change="rerun")
                    if left_out.open:
                        left_out.dataframe(ui_training.left_out_table(match), hide_index=True, key="left_out")
                if st.button(f"Add {match.label()}", key="add_filter", type="primary", disabled=not match.matched,
                             help="Adds the eligible conversations that are not members yet; the rest is left out "
                                  "and listed with the reason."):
                    try:
                        done, added = add_matching(ws, name, saved_filter=conditions)
                        changed(f"Added {added.label()}: {name} is now version {done.version}.")
                    except TrainingFileError as exc:
                        blocked(exc)
            with by_id:
                st.markdown("**By id**")
                pasted = st.text_area("Conversation ids", key="add_ids", height=200,
                                      placeholder="One per line (commas and spaces work too)")
                if st.button("Add these conversations", key="add_by_id", disabled=not pasted.strip()):
                    try:
                        done = add_conversations(ws, name, ui_training.parse_ids(pasted))
                        added = len(done.member_ids) - len(current.member_ids)
                        changed(f"Added {added:,} conversation(s): {name} is now version {done.version}.")
                    except TrainingFileError as exc:
                        blocked(exc)
            st.caption("Only conversations whose enrichment completed and that have an enriched record can be added. "
                       "By filter, the eligible conversations that are not members yet are added and the rest is "
                       "listed; by id, if any conversation is ineligible or already a member, nothing is added and "
                       "each is listed.")

    if remove_tab.open:  # only the open tab runs (the others cost every click their queries)
        with remove_tab:
            gone = st.multiselect("Members to remove", current.member_ids, key="remove_ids",
                                  placeholder="Pick conversations")
            if st.button("Remove", key="remove", disabled=not gone):
                try:
                    done = remove_conversations(ws, name, gone)
                    changed(f"Removed {len(gone):,} conversation(s): {name} is now version {done.version}.")
                except TrainingFileError as exc:
                    blocked(exc)

    if split_tab.open:  # only the open tab runs (the others cost every click their queries)
        with split_tab:
            st.caption("Splits are made per near-duplicate cluster (so no conversation or its near copy is on two "
                       "sides) and stratified by tier and arc. A new salt gives a new assignment.")
            cols = st.columns(4)
            ratios = tuple(int(cols[i].number_input(label, 0, 100, value, 5, key=f"ratio_{label}"))
                           for i, (label, value) in enumerate(zip(("Train", "Validation", "Test"),
                                                                  current.split_ratios, strict=True)))
            salt = cols[3].text_input("Salt", current.split_salt, key="split_salt")
            if st.button("Split again", key="split"):
                try:
                    done = assign_splits(ws, name, ratios, salt)
                    changed(f"Split again: {name} is now version {done.version}.")
                except TrainingFileError as exc:
                    st.error(ui.defang(str(exc)))
            if current.member_ids:
                leaks = stored_leakage_report(ws, name)
                if leaks.is_empty():
                    st.success("Leakage report: no exact or near-duplicate conversations across splits.")
                else:
                    st.error(f"Leakage report: {leaks.height:,} near-duplicate pair(s) across splits. Split again.")
                    st.dataframe(leaks, hide_index=True, key="leaks")
                st.dataframe(split_counts(ws, name), hide_index=True, key="split_counts")

    if build_tab.open:  # only the open tab runs (the others cost every click their queries)
        with build_tab:
            st.caption("The full training JSON (file metadata, consultant profile, conversations with their training "
                       "pairs) and its JSONL (one training pair a line) are written together and always agree.")
            if st.button("Build the JSON and JSONL", key="build", disabled=not current.member_ids):
                with st.spinner("Building…"):
                    st.session_state["built"] = build_version(ws, name)
            built = st.session_state.get("built")
            if built is not None and built.name == name:
                st.success(f"Version {built.version}: {built.conversations:,} conversations, "
                           f"{built.training_pairs:,} training pairs (content hash {built.content_hash[:12]}).")
                cols = st.columns(2)
                cols[0].download_button("training.json", built.json_path.read_bytes(),
                                        f"{name}-v{built.version}.json", "application/json", key="dl_json",
                                        on_click="ignore")
                cols[1].download_button("training.jsonl", built.jsonl_path.read_bytes(),
                                        f"{name}-v{built.version}.jsonl", "application/jsonl", key="dl_jsonl",
                                        on_click="ignore")

    if export_tab.open:  # only the open tab runs (the others cost every click their queries)
        with export_tab:
            allowed, state = ui_training.contracts_state(ws)
            (st.success if allowed else st.warning)(state)
            formats = ui_training.format_options()
            fmt = st.selectbox("Format", list(formats), format_func=formats.get, key="export_format")
            st.caption(ui_training.describe_format(fmt))
            # The reason and Export are one form: the browser keeps a form's text as it is typed, so a rerun that
            # re-draws the tabs meanwhile (the one a tab switch starts) cannot empty the field before Export sends it.
            with st.form("export_form", border=False):
                reason = "" if allowed else st.text_input("Reason to export anyway", key="export_reason",
                                                          placeholder="e.g. a dry run for the trainer's loader")
                go = st.form_submit_button("Export", key="export", type="primary", disabled=not current.member_ids)
            if go:
                with st.spinner(f"Exporting {name} v{current.version} as {fmt}…"):
                    try:
                        st.session_state["exported"] = export_version(
                            ws, name, fmt, export_folder(ws, name, current.version, fmt), version=current.version,
                            force_reason=reason.strip() or None)
                    except TrainingFileError as exc:
                        st.error(ui.defang(str(exc)))
            done = st.session_state.get("exported")
            if done is not None and done.name == name:
                if done.validation.ok:
                    st.success(f"{done.format} export of v{done.version} passes every check of its consumer.")
                else:
                    st.error(f"{len(done.validation.errors):,} problem(s) by the consumer's rules: fix them before "
                             "training.")
                if done.forced:
                    st.caption(f"Exported without passing data contracts; recorded reason: {done.forced}")
                problems = ui_training.problems_frame(done)
                if not problems.is_empty():
                    st.dataframe(problems, hide_index=True, key="export_problems")
                offer(ui_training.downloads(done))
                st.markdown(f"**Tokens per split** ({ui_training.token_counts(done)})")
                st.dataframe(ui_training.token_table(done), hide_index=True, key="export_tokens")
                st.markdown("**Estimated fine-tuning cost per target model that trains this format**")
                if done.costs:
                    st.dataframe(ui_training.cost_table(done), hide_index=True, key="export_costs")
                else:
                    st.caption(ui_training.no_cost_note(done))
            elif (last := ui_training.last_export(ws, name, current.version)) is not None:
                (st.info if last.valid else st.warning)(ui.plain(last.summary()))  # after a reload: its files again
                offer(last.downloads())

    if history_tab.open:  # only the open tab runs (the others cost every click their queries)
        with history_tab:
            st.dataframe(ui_training.versions_table(ws, name), hide_index=True, key="versions")
