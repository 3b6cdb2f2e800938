"""What a killed run leaves behind is reported and picked up (issue 14, item 9; in part)."""

from __future__ import annotations

import orjson
from typer.testing import CliRunner

from brightrun.cli.main import app
from brightrun.enrichment import interrupted
from brightrun.enrichment.pipeline import _status_rows
from brightrun.workspace import Workspace, utcnow

runner = CliRunner()


def notes(ws: Workspace) -> dict:
    shown = runner.invoke(app, ["status", "-w", str(ws.root), "--json"])
    assert shown.exit_code == 0, shown.output
    return orjson.loads(shown.stdout)["notes"]


def test_status_reports_an_interrupted_enrichment_and_enrich_finishes_it(demo_copy: Workspace) -> None:
    ids = demo_copy.sql("SELECT conversation_id FROM conversations ORDER BY 1 LIMIT 3")["conversation_id"].to_list()
    pairs_before = demo_copy.scalar("SELECT count(*) FROM training_pairs")
    assert "enrichment" not in notes(demo_copy)
    # What a run killed between its two status writes leaves: the conversations marked in progress.
    demo_copy.append("conversation_status", _status_rows(ids, "enrichment_in_progress", utcnow()))
    assert interrupted(demo_copy) == 3
    assert "3 conversation(s) left mid-enrichment" in notes(demo_copy)["enrichment"]
    assert "`brightrun enrich`" in notes(demo_copy)["enrichment"]

    with demo_copy.lock("enrichment"):  # a run holding them now is not an interruption
        assert interrupted(demo_copy) == 0

    done = runner.invoke(app, ["enrich", "-w", str(demo_copy.root), "--json"])
    assert done.exit_code == 0 and orjson.loads(done.stdout)["enriched"] == 3
    assert interrupted(demo_copy) == 0 and "enrichment" not in notes(demo_copy)
    assert demo_copy.scalar("SELECT count(*) FROM training_pairs") == pairs_before  # redone, not doubled


def test_feedback_parts_are_compacted_as_reviews_come_in(demo_copy: Workspace, monkeypatch) -> None:
    from brightrun.feedback import store

    monkeypatch.setattr(store, "COMPACT_AT", 8, raising=False)
    pairs = demo_copy.sql("SELECT pair_id FROM training_pairs ORDER BY 1 LIMIT 20")["pair_id"].to_list()
    before = demo_copy.scalar("SELECT count(*) FROM feedback")
    for i, pair in enumerate(pairs):
        store.record_feedback(demo_copy, "training_pair", pair, f"r{i % 3}", helpful=i % 2 == 0)
        assert len(demo_copy.table_files("feedback").deltas) < 8
    assert demo_copy.scalar("SELECT count(*) FROM feedback") == before + 20  # nothing lost or doubled
    assert demo_copy.scalar("SELECT count(*) FROM feedback WHERE target_id IN (SELECT unnest(?))", [pairs]) >= 20
