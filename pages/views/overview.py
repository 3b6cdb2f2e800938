"""Overview: what the workspace holds, what it cost, where coverage is thin, recent jobs."""

import plotly.express as px
import streamlit as st

from brightrun import ui
from brightrun.explore import by_dimension, coverage, recent_jobs, totals
from brightrun.ui.enrichment import enrich_panel

st.title("Overview")

with ui.guard():
    ws = ui.workspace()
    t = totals(ws)
    if t.conversations == 0:
        st.info("This workspace has no conversations yet. Build the demo with `brightrun demo`, "
                "or generate some with `brightrun generate`.")
        st.stop()

    cols = st.columns(6)
    cols[0].metric("Conversations", ui.fmt_int(t.conversations))
    cols[1].metric("Training pairs", ui.fmt_int(t.training_pairs))
    cols[2].metric("Enriched", f"{t.enriched / t.conversations:.0%}",
                   help=f"{t.enriched:,} enriched, {t.enrichment_failed:,} failed enrichment")
    cols[3].metric("LLM calls", ui.fmt_int(t.llm_calls), help=f"{t.failed_calls:,} failed and retried or recorded")
    cols[4].metric("Tokens", ui.fmt_int(t.input_tokens + t.output_tokens),
                   help=f"{t.input_tokens:,} in, {t.output_tokens:,} out")
    cols[5].metric("Cost", ui.fmt_usd(t.cost_usd),
                   help="Scripted calls cost nothing." if t.scripted_share else "From the price table.")
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
    figure = px.imshow(values.to_numpy(), x=values.columns, y=matrix[rows].to_list(), text_auto=True,
                       aspect="auto", color_continuous_scale="Blues",
                       labels={"x": columns.title(), "y": rows.title(), "color": "Conversations"})
    figure.update_layout(height=120 + 42 * matrix.height, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    st.plotly_chart(figure, key="coverage_heatmap")
    cells = values.to_numpy()
    st.caption(f"{(cells == 0).sum()} empty cell(s) and {((cells > 0) & (cells < 3)).sum()} thin cell(s) "
               f"(fewer than 3 conversations) of {cells.size}.")

    st.subheader("Recent batch jobs")
    st.dataframe(recent_jobs(ws, 10), hide_index=True, key="recent_jobs",
                 column_config={"cost_usd": st.column_config.NumberColumn("cost", format="$%.4f")})

    st.subheader("By dimension")
    dimension = st.segmented_control("Group by", ["persona", "arc", "topic", "template", "tier"],
                                     default="arc", key="dimension", required=True)
    table = by_dimension(ws, dimension)
    st.plotly_chart(px.bar(table.to_pandas(), x=dimension, y="conversations", hover_data=["mean_turns", "tokens"]),
                    key="by_dimension_chart")
