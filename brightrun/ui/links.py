"""Links from a record to the pages that act on it: "Review this" (the Review page opened on the conversation,
through its address) and "Add to training file" (the package's add_conversations, all or nothing)."""

from __future__ import annotations

import streamlit as st

from brightrun.errors import BrightRunError
from brightrun.training_files import add_conversations, list_training_files
from brightrun.ui.common import defang
from brightrun.workspace import Workspace

REVIEW_PAGE = "pages/views/review.py"


def record_actions(ws: Workspace, conversation_id: str, key: str) -> None:
    """"Review this" and "Add to training file" for one conversation, in one row."""
    row = st.container(horizontal=True, vertical_alignment="bottom", key=f"{key}_actions")
    row.page_link(REVIEW_PAGE, label="Review this", icon=":material/rate_review:",
                  query_params={"conversation": conversation_id},
                  help="Open this conversation on the Review page.")
    names = list_training_files(ws)["name"].to_list()
    if not names:
        row.caption("No training file yet: create one on the Training files page to add this conversation to it.")
        return
    name = row.selectbox("Training file", names, key=f"{key}_tf", width=260)
    if row.button("Add to training file", key=f"{key}_add", icon=":material/playlist_add:"):
        try:
            version = add_conversations(ws, name, [conversation_id])
        except BrightRunError as exc:
            st.error(defang(str(exc)))
        else:
            st.success(f"Added {conversation_id} to {name}: version {version.version}, "
                       f"{len(version.member_ids):,} conversation(s).")
