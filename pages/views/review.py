"""Review: a filtered queue of enriched conversations, each read as a chat whose advisor turns a reviewer
judges (thumbs, rating 1-5, comment, an edit kept beside the original), with progress; and how far the
reviewers agree, with the turns they disagree on."""

import hashlib

import polars as pl
import streamlit as st

from brightrun import ui
from brightrun.errors import BrightRunError
from brightrun.explore import conversation_detail, totals
from brightrun.feedback import (
    history_table,
    judgements_for_conversation,
    progress,
    record_feedback,
    review_items,
    review_queue,
    thumbs_up_unjudged,
)
from brightrun.ui import review as ui_review
from brightrun.workspace import Workspace

st.title("Review")
ROLE_LABEL = {"user": "Client", "assistant": "Advisor"}
NEXT_KEY, PREVIOUS_KEY = "j", "k"
THUMBS_KEYS = {"u": True, "d": False}
"""Keyboard: thumbs up (U) or down (D) on the turn in focus; 1 to 5 rate it (C and R are Streamlit's own)."""
QUEUE_COLUMNS = ["conversation_id", "title", "persona", "arc", "topic", "tier", "template_version", "quality_score",
                 "pairs", "judged", "state"]
JUDGE_KEY = "rv_judge_"
"""The key prefix of each advisor turn's "Your judgement" expander (its form is drawn only while it is open)."""
BLIND_HIDDEN = {"template_version", "quality_score"}
"""What blind review hides, beside other reviewers' judgements: what could reveal an experiment's arm or anchor
the rating (the template version, the heuristic scores; the model is never shown here)."""


# ----------------------------------------------------------------------------------------- callbacks
# They run before the script, so what they write (and the toast they leave) shows in the same rerun.

def _go(conversation_id: str | None) -> None:
    if conversation_id is not None:
        st.session_state["rv_open"] = conversation_id


def _open_in_queue(conversation_id: str, title: str) -> None:
    st.session_state["rv_open"] = st.session_state["rv_extra"] = conversation_id
    st.session_state.setdefault("rv_titles", {})[conversation_id] = title
    st.session_state["rv_tab"] = "Queue"


def _save(pair: dict, prefix: str, reviewer: str, current: dict | None) -> None:
    state = st.session_state
    thumbs, stars = state.get(f"{prefix}_thumbs"), state.get(f"{prefix}_stars")
    helpful = None if thumbs is None else thumbs == 1
    rating = None if stars is None else stars + 1
    comment = (state.get(f"{prefix}_comment") or "").strip() or None
    text = (state.get(f"{prefix}_edit") or "").strip()
    original = pair["target_response"]
    edited = text if text and text != original.strip() else None
    turn = pair["turn_number"]
    if current is not None and (current["helpful"], current["rating"], current["comment"] or None,
                                current["edited_response"]) == (helpful, rating, comment, edited):
        state["rv_toast"] = (f"Turn {turn}: nothing changed, nothing saved.", ":material/info:")
        return
    try:
        saved = record_feedback(ui.workspace(), "training_pair", pair["pair_id"], reviewer, helpful=helpful,
                                rating=rating, comment=comment, edited_response=edited)
    except BrightRunError as exc:
        state.setdefault("rv_errors", {})[pair["pair_id"]] = str(exc)
        return
    # The turn's fragment reruns alone: it takes the judgement from here rather than query the store again.
    state.setdefault("rv_saved", {})[(reviewer, pair["pair_id"])] = saved.model_dump(
        include={"helpful", "rating", "comment", "edited_response", "created_at"})
    state["rv_toast"] = (f"Saved turn {turn}: {_summary(saved.model_dump())}.", ":material/check_circle:")


def _quick(pair: dict, reviewer: str, current: dict | None, *, helpful: bool | None = None,
           rating: int | None = None) -> None:
    """A keyboard judgement of the turn in focus: sets its thumbs or its rating and keeps the rest of the
    reviewer's judgement (rating, thumbs, comment, edit) as it was."""
    base = current or {}
    try:
        saved = record_feedback(ui.workspace(), "training_pair", pair["pair_id"], reviewer,
                                helpful=base.get("helpful") if helpful is None else helpful,
                                rating=base.get("rating") if rating is None else rating,
                                comment=base.get("comment"), edited_response=base.get("edited_response"))
    except BrightRunError as exc:
        st.session_state["rv_toast"] = (str(exc), ":material/error:")
        return
    st.session_state["rv_toast"] = (f"Saved turn {pair['turn_number']}: {_summary(saved.model_dump())}.",
                                    ":material/check_circle:")


def _focus(pairs: dict[int, dict], mine: dict[str, dict]) -> dict | None:
    """The turn the keyboard judges: the first advisor turn without both a thumbs and a rating from you."""
    for number in sorted(pairs):
        judged = mine.get(pairs[number]["pair_id"]) or {}
        if judged.get("helpful") is None or judged.get("rating") is None:
            return pairs[number]
    return None


def _keyboard_bar(pairs: dict[int, dict], mine: dict[str, dict], reviewer: str) -> None:
    """Thumbs and rating buttons with their keys, for the turn in focus (a full run: every turn's mark follows)."""
    pair = _focus(pairs, mine)
    if pair is None:
        st.caption("You have given every advisor turn of this conversation a thumbs and a rating.")
        return
    current = mine.get(pair["pair_id"])
    bar = st.container(horizontal=True, vertical_alignment="center", key="rv_keys")
    bar.caption(f"Turn {pair['turn_number']} (the first without your thumbs and rating):")
    for key, helpful in THUMBS_KEYS.items():
        bar.button(key.upper(), key=f"rv_key_{key}", shortcut=key, on_click=_quick,
                   args=(pair, reviewer, current), kwargs={"helpful": helpful},
                   icon=":material/thumb_up:" if helpful else ":material/thumb_down:",
                   help=f"Thumbs {'up' if helpful else 'down'} on turn {pair['turn_number']}")
    for stars in range(1, 6):
        bar.button(str(stars), key=f"rv_key_{stars}", shortcut=str(stars), on_click=_quick,
                   args=(pair, reviewer, current), kwargs={"rating": stars}, icon=":material/star:",
                   help=f"Rate turn {pair['turn_number']} {stars} of 5")
    st.caption(f"Keys (when not typing in a field): **U** thumbs up, **D** thumbs down, **1**–**5** rating, on turn "
               f"{pair['turn_number']}; the focus moves on once a turn has both.")


def _summary(judgement: dict) -> str:
    said = [w for w in ({True: "thumbs up", False: "thumbs down"}.get(judgement["helpful"]),
                        judgement["rating"] and f"{judgement['rating']}/5", judgement["comment"] and "a comment",
                        judgement["edited_response"] and "an edit") if w]
    return ", ".join(said)


def _thumbs_up_rest(conversation_id: str, reviewer: str) -> None:
    try:
        n = thumbs_up_unjudged(ui.workspace(), conversation_id, reviewer)
    except BrightRunError as exc:
        st.session_state["rv_toast"] = (str(exc), ":material/error:")
        return
    st.session_state["rv_toast"] = (f"Thumbs up on {n} turn(s) you had not judged.", ":material/thumb_up:")


# ----------------------------------------------------------------------------------------- the queue

def _queue_order(ids: list[str], states: dict[str, str], key: str) -> tuple[list[str], str | None]:
    """The order to move through and the conversation to open. The order is taken when the filter changes
    and then kept, so a conversation does not jump to the end of the queue (or leave it) while it is being
    reviewed; by default the first one not fully reviewed opens."""
    current = st.session_state.get("rv_open")
    before = st.session_state.get("rv_order", [])
    if current not in states and current not in before and current != st.session_state.get("rv_extra"):
        current = None  # not a conversation this page offered
    if st.session_state.get("rv_queue_key") != key:
        st.session_state["rv_queue_key"] = key
        order = list(ids)
        if current not in states:
            current = None
    else:
        kept = [c for c in before if c in states or c == current]
        seen = set(kept)
        order = kept + [c for c in ids if c not in seen]
    if current is not None and current not in order:
        order.insert(0, current)  # opened from elsewhere (the Agreement tab): keep it open
    if current is None and order:
        current = next((c for c in order if states.get(c) != "reviewed"), order[0])
    st.session_state["rv_order"] = order
    return order, current


def _queue_tab(ws: Workspace, reviewer: str) -> None:
    f = ui_review.queue_filters(ws, reviewer)
    queue = review_queue(ws, f)
    done = progress(ws, f)
    who = "by you" if reviewer and f.by == reviewer else f"by {f.by}" if f.by else "by anyone"
    st.progress(done["judged_turns"] / done["turns"] if done["turns"] else 0.0)
    st.caption(f"{ui.fmt_int(done['reviewed'])} of {ui.fmt_int(done['conversations'])} conversations reviewed · "
               f"{ui.fmt_int(done['judged_turns'])} of {ui.fmt_int(done['turns'])} turns judged {who}"
               + (" (over the conversations the filters match, whatever their review state)"
                  if f.reviewed != "any" else ""))

    ids = queue["conversation_id"].to_list()
    states = dict(zip(ids, queue["state"].to_list(), strict=True))
    # Labels must not change while a conversation is open (the browser sends the label back), so no state.
    titles = st.session_state.setdefault("rv_titles", {})
    titles.update(zip(ids, queue["title"].to_list(), strict=True))
    order, current = _queue_order(ids, states, f"{f.model_dump_json()}")
    if not order:
        st.info("No conversation matches these filters. Widen them (persona, arc, quality range, review state) "
                "to fill the queue.")
        return

    position = {c: i for i, c in enumerate(order)}
    table = queue.sort(pl.col("conversation_id").replace_strict(position, return_dtype=pl.Int64))
    table_ids = table["conversation_id"].to_list()

    def _pick_row() -> None:
        rows = st.session_state["rv_table"].selection.rows
        if rows:
            st.session_state["rv_open"] = table_ids[rows[0]]

    blind = st.session_state.get("rv_blind", True)
    st.dataframe(table.select([c for c in QUEUE_COLUMNS if not (blind and c in BLIND_HIDDEN)]), hide_index=True,
                 key="rv_table", on_select=_pick_row,
                 selection_mode="single-row", height=250,
                 column_config={"quality_score": st.column_config.NumberColumn("quality", format="%.1f"),
                                "pairs": st.column_config.NumberColumn("advisor turns")})
    st.caption(f"{ui.fmt_int(len(ids))} conversation(s) in the queue"
               + (f" (the first {f.limit:,})" if len(ids) >= f.limit else "")
               + ", not fully reviewed first. Select a row to open it.")

    if st.session_state.get("rv_open") != current:
        st.session_state["rv_open"] = current
    nav = st.columns([6, 1.4, 1.4], vertical_alignment="bottom")
    opened = nav[0].selectbox(
        "Open", order, key="rv_open",
        format_func=lambda c: f"{titles.get(c, c)} · {c}",
        help="The first conversation not fully reviewed opens by default; select a row in the queue table "
             "to jump to it.")
    i = position[opened]
    before_id = order[i - 1] if i > 0 else None
    after_id = order[i + 1] if i + 1 < len(order) else None
    nav[1].button("Previous", key="rv_previous", on_click=_go, args=(before_id,), disabled=before_id is None,
                  shortcut=PREVIOUS_KEY, icon=":material/arrow_upward:", width="stretch")
    nav[2].button("Next", key="rv_next", on_click=_go, args=(after_id,), disabled=after_id is None,
                  shortcut=NEXT_KEY, icon=":material/arrow_downward:", width="stretch", type="primary")
    st.caption(f"Conversation {i + 1} of {len(order)} · {states.get(opened, 'not in the filtered queue')} · "
               f"keyboard: **{NEXT_KEY.upper()}** next, **{PREVIOUS_KEY.upper()}** previous (when not typing in a "
               "field); in a turn's form **Enter** in the comment or **Ctrl+Enter** (⌘+Enter) in the edit saves it.")
    _conversation(ws, opened, reviewer)


def _conversation(ws: Workspace, conversation_id: str, reviewer: str) -> None:
    detail = conversation_detail(ws, conversation_id)
    c = detail.conversation
    pairs = review_items(ws, conversation_id)
    mine = judgements_for_conversation(ws, conversation_id, reviewer) if reviewer else {}
    st.session_state.pop("rv_saved", None)  # a full run reads every judgement from the store
    st.subheader(ui.plain(c["title"]))
    blind = st.session_state.get("rv_blind", True)
    quality = f"quality {c['quality_score']:.1f}" if c["quality_score"] is not None else "not scored"
    head = st.container(horizontal=True, vertical_alignment="center")
    head.caption(f"`{conversation_id}` · {ui.plain(detail.persona)} · {ui.plain(detail.arc)} "
                 f"({c['tier'].replace('_', ' ')}) · {ui.plain(detail.topic)} · {ui.plain(detail.template)}"
                 + ("" if blind else f" `@ {c['template_version']}` · {quality}") + " · "
                 + (f"you judged {len(mine)} of {len(pairs)} advisor turn(s)" if reviewer
                    else f"{len(pairs)} advisor turn(s) to judge"))
    if reviewer and len(mine) < len(pairs):
        head.button(f"Thumbs up the {len(pairs) - len(mine)} unjudged turn(s)", key=f"rv_bulk_{conversation_id}",
                    icon=":material/thumb_up:", on_click=_thumbs_up_rest, args=(conversation_id, reviewer),
                    help="Your thumbs up on every advisor turn of this conversation you have not judged; your "
                         "other judgements stay as they are.")
    if reviewer and pairs:
        _keyboard_bar(pairs, mine, reviewer)
    focus = _focus(pairs, mine)
    for turn in detail.turns:
        pair = pairs.get(turn["turn_number"]) if turn["role"] == "assistant" else None
        with st.chat_message(turn["role"]):
            if pair is None:
                st.markdown(f"**{ROLE_LABEL.get(turn['role'], turn['role'])}** · turn {turn['turn_number']}")
                st.text(turn["content"])
            else:
                with st.container(key=f"rv_turn_{pair['pair_id']}"):
                    in_focus = focus is not None and pair["pair_id"] == focus["pair_id"]
                    _turn_fragment(ws, pair, reviewer, mine.get(pair["pair_id"]), blind, in_focus)


@st.fragment
def _turn_fragment(ws: Workspace, pair: dict, reviewer: str, current: dict | None, blind: bool,
                   in_focus: bool) -> None:
    """One advisor turn: saving its judgement reruns this turn alone, not the page (the queue's progress
    catches up on the next full run: Next, Previous, a filter)."""
    current = st.session_state.get("rv_saved", {}).get((reviewer, pair["pair_id"]), current)
    if toast := st.session_state.pop("rv_toast", None):
        st.toast(toast[0], icon=toast[1])
    _review_turn(ws, pair, reviewer, current, blind, in_focus)


def _review_turn(ws: Workspace, pair: dict, reviewer: str, current: dict | None, blind: bool,
                 in_focus: bool) -> None:
    pair_id, original = pair["pair_id"], pair["target_response"]
    mark = (f" · :green-badge[:material/check_circle: judged by you: {_summary(current) or 'saved'}]" if current else
            " · :gray[not judged yet]" if reviewer else "")
    score = (f" · heuristic score {pair['quality_score']:.1f}" if pair["quality_score"] is not None and not blind
             else "")
    st.markdown(f"**Advisor** · turn {pair['turn_number']}{score}{mark}")
    st.text(original)
    error = st.session_state.get("rv_errors", {}).pop(pair_id, None)
    if error:
        st.error(error)
    # The widgets' keys carry the reviewer and their current judgement, so after a save (or another name)
    # they are new widgets, pre-filled from what is stored.
    version = hashlib.sha1(f"{reviewer}\x00{current['created_at'] if current else ''}".encode()).hexdigest()[:10]
    prefix = f"rv_{pair_id}_{version}"
    # The form is drawn only when its expander is open (the page budget: a form per turn was most of the
    # browser's work on the first run). The turn in focus (the keys' turn) opens by itself when the focus
    # comes to it or its conversation is opened; any other opens on a click, and each stays as the reviewer
    # left it. Its label and default never change, so the widget keeps its state when the judgement does.
    judge_key = f"{JUDGE_KEY}{pair_id}"
    if in_focus and (judge_key not in st.session_state or st.session_state.get("rv_focus") != pair_id):
        st.session_state[judge_key] = True
    if in_focus:
        st.session_state["rv_focus"] = pair_id
    judge = st.expander("Your judgement", icon=":material/rate_review:", key=judge_key, on_change="rerun")
    if judge.open:
        with judge:
            _judgement_form(pair, prefix, reviewer, current)
    table = history_table(ws, pair_id, original, only_reviewer=reviewer if blind else None)
    # Drawn when opened: otherwise every turn's table is drawn on the first run, inside its closed expander.
    history = st.expander(f"History · {table.height - 1} judgement(s)", icon=":material/history:",
                          key=f"rv_history_{pair_id}", on_change="rerun")
    if history.open:
        history.dataframe(table, hide_index=True)
        history.caption("Newest first. The original response is never changed; every judgement and edit is kept"
                        + ("; other reviewers' are hidden while blind review is on." if blind else "."))


def _judgement_form(pair: dict, prefix: str, reviewer: str, current: dict | None) -> None:
    pair_id, original = pair["pair_id"], pair["target_response"]
    with st.form(f"rv_form_{pair_id}", border=False):
        a, b, c = st.columns([1, 2, 5], vertical_alignment="bottom")
        with a:
            st.caption("Helpful?")
            st.feedback("thumbs", key=f"{prefix}_thumbs",
                        default=None if not current or current["helpful"] is None else int(current["helpful"]))
        with b:
            st.caption("Rating (1 poor – 5 excellent)")
            st.feedback("stars", key=f"{prefix}_stars",
                        default=None if not current or current["rating"] is None else current["rating"] - 1)
        c.text_input("Comment", value=(current or {}).get("comment") or "", key=f"{prefix}_comment",
                     placeholder="optional: what is good or wrong here")
        edited = (current or {}).get("edited_response")
        st.expander("Edit the response" + (" · edited" if edited else ""), icon=":material/edit:",
                    expanded=bool(edited)).text_area(
                     "Edit the response" + (" (your edit; the original is kept in the history)" if edited else ""),
                     value=edited or original, key=f"{prefix}_edit", height=140,
                     help="Write a better response if you have one. It is saved beside the original, never over "
                          "it. Leave the text as it is (or restore it) to keep no edit.")
        st.form_submit_button("Save", key=f"rv_save_{pair_id}", type="primary", icon=":material/save:",
                              disabled=not reviewer, on_click=_save, args=(pair, prefix, reviewer, current),
                              help="Saves your judgement of this turn" if reviewer else
                                   "Enter your name at the top first: nothing is saved without it.")


# ------------------------------------------------------------------------------------------ the page

with ui.guard():
    ws = ui.workspace()
    toast = st.session_state.pop("rv_toast", None)
    if toast:
        st.toast(toast[0], icon=toast[1])
    top = st.columns([3, 2], vertical_alignment="bottom")
    reviewer = (top[0].text_input(
        "Your name", key="reviewer", bind="query-params", placeholder="e.g. Ann Lee",
        help="Every judgement is saved under this name. It is kept in the address (?reviewer=…), so a reload or "
             "a bookmark keeps it.") or "").strip()
    top[1].toggle("Blind review", value=True, key="rv_blind",
                  help="Hide other reviewers' judgements in each turn's history, so they do not sway yours "
                       "(agreement only means something between independent judgements). The Agreement tab "
                       "shows everyone's.")
    if not reviewer:
        st.warning("Enter your name to review: nothing can be saved without it. It stays in the address, so a "
                   "reload or a bookmark keeps it.", icon=":material/badge:")
    if not totals(ws).enriched:  # None on an empty workspace (count_if over no rows)
        st.info("No enriched conversations to review yet. Build the demo with `brightrun demo`, or generate "
                "conversations and run `brightrun enrich`.")
        st.stop()

    linked = st.query_params.get("conversation")  # "Review this" on another page: open it in the queue, once
    if linked and linked != st.session_state.get("rv_linked"):
        st.session_state["rv_linked"] = linked
        _open_in_queue(linked, linked)
    queue_tab, agreement_tab = st.tabs(["Queue", "Agreement"], key="rv_tab", on_change="rerun")
    with queue_tab:
        if queue_tab.open:  # only the open tab runs (the page budget)
            _queue_tab(ws, reviewer)
    with agreement_tab:
        if agreement_tab.open:
            ui_review.agreement_tab(ws, _open_in_queue)
