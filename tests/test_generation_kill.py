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
from llm_server import FakeLLMServer
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
