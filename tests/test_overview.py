"""Aggregates kept with the rows they sum up: a conversation's spend (the Overview), its pair count (the Review
queue) and the footer row counts. Each agrees with the join or count it replaces, and workspaces written before
the rows carried them fall back to that join or count."""

from __future__ import annotations

import os
import time
import uuid

import polars as pl

from brightrun.explore import overview
from brightrun.workspace.tables import SEQ

JOINED = """SELECT c.arc_key AS key, count(*) AS conversations, sum(l.input_tokens + l.output_tokens)::BIGINT AS tokens,
                   sum(l.cost_usd) AS cost_usd
            FROM conversations c LEFT JOIN llm_calls l ON l.call_id = c.call_id GROUP BY 1"""


def _by_arc(ws) -> pl.DataFrame:
    return overview.by_dimension(ws, "arc").select("key", "conversations", "tokens", "cost_usd").sort("key")


def _same(got: pl.DataFrame, want: pl.DataFrame) -> None:
    want = want.sort("key")
    assert got.select("key", "conversations", "tokens").equals(want.select("key", "conversations", "tokens"))
    assert (got["cost_usd"] - want["cost_usd"]).abs().max() < 1e-9


def test_a_generated_conversation_carries_its_calls_tokens_and_cost(demo_ws) -> None:
    joined = demo_ws.sql("""SELECT c.input_tokens AS ci, l.input_tokens AS li, c.output_tokens AS co,
                                   l.output_tokens AS lo, c.cost_usd AS cc, l.cost_usd AS lc,
                                   c.latency_ms AS cl, l.latency_ms AS ll
                            FROM conversations c JOIN llm_calls l USING (call_id)""")
    assert joined.height == demo_ws.scalar("SELECT count(*) FROM conversations") > 0
    assert joined["ci"].null_count() == 0 and joined["ci"].equals(joined["li"], check_names=False)
    assert joined["co"].equals(joined["lo"], check_names=False)
    assert joined["cc"].equals(joined["lc"], check_names=False)
    assert joined["cl"].equals(joined["ll"], check_names=False)
    assert int(joined["ci"].sum()) > 0
    _same(_by_arc(demo_ws), demo_ws.sql(JOINED))


def test_by_dimension_joins_the_calls_only_for_conversations_written_without_their_spend(demo_copy) -> None:
    ws = demo_copy
    rows = ws.read("conversations", lambda r: r.sort("conversation_id")).to_dicts()
    # a part as an older BrightRun wrote it: no spend columns at all
    old = pl.DataFrame(rows[:15]).drop("input_tokens", "output_tokens", "cost_usd", "latency_ms").with_columns(
        pl.lit(time.time_ns(), dtype=pl.Int64).alias(SEQ))
    folder = ws.store.folder("conversations")
    old.write_parquet(folder / f"part-{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet")
    # and rows with the columns but no value (what a compaction of such parts gives)
    ws.append("conversations", [{**row, "input_tokens": None, "output_tokens": None, "cost_usd": None,
                                 "latency_ms": None} for row in rows[15:30]])
    assert ws.scalar("SELECT count(*) FROM conversations WHERE cost_usd IS NULL") == 30
    _same(_by_arc(ws), ws.sql(JOINED))
    ws.compact(tables=["conversations"])
    assert ws.scalar("SELECT count(*) FROM conversations WHERE cost_usd IS NULL") == 30
    _same(_by_arc(ws), ws.sql(JOINED))
    # were the legacy rows read as no spend at all, the tokens would fall short of the joined ones
    plain = ws.sql("SELECT arc_key AS key, sum(input_tokens + output_tokens)::BIGINT AS tokens FROM conversations "
                   "GROUP BY 1").sort("key")
    assert plain["tokens"].sum() < ws.sql(JOINED)["tokens"].sum()


def test_the_pair_count_comes_from_the_footers_only_when_the_table_is_compacted(demo_copy) -> None:
    ws = demo_copy
    ws.compact(tables=["training_pairs"])
    files = ws.store.files("training_pairs")
    assert (len(files.base), len(files.deltas)) in ((1, 0), (0, 1))  # a base, or one part holding every row
    counted = ws.scalar("SELECT count(*) FROM training_pairs")
    assert ws.store.row_count("training_pairs") == counted > 0
    assert overview.totals(ws).training_pairs == counted
    pairs = ws.read("training_pairs", lambda r: r.sort("pair_id").head(6)).to_dicts()
    ws.append("training_pairs", [{**p, "pair_id": f"zz-{k}"} for k, p in enumerate(pairs[:4])])
    ws.append("training_pairs", [{**p, "target_response": "rewritten"} for p in pairs[4:]])  # same keys: no new row
    assert ws.store.row_count("training_pairs") is None
    assert overview.totals(ws).training_pairs == counted + 4 == ws.scalar("SELECT count(*) FROM training_pairs")
    ws.compact(tables=["training_pairs"])
    assert ws.store.row_count("training_pairs") == counted + 4
    assert overview.totals(ws).training_pairs == counted + 4


def test_the_review_queue_counts_pairs_from_the_quality_rows_and_from_the_pairs_alike(demo_copy) -> None:
    from brightrun.feedback import record_feedback
    from brightrun.feedback.queue import ReviewFilter, progress, review_queue

    ws = demo_copy
    kept = ws.sql("SELECT conversation_id, pair_count FROM conversation_quality ORDER BY 1")
    counted = ws.sql("SELECT conversation_id, count(*) AS pair_count FROM training_pairs GROUP BY 1 ORDER BY 1")
    assert kept.equals(counted) and kept["pair_count"].min() > 0
    pairs = ws.sql("SELECT conversation_id, pair_id FROM training_pairs ORDER BY conversation_id, turn_number")
    cids = pairs["conversation_id"].unique(maintain_order=True).to_list()
    for pair in pairs.filter(pl.col("conversation_id") == cids[0])["pair_id"]:  # one fully reviewed
        record_feedback(ws, "training_pair", pair, "ana", helpful=True)
    record_feedback(ws, "training_pair", pairs.filter(pl.col("conversation_id") == cids[1])["pair_id"][0], "ana",
                    helpful=False)  # one partly
    filters = [ReviewFilter(by="ana", reviewed=r) for r in ("any", "yes", "partly", "no")] + [
        ReviewFilter(reviewed="partly"), ReviewFilter(tiers=["template"], quality_min=5.0, limit=17)]
    fast = [(review_queue(ws, f), progress(ws, f)) for f in filters]
    assert [q.height for q, _ in fast[1:3]] == [1, 1] and fast[0][1]["reviewed"] == 1
    # rows as an older BrightRun wrote them: no pair count, so the queue counts the pairs
    ws.append("conversation_quality", ws.read("conversation_quality", lambda r: r.head(3).with_columns(
        pl.lit(None, dtype=pl.Int64).alias("pair_count"))))
    assert ws.scalar("SELECT count(*) FROM conversation_quality WHERE pair_count IS NULL") == 3
    slow = [(review_queue(ws, f), progress(ws, f)) for f in filters]
    for (q1, p1), (q2, p2) in zip(fast, slow, strict=True):
        assert q1.equals(q2) and p1 == p2
    assert fast[0][1]["turns"] == pairs.height


def test_pending_counts_and_job_enrichment_agree_with_the_view(demo_copy) -> None:
    from brightrun.enrichment.background import pending_counts
    from brightrun.enrichment.pipeline import ENRICHMENT_VERSION

    ws = demo_copy
    status = ws.read("conversation_status", lambda r: r.sort("conversation_id").head(25)).to_dicts()
    ws.append("conversation_status", [{**row, "status": "failed"} for row in status[:5]])
    ws.append("conversation_status", [{**row, "status": "failed", "enrichment_version": "0"} for row in status[5:9]])
    ws.append("conversation_status", [{**row, "enrichment_version": "0"} for row in status[9:15]])  # stale
    ws.append("conversation_status", [{**row, "status": "enrichment_in_progress"} for row in status[15:18]])
    fresh = ws.read("conversations", lambda r: r.head(2)).to_dicts()
    ws.append("conversations", [{**row, "conversation_id": f"zz-new-{k}"} for k, row in enumerate(fresh)])
    pending, failed = pending_counts(ws)
    want = ws.sql("""SELECT count_if(enrichment_status <> 'completed' OR enrichment_version IS DISTINCT FROM ?)
                            - count_if(enrichment_status = 'failed' AND enrichment_version = ?) AS pending,
                            count_if(enrichment_status = 'failed' AND enrichment_version = ?) AS failed
                     FROM conversations""", [ENRICHMENT_VERSION] * 3).row(0)
    assert (pending, failed) == want == (4 + 6 + 3 + 2, 5)
    for job_id in ws.sql("SELECT DISTINCT job_id FROM conversations")["job_id"]:
        got = overview.job_enrichment(ws, job_id)
        row = ws.sql("""SELECT count(*), count_if(enrichment_status = 'completed'),
                               count_if(enrichment_status = 'failed') FROM conversations WHERE job_id = ?""",
                     [job_id]).row(0)
        assert (got["conversations"], got["completed"], got["failed"]) == row


def test_the_newest_conversations_are_listed_alike_when_many_share_a_creation_time(demo_copy) -> None:
    from brightrun.explore import ConversationFilter, list_conversations

    ws = demo_copy
    newest = ws.scalar("SELECT max(created_at) FROM conversations")
    rows = ws.read("conversations", lambda r: r.sort("conversation_id").head(6)).to_dicts()
    ws.append("conversations", [{**row, "conversation_id": f"tie-{k}", "created_at": newest} for k, row in
                                enumerate(rows)])
    persona = rows[0]["persona_key"]
    for kw in ({"limit": 1}, {"limit": 4}, {"limit": 9}, {"personas": [persona], "limit": 3}, {"limit": 10_000}):
        f = ConversationFilter(**kw)
        where = "WHERE persona_key = ?" if "personas" in kw else ""
        want = ws.sql(f"SELECT conversation_id FROM conversations {where} ORDER BY created_at DESC, "
                      "conversation_id LIMIT ?", [*([persona] if where else []), f.limit])["conversation_id"]
        assert list_conversations(ws, f)["conversation_id"].to_list() == want.to_list()


def test_prompt_versions_read_the_calls_kept_on_conversations_as_the_join_would(demo_copy) -> None:
    from brightrun.prompts import registry

    ws = demo_copy
    kept = registry._versions(ws, None)
    joined = ws.sql(f"SELECT m.* FROM ({registry.METRICS_SQL.format(calls=registry.CALLS_JOINED)}) m")
    columns = ["template_key", "version", "conversations", "tokens", "cost_usd", "mean_latency_ms", "mean_quality"]
    a, b = kept.select(columns).sort("template_key", "version"), joined.select(columns).sort("template_key", "version")
    assert a.select(columns[:5]).equals(b.select(columns[:5])) and int(a["tokens"].sum()) > 0
    assert ((a["mean_latency_ms"] - b["mean_latency_ms"]).abs().max() or 0) < 1e-6
    # one conversation written without its call's figures: the join is used for every version
    row = ws.read("conversations", lambda r: r.head(1)).to_dicts()[0]
    ws.append("conversations", [{**row, "latency_ms": None}])
    again = registry._versions(ws, None).select(columns).sort("template_key", "version")
    assert again.select(columns[:5]).equals(b.select(columns[:5]))
