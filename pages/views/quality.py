"""Quality: score distributions with drill-down to the records, coverage of approved data, duplicates side by
side, diversity per cell, arc adherence, the data contracts and the LLM judge."""

import plotly.graph_objects as go
import streamlit as st

from brightrun import ui
from brightrun.explore import totals
from brightrun.quality import explore, report_store
from brightrun.quality import report as quality_report
from brightrun.ui import quality as ui_quality
from brightrun.ui.common import coverage_heatmap, key_first
from brightrun.ui.links import record_actions

st.title("Quality")
ROLE_LABEL = {"user": "Client", "assistant": "Advisor"}
LISTED = 1000  # clusters in the list, and records of one cluster offered side by side

with ui.guard():
    ws = ui.workspace()
    if totals(ws).enriched == 0:
        st.info("No enriched conversations yet. Build the demo with `brightrun demo`, or generate conversations "
                "and run `brightrun enrich`.")
        st.stop()
    report = report_store.latest_summary(ws)  # the summary: the groups are read as they are listed

    scores_tab, coverage_tab, dup_tab, diversity_tab, arc_tab, contracts_tab, judge_tab = st.tabs(
        ["Scores", "Approved coverage", "Duplicates", "Diversity", "Arc adherence", "Contracts", "LLM judge"],
        key="q_tab", bind="query-params")  # the open tab, the metric, grouping, group and record stay in the address
    # Only the open tab's content runs (`.open`): a first run draws the Scores tab alone, not four charts, the
    # contracts and the judge (the page budget, docs/benchmarks.md).

    # ------------------------------------------------------------------------------------------ scores
    with scores_tab:
        if scores_tab.open:
            # one row each: side by side, Group by's last options ran past the edge of a 1024-px screen
            metric = st.selectbox("Metric", list(explore.METRICS), format_func=lambda m: explore.METRICS[m].label,
                                  key="q_metric", bind="query-params", help="Per-turn metrics group training pairs; "
                                  "the others group conversations. docs/quality.md has every formula.")
            group = st.segmented_control("Group by", list(explore.GROUPS), default="persona", key="q_group",
                                         required=True, bind="query-params")
            m = explore.METRICS[metric]
            table = explore.group_scores(ws, group, metric)
            keys = table["key"].to_list()
            names = dict(zip(keys, table["label"].to_list(), strict=True))
            if st.session_state.get("q_drill") not in names:
                st.session_state.pop("q_drill", None)

            def _drill_from_chart() -> None:
                points = st.session_state["q_chart"].selection.points
                if points:
                    st.session_state["q_drill"] = points[0]["customdata"][0]

            def _drill_from_table() -> None:
                rows = st.session_state["q_group_table"].selection.rows
                if rows:
                    st.session_state["q_drill"] = keys[rows[0]]

            # The table first: a chart on the first run loads Plotly in the browser, about 1 s of the page budget.
            view = st.segmented_control("Show", ["Table", "Bars", "Distribution"], default="Table", key="q_view",
                                        required=True, bind="query-params")
            if view == "Table":
                st.dataframe(table.drop("key"), hide_index=True, key="q_group_table", on_select=_drill_from_table,
                             selection_mode="single-row")
            elif view == "Bars":
                figure = go.Figure(go.Bar(
                    x=table["label"].to_list(), y=table["mean"].to_list(), customdata=[[k] for k in keys],
                    error_y={"type": "data", "symmetric": False,
                             "array": (table["ci_high"] - table["mean"]).to_list(),
                             "arrayminus": (table["mean"] - table["ci_low"]).to_list()},
                    text=[f"n={n:,}" for n in table["n"].to_list()], textposition="inside",
                    hovertemplate="%{x}<br>mean %{y:.3f}<br>%{text}<extra>click to see the records</extra>"))
                figure.update_layout(height=360, yaxis_title=f"mean {m.label}", yaxis_range=[m.low, m.high],
                                     margin={"l": 10, "r": 10, "t": 10, "b": 10}, clickmode="event+select")
                st.plotly_chart(figure, key="q_chart", on_select=_drill_from_chart, selection_mode="points")
            else:
                hist = explore.histogram(ws, metric)
                st.plotly_chart(go.Figure(go.Bar(x=hist["bin_low"].to_list(), y=hist["n"].to_list(),
                                                 width=(m.high - m.low) / hist.height, offset=0)).update_layout(
                    height=240, xaxis_title=m.label, yaxis_title="count", margin={"l": 10, "r": 10, "t": 10, "b": 10}),
                    key="q_hist")
            if view != "Distribution":
                st.caption(f"Mean per {group} with a 95% interval; weakest first. {m.help}. Click a "
                           f"{'row' if view == 'Table' else 'bar'} to list its records below.")
            else:
                st.caption(f"Every {'training pair' if m.level == 'pair' else 'conversation'} by {m.label.lower()}. {m.help}.")

            st.subheader("Records")
            c1, c2 = st.columns([2, 3])
            drill = c1.selectbox(f"{group.capitalize()}", keys, index=None, format_func=names.get, key="q_drill",
                                 bind="query-params", placeholder=f"Every {group} (or click a row or bar)")
            low, high = c2.slider("Score range", min_value=float(m.low), max_value=float(m.high),
                                  value=(float(m.low), float(m.high)), key=f"q_range_{metric}")
            found = explore.records(ws, group if drill else None, drill, metric, score_range=(low, high), limit=500)
            st.caption(f"{found.height:,} conversation(s), weakest first on {m.label.lower()}"
                       + (" (the first 500)" if found.height == 500 else ""))
            ids = found["conversation_id"].to_list()

            def _open_record() -> None:
                rows = st.session_state["q_records"].selection.rows
                if rows:
                    st.session_state["q_open"] = ids[rows[0]]

            st.dataframe(key_first(found, "metric", metric, "quality_score", "title"), hide_index=True, key="q_records",
                         on_select=_open_record, selection_mode="single-row",
                         height=260)
            if st.session_state.get("q_open") not in ids:
                st.session_state.pop("q_open", None)
            opened = st.selectbox("Open a record", ids, index=None, key="q_open", bind="query-params",
                                  placeholder="Pick a conversation, or select a row in the table")
            if opened:
                row = found.row(ids.index(opened), named=True)
                st.markdown(f"#### {ui.plain(row['title'])}")
                st.caption(f"`{opened}` · {ui.plain(row['persona'])} · {ui.plain(row['arc'])} · {ui.plain(row['topic'])} · "
                           f"{row['tier']} · "
                           f"quality {row['quality_score']:.2f} · arc adherence "
                           + (f"{row['arc_adherence']:.2f}" if row["arc_adherence"] is not None else "n/a"))
                record_actions(ws, opened, "q_record")
                pairs = explore.pair_scores(ws, opened)
                by_turn = {r["turn_number"]: r for r in pairs.to_dicts()}
                for turn in explore.conversation_turns(ws, opened):
                    with st.chat_message(turn["role"]):
                        scored = by_turn.get(turn["turn_number"])
                        badge = f" · score {scored['quality_score']:.1f}" if scored else ""
                        st.markdown(f"**{ROLE_LABEL.get(turn['role'], turn['role'])}** · turn {turn['turn_number']}{badge}")
                        st.text(turn["content"])
                st.dataframe(key_first(pairs, "turn_number", "quality_score"), hide_index=True, key="q_pair_scores")

    # ------------------------------------------------------------------------------- approved coverage
    with coverage_tab:
        if coverage_tab.open:
            st.caption("Approved: enriched, quality at least the threshold, arc adherence at least the minimum, and "
                       "not a redundant member of a duplicate cluster (from the quality report).")
            a, b, c = st.columns(3)
            views = {"Persona × Arc": ("persona", "arc"), "Persona × Topic": ("persona", "topic"),
                     "Arc × Topic": ("arc", "topic"), "Tier × Persona": ("tier", "persona")}
            choice = a.selectbox("Cells", list(views), key="cov_view")
            min_quality = b.slider("Minimum quality", 0.0, 10.0, 6.0, 0.5, key="cov_quality")
            min_adherence = c.slider("Minimum arc adherence", 0.0, 1.0, 0.0, 0.05, key="cov_adherence")
            exclude = set()
            if report is not None:
                exclude = report_store.redundant(ws, report, "conversations")
            rows, columns = views[choice]
            matrix = explore.approved_coverage(ws, rows, columns, min_quality=min_quality, min_adherence=min_adherence,
                                               exclude=exclude)
            values = matrix.drop(rows)
            st.plotly_chart(coverage_heatmap(matrix, rows, colorscale="Greens", what="approved", height_base=140),
                            key="cov_heatmap")
            cells = values.to_numpy()
            st.caption(f"{int(cells.sum()):,} approved conversation(s); {(cells == 0).sum()} empty and "
                       f"{((cells > 0) & (cells < 3)).sum()} thin (under 3) cell(s) of {cells.size}."
                       + ("" if report else " Duplicates are not excluded: no quality report yet (Duplicates tab)."))

    # --------------------------------------------------------------------------------- duplicates
    def _compute_report() -> None:
        with st.status("Computing the quality report…", expanded=True) as status:
            new = quality_report.build_quality_report(ws, progress=st.write)
            quality_report.save_quality_report(ws, new)
            status.update(label=f"Quality report computed in {new.seconds:.1f} s", state="complete")

    with dup_tab:
        if dup_tab.open:
            if report is None:
                st.info("Duplicates and diversity come from the quality report, which has not been computed for "
                        "this workspace yet.")
                if st.button("Compute the quality report", key="dup_compute"):
                    _compute_report()
                    st.rerun()
            else:
                stale = quality_report.staleness(ws, report)
                top = st.columns([4, 1])
                top[0].caption(f"Quality report of {report.computed_at:%Y-%m-%d %H:%M} UTC"
                               + (f" — out of date: {stale}." if stale else "."))
                if top[1].button("Recompute", key="dup_recompute"):
                    _compute_report()
                    st.rerun()
                a, b = st.columns(2)
                scope = a.segmented_control("Records", ["conversations", "training pairs"], default="conversations",
                                            key="dup_scope", required=True)
                kind = b.segmented_control("Kind", ["near", "exact"], default="near", key="dup_kind", required=True)
                stored = "conversations" if scope == "conversations" else "training_pairs"
                min_size = st.number_input("Minimum cluster size", 2, 10_000_000, 2, key="dup_min_size")
                listed, total = report_store.groups(ws, report, stored, kind, min_size=min_size, limit=LISTED)
                st.caption(f"{total:,} {kind} cluster(s) of {scope}; {report.duplicates[stored].redundant:,} "
                           f"redundant record(s) in all." + (f" The {LISTED:,} largest are listed." if total > LISTED
                                                              else ""))
                if listed.height:
                    labels = [f"{size:,} records · similarity {sim:.2f} · {first}" for size, sim, first in
                              listed.select("size", "similarity", "first_id").iter_rows()]
                    index = st.selectbox("Cluster", range(listed.height), format_func=labels.__getitem__,
                                         key="dup_cluster")
                    group = int(listed["group"][index])
                    ids = report_store.members(ws, report, stored, kind, group, limit=LISTED)
                    if int(listed["size"][index]) > LISTED:
                        st.caption(f"Its first {LISTED:,} records are offered below.")
                    left, right = st.columns(2)
                    first = left.selectbox("Left", ids, index=0, key=f"dup_left_{index}")
                    second = right.selectbox("Right", ids, index=1, key=f"dup_right_{index}")
                    left.text_area("left text", explore.record_text(ws, scope, first), height=420, disabled=True,
                                   label_visibility="collapsed", key=f"dup_left_text_{first}")
                    right.text_area("right text", explore.record_text(ws, scope, second), height=420, disabled=True,
                                    label_visibility="collapsed", key=f"dup_right_text_{second}")
                    if conversation := explore.record_conversation(ws, scope, first):  # the left record's conversation
                        record_actions(ws, conversation, "dup_record")

    # --------------------------------------------------------------------------------- diversity
    with diversity_tab:
        if diversity_tab.open:
            if report is None:
                st.info("Diversity comes from the quality report: compute it on the Duplicates tab.")
            else:
                frame = explore.diversity_frame(ws, report)
                a, b = st.columns(2)
                only_low = a.toggle("Only cells that look collapsed", key="div_low")
                personas = b.multiselect("Persona", sorted(set(frame["persona"].to_list())), key="div_persona",
                                         placeholder="Any")
                shown = explore.filter_diversity(frame, only_low=only_low, personas=personas)
                st.plotly_chart(go.Figure(go.Scatter(
                    x=shown["distinct_2"].to_list(), y=shown["repeated_openings"].to_list(), mode="markers",
                    marker={"size": [6 + 2 * n for n in shown["conversations"].to_list()],
                            "color": ["#d62728" if low else "#1f77b4" for low in shown["low"].to_list()]},
                    text=[f"{p} / {a_} / {t} ({n}, {d or 0} variation draw(s))" for p, a_, t, n, d in shown.select(
                        "persona", "arc", "topic", "conversations", "variation_draws").iter_rows()],
                    hovertemplate="%{text}<br>distinct bigrams %{x:.2f}<br>repeated openings %{y:.2f}<extra></extra>",
                )).update_layout(height=320, xaxis_title="distinct bigrams (share)", yaxis_title="repeated openings (share)",
                                 margin={"l": 10, "r": 10, "t": 10, "b": 10}), key="div_chart")
                st.caption(f"{shown.height:,} cell(s). Red: at least {quality_report.MIN_CELL} conversations and distinct "
                           f"bigrams under {quality_report.LOW_DIVERSITY} or openings repeated in over half. "
                           "variation_draws: distinct declared-variation draws the cell's conversations were asked for; "
                           "variation_values: distinct options used per dimension.")
                st.dataframe(shown.drop("persona_key", "arc_key", "topic_key"), hide_index=True, key="div_table")
                ui_quality.variation_panel(ws, shown)

    # --------------------------------------------------------------------------------- arc adherence
    with arc_tab:
        if arc_tab.open:
            arcs = explore.adherence_by_arc(ws)
            st.plotly_chart(go.Figure(go.Bar(x=arcs["arc"].to_list(), y=arcs["mean_adherence"].to_list(),
                                             marker_color=["#ff7f0e" if t == "edge_case" else "#1f77b4"
                                                           for t in arcs["tier"].to_list()])).update_layout(
                height=300, yaxis_range=[0, 1], yaxis_title="mean arc adherence",
                margin={"l": 10, "r": 10, "t": 10, "b": 10}), key="arc_chart")
            st.caption(f"Arc adherence is 1 − mean |detected − intended client valence| / 2 over the client's turns "
                       f"(docs/quality.md); under {explore.OFF_ARC} counts as off the arc. Orange: edge-case arcs.")
            st.dataframe(arcs, hide_index=True, key="arc_table")
            arc_key = st.selectbox("Arc", arcs["arc_key"].to_list(), key="arc_pick",
                                   format_func=dict(zip(arcs["arc_key"], arcs["arc"], strict=True)).get)
            weakest = explore.records(ws, "arc", arc_key, "arc_adherence", limit=50)
            conv = st.selectbox("Conversation (weakest adherence first)", weakest["conversation_id"].to_list(),
                                key="arc_conversation", format_func=lambda cid: f"{cid} · adherence "
                                f"{weakest.filter(weakest['conversation_id'] == cid)['arc_adherence'].item() or 0:.2f}")
            if conv:
                path = explore.trajectory(ws, conv)
                fig = go.Figure([
                    go.Scatter(x=path["turn_number"].to_list(), y=path["intended_valence"].to_list(), name="intended",
                               mode="lines+markers", text=path["intended_emotion"].to_list()),
                    go.Scatter(x=path["turn_number"].to_list(), y=path["detected_valence"].to_list(), name="detected",
                               mode="lines+markers", text=path["detected_emotion"].to_list()),
                ])
                st.plotly_chart(fig.update_layout(height=280, yaxis_range=[-1, 1], xaxis_title="turn",
                                                  yaxis_title="client valence", margin={"l": 10, "r": 10, "t": 10, "b": 10}),
                                key="arc_trajectory")

    # --------------------------------------------------------------------------------- contracts
    with contracts_tab:
        if contracts_tab.open:
            ui_quality.contracts_panel(ws)

    # --------------------------------------------------------------------------------- judge
    with judge_tab:
        if judge_tab.open:
            ui_quality.judge_panel(ws)
