"""Conversations: filter, list, and read one as a chat with its scaffold and the LLM call behind it. The filters
and the open conversation are kept in the address, so a reload or a shared link shows the same."""

import streamlit as st

from brightrun import ui
from brightrun.explore import (
    ConversationFilter,
    conversation_detail,
    count_conversations,
    filter_options,
    job_ids,
    list_conversations,
)
from brightrun.ui.enrichment import enrich_panel

st.title("Conversations")
ROLE_LABEL = {"user": "Client", "assistant": "Advisor"}

with ui.guard():
    ws = ui.workspace()
    options = filter_options(ws)
    enrich_panel(ws, "cv")

    cols = st.columns(3)
    chosen = {}
    for i, (field, label) in enumerate([("personas", "Persona"), ("arcs", "Emotional arc"), ("topics", "Topic"),
                                        ("templates", "Template"), ("tiers", "Tier"),
                                        ("statuses", "Enrichment status")]):
        labels = options[field]
        chosen[field] = cols[i % 3].multiselect(label, list(labels), format_func=labels.get, key=f"f_{field}",
                                                placeholder="Any", bind="query-params")
    chosen["jobs"] = cols[0].multiselect("Job", job_ids(ws), key="f_jobs", placeholder="Any", bind="query-params",
                                         help="The generation job that made them (Generate links here from a job).")
    text = st.text_input("Search titles and turns", key="f_text", placeholder="e.g. mortgage", bind="query-params")
    query = ConversationFilter(**chosen, text=text, limit=2000)
    table = list_conversations(ws, query)
    matching = count_conversations(ws, query)
    st.caption(f"{matching:,} conversation(s) match"
               + (f" (showing the newest {table.height:,})" if matching > table.height else ""))

    ids = table["conversation_id"].to_list()
    titles = dict(zip(ids, table["title"].to_list(), strict=True))

    def _open_selected() -> None:
        rows = st.session_state["conversation_table"].selection.rows
        if rows:
            st.session_state["open_conversation"] = ids[rows[0]]

    st.dataframe(
        table.select("conversation_id", "title", "persona", "arc", "topic", "tier", "template_version",
                     "turn_count", "enrichment_status", "created_at"),
        hide_index=True, key="conversation_table", on_select=_open_selected, selection_mode="single-row",
        height=320,
    )
    if st.session_state.get("open_conversation") not in titles:
        st.session_state.pop("open_conversation", None)
    selected = st.selectbox("Open conversation", ids, index=None, key="open_conversation", bind="query-params",
                            format_func=lambda cid: f"{titles[cid]} · {cid}",
                            placeholder="Pick a conversation, or select a row in the table")
    if selected is None:
        st.stop()

    detail = conversation_detail(ws, selected)
    c = detail.conversation
    st.subheader(ui.plain(c["title"]))
    meta = st.columns(4)
    meta[0].markdown(f"**Persona**  \n{ui.plain(detail.persona)}")
    meta[1].markdown(f"**Arc**  \n{ui.plain(detail.arc)} ({c['tier'].replace('_', ' ')})")
    meta[2].markdown(f"**Topic**  \n{ui.plain(detail.topic)}")
    meta[3].markdown(f"**Template**  \n{ui.plain(detail.template)} · `{c['template_version']}`")
    st.caption(f"{ui.plain(c['provider'])} / {ui.plain(c['model'])} · {c['turn_count']} turns · enrichment "
               f"{c['enrichment_status']} · {detail.pairs} training pair(s) · job {ui.plain(c['job_id'])}"
               + (" · scripted demo data" if c["is_scripted"] else ""))
    if detail.enrichment_error:
        st.warning(f"Enrichment failed: {ui.plain(detail.enrichment_error)}")

    for turn in detail.turns:
        with st.chat_message(turn["role"]):
            st.markdown(f"**{ROLE_LABEL.get(turn['role'], turn['role'])}** · turn {turn['turn_number']}")
            st.text(turn["content"])

    # Drawn when opened (the page budget): its code blocks load the highlighter in the browser.
    behind = st.expander("The LLM call behind it", key="cv_call", on_change="rerun")
    with behind:
        if behind.open and detail.call is None:
            st.info("No call is recorded for this conversation.")
        elif behind.open:
            call = detail.call
            st.markdown(f"{ui.plain(call['call_id'])} · {ui.plain(call['provider'])} / {ui.plain(call['model'])} · "
                        f"attempt {call['attempt']} · "
                        f"{call['input_tokens']:,} in / {call['output_tokens']:,} out tokens · "
                        f"{call['latency_ms']:.0f} ms · {ui.fmt_usd(call['cost_usd'])}")
            st.markdown("**System prompt**")
            st.code(detail.request["system"], language=None, wrap_lines=True)
            st.markdown("**Prompt**")
            st.code(detail.request["prompt"], language=None, wrap_lines=True)
            st.markdown("**Raw response**")
            st.code(call["response"], language="json", wrap_lines=True)
