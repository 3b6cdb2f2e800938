"""Several processes on one workspace: a generation in a subprocess while this process reads and
compacts; and SIGKILL of a running generation, then resume."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from brightrun.workspace import Workspace

pytestmark = pytest.mark.slow

# 4 personas x 10 arcs x 8 topics x 10 = 3,200 conversations: a few seconds of work.
GENERATE = ["generate", "--count", "10", "--job-id", "big", "--concurrency", "4"]


def start(path: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "brightrun", *GENERATE, "--workspace", str(path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def raw_rows(ws: Workspace, table: str) -> int:
    """Rows in every readable file of a table, before the view removes doubles."""
    files = ws.table_files(table)
    paths = [str(p) for p in (*files.base, *files.deltas)]
    return duckdb.sql(f"SELECT count(*) FROM read_parquet({paths})").fetchall()[0][0] if paths else 0


def check_complete(ws: Workspace, total: int) -> None:
    check_complete_job(ws, "big", total)
    assert ws.sql("SELECT count(*) FROM llm_calls WHERE status = 'ok'").item() == total


def check_complete_job(ws: Workspace, job_id: str, total: int) -> None:
    counts = ws.sql("SELECT count(*) AS n, count(DISTINCT conversation_id) AS d FROM conversations "
                    "WHERE job_id = ?", [job_id]).row(0)
    assert counts == (total, total)
    assert ws.sql("SELECT count(*) FROM batch_items WHERE job_id = ? AND status = 'completed'",
                  [job_id]).item() == total
    orphans = ws.sql("SELECT count(*) FROM conversations c WHERE NOT EXISTS "
                     "(SELECT 1 FROM turns t WHERE t.conversation_id = c.conversation_id)").item()
    assert orphans == 0
    job = ws.sql("SELECT status, done, failed FROM batch_jobs WHERE job_id = ?", [job_id]).row(0)
    assert job == ("completed", total, 0)
    assert ws.problems == []


def test_generation_in_a_subprocess_while_reading_and_compacting(tmp_path: Path, cli_env: dict) -> None:
    path = tmp_path / "ws"
    reader = Workspace.open(path)
    process = start(path, cli_env)
    seen, reads, compactions = [], 0, 0
    try:
        while process.poll() is None:
            n = reader.sql("SELECT count(*) FROM conversations").item()
            # A conversation is only ever visible with all of its turns.
            broken = reader.sql("SELECT count(*) FROM conversations c WHERE turn_count <> (SELECT count(*) "
                                "FROM turns t WHERE t.conversation_id = c.conversation_id)").item()
            assert broken == 0
            seen.append(n)
            reads += 1
            if reads % 5 == 0:
                reader.compact()
                compactions += 1
            time.sleep(0.05)
    finally:
        out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert seen == sorted(seen) and 0 < len([n for n in seen if 0 < n < 3200]), "no read happened mid-run"
    check_complete(reader, 3200)
    reader.compact()
    check_complete(Workspace.open(path), 3200)
    assert raw_rows(reader, "conversations") == 3200


def test_sigkill_mid_run_then_resume_finishes_exactly_once(tmp_path: Path, cli_env: dict) -> None:
    path = tmp_path / "ws"
    ws = Workspace.open(path)
    process = start(path, cli_env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = ws.sql("SELECT count(*) FROM conversations").item()
        if done >= 200:
            break
        assert process.poll() is None, process.communicate()[1]
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    made = ws.sql("SELECT count(*) FROM conversations").item()
    assert 0 < made < 3200, "the kill did not land mid-run"
    assert ws.sql("SELECT status FROM batch_jobs WHERE job_id = 'big'").item() == "processing"
    calls_before = ws.sql("SELECT item_id FROM llm_calls WHERE status = 'ok'")["item_id"].to_list()

    again = start(path, cli_env)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert "Resuming job big" in err
    check_complete(ws, 3200)
    # No finished item was generated again: every raw row is unique, in every table written per item.
    assert raw_rows(ws, "conversations") == 3200
    ok_calls = ws.sql("SELECT item_id FROM llm_calls WHERE status = 'ok'")["item_id"].to_list()
    assert len(ok_calls) == len(set(ok_calls)) == 3200 and set(calls_before) <= set(ok_calls)
