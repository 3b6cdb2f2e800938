"""Diversity within scaffold cells: a collapsed cell stands out."""

from __future__ import annotations

import polars as pl
from test_enrichment import GOOD, plant

from brightrun.generation import create_job, plan_uniform, run_job
from brightrun.generation.jobs import item_seed
from brightrun.providers import ScriptedProvider
from brightrun.quality.diversity import (
    cell_diversity,
    cell_draws,
    cell_variation,
    distinct_n,
    repeated_openings,
)
from brightrun.scaffolding.variation import draw_variation, variation_json
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
        for row in demo_copy.sql("SELECT * FROM _t_conversations WHERE job_id = 'planted'").to_dicts()])
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


def test_each_cell_shows_the_variation_its_conversations_drew(ws: Workspace) -> None:
    cell = ("jennifer_walsh", "fear_to_security", "insurance_coverage_review")
    create_job(ws, plan_uniform(ws.scaffolding.cells(*[[k] for k in cell]), 8), provider="scripted",
               model="scripted-1", seed=11, job_id="j")
    run_job(ws, "j", ScriptedProvider())
    plant(ws, "before", GOOD, persona="marcus_chen")  # a conversation recorded before variation: '{}'
    template, topic = ws.scaffolding.templates["tpl_fear_to_security"], ws.scaffolding.topics[cell[2]]
    draws = [draw_variation(template, topic, item_seed(11, i)) for i in range(8)]
    distinct = {name: {d[name] for d in draws} for name in draws[0]}

    frame = {tuple(r[:3]): r[3:] for r in cell_variation(ws).rows()}
    assert frame[cell] == (len({variation_json(d) for d in draws}),
                           ", ".join(f"{name} {len(values)}" for name, values in sorted(distinct.items())))
    assert frame[cell][0] >= 7
    assert frame[("marcus_chen", "confusion_to_clarity", "emergency_fund")] == (0, "")

    used = cell_draws(ws, *cell)
    assert used.columns == ["dimension", "value", "conversations"]
    assert sorted(set(used["dimension"])) == sorted(distinct)
    for name, values in distinct.items():
        rows = used.filter(pl.col("dimension") == name)
        assert set(rows["value"]) == values and rows["conversations"].sum() == 8
        assert rows["conversations"].to_list() == sorted(rows["conversations"].to_list(), reverse=True)
        assert rows["conversations"].to_list()[0] == max(sum(d[name] == v for d in draws) for v in values)
    assert cell_draws(ws, "marcus_chen", "confusion_to_clarity", "emergency_fund").is_empty()

    diversity = cell_diversity(ws)
    row = diversity.filter(pl.col("persona_key") == cell[0]).row(0, named=True)
    assert (row["conversations"], row["variation_draws"], row["variation_values"]) == (8, *frame[cell])
    assert diversity.filter(pl.col("persona_key") == "marcus_chen")["variation_draws"].to_list() == [0]
