"""App logs: import a production LLM app's call log (upload or a file on this machine) with a column mapping,
see its bad rows and the personal data it holds, browse the calls by step with their feedback, and build
per-step training datasets (personal data redacted unless you choose otherwise)."""

import streamlit as st

from brightrun import ui
from brightrun.applogs import (
    ColumnMapping,
    allowed_log_path,
    explore,
    import_dirs,
    import_log,
    inspect_log,
    list_imports,
    list_log_files,
    mapping_from_dict,
    save_upload,
)
from brightrun.applogs.folders import ENV_VAR as IMPORT_DIRS_VAR
from brightrun.datasets import DatasetSpec, build_dataset
from brightrun.errors import BrightRunError

st.title("App logs")
NONE = "(not in the file)"
REQUIRED = {"action_type", "input", "output"}


def _import_section(ws) -> None:
    st.caption("JSONL, CSV or Parquet, one AI call per row: the step (action type), the input and the output, "
               "and optionally user, session, category, model, tokens, latency, thumbs, rating, feedback text and "
               "times. Importing the same file again adds nothing.")
    source = st.segmented_control("Source", ["Upload", "A file on this machine"], default="Upload",
                                  key="log_source", required=True)
    path = None
    if source == "Upload":
        upload = st.file_uploader("Log file", type=["jsonl", "ndjson", "json", "csv", "tsv", "parquet"],
                                  key="log_upload")
        if upload is not None:
            path = save_upload(ws, upload.name, upload.getvalue())
    else:
        path = _file_on_this_machine(ws)
    if path is None:
        return
    fmt, columns, guessed = inspect_log(path)
    st.caption(f"{fmt.upper()} · {len(columns)} column(s): {', '.join(columns)}")
    guessed_fields = guessed.fields() if guessed else {}
    with st.form("log_mapping"):
        st.markdown("**Column mapping** (guessed from the column names; required: action type, input, output)")
        cols = st.columns(3)
        chosen: dict[str, str | None] = {}
        for i, (name, info) in enumerate(ColumnMapping.model_fields.items()):
            options = [NONE, *columns]
            current = guessed_fields.get(name)
            label = name.replace("_", " ") + (" *" if name in REQUIRED else "")
            pick = cols[i % 3].selectbox(label, options, index=options.index(current) if current in options else 0,
                                         key=f"map_{name}", help=info.description)
            chosen[name] = None if pick == NONE else pick
        submitted = st.form_submit_button("Import", type="primary")
    if not submitted:
        return
    mapping = mapping_from_dict(chosen)
    bar = st.progress(0.0, text="importing")

    def on_progress(p) -> None:
        bar.progress(min(1.0, p.done / p.total) if p.total else 0.0,
                     text=f"{p.rows:,} rows read · {p.imported:,} imported · {p.bad_rows:,} bad")

    result = import_log(ws, path, mapping, progress=on_progress)
    bar.empty()
    st.session_state["log_pick_import"] = result.import_id  # the Imports tab shows this one
    if result.nothing_new:
        st.info(f"Nothing new: all {result.imported:,} good row(s) were already imported.")
    else:
        st.success(f"Imported {result.new_calls:,} new call(s) and {result.new_feedback + result.updated_feedback:,} "
                   f"judgement(s) from {result.rows:,} row(s) in {result.seconds:.1f} s.")


def _file_on_this_machine(ws):
    """A log already on the server, read in place: only from the folders the operator allows."""
    folders = import_dirs(ws)
    st.caption("For large logs: read in place, in chunks, without uploading. The app reads only from "
               + ", ".join(f"`{ui.plain(f)}`" for f in folders)
               + f" (the operator can add folders with `{IMPORT_DIRS_VAR}`).")
    files = list_log_files(ws)
    picked = st.selectbox("File", files, index=None, key="log_file", placeholder="Pick a file",
                          format_func=lambda p: _shown(p, folders))
    typed = st.text_input("Or its path", key="log_path", placeholder="exports/app_calls.jsonl",
                          help=f"Relative to {folders[0]}, or a full path inside an allowed folder.").strip()
    if not typed and picked is None:
        return None
    try:
        return allowed_log_path(ws, typed or picked)
    except BrightRunError as exc:
        st.error(ui.defang(str(exc)))
        return None


def _shown(path, folders) -> str:
    for folder in folders:
        if path.is_relative_to(folder):
            return str(path.relative_to(folder)) if folder == folders[0] else str(path)
    return str(path)


def _imports_section(ws) -> None:
    imports = list_imports(ws)
    if not imports:
        st.info("No log imported yet.")
        return
    st.dataframe([{"import": i["import_id"], "file": i["file"].rsplit("/", 1)[-1], "when": str(i["started_at"])[:19],
                   "rows": i["rows"], "new calls": i["new_calls"], "already present": i["already_present"],
                   "bad rows": i["bad_rows"], "judgements": i["feedback_rows"]} for i in imports],
                 hide_index=True, key="log_imports")
    ids = [i["import_id"] for i in imports]
    if st.session_state.get("log_pick_import") not in ids:
        st.session_state.pop("log_pick_import", None)
    picked = st.selectbox("Import", ids, key="log_pick_import",
                          format_func=lambda i: f"{i} · {next(x['file'] for x in imports if x['import_id'] == i)}")
    chosen = next(i for i in imports if i["import_id"] == picked)
    left, right = st.columns(2)
    left.markdown(f"**Bad rows: {chosen['bad_rows']:,}** (line numbers as in the file; CSV counts the header as line 1)")
    problems = explore.import_problems(ws, picked)
    if problems.height:
        left.dataframe(problems, hide_index=True, key="log_problems")
    else:
        left.caption("None.")
    right.markdown("**Personal data found** (occurrences per column; redacted in anything built from the log)")
    pii = [{"column": column, **kinds} for column, kinds in chosen["pii"].items() if sum(kinds.values())]
    if pii:
        right.dataframe(pii, hide_index=True, key="log_pii")
    else:
        right.caption("None found.")


def _browse_section(ws) -> None:
    steps = explore.step_summary(ws)
    if steps.is_empty():
        st.info("No imported calls yet: import a log above (the demo workspace has one).")
        return
    import plotly.graph_objects as go  # only when the Calls tab is open

    st.plotly_chart(go.Figure([
        go.Bar(x=steps["action_type"].to_list(), y=steps["calls"].to_list(), name="calls"),
        go.Scatter(x=steps["action_type"].to_list(), y=steps["thumbs_up_rate"].to_list(), name="thumbs-up rate",
                   yaxis="y2", mode="lines+markers"),
    ]).update_layout(height=320, yaxis_title="calls", margin={"l": 10, "r": 10, "t": 10, "b": 10},
                     yaxis2={"overlaying": "y", "side": "right", "range": [0, 1], "title": "thumbs-up rate"},
                     legend={"orientation": "h"}), key="log_steps_chart")
    st.dataframe(steps, hide_index=True, key="log_steps")
    values = explore.filter_values(ws)
    a, b, c = st.columns(3)
    steps_chosen = a.multiselect("Step", values["action_types"], key="log_f_steps", placeholder="Any")
    categories = b.multiselect("Category", values["categories"], key="log_f_categories", placeholder="Any")
    feedback = c.selectbox("Feedback", ["any", "with feedback", "positive", "negative", "none"], key="log_f_feedback")
    text = st.text_input("Search inputs and outputs", key="log_f_text")
    raw = st.toggle("Show personal data", key="log_raw",
                    help="Off: e-mails, phones, card and account numbers, IPs and addresses are shown redacted.")
    calls = explore.list_calls(ws, action_types=steps_chosen, categories=categories, feedback=feedback, text=text,
                               show_personal_data=raw)
    st.caption(f"{calls.height:,} call(s)" + (" (the newest 500)" if calls.height == 500 else ""))
    st.dataframe(calls, hide_index=True, key="log_calls", height=280)
    picked = st.selectbox("Open a call", calls["call_id"].to_list(), index=None, key="log_open",
                          placeholder="Pick a call")
    if picked:
        call = explore.call_detail(ws, picked, show_personal_data=raw)
        st.caption(f"{ui.plain(picked)} · {ui.plain(call['action_type'])} · "
                   f"{ui.plain(call['category'] or 'no category')} · user {ui.plain(call['user_id'] or '-')} · session "
                   f"{ui.plain(call['session_id'] or '-')} · {ui.plain(call['model'])} · {call['latency_ms']:.0f} ms · "
                   f"line {call['source_line']} of {ui.plain(call['import_id'])}")
        left, right = st.columns(2)
        left.markdown("**Input**")
        left.text(call["input"])
        right.markdown("**Output**")
        right.text(call["output"])
        st.dataframe(call["feedback"], hide_index=True, key="log_call_feedback")


def _dataset_section(ws) -> None:
    st.caption("Input -> output pairs of each step, split 80/10/10 by session; calls with negative feedback "
               "(thumbs down, rating 1-2) are left out. Other kinds: `brightrun datasets build --help`.")
    values = explore.filter_values(ws)
    a, b = st.columns([1, 2])
    name = a.text_input("Dataset name", value="app-steps", key="ds_name")
    steps = b.multiselect("Steps", values["action_types"], key="ds_steps", placeholder="All steps")
    redact = st.toggle("Redact personal data", value=True, key="ds_redact",
                       help="Recorded in the dataset's manifest. Turn off only for data that may hold it.")
    if not redact:
        st.warning("Personal data will be kept in this dataset, and the manifest will say so.")
    if st.button("Build the dataset", key="ds_build"):
        result = build_dataset(ws, DatasetSpec(name=name, kind="app_steps", source="import", action_types=steps,
                                               redact_pii=redact))
        st.success(f"Built {name}: {result.examples:,} example(s) in {result.path}")
        st.dataframe([{"step": part, **splits} for part, splits in sorted(result.counts.items())],
                     hide_index=True, key="ds_counts")
        if result.excluded:
            st.caption("Left out: " + "; ".join(f"{n:,} {reason}" for reason, n in result.excluded.items()))
        if result.redactions:
            st.caption("Redacted: " + ", ".join(f"{n:,} {kind}" for kind, n in sorted(result.redactions.items())))


with ui.guard():
    ws = ui.workspace()
    # Only the open tab runs: a first run does not draw the Calls tab's chart and 500 calls (the page budget,
    # docs/benchmarks.md).
    tabs = st.tabs(["Import", "Imports", "Calls", "Per-step dataset"], key="log_tab", on_change="rerun")
    for tab, section in zip(tabs, (_import_section, _imports_section, _browse_section, _dataset_section), strict=True):
        with tab:
            if tab.open:
                section(ws)
