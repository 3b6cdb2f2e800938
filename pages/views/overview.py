"""Overview: what the workspace holds, what it cost, where coverage is thin, recent jobs."""

import numpy as np
import streamlit as st

from brightrun import ui
from brightrun.explore import by_dimension, coverage, dimension_labels, recent_jobs, totals
from brightrun.ui.common import coverage_heatmap, dimension_bars, key_first, metric_row
from brightrun.ui.enrichment import enrich_panel

st.title("Overview")

with ui.guard():
    ws = ui.workspace()
    t = totals(ws)
    if t.conversations == 0:
        st.info("This workspace has no conversations yet. Build the demo with `brightrun demo`, "
                "or generate some with `brightrun generate`.")
        st.stop()

    metric_row([
        ("Conversations", ui.fmt_int(t.conversations), None),
        ("Training pairs", ui.fmt_int(t.training_pairs), None),
        ("Enriched", f"{t.enriched / t.conversations:.0%}",
         f"{t.enriched:,} enriched, {t.enrichment_failed:,} failed enrichment"),
        ("Generation calls", ui.fmt_int(t.generated_calls),
         f"Calls BrightRun made (generation, judge); {t.failed_calls:,} of all calls failed and were retried or "
         "recorded."),
        ("Generation tokens", ui.fmt_int(t.generated_tokens), "Input and output tokens of those calls."),
        ("Generation cost", ui.fmt_usd(t.generated_cost_usd),
         "Scripted calls cost nothing." if t.scripted_share else "From the price table."),
    ])
    if t.imported_calls:
        metric_row([
            ("Imported app-log calls", ui.fmt_int(t.imported_calls),
             "Calls of a production app, imported from its log (App logs page)."),
            ("Imported tokens", ui.fmt_int(t.imported_tokens), None),
            ("Imported cost", ui.fmt_usd(t.imported_cost_usd), "What the app's own calls cost, as its log says."),
        ])
    enrich_panel(ws, "ov")

    st.subheader("Coverage")
    views = {"Persona × Arc": ("persona", "arc"), "Persona × Topic": ("persona", "topic"),
             "Arc × Topic": ("arc", "topic")}
    left, right = st.columns([3, 1])
    choice = left.segmented_control("Cells", list(views), default="Persona × Arc", key="coverage_view",
                                    required=True)
    enriched_only = right.toggle("Enriched only", key="coverage_enriched")
    rows, columns = views[choice]
    matrix = coverage(ws, rows, columns, enriched_only=enriched_only)
    values = matrix.drop(rows)
    cell_filters = {rows: dimension_labels(ws, rows), columns: dimension_labels(ws, columns)}

    def _open(row_label: str, column_label: str) -> None:
        """A clicked cell opens Conversations filtered to it (the filters are the Conversations page's own)."""
        for dim, label in ((rows, row_label), (columns, column_label)):
            keys = [k for k, v in cell_filters[dim].items() if v == label] or [label]
            st.session_state[f"f_{dim}s"] = keys
        st.session_state["ov_open_cell"] = True

    def _open_cell() -> None:
        points = st.session_state["coverage_heatmap"].selection.points
        if points:
            _open(points[0]["y"], points[0]["x"])

    def _open_table_cell() -> None:
        cells = [c for c in st.session_state["coverage_table"].selection.cells if c[1] != rows]
        if cells:
            _open(matrix[rows][cells[0][0]], cells[0][1])

    # The table first, the heatmap on its tab: a chart on the first run loads Plotly in the browser, about 1 s
    # of the page budget (docs/benchmarks.md). Only the open tab runs.
    table_tab, heatmap_tab = st.tabs(["Table", "Heatmap"], key="ov_coverage_tab", on_change="rerun")
    with table_tab:
        if table_tab.open:
            st.dataframe(matrix, hide_index=True, key="coverage_table", on_select=_open_table_cell,
                         selection_mode="single-cell")
    with heatmap_tab:
        if heatmap_tab.open:
            import plotly.graph_objects as go  # only when the heatmap is drawn

            figure = coverage_heatmap(matrix, rows, colorscale="Blues", what="conversations")
            figure.update_layout(clickmode="event+select", xaxis_title=columns.title(), yaxis_title=rows.title())
            figure.update_traces(hoverinfo="skip", hovertemplate=None)
            # Heatmap cells cannot be selected in plotly: an invisible marker on each cell takes the click.
            xs, ys = np.meshgrid(np.array(values.columns, dtype=object),
                                 np.array(matrix[rows].to_list(), dtype=object))
            figure.add_trace(go.Scatter(
                x=xs.ravel(), y=ys.ravel(), customdata=values.to_numpy().ravel(), mode="markers", showlegend=False,
                marker={"symbol": "square", "size": 30, "opacity": 0.01, "color": "white"},
                hovertemplate="%{y} × %{x}: %{customdata}<extra>click to list these conversations</extra>"))
            st.plotly_chart(figure, key="coverage_heatmap", on_select=_open_cell, selection_mode="points")
    if st.session_state.pop("ov_open_cell", False):
        st.switch_page("pages/views/conversations.py")
    cells = values.to_numpy()
    st.caption(f"{(cells == 0).sum()} empty cell(s) and {((cells > 0) & (cells < 3)).sum()} thin cell(s) "
               f"(fewer than 3 conversations) of {cells.size}. Click a cell to list its conversations.")

    st.subheader("Recent batch jobs")
    st.dataframe(recent_jobs(ws, 10), hide_index=True, key="recent_jobs",
                 column_config={"cost_usd": st.column_config.NumberColumn("cost", format="$%.4f")})

    st.subheader("By dimension")
    dimension = st.segmented_control("Group by", ["persona", "arc", "topic", "template", "tier"],
                                     default="arc", key="dimension", required=True)
    table = by_dimension(ws, dimension)
    table_tab, bars_tab = st.tabs(["Table", "Bars"], key="ov_dimension_tab", on_change="rerun")
    with table_tab:
        if table_tab.open:
            st.dataframe(key_first(table.drop("key"), dimension), hide_index=True, key="by_dimension_table")
    with bars_tab:
        if bars_tab.open:
            st.plotly_chart(dimension_bars(table, dimension), key="by_dimension_chart")
