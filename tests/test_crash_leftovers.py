"""What a killed run leaves behind is reported, picked up and cleaned by the next writer (issue 14, item 9)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from brightrun.cli.main import app
from brightrun.enrichment import interrupted
from brightrun.enrichment.pipeline import _status_rows
from brightrun.workspace import Workspace, utcnow

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


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


# -- the next writer cleans what a killed one left (issue 14, item 9) ------------------------------------

KILLED_COMPACTION = """
import os, signal, sys
from datetime import UTC, datetime
from brightrun.models.feedback import Feedback
from brightrun.workspace import Workspace
from brightrun.workspace import compaction as compaction_module
from brightrun.workspace import store as store_module

ws = Workspace.open(sys.argv[1])
for i in range(70):  # a job's many small parts
    ws.append_models("feedback", [Feedback(feedback_id=f"f{i}", target_type="training_pair", target_id=f"p{i}",
                                           reviewer="ann", rating=4, created_at=datetime.now(UTC))])
point = sys.argv[2]
if point == "base written":  # killed with the new base half-made, before the commit
    real = store_module.TableStore._write_latest
    def write_then_die(self, con, spec, sources, target):
        real(self, con, spec, sources, target)
        os.kill(os.getpid(), signal.SIGKILL)
    store_module.TableStore._write_latest = write_then_die
else:  # killed after the commit, before the absorbed parts were deleted
    real_json = compaction_module.write_json
    def commit_then_die(path, data):
        real_json(path, data)
        if data.get("absorbed"):
            os.kill(os.getpid(), signal.SIGKILL)
    compaction_module.write_json = commit_then_die
ws.compact(tables=["feedback"], publish=False)
"""


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


@pytest.mark.parametrize("point", ["base written", "committed"])
def test_the_next_writer_cleans_a_killed_compaction_and_compacts_what_it_left(ws: Workspace, point: str) -> None:
    from brightrun.enrichment import enrich
    from brightrun.workspace.recovery import COMPACT_AT

    killed = subprocess.run([sys.executable, "-c", KILLED_COMPACTION, str(ws.root), point], cwd=ROOT)
    assert killed.returncode == -signal.SIGKILL
    folder = ws.store.folder("feedback")
    # an append killed mid-write, and a build killed mid-write
    (folder / f".tmp-part-{time.time_ns()}-{dead_pid()}-0123abcd.parquet").write_bytes(b"PAR1 half")
    build = ws.root / "training_files" / "small" / ".tmp-0123abcd-v1"
    build.mkdir(parents=True)
    left = sorted(p.name for p in folder.iterdir())
    assert any(n.startswith(".tmp-") for n in left)
    if point == "base written":
        assert any(n.startswith(".tmp-base-") for n in left) and len([n for n in left if n.startswith("part-")]) == 70
    else:
        assert ws.store.manifest("feedback")["absorbed"]

    enrich(Workspace.open(ws.root))  # any writer; there is nothing to enrich

    names = sorted(p.name for p in folder.iterdir())
    assert not [n for n in names if n.startswith(".tmp-")], names
    assert not ws.store.manifest("feedback")["absorbed"]
    assert len(ws.table_files("feedback").deltas) < COMPACT_AT
    assert not build.exists()
    assert ws.scalar("SELECT count(*) FROM feedback") == 70  # nothing lost, nothing doubled


def test_what_a_live_writer_holds_is_left_alone(ws: Workspace) -> None:
    folder = ws.store.folder("feedback")
    folder.mkdir(parents=True, exist_ok=True)
    half = folder / ".tmp-base-000001-0123abcd.parquet"
    live_part = folder / f".tmp-part-{time.time_ns()}-{os.getpid()}-0123abcd.parquet"
    half.write_bytes(b"PAR1 in progress")
    live_part.write_bytes(b"PAR1 in progress")
    build = ws.root / "training_files" / "small" / ".tmp-0123abcd-v1"
    build.mkdir(parents=True)
    from brightrun.workspace.recovery import training_file_lock

    with ws.lock("compact-feedback"), ws.lock(training_file_lock("small")):
        assert Workspace.open(ws.root).recover() == []
    assert half.exists() and live_part.exists() and build.exists()
    done = Workspace.open(ws.root).recover()  # once they are released
    assert sorted(done) == ["feedback/.tmp-base-000001-0123abcd.parquet", "small/removed .tmp-0123abcd-v1"]
    assert live_part.exists()  # its writer (this process) is alive
