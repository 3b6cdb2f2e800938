"""Panels of the Quality page that several controls share: the data contracts, the LLM judge and the
variation drawn per cell. Streamlit drawing only; the numbers come from brightrun.validation,
brightrun.quality.judge and brightrun.quality.diversity."""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from brightrun.workspace import Workspace


def variation_panel(ws: Workspace, cells: pl.DataFrame) -> None:
    """The declared variation one chosen cell of `cells` (a diversity frame) was drawn: each dimension's
    options and how many of the cell's conversations used them."""
    from brightrun.quality.diversity import cell_draws

    if cells.is_empty():
        return
    rows = cells.select("persona", "arc", "topic", "persona_key", "arc_key", "topic_key", "variation_draws").rows()
    pick = st.selectbox("Variation drawn in a cell", range(len(rows)), key="div_cell",
                        format_func=lambda i: f"{rows[i][0]} / {rows[i][1]} / {rows[i][2]} "
                                              f"({rows[i][6] or 0} distinct draw(s))")
    draws = cell_draws(ws, *rows[pick][3:6])
    if draws.is_empty():
        st.caption("No declared variation was recorded for this cell: its conversations were generated before "
                   "variation existed, or its template declares none (docs/scaffolding.md).")
        return
    st.dataframe(draws, hide_index=True, key="div_draws")
    st.caption("The options drawn per dimension (the template's `variation:` lists, with the topic's added) and "
               "how many of the cell's conversations were asked for each.")


def contracts_panel(ws: Workspace) -> None:
    from brightrun import validation

    saved = validation.latest_report(ws)
    top = st.columns([4, 1])
    if top[1].button("Run the contracts", key="contracts_run", type="primary" if saved is None else "secondary"):
        with st.status("Running the data contracts…", expanded=True) as status:
            saved = validation.run_contracts(ws, progress=st.write)
            validation.save_report(ws, saved)
            status.update(label=f"Contracts ran in {saved.seconds:.1f} s", state="complete")
    if saved is None:
        top[0].info("The data contracts (Great Expectations suites in `expectations/`) have not been run on this "
                    "workspace yet. Run them here or with `brightrun validate`.")
        return
    failed = [(s.table, e) for s in saved.suites for e in s.expectations if not e.success]
    total = sum(len(s.expectations) for s in saved.suites)
    top[0].caption(f"Last run {saved.run_at:%Y-%m-%d %H:%M} UTC in {saved.seconds:.1f} s.")
    if saved.success:
        st.success(f"All {total} expectations hold across {len(saved.suites)} tables.")
    else:
        st.error(f"{len(failed)} of {total} expectations fail. Fix the records listed below, then run again.")
    cols = st.columns(len(saved.suites) or 1)
    for col, suite in zip(cols, saved.suites, strict=False):
        bad = sum(1 for e in suite.expectations if not e.success)
        col.metric(suite.table, "pass" if suite.success else f"{bad} failing",
                   help=f"{suite.rows:,} rows checked against {len(suite.expectations)} expectations")
    only_failing = st.toggle("Only failing expectations", value=not saved.success, key="contracts_failing")
    tables = st.multiselect("Tables", [s.table for s in saved.suites], key="contracts_tables", placeholder="All")
    rows = [{"passes": e.success, "table": s.table, "expectation": e.description, "kind": e.expectation_type,
             "column": e.column, "unexpected": e.unexpected_count, "unexpected %": e.unexpected_percent}
            for s in saved.suites for e in s.expectations
            if (not only_failing or not e.success) and (not tables or s.table in tables)]
    rows.sort(key=lambda r: r["passes"])  # failing first
    st.dataframe(pl.DataFrame(rows, schema={"passes": pl.Boolean, "table": pl.String, "expectation": pl.String,
                                            "kind": pl.String, "column": pl.String, "unexpected": pl.Int64,
                                            "unexpected %": pl.Float64}),
                 hide_index=True, key="contracts_table")
    for table, e in failed:
        if tables and table not in tables:
            continue
        with st.expander(f"{table}: {e.description} — {e.unexpected_count:,} record(s)"):
            if e.examples:
                st.dataframe(pl.DataFrame(e.examples, infer_schema_length=None), hide_index=True)
            else:
                st.caption("No example rows: this expectation is about the table as a whole.")


def judge_panel(ws: Workspace) -> None:
    from brightrun.quality import judge

    table = judge.judge_table(ws)
    if table.is_empty():
        st.info("No LLM judge scores yet. The judge is optional: it asks a model to score training pairs on a "
                "rubric (docs/quality.md), and logs every call in `llm_calls`. Try it offline with "
                "`brightrun quality judge --provider scripted --limit 50`, or with a real model via "
                "`--provider anthropic` (costs money; start small).")
        return
    stats = judge.agreement(ws)
    cols = st.columns(4)
    cols[0].metric("Pairs judged", f"{stats['n']:,}")
    cols[1].metric("Spearman vs heuristic", "n/a" if stats.get("spearman") is None else f"{stats['spearman']:.2f}",
                   help="Rank correlation of the judge's overall score with the heuristic overall score.")
    cols[2].metric("Mean |judge − heuristic|", "n/a" if stats.get("mean_abs_diff") is None
                   else f"{stats['mean_abs_diff']:.2f}")
    cols[3].metric("Judge models", f"{table['judge_model'].n_unique()}")
    models = st.multiselect("Judge model", sorted(table["judge_model"].unique().to_list()), key="judge_models",
                            placeholder="All")
    shown = table.filter(pl.col("judge_model").is_in(models)) if models else table
    st.plotly_chart(go.Figure(go.Scatter(
        x=shown["heuristic_overall"].to_list(), y=shown["judge_overall"].to_list(), mode="markers",
        text=shown["pair_id"].to_list(), hovertemplate="%{text}<br>heuristic %{x:.2f}<br>judge %{y:.2f}<extra></extra>",
    )).update_layout(height=320, xaxis_title="heuristic overall (0-10)", yaxis_title="judge overall (0-10)",
                     xaxis_range=[0, 10], yaxis_range=[0, 10], margin={"l": 10, "r": 10, "t": 10, "b": 10}),
        key="judge_scatter")
    st.dataframe(shown, hide_index=True, key="judge_table")
