"""Published Delta tables (brightrun.workspace.publish): what other engines read is exactly each view's rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest
from deltalake import DeltaTable
from typer.testing import CliRunner

from brightrun.cli.main import app
from brightrun.workspace import Workspace
from brightrun.workspace.publish import PINNED_TABLES, delta_path
from brightrun.workspace.tables import TABLES
from brightrun.workspace.views import TABLE_VIEWS

ROOT = Path(__file__).resolve().parents[1]


def utc(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col(pl.Datetime).dt.convert_time_zone("UTC"))


def ordered(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    return utc(frame).sort(list(TABLES[table].key))


def view_rows(ws: Workspace, table: str) -> pl.DataFrame:
    """The rows the workspace's SQL view of the table shows (the view named after it; `conversations` adds
    derived columns, and a table without a view of its name is read through its internal one)."""
    view = table if table in TABLE_VIEWS and table != "conversations" else f"_t_{table}"
    return ordered(ws.sql(f"SELECT {', '.join(TABLES[table].schema)} FROM {view}"), table)


def duckdb_rows(path: Path, table: str) -> pl.DataFrame:
    uris = DeltaTable(path).file_uris()
    if not uris:
        return pl.DataFrame(schema=TABLES[table].schema)
    return ordered(duckdb.connect().sql("SELECT * FROM read_parquet(?)", params=[uris]).pl(), table)


def changed_pair(ws: Workspace, text: str) -> dict:
    row = ws.read("training_pairs", lambda rows: rows.sort("pair_id").head(1)).to_dicts()[0]
    return {**row, "target_response": text}


def test_every_published_table_reads_back_as_exactly_the_rows_of_its_view(advisor: Workspace) -> None:
    ws = advisor
    ws.compact()
    # rows superseded after the compaction: a foreign reader of the Parquet parts would see both versions
    status = ws.read("conversation_status", lambda r: r.head(1)).to_dicts()[0]
    ws.append("conversation_status", [{**status, "status": "failed"}])
    ws.append("training_pairs", [changed_pair(ws, "superseded once")])
    ws.append("training_pairs", [changed_pair(ws, "the current answer")])
    result = ws.publish()
    assert set(result) == set(TABLES)
    assert result["training_pairs"].rows == ws.scalar("SELECT count(*) FROM training_pairs")
    nonempty = 0
    for table in TABLES:
        path = delta_path(ws.store, table)
        expected = view_rows(ws, table)
        nonempty += expected.height > 0
        from_polars = pl.scan_delta(str(path)).collect()
        assert from_polars.schema == pl.Schema(TABLES[table].schema), table
        assert ordered(from_polars, table).equals(expected), table
        assert duckdb_rows(path, table).equals(expected), table
    assert nonempty >= 14  # jobs, conversations, turns, calls, pairs, feedback, training files, pins, ...
    pairs = pl.scan_delta(str(delta_path(ws.store, "training_pairs"))).filter(
        pl.col("pair_id") == changed_pair(ws, "")["pair_id"]).collect()
    assert pairs["target_response"].to_list() == ["the current answer"]
    published = pl.scan_delta(str(delta_path(ws.store, "conversation_status"))).filter(
        pl.col("conversation_id") == status["conversation_id"]).collect()
    assert published["status"].to_list() == ["failed"]


def writes(ws: Workspace, table: str, at: dict) -> int:
    """How many WRITE commits the table had at the publication `at`."""
    history = DeltaTable(delta_path(ws.store, table)).history()
    return len([h for h in history if h["operation"] == "WRITE" and h["version"] <= at[table].version])


def test_compaction_publishes_the_tables_that_changed_and_skips_the_rest(demo_copy: Workspace) -> None:
    ws = demo_copy
    ws.compact(min_parts=1)  # every table's rows in base files, as after a job's compaction
    first = ws.publish()
    again = ws.publish()
    assert all(p.rows is None for p in again.values())
    assert {t: p.version for t, p in again.items()} == {t: p.version for t, p in first.items()}
    feedback = ws.read("feedback", lambda r: r.head(1)).to_dicts()[0]
    ws.append("feedback", [{**feedback, "feedback_id": "fb-new", "comment": "published after compaction"}])
    ws.append("feedback", [{**feedback, "feedback_id": "fb-new-2"}])
    ws.compact(tables=["feedback", "turns"])
    assert DeltaTable(delta_path(ws.store, "feedback")).history(1)[0]["operation"] == "VACUUM END"
    write = [h for h in DeltaTable(delta_path(ws.store, "feedback")).history() if h["operation"] == "WRITE"]
    # two new keys, merged as one more base file: only their rows are appended, the table is not rewritten
    assert len(write) == writes(ws, "feedback", first) + 1 and write[0]["operationParameters"]["mode"] == "Append"
    assert write[0]["operationMetrics"]["num_added_rows"] == 2
    assert ordered(pl.scan_delta(str(delta_path(ws.store, "feedback"))).collect(), "feedback").equals(
        view_rows(ws, "feedback"))
    # a row changed in place: the compaction rewrites the base, and the publication rewrites the table
    ws.append("feedback", [{**feedback, "feedback_id": "fb-new", "comment": "changed"}])
    ws.compact(tables=["feedback"])
    write = [h for h in DeltaTable(delta_path(ws.store, "feedback")).history() if h["operation"] == "WRITE"]
    assert write[0]["operationParameters"]["mode"] == "Overwrite"
    assert write[0]["operationMetrics"]["num_added_rows"] == ws.scalar("SELECT count(*) FROM feedback")
    assert ordered(pl.scan_delta(str(delta_path(ws.store, "feedback"))).collect(), "feedback").equals(
        view_rows(ws, "feedback"))
    # turns did not change: not written again
    assert len([h for h in DeltaTable(delta_path(ws.store, "turns")).history()
                if h["operation"] == "WRITE"]) == writes(ws, "turns", first)
    rows = pl.scan_delta(str(delta_path(ws.store, "feedback"))).filter(pl.col("feedback_id") == "fb-new").collect()
    assert rows["comment"].to_list() == ["changed"]
    # with publish=False, compaction leaves the published copy alone
    ws.append("feedback", [{**feedback, "feedback_id": "fb-new-3"}])
    ws.compact(tables=["feedback"], publish=False)
    assert pl.scan_delta(str(delta_path(ws.store, "feedback"))).filter(
        pl.col("feedback_id") == "fb-new-3").collect().height == 0


def test_a_training_file_version_pins_its_delta_versions_and_vacuum_keeps_only_pinned_ones(advisor: Workspace) -> None:
    ws = advisor
    ws.publish()
    pins = ws.sql("SELECT * FROM delta_pins ORDER BY training_file_version, table_name")
    versions = ws.sql("SELECT version FROM training_file_versions WHERE name = 'advisor' ORDER BY version")
    assert pins.height == versions.height * len(PINNED_TABLES)
    assert set(pins["table_name"]) == set(PINNED_TABLES)
    pinned = pins.filter(pl.col("table_name") == "training_pairs")["delta_version"].max()
    path = delta_path(ws.store, "training_pairs")
    before = ordered(pl.scan_delta(str(path), version=pinned).collect(), "training_pairs")
    # the pins are themselves published
    assert pl.scan_delta(str(delta_path(ws.store, "delta_pins"))).collect().height == pins.height

    ws.append("training_pairs", [changed_pair(ws, "edit one")])
    middle = ws.publish(["training_pairs"])["training_pairs"].version
    ws.append("training_pairs", [changed_pair(ws, "edit two")])
    latest = ws.publish(["training_pairs"])["training_pairs"].version
    assert pinned < middle < latest

    # the pinned version reads as it was; the unpinned one in between is gone; the latest is current
    assert ordered(pl.scan_delta(str(path), version=pinned).collect(), "training_pairs").equals(before)
    assert ordered(pl.scan_delta(str(path)).collect(), "training_pairs").equals(view_rows(ws, "training_pairs"))
    with pytest.raises(Exception, match="(?i)not found|no such file|does not exist"):
        pl.scan_delta(str(path), version=middle).collect()
    on_disk = {p.name for p in path.glob("*.parquet")}
    kept = {Path(u).name for v in (pinned, latest) for u in DeltaTable(path, version=v).file_uris()}
    assert on_disk == kept

    # a new training-file version gets pins of its own, naming the latest published versions
    from brightrun.training_files import remove_conversations

    member = ws.sql("SELECT conversation_id FROM training_file_conversations WHERE name = 'advisor' LIMIT 1").item()
    new = remove_conversations(ws, "advisor", [member])
    ws.publish(["feedback"])  # any publish pins training-file versions it has not pinned yet
    mine = ws.sql("SELECT table_name, delta_version FROM delta_pins WHERE training_file_version = ?", [new.version])
    assert dict(mine.iter_rows()) == {t: _last_write(delta_path(ws.store, t)) for t in PINNED_TABLES}
    members = pl.scan_delta(str(delta_path(ws.store, "training_file_versions")),
                            version=dict(mine.iter_rows())["training_file_versions"]).filter(
        pl.col("version") == new.version).collect()
    assert member not in members["member_ids"].item().to_list()


def _last_write(path: Path) -> int:
    return next(h["version"] for h in DeltaTable(path).history() if h["operation"] == "WRITE")


STALL = r"""
import pathlib, sys, time
import pyarrow as pa
import brightrun.workspace.publish as publish
from brightrun.workspace import Workspace

real = publish.current_rows

def stalled(*args):
    reader = real(*args)
    def batches():
        yield from reader
        pathlib.Path(sys.argv[2]).write_text("every row handed to the writer")
        time.sleep(600)
    return pa.RecordBatchReader.from_batches(reader.schema, batches())

publish.current_rows = stalled
Workspace.open(sys.argv[1]).publish(["training_pairs"])
"""


def test_a_publish_killed_mid_write_leaves_the_previous_version_readable(demo_copy: Workspace, tmp_path: Path) -> None:
    ws = demo_copy
    ws.publish(["training_pairs"])
    path = delta_path(ws.store, "training_pairs")
    version, before = DeltaTable(path).version(), view_rows(ws, "training_pairs")
    ws.append("training_pairs", [changed_pair(ws, "written by a publish that was killed")])
    flag = tmp_path / "stalled"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", STALL, str(ws.root), str(flag)], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while not flag.exists():
            assert child.poll() is None and time.monotonic() < deadline, "the publishing child ended early"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert DeltaTable(path).version() == version
    assert ordered(pl.scan_delta(str(path)).collect(), "training_pairs").equals(before)
    assert duckdb_rows(path, "training_pairs").equals(before)
    # the next publish writes the current rows and clears what the killed writer left
    ws.publish(["training_pairs"])
    assert ordered(pl.scan_delta(str(path)).collect(), "training_pairs").equals(view_rows(ws, "training_pairs"))
    assert {p.name for p in path.glob("*.parquet")} == {Path(u).name for u in DeltaTable(path).file_uris()}


def test_the_publish_command_reports_what_it_wrote(demo_ws_path: Path, tmp_path: Path) -> None:
    import shutil

    target = tmp_path / "ws"
    shutil.copytree(demo_ws_path, target, ignore=shutil.ignore_patterns("locks", "delta"))
    runner = CliRunner()
    result = runner.invoke(app, ["publish", "-w", str(target), "-t", "conversations", "-t", "turns"])
    assert result.exit_code == 0, result.output
    assert "conversations: version 0, 160 rows" in result.output and "Published 2 table(s)" in result.output
    assert sorted(p.name for p in (target / "delta").iterdir() if p.is_dir()) == ["conversations", "turns"]
    again = runner.invoke(app, ["publish", "-w", str(target), "-t", "conversations"])
    assert again.exit_code == 0 and "Published 0 table(s), 1 unchanged" in again.output
    bad = subprocess.run([sys.executable, "-m", "brightrun", "publish", "-w", str(target), "-t", "feedback",
                          "-t", "conversation"], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert bad.returncode == 2 and "error: unknown table 'conversation'" in bad.stderr and "Fix:" in bad.stderr
    assert sorted(p.name for p in (target / "delta").iterdir() if p.is_dir()) == ["conversations", "turns"]


def test_without_deltalake_publishing_says_how_to_install_it(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from brightrun.errors import WorkspaceError

    monkeypatch.setitem(sys.modules, "deltalake", None)  # an install from before deltalake was a dependency
    with pytest.raises(WorkspaceError, match=r"needs the `deltalake` package.*Fix: run `make install`"):
        ws.publish()
    assert not (ws.root / "delta").exists()


def test_a_table_is_published_with_its_compaction_held_off(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compaction deletes the parts it absorbs: one in another process while a table is read for publishing
    made the read fail on a vanished part. Its compaction lock is held while the table is listed and read."""
    from datetime import UTC, datetime

    from brightrun.models.feedback import Feedback
    from brightrun.workspace import publish as publishing

    ws.append_models("feedback", [Feedback(feedback_id="f1", target_type="training_pair", target_id="p1",
                                           reviewer="ann", rating=4, created_at=datetime.now(UTC))])
    held: dict[str, bool] = {}
    real = publishing._write

    def watching(con, store, table, files, signature, added=None):
        held[table] = ws.lock_held(f"compact-{table}")
        return real(con, store, table, files, signature, added)

    monkeypatch.setattr(publishing, "_write", watching)
    ws.publish(["feedback"])
    assert held == {"feedback": True}
    assert not ws.lock_held("compact-feedback")


def test_each_job_appends_only_its_own_rows_to_the_published_tables(ws: Workspace) -> None:
    """After a job, its tables' new base file is appended to the Delta copy, not the whole table rewritten;
    the copy still holds exactly the view's rows."""
    from brightrun.generation import create_job, plan_uniform, run_job
    from brightrun.providers import ScriptedProvider

    plan = plan_uniform(ws.scaffolding.cells(["david_chen"], ["confusion_to_clarity", "grief_to_planning"],
                                             ["emergency_fund", "mortgage_payoff_strategy"]), 3)
    ws.compact(min_parts=1)
    for job_id in ("first", "second"):
        create_job(ws, plan, provider="scripted", model="scripted-1", seed=len(job_id), job_id=job_id)
        run_job(ws, job_id, ScriptedProvider(), flush_items=1)  # one part per conversation: the job compacts
        assert ws.wait_for_background(timeout=60)
        for table in ("conversations", "turns", "llm_calls"):
            assert ordered(pl.scan_delta(str(delta_path(ws.store, table))).collect(), table).equals(
                view_rows(ws, table)), (job_id, table)
    last = [h for h in DeltaTable(delta_path(ws.store, "conversations")).history() if h["operation"] == "WRITE"][0]
    assert last["operationParameters"]["mode"] == "Append" and last["operationMetrics"]["num_added_rows"] == 12
