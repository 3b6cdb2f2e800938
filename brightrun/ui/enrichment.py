"""The "Enrich N pending" control the Overview and Conversations pages share: it starts enrichment in a
background process (it outlives the page, like a generation job) and shows its progress live."""

from __future__ import annotations

import streamlit as st

from brightrun.enrichment import EnrichmentState, enrichment_state, launch_enrichment
from brightrun.errors import BrightRunError
from brightrun.workspace import Workspace


def enrich_panel(ws: Workspace, key: str) -> EnrichmentState:
    """A button "Enrich N pending" while conversations wait for enrichment, the progress of a run while one is
    live (refreshed every second, without rerunning the page), and the outcome of the last run. Returns the
    state it saw."""
    state = enrichment_state(ws)
    # One container on every run, shown or empty: when the panel comes or goes, what follows keeps its place, so
    # the browser does not re-draw it (a re-drawn field loses the text typed in it but not yet sent).
    with st.container():
        if state.running or state.pending or state.state == "failed":
            st.fragment(_panel, run_every=1.0 if state.running else None)(ws, key, state.running)
    return state


def _panel(ws: Workspace, key: str, was_running: bool) -> None:
    state = enrichment_state(ws)
    if state.running:
        text = (f"Enriching: {state.done:,} of {state.total:,} conversation(s)" if state.total
                else "Enrichment starting…")
        st.progress(state.fraction, text=text)
        return
    if was_running:  # it just finished: rerun the page so its counts include what was enriched
        st.rerun()
    if state.state == "failed" and state.error:
        st.error(f"The last enrichment run failed: {state.error}.", icon=":material/error:")
    if not state.pending:
        return
    row = st.container(horizontal=True, vertical_alignment="center")
    clicked = row.button(f"Enrich {state.pending:,} pending", key=f"{key}_enrich", icon=":material/auto_fix_high:",
                         help="Turns the conversations not enriched yet into training pairs with quality scores, "
                              "in the background: you can leave the page. Review and training files need it.")
    row.caption(f"{state.pending:,} conversation(s) are not enriched yet: they cannot be reviewed or added to a "
                "training file until they are.")
    if clicked:
        try:
            launch_enrichment(ws)
        except BrightRunError as exc:
            st.error(str(exc))
            return
        st.rerun()
