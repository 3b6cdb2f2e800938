"""The Review page's queue filters, and its Agreement tab: how far the reviewers agree (thumbs: Cohen's or Fleiss'
kappa; ratings: quadratic weighted kappa), pair by pair, and the turns where they disagree, each beside its
question."""

from collections.abc import Callable

import streamlit as st

from brightrun.experiments import list_experiments
from brightrun.explore import conversation_detail, filter_options
from brightrun.feedback import (
    ReviewFilter,
    agreement,
    current_judgements,
    disagreements,
    review_items,
    reviewers,
)
from brightrun.quality.explore import labels
from brightrun.ui.common import fmt_int
from brightrun.workspace import Workspace

STATES = {"any": "Any", "no": "Not reviewed", "partly": "Partly reviewed", "yes": "Reviewed"}
ME, ANYONE = "\x00me", "\x00anyone"


def queue_filters(ws: Workspace, reviewer: str) -> ReviewFilter:
    """The Review queue's filters, in a closed expander: persona, arc, topic,
    template version, tier, quality, experiment and arm, review state, and whose judgements count."""
    options = filter_options(ws)
    templates = labels(ws, "template version")
    everyone = [r for r in reviewers(ws) if r != reviewer]
    by_options = [ME, ANYONE, *everyone]
    if st.session_state.get("rv_by") not in by_options:
        st.session_state.pop("rv_by", None)
    with st.expander("Filter the queue", icon=":material/filter_list:"):
        cols = st.columns(3)
        chosen = {}
        for i, (field, source, label) in enumerate([
                ("personas", options["personas"], "Persona"), ("arcs", options["arcs"], "Emotional arc"),
                ("topics", options["topics"], "Topic"), ("template_versions", templates, "Template version"),
                ("tiers", options["tiers"], "Tier")]):
            chosen[field] = cols[i % 3].multiselect(label, list(source), format_func=source.get, key=f"rv_{field}",
                                                    placeholder="Any")
        low, high = cols[2].slider("Quality score", 0.0, 10.0, (0.0, 10.0), 0.5, key="rv_quality",
                                   help="The conversation's heuristic quality score (mean of its turns, 0-10).")
        experiments = {e.experiment_id: e for e in list_experiments(ws)}
        job_ids: list[str] = []
        if experiments:
            left, right = st.columns(2)
            picked = left.selectbox("Experiment", list(experiments), index=None, key="rv_experiment",
                                    format_func=lambda i: f"{experiments[i].name} · {i}", placeholder="Any",
                                    help="Only the conversations the experiment's arms generated.")
            if picked:
                arms = {a.name: experiments[picked].job_id(a.name) for a in experiments[picked].arms}
                chosen_arms = right.multiselect("Arm", list(arms), key=f"rv_arms_{picked}", placeholder="Every arm",
                                                help="Review one arm at a time, e.g. for a model-settings "
                                                     "experiment; blind review hides which arm a turn is from.")
                job_ids = [arms[a] for a in chosen_arms] or list(arms.values())
        left, right = st.columns(2)
        state = left.segmented_control("Review state", list(STATES), format_func=STATES.get, default="any",
                                       required=True, key="rv_state",
                                       help="Reviewed: every advisor turn judged; partly: some; not: none.")
        by = right.selectbox("Reviewed by", by_options, key="rv_by",
                             format_func=lambda r: {ME: "me", ANYONE: "anyone"}.get(r, r),
                             help="Whose judgements count for the review state and the progress.")
    who = reviewer if by == ME else None if by == ANYONE else by
    return ReviewFilter(**chosen, job_ids=job_ids, quality_min=low, quality_max=high, reviewed=state,
                        by=who or None)


def _fmt(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:.0%}" if percent else f"{value:.2f}"


def agreement_tab(ws: Workspace, open_in_queue: Callable[[str, str], None]) -> None:
    """The Review page's Agreement tab: kappas between the chosen reviewers, and the turns they disagree on
    (`open_in_queue(conversation_id, title)` is the button's callback that opens one in the Queue tab)."""
    everyone = reviewers(ws)
    if len(everyone) < 2:
        st.info("Agreement needs at least two reviewers who judged the same turns; "
                + (f"so far only {everyone[0]} has reviewed." if everyone else "nobody has reviewed yet.")
                + " Ask a colleague to review the same conversations under their own name.")
        return
    chosen = st.multiselect("Reviewers", everyone, default=everyone, key="ag_reviewers",
                            help="Agreement is measured on the turns every chosen reviewer judged.")
    if len(chosen) < 2:
        st.info("Choose at least two reviewers to compare.")
        return
    a = agreement(ws, chosen)
    two = len(chosen) == 2
    kappa_name = "Cohen's κ" if two else "Fleiss' κ"
    kappa = a.cohen_kappa if two else a.fleiss_kappa

    st.markdown("**Thumbs**")
    cols = st.columns(3)
    cols[0].metric("Turns compared", fmt_int(a.thumbs_items), help="Turns with a thumbs from every chosen reviewer")
    cols[1].metric("Agreement", _fmt(a.thumbs_percent, percent=True),
                   help="Share of those turns (of reviewer pairs on a turn, with three or more) with the same thumbs")
    cols[2].metric(kappa_name, _fmt(kappa),
                   help="Agreement corrected for chance: 1 perfect, 0 what chance alone gives, below 0 worse than "
                        "chance. " + ("Cohen's kappa for two reviewers." if two else
                                      "Fleiss' kappa for three or more reviewers."))
    if a.thumbs_items == 0:
        st.caption("Not available: no turn has a thumbs from every chosen reviewer yet.")
    elif kappa is None:
        st.caption(f"{kappa_name} is not defined here: the reviewers gave one answer throughout (chance alone "
                   "explains it all), or there are too few turns. It needs both thumbs up and down to occur.")
    else:
        st.caption(f"{kappa_name}: below 0 is worse than chance; about 0.2 is slight, 0.4 moderate, 0.6 "
                   "substantial and 0.8 near-perfect agreement beyond chance.")

    st.markdown("**Ratings (1-5)**")
    cols = st.columns(3)
    cols[0].metric("Turns compared", fmt_int(a.rating_items), help="Turns with a rating from every chosen reviewer")
    cols[1].metric("Exact agreement", _fmt(a.rating_percent, percent=True),
                   help="Share of those turns (of reviewer pairs on a turn) with the very same rating")
    cols[2].metric("Weighted κ (quadratic)", _fmt(a.weighted_kappa),
                   help="Cohen's kappa with quadratic weights: a 4 against a 5 counts as nearly agreeing, a 1 "
                        "against a 5 as far apart" + ("" if two else "; the mean over every pair of reviewers"))
    if a.rating_items == 0:
        st.caption("Not available: no turn has a rating from every chosen reviewer yet.")
    elif a.weighted_kappa is None:
        st.caption("Weighted κ is not defined here: the ratings do not vary enough (e.g. everyone gave the same "
                   "rating) for a chance correction.")

    st.markdown("**Pairs of reviewers**")
    st.dataframe(a.pairwise_table(), hide_index=True, key="ag_pairwise",
                 column_config={"thumbs_agreement": st.column_config.NumberColumn(format="percent"),
                                "cohen_kappa": st.column_config.NumberColumn(format="%.2f"),
                                "weighted_kappa": st.column_config.NumberColumn("weighted_kappa", format="%.2f")})
    st.caption("Each pair on the turns both judged (so counts can exceed the ones above). Empty: not available "
               "for that pair.")

    st.subheader("Disagreements")
    gap = st.slider("Ratings at least this far apart disagree", 1, 4, 2, key="ag_gap")
    found = disagreements(ws, chosen, rating_gap=gap)
    st.caption(f"{fmt_int(found.height)} turn(s) where the current judgements of the reviewers chosen above "
               f"conflict: a thumbs up against a thumbs down, or ratings {gap} or more apart (choose two reviewers "
               "to see only theirs). Select one to see it.")
    pair_ids = found["pair_id"].to_list()

    def _pick_disagreement() -> None:
        rows = st.session_state["ag_disagreements"].selection.rows
        if rows:
            st.session_state["ag_open"] = pair_ids[rows[0]]

    st.dataframe(found, hide_index=True, key="ag_disagreements", on_select=_pick_disagreement,
                 selection_mode="single-row", height=240)
    if st.session_state.get("ag_open") not in pair_ids:
        st.session_state.pop("ag_open", None)
    picked = st.selectbox("Look at", pair_ids, index=None, key="ag_open",
                          placeholder="Pick a disputed turn, or select a row in the table")
    if picked is None:
        return
    row = found.row(pair_ids.index(picked), named=True)
    conversation_id = row["conversation_id"]
    pair = next((p for p in review_items(ws, conversation_id).values() if p["pair_id"] == picked), None)
    if pair is None:
        st.info(f"Turn {picked} is no longer among the training pairs (the conversation was enriched again).")
        return
    detail = conversation_detail(ws, conversation_id)
    turns = {t["turn_number"]: t for t in detail.turns}
    asked = turns.get(pair["turn_number"] - 1)
    if asked:
        with st.chat_message("user"):
            st.markdown(f"**Client** · turn {asked['turn_number']}")
            st.text(asked["content"])
    with st.chat_message("assistant"):
        st.markdown(f"**Advisor** · turn {pair['turn_number']} · original response")
        st.text(pair["target_response"])
    st.dataframe(current_judgements(ws, picked, chosen), hide_index=True)
    st.button("Open the conversation in the queue", key="ag_open_in_queue", icon=":material/rate_review:",
              on_click=open_in_queue, args=(conversation_id, detail.conversation["title"]))


