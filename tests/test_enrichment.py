"""Enrichment: training pairs in the enriched structure; bad records are reported and skipped."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from brightrun.enrichment.pipeline import ENRICHMENT_VERSION, enrich, enriched_conversation
from brightrun.errors import WorkspaceError
from brightrun.models import EnrichedConversation
from brightrun.workspace import Workspace

NOW = datetime(2026, 11, 21, tzinfo=UTC)


def plant(ws: Workspace, cid: str, turns: list[tuple[str, str]], persona: str = "david_chen",
          turn_count: int | None = None, numbers: list[int] | None = None) -> None:
    """Write a raw conversation straight into the tables, bypassing every check."""
    ws.append("conversations", [{
        "conversation_id": cid, "job_id": "planted", "item_id": cid, "persona_key": persona,
        "arc_key": "confusion_to_clarity", "topic_key": "emergency_fund", "template_key": "tpl_confusion_to_clarity",
        "template_version": "x", "tier": "template", "provider": "import", "model": "m", "is_scripted": False,
        "title": cid, "turn_count": len(turns) if turn_count is None else turn_count, "call_id": "none",
        "created_at": NOW, "variation": "{}", "input_tokens": None, "output_tokens": None, "cost_usd": None,
        "latency_ms": None,
    }])
    numbers = numbers or list(range(1, len(turns) + 1))
    ws.append("turns", [{"conversation_id": cid, "turn_number": n, "role": r, "content": c}
                        for n, (r, c) in zip(numbers, turns, strict=True)])


GOOD = [("user", "I'm confused about my budget."), ("assistant", "Let's look at it together. What worries you?"),
        ("user", "I'm curious how much to save."), ("assistant", "Aim for a starter cushion first."),
        ("user", "That's clear now, thanks."), ("assistant", "Glad it helps. Next step: automate it.")]


def test_pairs_follow_the_enriched_structure(ws: Workspace) -> None:
    plant(ws, "good", GOOD)
    result = enrich(ws)
    assert (result.enriched, result.failed, result.pairs) == (1, 0, 3)
    pairs = ws.sql("SELECT * FROM training_pairs ORDER BY turn_number").to_dicts()
    assert [p["pair_id"] for p in pairs] == ["good_turn2", "good_turn4", "good_turn6"]
    third = pairs[2]
    assert third["current_user_input"] == GOOD[4][1] and third["target_response"] == GOOD[5][1]
    assert third["conversation_history"] == [{"role": r, "content": c} for r, c in GOOD[:4]]
    assert pairs[0]["conversation_history"] == []
    assert third["primary_emotion"] == "clear" and third["expected_stage_emotion"] == "clear"
    assert pairs[0]["primary_emotion"] == "confused" and pairs[0]["valence"] < 0 < third["valence"]
    assert "Elena Marquez" in third["system_prompt"]
    status = ws.sql("SELECT enrichment_status, enrichment_version FROM conversations").row(0)
    assert status == ("completed", ENRICHMENT_VERSION)
    doc = enriched_conversation(ws, "good")
    EnrichedConversation.model_validate(doc)
    assert doc["dataset_metadata"]["dataset_name"] == "fp_conversation_good"
    assert doc["dataset_metadata"]["total_turns"] == 6
    meta = doc["training_pairs"][0]["conversation_metadata"]
    assert meta["client_persona"] == "David Chen - The Pragmatic Optimist"
    assert meta["emotional_arc"] == "Confusion -> Clarity" and meta["training_topic_key"] == "emergency_fund"


BAD = {
    "empty_turn": ([("user", "Hi"), ("assistant", "   ")], {}, "turn 2 is empty"),
    "not_alternating": ([("user", "Hi"), ("user", "Hello?"), ("assistant", "Yes")], {}, "roles must alternate"),
    "advisor_first": ([("assistant", "Hello"), ("user", "Hi")], {}, "turn 1 is 'assistant'"),
    "gap": ([("user", "Hi"), ("assistant", "Yes")], {"numbers": [1, 3]}, "not 1..2 without gaps"),
    "bad_role": ([("user", "Hi"), ("system", "x")], {}, "turn 2 has role 'system'"),
    "unknown_persona": (GOOD, {"persona": "ghost"}, "persona_key 'ghost' is not in the scaffolding"),
    "count_mismatch": (GOOD, {"turn_count": 9}, "says 9 turns but has 6"),
    "no_advisor": ([("user", "Hi")], {}, "no advisor turn"),
    "huge": ([("user", "x" * 30_000), ("assistant", "ok")], {}, "over 20000"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_kind_of_bad_record_is_reported_and_the_good_ones_go_on(ws: Workspace, case: str) -> None:
    turns, options, reason = BAD[case]
    plant(ws, "good_before", GOOD)
    plant(ws, case, turns, **options)
    plant(ws, "good_after", GOOD)
    result = enrich(ws)
    assert (result.enriched, result.failed) == (2, 1)
    assert result.errors[0]["conversation_id"] == case and reason in result.errors[0]["reason"]
    assert result.errors[0]["fix"]
    status = dict(ws.sql("SELECT conversation_id, enrichment_status FROM conversations").iter_rows())
    assert status == {"good_before": "completed", case: "failed", "good_after": "completed"}
    assert ws.sql("SELECT count(DISTINCT conversation_id) FROM training_pairs").item() == 2
    assert ws.sql("SELECT reason FROM enrichment_errors").item() == result.errors[0]["reason"]
    with pytest.raises(WorkspaceError, match="no training pairs"):
        enriched_conversation(ws, case)


def test_enrichment_is_incremental_and_force_redoes_all(ws: Workspace) -> None:
    plant(ws, "a", GOOD)
    assert enrich(ws).enriched == 1
    plant(ws, "b", GOOD)
    assert enrich(ws).enriched == 1
    assert enrich(ws).enriched == 0
    again = enrich(ws, force=True)
    assert again.enriched == 2
    assert ws.sql("SELECT count(*) FROM training_pairs").item() == 6  # replaced, not doubled


def test_demo_enriches_every_conversation(demo_ws: Workspace) -> None:
    counts = demo_ws.sql("SELECT enrichment_status, count(*) AS n FROM conversations GROUP BY 1").to_dicts()
    assert counts == [{"enrichment_status": "completed", "n": 160}]
    pairs = demo_ws.sql("SELECT count(*) FROM training_pairs").item()
    advisor_turns = demo_ws.sql("SELECT count(*) FROM turns WHERE role = 'assistant'").item()
    assert pairs == advisor_turns > 160
    match = demo_ws.sql("SELECT avg((primary_emotion = expected_stage_emotion)::INT) FROM training_pairs").item()
    assert match > 0.8


def test_normalize_fixes_spelling_not_substance(ws: Workspace) -> None:
    messy = [("Client", "  I'm\u00a0confused\u200b about   my budget.\n\n\n\nReally. "),
             (" ADVISOR ", "Let's look at it.\tWhat worries you?"),
             ("human", "e\u0301 is fine\x07"), ("AI", "Good.")]
    plant(ws, "messy", messy, numbers=[0, 1, 2, 3])
    result = enrich(ws)
    assert (result.enriched, result.failed) == (1, 0)
    pairs = ws.sql("SELECT turn_number, current_user_input, target_response, conversation_history "
                   "FROM training_pairs ORDER BY turn_number").to_dicts()
    assert [p["turn_number"] for p in pairs] == [2, 4]
    assert pairs[0]["current_user_input"] == "I'm confused about my budget.\n\nReally."
    assert pairs[0]["target_response"] == "Let's look at it. What worries you?"
    assert pairs[1]["current_user_input"] == "\u00e9 is fine"  # NFC, control character gone
    assert [t["role"] for t in pairs[1]["conversation_history"]] == ["user", "assistant"]
    raw = ws.sql("SELECT role FROM turns WHERE conversation_id = 'messy' ORDER BY turn_number")["role"].to_list()
    assert raw == ["Client", " ADVISOR ", "human", "AI"]  # the raw record is kept as it was


def test_a_workspace_with_bad_files_and_bad_records_enriches_every_good_one(ws: Workspace) -> None:
    """Good conversations, several kinds of bad record, and two unreadable part files (one holding the
    turns of a conversation, one in the status table): every good one is enriched, every bad one is
    listed with its reason and fix, and the bad files are reported."""
    good = [f"good-{i}" for i in range(5)]
    for cid in good[:3]:
        plant(ws, cid, GOOD)
    for case in ("empty_turn", "not_alternating", "gap", "unknown_persona"):
        turns, options, _ = BAD[case]
        plant(ws, case, turns, **options)
    for cid in good[3:]:
        plant(ws, cid, GOOD)
    # The turns of "lost" sit in a file that cannot be read any more.
    plant(ws, "lost", GOOD)
    turns_dir = ws.root / "tables" / "turns"
    newest = max(turns_dir.glob("part-*.parquet"), key=lambda p: p.stat().st_mtime_ns)
    newest.write_bytes(b"PAR1 truncated by a crash")
    (ws.root / "tables" / "conversation_status").mkdir(parents=True, exist_ok=True)
    (ws.root / "tables" / "conversation_status" / "part-9-9-bad.parquet").write_bytes(b"garbage")

    result = enrich(ws)
    assert result.enriched == 5 and result.failed == 5
    reasons = {e["conversation_id"]: e["reason"] for e in result.errors}
    assert set(reasons) == {"empty_turn", "not_alternating", "gap", "unknown_persona", "lost"}
    for case in ("empty_turn", "not_alternating", "gap", "unknown_persona"):
        assert BAD[case][2] in reasons[case]
    assert "no turns" in reasons["lost"] or "says 6 turns but has 0" in reasons["lost"]
    assert all(e["fix"] for e in result.errors)
    status = dict(ws.sql("SELECT conversation_id, enrichment_status FROM conversations").iter_rows())
    assert {c for c, s in status.items() if s == "completed"} == set(good)
    assert ws.sql("SELECT count(*) FROM training_pairs").item() == 5 * 3
    # Each bad file is either still reported, or was moved to quarantine/ by the compaction after enrichment.
    quarantined = {p.name for p in (ws.root / "quarantine").rglob("*.parquet")}
    problems = " ".join(ws.problems)
    for name in (newest.name, "part-9-9-bad.parquet"):
        assert name in problems or name in quarantined


def test_status_moves_through_in_progress_and_a_crash_is_picked_up_again(ws: Workspace, monkeypatch) -> None:
    import brightrun.enrichment.pipeline as enrichment

    plant(ws, "a", GOOD)
    plant(ws, "b", GOOD)
    assert set(ws.sql("SELECT enrichment_status FROM conversations")["enrichment_status"]) == {"not_started"}

    def crash(*args, **kwargs):
        raise RuntimeError("killed mid-chunk")

    monkeypatch.setattr(enrichment, "build_pairs", crash)
    with pytest.raises(RuntimeError):
        enrich(ws)
    status = dict(ws.sql("SELECT conversation_id, enrichment_status FROM conversations").iter_rows())
    assert status == {"a": "enrichment_in_progress", "b": "enrichment_in_progress"}
    assert ws.scalar("SELECT count(*) FROM training_pairs") == 0
    monkeypatch.undo()
    assert enrich(ws).enriched == 2  # in-progress ones are not done: the next run takes them
    status = dict(ws.sql("SELECT conversation_id, enrichment_status FROM conversations").iter_rows())
    assert status == {"a": "completed", "b": "completed"}
