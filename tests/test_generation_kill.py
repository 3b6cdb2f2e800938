"""SIGKILL of a running job against the local API server, in Messages and in Batches mode, then
`brightrun jobs resume`: exactly the requested conversations, no duplicates, and the server's
counts show that no item whose answer had arrived was requested again."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from llm_server import FakeLLMServer, FaultPlan
from test_concurrency import check_complete_job, raw_rows

from brightrun.workspace import Workspace

pytestmark = pytest.mark.slow
KEY = "sk-ant-kill-test-0a9b8c7d6e5f"


def cli(path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "brightrun", *args, "--workspace", str(path)]


def answered_items(ws: Workspace) -> set[str]:
    """Items with a stored conversation or a journaled (received, paid) answer."""
    made = set(ws.sql("SELECT item_id FROM conversations")["item_id"].to_list())
    for path in (ws.root / "journal").rglob("*.jsonl"):
        for line in path.read_bytes().splitlines():
            try:
                made.add(orjson.loads(line)["cache"]["paid_by_call"].split("call-", 1)[1].rsplit("-a", 1)[0])
            except (orjson.JSONDecodeError, KeyError, IndexError):
                continue
    return made


@pytest.mark.parametrize("mode", ["messages", "batches"])
def test_sigkill_then_resume(tmp_path: Path, cli_env: dict, mode: str) -> None:
    env = {**cli_env, "ANTHROPIC_API_KEY": KEY}
    path = tmp_path / "ws"
    ws = Workspace.open(path)
    with FakeLLMServer(seed=5, latency=0.05) as server:
        server.batch_delay = 1.5
        args = ["generate", "--provider", "anthropic", "--base-url", server.base_url, "--persona", "david_chen",
                "--persona", "priya_natarajan", "--count", "2", "--job-id", "kill", "--concurrency", "8",
                "--seed", "4"]
        if mode == "batches":
            args.append("--batch-api")
        process = subprocess.Popen(cli(path, *args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        total = 2 * 10 * 8 * 2
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if mode == "messages" and ws.sql("SELECT count(*) FROM conversations").item() >= 40:
                break
            if mode == "batches" and ws.sql("SELECT count(*) FROM provider_batches").item() >= 1:
                break
            assert process.poll() is None, process.communicate()[1].decode()
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL

        before = dict(server.item_counts())
        answered = answered_items(ws)
        batches_before = server.counts().get("batches_create", 0)
        requests_before = server.counts().get("batch_requests", 0)
        made = ws.sql("SELECT count(*) FROM conversations").item()
        assert made < total, "the kill did not land mid-run"

        resumed = subprocess.run(cli(path, "jobs", "resume", "kill"), env=env, capture_output=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr.decode()

        after = server.item_counts()
        check_complete_job(ws, "kill", total)
        assert raw_rows(ws, "conversations") == total
        again = [item for item in answered if after.get(item, 0) != before.get(item, 0)]
        assert again == [], f"{len(again)} answered item(s) were requested again"
        if mode == "batches":
            # Every item went out in the batch(es) submitted before the kill; the resume polled them
            # and submitted nothing again.
            assert batches_before >= 1
            assert server.counts()["batches_create"] == batches_before
            assert server.counts()["batch_requests"] == requests_before == total
        assert KEY not in resumed.stderr.decode() + resumed.stdout.decode()


def _journaled_corrections(ws: Workspace) -> list[str]:
    """Call ids of usable answers to a correction request (attempt 2 or later) waiting in the journal."""
    found = []
    for path in (ws.root / "journal").rglob("*.jsonl"):
        for line in path.read_bytes().splitlines():
            try:
                row = orjson.loads(line)["cache"]
            except (orjson.JSONDecodeError, KeyError):
                continue
            if row["usable"] and not row["paid_by_call"].endswith("-a1"):
                found.append(row["paid_by_call"])
    return found


def test_sigkill_after_a_corrected_answer_repeats_no_request_and_the_ledger_matches_what_was_paid(
        tmp_path: Path, cli_env: dict) -> None:
    env = {**cli_env, "ANTHROPIC_API_KEY": KEY}
    path = tmp_path / "ws"
    ws = Workspace.open(path)
    # Half the answers miss the schema: each such item gets a correction request, usually answered well.
    with FakeLLMServer(seed=11, latency=0.05, faults=FaultPlan(rate=0.5, kinds=["schema_invalid"])) as server:
        args = ["generate", "--provider", "anthropic", "--base-url", server.base_url, "--persona", "david_chen",
                "--arc", "confusion_to_clarity", "--arc", "anxiety_to_confidence", "--count", "2",
                "--job-id", "fix", "--concurrency", "4", "--seed", "9", "--max-attempts", "6"]
        process = subprocess.Popen(cli(path, *args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while not _journaled_corrections(ws):
            assert time.monotonic() < deadline and process.poll() is None, process.communicate()[1].decode()
            time.sleep(0.005)
        # Hold the server's answers so every answer sent has reached the client, then kill it.
        server.held = True
        time.sleep(0.4)
        corrected = _journaled_corrections(ws)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        server.held = False
        answered_before = dict(server.answered_bodies)
        assert corrected, "the kill did not land with a corrected answer unwritten"
        made_before = ws.sql("SELECT count(*) FROM conversations").item()

        resumed = subprocess.run(cli(path, "jobs", "resume", "fix"), env=env, capture_output=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr.decode()

        total = 2 * 2 * 8
        check_complete_job(ws, "fix", total)
        assert made_before < total
        # No request answered before the kill was sent again: the resume replayed the journal instead.
        repeated = [d for d, n in answered_before.items() if server.answered_bodies[d] != n]
        assert repeated == [], f"{len(repeated)} request(s) answered before the kill were paid for again"
        # The ledger holds every answer the server was paid for, once, with its tokens and cost.
        ledger = ws.sql("SELECT count(*) AS n, sum(input_tokens) AS i, sum(output_tokens) AS o, sum(cost_usd) AS c "
                        "FROM llm_calls WHERE job_id = 'fix' AND response <> ''").row(0, named=True)
        assert ledger["n"] == server.paid["answers"]
        assert (ledger["i"], ledger["o"]) == (server.paid["input_tokens"], server.paid["output_tokens"])
        from brightrun.providers.pricing import price_table

        paid = price_table().cost("claude-sonnet-5-5", server.paid["input_tokens"], server.paid["output_tokens"])
        assert ledger["c"] == pytest.approx(paid, rel=1e-9)
        # The corrected answers recovered from the journal are the conversations of their items.
        calls = set(ws.sql("SELECT call_id FROM conversations WHERE job_id = 'fix'")["call_id"].to_list())
        assert set(corrected) <= calls
        job = ws.sql("SELECT cost_usd FROM batch_jobs WHERE job_id = 'fix'").item()
        assert job == pytest.approx(paid, abs=1e-6)
