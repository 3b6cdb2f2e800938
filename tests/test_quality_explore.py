"""The Quality page's aggregates (brightrun.quality.explore) against the same figures computed straight from
the tables, for every metric and group the page offers."""

from __future__ import annotations

import polars as pl
import pytest

from brightrun.quality import explore


def _direct(ws, group: str, metric: str) -> pl.DataFrame:
    m = explore.METRICS[metric]
    expr = explore.GROUPS[group]
    source = ("training_pairs" if m.level == "pair" else
              "(SELECT c.*, q.min_pair_score FROM conversations c "
              "LEFT JOIN conversation_quality q USING (conversation_id))")
    return ws.sql(f"SELECT {expr} AS key, count({metric}) AS n, avg({metric}) AS mean FROM {source} "
                  f"WHERE {metric} IS NOT NULL GROUP BY 1").sort("key")


@pytest.mark.parametrize("metric", list(explore.METRICS))
def test_every_metric_groups_and_lists_its_records(demo_copy, metric: str) -> None:
    ws = demo_copy
    for group in explore.GROUPS:
        got = explore.group_scores(ws, group, metric).select("key", "n", "mean").sort("key")
        want = _direct(ws, group, metric)
        assert got["key"].to_list() == want["key"].to_list() and got["n"].to_list() == want["n"].to_list()
        assert (got["mean"] - want["mean"]).abs().max() < 1e-9 and int(got["n"].sum()) > 0
    m = explore.METRICS[metric]
    found = explore.records(ws, "persona", "david_chen", metric, score_range=(m.low, m.high), limit=500)
    completed = set(ws.sql("SELECT conversation_id FROM conversations WHERE enrichment_status = 'completed' "
                           "AND persona_key = 'david_chen'")["conversation_id"])
    assert 0 < found.height and set(found["conversation_id"]) <= completed
    values = found["metric" if "metric" in found.columns else metric]
    assert values.is_sorted() and values.null_count() == 0


def test_records_leave_out_conversations_not_enriched(demo_copy) -> None:
    ws = demo_copy
    status = ws.read("conversation_status", lambda r: r.sort("conversation_id").head(5)).to_dicts()
    ws.append("conversation_status", [{**row, "status": "failed"} for row in status])
    failed = {row["conversation_id"] for row in status}
    everything = explore.records(ws, None, None, "quality_score", limit=10_000)
    assert not failed & set(everything["conversation_id"])
    assert everything.height == ws.scalar("SELECT count(*) FROM conversations WHERE enrichment_status = 'completed'")
