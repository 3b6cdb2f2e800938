"""Generation against a real local HTTP server speaking the Anthropic and OpenAI APIs, through the
real SDKs: faults, permanent failures, the cache, cancellation, quota, keys that never leak."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from llm_server import FakeLLMServer, FaultPlan

from brightrun.generation import (
    RunSettings,
    create_job,
    load_job,
    make_plan,
    request_cancel,
    resume_job,
    retry_failed,
    run_job,
)
from brightrun.generation.estimate import estimate_plan
from brightrun.providers.claude import ClaudeProvider
from brightrun.providers.openai_compat import OpenAICompatibleProvider
from brightrun.workspace import Workspace

KEY = "sk-ant-test-6f1c2d9e8b7a-never-log-me"
FAST = RunSettings(concurrency=16, max_attempts=8, flush_items=100, flush_seconds=0.5, backoff_base=0.01)


@pytest.fixture
def server():
    with FakeLLMServer(seed=7) as srv:
        yield srv


def claude(server: FakeLLMServer, timeout: float = 10.0) -> ClaudeProvider:
    return ClaudeProvider(api_key=KEY, base_url=server.base_url, timeout=timeout)


def plan(ws: Workspace, count: int, personas=None):
    return make_plan(ws, personas or ["david_chen"], None, None, count=count)


def new_job(ws: Workspace, count: int, job_id: str = "j", seed: int = 1, **kw):
    return create_job(ws, plan(ws, count), provider="anthropic", model="", seed=seed, job_id=job_id, **kw)


def test_claude_round_trip_records_tokens_cost_and_items(ws: Workspace, server: FakeLLMServer) -> None:
    job = new_job(ws, 1, concurrency=8)  # 80 cells of david_chen
    done = run_job(ws, job.job_id, claude(server), settings=FAST)
    assert (done.status, done.done, done.failed) == ("completed", 80, 0)
    calls = ws.sql("SELECT * FROM llm_calls")
    assert calls.height == 80 and set(calls["provider"]) == {"anthropic"} and (calls["status"] == "ok").all()
    assert (calls["input_tokens"] > 0).all() and (calls["output_tokens"] > 0).all()
    expected = (calls["input_tokens"].sum() * 2 + calls["output_tokens"].sum() * 10) / 1e6  # claude-sonnet-5-5
    assert done.cost_usd == pytest.approx(expected, rel=1e-3)
    assert server.counts()["messages"] == 80 and set(server.item_counts().values()) == {1}
    conv = ws.sql("SELECT * FROM conversations")
    assert conv.height == 80 and not conv["is_scripted"].any() and set(conv["provider"]) == {"anthropic"}


def test_500_items_complete_with_20_percent_mixed_transient_faults(ws: Workspace, server: FakeLLMServer) -> None:
    server.faults = FaultPlan(rate=0.2, kinds=["rate_limit", "server_error", "overloaded", "hang", "drop",
                                               "malformed_json", "schema_invalid", "truncated"],
                              retry_after=0.05, hang_seconds=3.0)
    job = create_job(ws, make_plan(ws, None, None, None, count=2)[:250], provider="anthropic", model="",
                     seed=3, job_id="faulty")
    settings = RunSettings(concurrency=32, max_attempts=10, flush_items=100, flush_seconds=0.5, backoff_base=0.01)
    done = run_job(ws, job.job_id, claude(server, timeout=1.0), settings=settings)
    assert (done.total, done.done, done.failed) == (500, 500, 0)
    assert ws.sql("SELECT count(DISTINCT conversation_id) FROM conversations").item() == 500
    errors = ws.sql("SELECT error FROM llm_calls WHERE status = 'error'")["error"].to_list()
    assert len(errors) > 50  # every failed attempt is on record
    seen = " ".join(errors)
    for fragment in ("HTTP 429", "HTTP 500", "HTTP 529", "Timeout", "cut off", "schema"):
        assert fragment in seen, fragment


def test_permanent_failures_land_with_their_error_type(ws: Workspace, server: FakeLLMServer) -> None:
    job = new_job(ws, 1)
    items = ws.sql("SELECT item_id FROM batch_items ORDER BY item_index")["item_id"].to_list()
    server.faults = FaultPlan(permanent={items[0]: "schema_invalid", items[1]: "bad_request",
                                         items[2]: "truncated"})
    done = run_job(ws, job.job_id, claude(server), settings=RunSettings(max_attempts=3, backoff_base=0.01))
    assert (done.done, done.failed) == (77, 3)
    failed = {r["item_id"]: r for r in ws.sql("SELECT * FROM failed_generations").iter_rows(named=True)}
    assert failed[items[0]]["error_type"] == "malformed_output" and failed[items[0]]["raw_response"]
    assert failed[items[1]]["error_type"] == "bad_request" and failed[items[1]]["attempt"] == 1
    assert failed[items[2]]["error_type"] == "malformed_output" and "cut off" in failed[items[2]]["message"]
    assert server.item_counts()[items[0]] == 3 and server.item_counts()[items[1]] == 1
    # The corrected retries carried the validation error back to the model.
    retry = ws.sql("SELECT request FROM llm_calls WHERE item_id = ? AND attempt = 2", [items[0]]).item()
    assert "could not be used" in retry and "schema" in retry
    server.faults = FaultPlan()
    assert retry_failed(ws, job.job_id) == 3
    again = resume_job(ws, job.job_id, provider=claude(server), settings=FAST)
    assert (again.done, again.failed) == (80, 0)


def test_a_rerun_pays_nothing(ws: Workspace, server: FakeLLMServer) -> None:
    run_job(ws, new_job(ws, 1, seed=9).job_id, claude(server), settings=FAST)
    assert server.counts()["messages"] == 80
    server.reset_counts()
    assert run_job(ws, "j", claude(server), settings=FAST).done == 80  # the finished job itself
    again = create_job(ws, plan(ws, 1), provider="anthropic", model="", seed=9, job_id="same-again")
    done = run_job(ws, again.job_id, claude(server), settings=FAST)
    assert done.done == 80 and done.cost_usd == 0
    assert server.counts()["total"] == 0
    hits = ws.sql("SELECT cache_hit, cost_usd FROM llm_calls WHERE job_id = 'same-again'")
    assert hits["cache_hit"].all() and hits["cost_usd"].sum() == 0


def test_authentication_error_stops_the_job_with_the_fix(ws: Workspace, server: FakeLLMServer) -> None:
    from brightrun.errors import JobError

    job = new_job(ws, 1)
    server.faults = FaultPlan(permanent={i: "authentication" for i in
                                         ws.sql("SELECT item_id FROM batch_items")["item_id"].to_list()})
    with pytest.raises(JobError, match="ANTHROPIC_API_KEY"):
        run_job(ws, job.job_id, claude(server), settings=FAST)
    state = load_job(ws, job.job_id)
    assert state.status == "failed" and "ANTHROPIC_API_KEY" in state.note and KEY not in state.note


def test_cancel_stops_new_calls_and_lets_in_flight_land(ws: Workspace, server: FakeLLMServer) -> None:
    server.latency = 0.2
    job = new_job(ws, 2)  # 160 items at 4 in flight: ~8 s uncancelled
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(job=run_job(
        ws, job.job_id, claude(server), settings=RunSettings(concurrency=4, flush_seconds=0.2))))
    thread.start()
    deadline = time.monotonic() + 30
    while server.counts()["messages"] < 12 and time.monotonic() < deadline:
        time.sleep(0.05)
    request_cancel(ws, job.job_id)
    thread.join(timeout=30)
    sent = server.counts()["messages"]
    cancelled = result["job"]
    assert cancelled.status == "cancelled" and 12 <= cancelled.done < 160
    assert cancelled.done == sent  # every call in flight landed and was kept
    time.sleep(0.5)
    assert server.counts()["messages"] == sent  # nothing more was sent
    server.latency = 0.0
    finished = resume_job(ws, job.job_id, provider=claude(server), settings=FAST)
    assert (finished.status, finished.done) == ("completed", 160)
    assert server.counts()["messages"] == 160


def test_quota_fills_only_the_missing_cells(ws: Workspace, server: FakeLLMServer) -> None:
    run_job(ws, new_job(ws, 1, job_id="first").job_id, claude(server), settings=FAST)
    cells = ws.scaffolding.cells(["david_chen", "marcus_chen"], ["fear_to_security"], None)
    quota = make_plan(ws, ["david_chen", "marcus_chen"], ["fear_to_security"], None, quota=2)
    assert sum(p.count for p in quota) == 8 * 1 + 8 * 2 and len(quota) == len(cells)
    job = create_job(ws, quota, provider="anthropic", model="", seed=1, job_id="quota")
    run_job(ws, job.job_id, claude(server), settings=FAST)
    per_cell = ws.sql("SELECT persona_key, topic_key, count(*) AS n FROM conversations "
                      "WHERE arc_key = 'fear_to_security' GROUP BY ALL")
    assert set(per_cell["n"]) == {2} and per_cell.height == 16
    assert make_plan(ws, ["david_chen", "marcus_chen"], ["fear_to_security"], None, quota=2) == []
    # New samples are new requests, not cache hits of the first job's samples.
    assert ws.sql("SELECT count(*) FROM llm_calls WHERE job_id = 'quota' AND cache_hit").item() == 0


def test_estimate_uses_rendered_prompts_and_recent_averages(ws: Workspace, server: FakeLLMServer) -> None:
    first = estimate_plan(ws, plan(ws, 1), provider="anthropic", model=None)
    assert first.items == 80 and first.input_tokens > 80 * 500 and first.priced and first.cost_usd > 0
    assert "turn counts" in first.basis
    run_job(ws, new_job(ws, 1).job_id, claude(server), settings=FAST)
    second = estimate_plan(ws, plan(ws, 1), provider="anthropic", model=None, batch=True)
    actual_out = int(ws.sql("SELECT sum(output_tokens) FROM llm_calls").item())
    assert second.output_tokens == pytest.approx(actual_out, rel=0.05) and "recent calls" in second.basis
    unknown = estimate_plan(ws, plan(ws, 1), provider="anthropic", model="claude-unpriced-9")
    assert not unknown.priced and "unknown" in unknown.summary



def test_an_estimate_is_made_once_per_plan_and_data_version(ws: Workspace, server: FakeLLMServer, monkeypatch) -> None:
    """The Generate page asks for the estimate on every rerun: the same plan is rendered once per data version;
    a new call in the ledger, a changed plan or a workspace price file gives a fresh estimate."""
    from brightrun.generation import estimate as estimate_mod

    rendered: list[int] = []
    real = estimate_mod.build_request
    monkeypatch.setattr(estimate_mod, "build_request", lambda *a, **kw: rendered.append(1) or real(*a, **kw))
    first = estimate_plan(ws, plan(ws, 1), provider="anthropic", model=None)
    assert len(rendered) == 80 and estimate_plan(ws, plan(ws, 1), provider="anthropic", model=None) is first
    assert len(rendered) == 80  # the same plan, the same data: nothing rendered again
    assert estimate_plan(ws, plan(ws, 2), provider="anthropic", model=None).items == 160 and len(rendered) == 160
    (ws.root / "prices.yaml").write_text("models:\n  claude-sonnet-5-5: {input: 20.0, output: 100.0}\n")
    repriced = estimate_plan(ws, plan(ws, 1), provider="anthropic", model=None)
    assert repriced.cost_usd > first.cost_usd and len(rendered) == 240
    (ws.root / "prices.yaml").unlink()
    run_job(ws, new_job(ws, 1).job_id, claude(server), settings=FAST)
    after = estimate_plan(ws, plan(ws, 1), provider="anthropic", model=None)
    assert "recent calls" in after.basis and len(rendered) == 320

def test_the_runners_rows_are_exactly_their_models_dumps(ws: Workspace, server: FakeLLMServer, monkeypatch) -> None:
    """The runner builds its rows as dicts, not models: each one is what its model's model_dump gives (same
    columns in the same order, same values of the same types), for answers, bad answers, 429s and failures."""
    from brightrun.generation import runner as runner_mod
    from brightrun.models import BatchItem, Conversation, FailedGeneration, LLMCall, TurnRecord

    buffers = []
    frames = runner_mod.JobRunner._frames

    def spy(self, buf, status):
        buffers.append(buf)
        return frames(self, buf, status)

    monkeypatch.setattr(runner_mod.JobRunner, "_frames", spy)
    server.faults = FaultPlan(rate=0.3, kinds=["rate_limit", "schema_invalid", "truncated"], retry_after=0.01)
    job = new_job(ws, 1)
    settings = RunSettings(concurrency=8, max_attempts=2, flush_items=20, flush_seconds=0.5, backoff_base=0.01)
    done = run_job(ws, job.job_id, claude(server), settings=settings)
    assert done.failed > 0 and done.done > 0
    for model, name in ((LLMCall, "calls"), (Conversation, "conversations"), (BatchItem, "items"),
                        (FailedGeneration, "failures"), (TurnRecord, "turns")):
        rows = [row for buf in buffers for row in getattr(buf, name)]
        assert rows, name
        for row in rows:
            dumped = model.model_validate(row).model_dump()
            assert list(row) == list(dumped) and row == dumped, (name, row)
            assert [type(v) for v in row.values()] == [type(v) for v in dumped.values()], (name, row)
    assert any(row["error"] and "429" in row["error"] for buf in buffers for row in buf.calls)


def test_openai_compatible_round_trip(ws: Workspace, server: FakeLLMServer) -> None:
    server.faults = FaultPlan(rate=0.2, kinds=["server_error", "rate_limit", "truncated"], retry_after=0.05)
    job = create_job(ws, plan(ws, 1)[:20], provider="openai-compatible", model="local-model", seed=1, job_id="oa")
    provider = OpenAICompatibleProvider(base_url=server.base_url + "/v1", api_key=KEY, model="local-model")
    done = run_job(ws, job.job_id, provider, settings=FAST)
    assert (done.done, done.failed) == (20, 0)
    assert server.counts()["chat"] >= 20
    assert set(ws.sql("SELECT model FROM conversations")["model"]) == {"local-model"}


def test_the_api_key_never_reaches_the_workspace(ws: Workspace, server: FakeLLMServer, caplog) -> None:
    server.faults = FaultPlan(rate=0.3, kinds=["rate_limit", "server_error", "malformed_json", "schema_invalid"],
                              retry_after=0.05)
    job = new_job(ws, 1)
    items = ws.sql("SELECT item_id FROM batch_items")["item_id"].to_list()
    server.faults.permanent = {items[0]: "bad_request"}
    run_job(ws, job.job_id, claude(server), settings=FAST)
    ws.compact()
    assert_key_absent(ws.root, KEY)
    assert KEY not in caplog.text


def assert_key_absent(root: Path, key: str) -> None:
    """No file holds the key: raw bytes of every file, and every string cell of every table."""
    import duckdb

    for path in root.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path
    con = duckdb.connect()
    for parquet in root.rglob("*.parquet"):
        for row in con.sql(f"SELECT CAST(COLUMNS(*) AS VARCHAR) FROM read_parquet('{parquet}')").fetchall():
            assert key not in repr(row), parquet


def test_claude_sends_its_calls_through_the_sdks_aiohttp_transport(server: FakeLLMServer) -> None:
    """The provider uses the SDK's aiohttp transport (`anthropic.DefaultAioHttpClient`, cheaper per call than
    httpx's at high concurrency) with room for every call of the job at once: the server sees all 64 in flight
    together, every answer comes back, and closing the provider closes the aiohttp session."""
    import asyncio

    import aiohttp
    from anthropic._vendor.httpx_aiohttp.transport import AiohttpTransport

    from brightrun.providers.base import ProviderRequest
    from brightrun.providers.schema import conversation_schema

    server.latency = 0.3
    provider = ClaudeProvider(api_key=KEY, base_url=server.base_url, concurrency=64)
    transport = provider.client._client._transport
    assert isinstance(transport, AiohttpTransport)

    async def run() -> tuple[list, aiohttp.ClientSession]:
        requests = [ProviderRequest(system="s", prompt="p", model="claude-sonnet-5-5", tag=f"t{i}",
                                    output_schema=conversation_schema(2)) for i in range(64)]
        answers = await asyncio.gather(*(provider.complete(r) for r in requests))
        session = transport.client
        await provider.aclose()
        return answers, session

    answers, session = asyncio.run(run())
    assert len(answers) == 64 and all(a.text and a.output_tokens > 0 for a in answers)
    assert server.most_pausing == 64 and server.counts()["messages"] == 64
    assert isinstance(session, aiohttp.ClientSession) and session.closed
    assert provider.client.is_closed()
