"""Diversity within scaffold cells: a collapsed cell stands out."""

from __future__ import annotations

import polars as pl
from test_enrichment import GOOD, plant

from brightrun.quality.diversity import cell_diversity, distinct_n, repeated_openings
from brightrun.workspace import Workspace


def test_distinct_n_and_repeated_openings() -> None:
    assert distinct_n(["a b c d"]) == 1.0
    assert distinct_n(["a b c", "a b c"]) == 0.5
    assert repeated_openings(["x", "x", "y", "z"]) == 0.5
    assert repeated_openings([]) == 0.0


def test_a_collapsed_cell_stands_out_against_the_demo(demo_copy: Workspace) -> None:
    for i in range(5):  # five copies of one stock conversation in a cell of their own
        plant(demo_copy, f"stock{i}", GOOD, persona="marcus_chen")
    demo_copy.append("conversations", [
        {**row, "arc_key": "grief_to_planning", "topic_key": "estate_planning_basics"}
        for row in demo_copy.sql("SELECT * EXCLUDE (enrichment_status, enrichment_version, enrichment_updated_at, "
                                 "quality_score, arc_adherence, emotion_match_rate) FROM conversations "
                                 "WHERE job_id = 'planted'").to_dicts()])
    cells = cell_diversity(demo_copy)
    is_stock = ((pl.col("persona_key") == "marcus_chen") & (pl.col("arc_key") == "grief_to_planning")
                & (pl.col("topic_key") == "estate_planning_basics"))
    collapsed = cells.filter(is_stock).row(0, named=True)
    assert collapsed["conversations"] >= 5 and collapsed["repeated_openings"] >= 5 / collapsed["conversations"]
    normal = cells.filter((pl.col("conversations") >= 3) & ~is_stock)
    assert normal.height > 0
    assert collapsed["distinct_2"] < normal["distinct_2"].min()
    assert cells.row(0, named=True)["distinct_2"] == collapsed["distinct_2"]  # sorted: least diverse first
    singles = cells.filter(cells["conversations"] == 1)
    assert singles["distinct_2"].is_null().all()
