"""The fake LLM server (tests/llm_server.py) against the real anthropic and openai SDKs."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import sys
import threading
import time
from pathlib import Path

import anthropic
import httpx2
import openai
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from llm_server import ALL_KINDS, FakeLLMServer, FaultPlan, make_conversation  # noqa: E402

SCHEMA = {"type": "object", "properties": {"title": {"type": "string"}, "turns": {"type": "array"}},
          "required": ["title", "turns"], "additionalProperties": False}


@pytest.fixture
def server():
    with FakeLLMServer(seed=7, batch_delay=0.2) as srv:
        yield srv


@pytest.fixture
def client(server):
    c = anthropic.Anthropic(base_url=server.base_url, api_key="test-key", max_retries=0, timeout=5)
    yield c
    c.close()


@pytest.fixture
def oai(server):
    c = openai.OpenAI(base_url=server.base_url + "/v1", api_key="test-key", max_retries=0, timeout=5)
    yield c
    c.close()


def ask(client: anthropic.Anthropic, item: str | None = "item-1", **kw) -> anthropic.types.Message:
    # anthropic 2.x has no `temperature` argument: it travels in extra_body.
    params = dict(model="claude-test", max_tokens=1000, extra_body={"temperature": 0.8},
                  system="You write realistic financial-planning conversations as JSON.",
                  messages=[{"role": "user", "content": "Write one conversation about saving."}],
                  output_config={"format": {"type": "json_schema", "schema": SCHEMA}})
    if item is not None:
        params["metadata"] = {"user_id": item}
    params.update(kw)
    return client.messages.create(**params)


def chat(oai: openai.OpenAI, user: str = "item-1", **kw):
    return oai.chat.completions.create(model="gpt-test", user=user,
                                       messages=[{"role": "system", "content": "Write JSON."},
                                                 {"role": "user", "content": "A conversation, please."}], **kw)


def assert_conversation(text: str) -> dict:
    conv = json.loads(text)
    turns = conv["turns"]
    assert isinstance(conv["title"], str) and conv["title"]
    assert 4 <= len(turns) <= 10 and len(turns) % 2 == 0
    assert [t["role"] for t in turns] == ["user", "assistant"] * (len(turns) // 2)
    assert all(isinstance(t["content"], str) and t["content"] for t in turns)
    return conv


# ------------------------------------------------------------------------------------------ messages


def test_message_round_trip(server, client):
    msg = ask(client, "item-1")
    assert isinstance(msg, anthropic.types.Message)
    assert msg.type == "message" and msg.role == "assistant" and msg.model == "claude-test"
    assert msg.id.startswith("msg_") and msg.stop_reason == "end_turn" and msg.stop_sequence is None
    text = msg.content[0].text
    conv = assert_conversation(text)
    assert conv == make_conversation("item-1")
    assert msg.usage.output_tokens == len(text) // 4
    prompt_chars = len("You write realistic financial-planning conversations as JSON.") + len(
        "Write one conversation about saving.")
    assert msg.usage.input_tokens == prompt_chars // 4
    # Deterministic from the item key; other keys give other conversations.
    assert ask(client, "item-1").content[0].text == text
    assert ask(client, "item-2").content[0].text != text
    assert server.counts()["messages"] == 3
    assert server.item_counts() == {"item-1": 2, "item-2": 1}
    assert server.item_successes() == {"item-1": 2, "item-2": 1}


def test_conversations_vary_in_length():
    lengths = {len(make_conversation(f"k{i}")["turns"]) for i in range(200)}
    assert lengths == {4, 6, 8, 10}


def test_item_key_falls_back_to_body_hash(server, client):
    ask(client, None)
    ask(client, None)
    ask(client, None, system="Another system prompt.")
    keys = server.item_counts()
    assert len(keys) == 2 and all(k.startswith("body-") for k in keys)
    assert sorted(keys.values()) == [1, 2]


@pytest.mark.parametrize(("kind", "exc_type", "status", "error_type"), [
    ("rate_limit", anthropic.RateLimitError, 429, "rate_limit_error"),
    ("server_error", anthropic.InternalServerError, 500, "api_error"),
    ("overloaded", anthropic.APIStatusError, 529, "overloaded_error"),
    ("bad_request", anthropic.BadRequestError, 400, "invalid_request_error"),
])
def test_http_error_faults(server, client, kind, exc_type, status, error_type):
    server.faults = FaultPlan(permanent={"item-1": kind}, retry_after=2.5)
    with pytest.raises(exc_type) as info:
        ask(client, "item-1")
    exc = info.value
    assert exc.status_code == status
    assert exc.body["type"] == "error" and exc.body["error"]["type"] == error_type
    if kind == "rate_limit":
        assert exc.response.headers["retry-after"] == "2.5"
    assert server.item_successes() == {}
    assert server.outcome_counts() == {kind: 1}


def test_rate_limit_default_retry_after_is_one_second(server, client):
    server.faults = FaultPlan(permanent={"item-1": "rate_limit"})
    with pytest.raises(anthropic.RateLimitError) as info:
        ask(client, "item-1")
    assert info.value.response.headers["retry-after"] == "1"


def test_hang_times_out_the_client(server):
    server.faults = FaultPlan(permanent={"item-1": "hang"}, hang_seconds=2)
    c = anthropic.Anthropic(base_url=server.base_url, api_key="test-key", max_retries=0, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(anthropic.APITimeoutError):
        ask(c, "item-1")
    assert 0.4 < time.monotonic() - started < 1.5
    # The server notices the client left and gives up the hang early.
    deadline = time.monotonic() + 1.0
    while not server.requests_log and time.monotonic() < deadline:
        time.sleep(0.01)
    entry = server.requests_log[-1]
    assert entry["outcome"] == "hang" and entry.get("client_gone") and entry["duration"] < 1.5
    assert server.item_successes() == {}
    c.close()


def test_short_hang_answers_after_the_wait(server, client):
    server.faults = FaultPlan(permanent={"item-1": "hang"}, hang_seconds=0.3)
    started = time.monotonic()
    assert_conversation(ask(client, "item-1").content[0].text)
    assert time.monotonic() - started >= 0.3
    assert server.item_successes() == {"item-1": 1}


def test_drop_is_a_connection_error(server, client):
    server.faults = FaultPlan(permanent={"item-1": "drop"})
    with pytest.raises(anthropic.APIConnectionError) as info:
        ask(client, "item-1")
    assert not isinstance(info.value, anthropic.APITimeoutError)
    # The client and server recover: the next request works on a fresh connection.
    assert_conversation(ask(client, "item-2").content[0].text)


def test_malformed_json(server, client):
    server.faults = FaultPlan(permanent={"item-1": "malformed_json"})
    # The SDK lets the decode error through (json.JSONDecodeError, a ValueError), not an APIError.
    with pytest.raises((ValueError, anthropic.APIError)):
        ask(client, "item-1")
    raw = httpx2.post(server.base_url + "/v1/messages", headers={"x-api-key": "k"},
                      json={"model": "m", "max_tokens": 10, "metadata": {"user_id": "item-1"},
                            "messages": [{"role": "user", "content": "x"}]})
    assert raw.status_code == 200 and raw.headers["content-type"].startswith("application/json")
    with pytest.raises(ValueError):
        json.loads(raw.text)
    assert server.item_successes() == {}


def test_schema_invalid(server, client):
    server.faults = FaultPlan(permanent={"item-1": "schema_invalid"})
    msg = ask(client, "item-1")
    assert msg.stop_reason == "end_turn"
    data = json.loads(msg.content[0].text)
    assert isinstance(data, dict) and "turns" not in data
    assert server.item_successes() == {}
    assert server.outcome_counts() == {"schema_invalid": 1}


def test_truncated(server, client):
    server.faults = FaultPlan(permanent={"item-1": "truncated"})
    msg = ask(client, "item-1")
    assert msg.stop_reason == "max_tokens"
    full = json.dumps(make_conversation("item-1"), separators=(",", ":"))
    text = msg.content[0].text
    assert text == full[: len(full) // 2]
    with pytest.raises(ValueError):
        json.loads(text)
    assert server.item_successes() == {}


def test_permanent_fault_applies_to_every_attempt(server, client):
    server.faults = FaultPlan(permanent={"bad": "schema_invalid", "never": "bad_request"})
    for _ in range(3):
        assert "turns" not in json.loads(ask(client, "bad").content[0].text)
        with pytest.raises(anthropic.BadRequestError):
            ask(client, "never")
        assert_conversation(ask(client, "good").content[0].text)
    assert server.item_counts() == {"bad": 3, "never": 3, "good": 3}
    assert server.item_successes() == {"good": 3}


def test_transient_draws_are_deterministic_and_fresh_per_attempt(client):
    plan = FaultPlan(rate=0.5, kinds=["server_error", "rate_limit"])
    expected = []
    for n in range(1, 21):
        rng = random.Random(f"3:item-9:{n}")
        expected.append(rng.choice(plan.kinds) if rng.random() < 0.5 else None)
    assert [plan.draw(3, "item-9", n) for n in range(1, 21)] == expected
    assert None in expected and len(set(expected)) == 3  # retries get fresh draws

    def outcomes(srv: FakeLLMServer) -> list[str | None]:
        c = anthropic.Anthropic(base_url=srv.base_url, api_key="k", max_retries=0)
        got = []
        for _ in range(20):
            try:
                ask(c, "item-9")
                got.append(None)
            except anthropic.RateLimitError:
                got.append("rate_limit")
            except anthropic.InternalServerError:
                got.append("server_error")
        c.close()
        return got

    with FakeLLMServer(seed=3, faults=plan) as a, FakeLLMServer(seed=3, faults=FaultPlan(**vars(plan))) as b:
        assert outcomes(a) == expected == outcomes(b)
        a.reset_counts()  # attempt numbers restart, so the draws repeat
        assert outcomes(a) == expected
        assert a.item_successes() == {"item-9": expected.count(None)}


def test_rate_applies_roughly_as_configured(server, client):
    server.faults = FaultPlan(rate=0.3, kinds=["server_error"])
    failures = 0
    for i in range(100):
        try:
            ask(client, f"item-{i}")
        except anthropic.InternalServerError:
            failures += 1
    assert 15 <= failures <= 45
    assert sum(server.item_successes().values()) == 100 - failures


def test_storm(server, client, oai):
    server.storm(0.4, retry_after=2)
    with pytest.raises(anthropic.RateLimitError) as info:
        ask(client, "item-1")
    assert info.value.response.headers["retry-after"] == "2"
    with pytest.raises(openai.RateLimitError):
        chat(oai, "item-1")
    with pytest.raises(anthropic.RateLimitError):
        client.messages.batches.list()
    assert server.outcome_counts() == {"storm": 2}
    time.sleep(0.45)
    assert_conversation(ask(client, "item-1").content[0].text)
    assert server.item_counts() == {"item-1": 3}
    assert server.item_successes() == {"item-1": 1}
    client.messages.batches.create(requests=[batch_request("after-storm")])
    assert server.outcome_counts() == {"storm": 2, "ok": 2}


def test_latency(server, client):
    ask(client, "warm")
    server.latency = 0.1
    started = time.monotonic()
    ask(client, "item-1")
    elapsed = time.monotonic() - started
    assert 0.1 <= elapsed < 0.3
    server.latency = 0.0
    started = time.monotonic()
    ask(client, "item-2")
    assert time.monotonic() - started < 0.1


def test_concurrent_slow_requests_cost_no_threads(server):
    server.latency = 0.3
    server.most_pausing = 0
    threads_before = threading.active_count()

    async def run() -> list[anthropic.types.Message]:
        c = anthropic.AsyncAnthropic(base_url=server.base_url, api_key="test-key", max_retries=0)
        try:
            return await asyncio.gather(*(c.messages.create(
                model="m", max_tokens=100, messages=[{"role": "user", "content": "x"}],
                metadata={"user_id": f"item-{i}"}) for i in range(80)))
        finally:
            await c.close()

    started = time.monotonic()
    messages = asyncio.run(run())
    elapsed = time.monotonic() - started
    assert len(messages) == 80 and all(m.stop_reason == "end_turn" for m in messages)
    assert elapsed >= 0.3
    assert server.most_pausing == 80  # all 80 waited at once on the server's one loop: concurrent, threadless
    assert threading.active_count() == threads_before
    assert server.counts()["messages"] == 80 and len(server.item_successes()) == 80


def test_counting_and_log(server, client, oai):
    server.faults = FaultPlan(permanent={"b": "server_error"})
    ask(client, "a")
    ask(client, "a")
    with pytest.raises(anthropic.InternalServerError):
        ask(client, "b")
    chat(oai, "c")
    counts = server.counts()
    assert counts["total"] == 4 and counts["messages"] == 3 and counts["chat"] == 1
    assert counts["batches_create"] == 0
    assert server.item_counts() == {"a": 2, "b": 1, "c": 1}
    assert server.item_successes() == {"a": 2, "c": 1}
    assert server.outcome_counts() == {"ok": 3, "server_error": 1}
    log = server.requests_log
    assert [(e["path"], e["item"], e["attempt"], e["outcome"], e["status"]) for e in log] == [
        ("/v1/messages", "a", 1, "ok", 200), ("/v1/messages", "a", 2, "ok", 200),
        ("/v1/messages", "b", 1, "server_error", 500), ("/v1/chat/completions", "c", 1, "ok", 200)]
    assert all(e["time"] > 0 and e["duration"] >= 0 for e in log)
    server.reset_counts()
    assert server.counts()["total"] == 0 and server.item_counts() == {} and server.item_successes() == {}
    assert server.requests_log == []


# ------------------------------------------------------------------------------------------- batches


def batch_request(custom_id: str) -> dict:
    return {"custom_id": custom_id, "params": {
        "model": "claude-test", "max_tokens": 1000, "system": "Write JSON.",
        "messages": [{"role": "user", "content": "A conversation."}],
        "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}}}


def wait_ended(client: anthropic.Anthropic, batch_id: str, timeout: float = 3.0):
    deadline = time.monotonic() + timeout
    while True:
        batch = client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended" or time.monotonic() > deadline:
            return batch
        time.sleep(0.05)


def test_batch_lifecycle(server, client):
    server.faults = FaultPlan(permanent={"r-limited": "rate_limit", "r-bad": "schema_invalid",
                                         "r-hang": "hang"})
    # Long enough that a loaded CI machine cannot reach the "nothing yet" check after the batch ended.
    server.batch_delay = 2.0
    ids = ["r-1", "r-2", "r-limited", "r-bad", "r-hang"]
    batch = client.messages.batches.create(requests=[batch_request(i) for i in ids])
    assert batch.id.startswith("msgbatch_") and batch.type == "message_batch"
    assert batch.processing_status == "in_progress" and batch.results_url is None
    assert batch.request_counts.processing == 5 and batch.request_counts.succeeded == 0
    assert batch.ended_at is None and batch.cancel_initiated_at is None and batch.archived_at is None
    assert batch.expires_at > batch.created_at
    assert server.item_counts() == dict.fromkeys(ids, 1)
    assert server.item_successes() == {}  # nothing until the batch ends

    ended = wait_ended(client, batch.id, timeout=10.0)
    assert ended.processing_status == "ended" and ended.ended_at is not None
    assert ended.results_url == f"{server.base_url}/v1/messages/batches/{batch.id}/results"
    counts = ended.request_counts
    assert (counts.processing, counts.succeeded, counts.errored, counts.canceled, counts.expired) == (0, 3, 2, 0, 0)

    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert set(results) == set(ids)
    for key in ("r-1", "r-2"):
        assert results[key].type == "succeeded"
        assert isinstance(results[key].message, anthropic.types.Message)
        assert json.loads(results[key].message.content[0].text) == make_conversation(key)
    assert "turns" not in json.loads(results["r-bad"].message.content[0].text)
    assert results["r-limited"].type == "errored"
    assert results["r-limited"].error.error.type == "rate_limit_error"
    assert results["r-hang"].error.error.type == "timeout_error"
    assert server.item_successes() == {"r-1": 1, "r-2": 1}
    c = server.counts()
    assert c["batches_create"] == 1 and c["batch_requests"] == 5 and c["batches_results"] == 1
    assert c["batches_retrieve"] >= 3  # our polls, plus the one inside results()

    assert [b.id for b in client.messages.batches.list()] == [batch.id]
    deleted = client.messages.batches.delete(batch.id)
    assert deleted.id == batch.id and deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)


def test_batch_transient_faults_get_fresh_draws(server, client):
    server.faults = FaultPlan(rate=0.5, kinds=["overloaded"])
    ids = [f"x-{i}" for i in range(20)]
    expected = {i: server.faults.draw(server.seed, i, 1) for i in ids}
    batch = client.messages.batches.create(requests=[batch_request(i) for i in ids])
    wait_ended(client, batch.id)
    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    for i in ids:
        if expected[i] is None:
            assert results[i].type == "succeeded"
        else:
            assert results[i].type == "errored" and results[i].error.error.type == "overloaded_error"
    # A second batch for the same items is attempt 2: a fresh draw.
    client.messages.batches.create(requests=[batch_request(i) for i in ids])
    assert server.item_counts() == dict.fromkeys(ids, 2)


def test_batch_cancel(server, client):
    server.batch_delay = 5.0
    batch = client.messages.batches.create(requests=[batch_request("c-1"), batch_request("c-2")])
    canceled = client.messages.batches.cancel(batch.id)
    assert canceled.processing_status == "canceling" and canceled.cancel_initiated_at is not None
    ended = wait_ended(client, batch.id, timeout=1.0)
    assert ended.processing_status == "ended"
    assert ended.request_counts.canceled == 2 and ended.request_counts.succeeded == 0
    assert [r.result.type for r in client.messages.batches.results(batch.id)] == ["canceled", "canceled"]
    assert server.item_successes() == {}


def test_batch_results_before_end_and_unknown_batch(server, client):
    server.batch_delay = 5.0
    batch = client.messages.batches.create(requests=[batch_request("p-1")])
    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        client.messages.batches.results(batch.id)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve("msgbatch_nope")
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.create(requests=[batch_request("d"), batch_request("d")])


# -------------------------------------------------------------------------------------------- openai


def test_openai_round_trip(server, oai):
    completion = chat(oai, "item-1")
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-test" and isinstance(completion.created, int)
    choice = completion.choices[0]
    assert choice.index == 0 and choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert assert_conversation(choice.message.content) == make_conversation("item-1")
    usage = completion.usage
    assert usage.prompt_tokens == len("Write JSON.A conversation, please.") // 4
    assert usage.completion_tokens == len(choice.message.content) // 4
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    chat(oai, "ignored", metadata={"item": "item-2"})
    assert server.item_counts() == {"item-1": 1, "item-2": 1}
    assert server.item_successes() == {"item-1": 1, "item-2": 1}


@pytest.mark.parametrize(("kind", "exc_type", "status"), [
    ("rate_limit", openai.RateLimitError, 429),
    ("server_error", openai.InternalServerError, 500),
    ("overloaded", openai.InternalServerError, 529),
    ("bad_request", openai.BadRequestError, 400),
])
def test_openai_error_faults(server, oai, kind, exc_type, status):
    server.faults = FaultPlan(permanent={"item-1": kind})
    with pytest.raises(exc_type) as info:
        chat(oai, "item-1")
    exc = info.value
    assert exc.status_code == status
    assert set(exc.body) >= {"message", "type", "code"}  # the SDK unwraps {"error": {...}}
    if kind == "rate_limit":
        assert exc.response.headers["retry-after"] == "1"


def test_openai_content_faults(server, oai):
    server.faults = FaultPlan(permanent={"t": "truncated", "s": "schema_invalid", "d": "drop", "m": "malformed_json"})
    truncated = chat(oai, "t").choices[0]
    assert truncated.finish_reason == "length"
    with pytest.raises(ValueError):
        json.loads(truncated.message.content)
    assert "turns" not in json.loads(chat(oai, "s").choices[0].message.content)
    with pytest.raises(openai.APIConnectionError):
        chat(oai, "d")
    with pytest.raises((ValueError, openai.APIError)):
        chat(oai, "m")
    assert server.item_successes() == {}


def test_openai_hang(server):
    server.faults = FaultPlan(permanent={"h": "hang"}, hang_seconds=2)
    c = openai.OpenAI(base_url=server.base_url + "/v1", api_key="k", max_retries=0, timeout=0.5)
    with pytest.raises(openai.APITimeoutError):
        chat(c, "h")
    c.close()


# ------------------------------------------------------------------------------------- auth, routing


def test_missing_key_is_401(server, monkeypatch):
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    raw = httpx2.post(server.base_url + "/v1/messages", json=body)
    assert raw.status_code == 401
    assert raw.json()["error"]["type"] == "authentication_error"
    assert httpx2.post(server.base_url + "/v1/messages", json=body, headers={"x-api-key": "k"}).status_code == 200
    assert httpx2.get(server.base_url + "/v1/messages/batches").status_code == 401

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    keyless = anthropic.Anthropic(base_url=server.base_url, api_key=None, max_retries=0,
                                  default_headers={"Authorization": anthropic.omit})
    with pytest.raises(anthropic.AuthenticationError) as info:
        ask(keyless, "item-1")
    assert info.value.type == "authentication_error"

    raw = httpx2.post(server.base_url + "/v1/chat/completions", headers={"x-api-key": "k"},
                      json={"model": "g", "messages": [{"role": "user", "content": "x"}]})
    assert raw.status_code == 401 and raw.json()["error"]["code"] == "invalid_api_key"
    assert server.counts()["unauthorized"] == 4
    assert "item-1" not in server.item_counts()  # rejected before the item is counted


def test_unknown_path_and_invalid_request(server, client):
    raw = httpx2.get(server.base_url + "/v1/nothing", headers={"x-api-key": "k"})
    assert raw.status_code == 404 and raw.json()["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="m", max_tokens=10, messages=[], metadata={"user_id": "e"})
    with pytest.raises(anthropic.BadRequestError, match="stream"):
        client.messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}], stream=True)
    assert server.counts()["invalid"] == 2


def test_fault_plan_validation():
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultPlan(kinds=["nope"])
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultPlan(permanent={"x": "nope"})
    with pytest.raises(ValueError):
        FaultPlan(rate=1.5)
    assert set(FaultPlan().kinds) < set(ALL_KINDS)


def test_server_lifecycle():
    srv = FakeLLMServer()
    with pytest.raises(RuntimeError):
        _ = srv.base_url
    srv.start()
    try:
        host, port = srv.base_url.removeprefix("http://").split(":")
        assert host == "127.0.0.1" and int(port) == srv.port > 0
        # Stop does not wait for a request hanging in the server.
        srv.faults = FaultPlan(permanent={"h": "hang"}, hang_seconds=30)
        sock = socket.create_connection(("127.0.0.1", srv.port))
        body = b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"metadata":{"user_id":"h"}}'
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: k\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        deadline = time.monotonic() + 2
        while srv.counts()["total"] == 0 and not srv.item_counts() and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
    finally:
        srv.stop()
    assert time.monotonic() - started < 3
    sock.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=0.5)


# -- the real APIs' refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(("schema", "message"), [
    ({"type": "object", "properties": {"title": {"type": "string", "maxLength": 200}}, "additionalProperties": False},
     "output_config.format.schema.title: For 'string' type, property 'maxLength' is not supported"),
    ({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}, "additionalProperties": False},
     "output_config.format.schema.n: For 'integer' type, property 'minimum' is not supported"),
    ({"type": "object", "properties": {"t": {"type": "array", "minItems": 2}}, "additionalProperties": False},
     "output_config.format.schema.t: For 'array' type, 'minItems' values other than 0 or 1 are not supported"),
    ({"type": "object", "properties": {}},
     "output_config.format.schema: For 'object' type, 'additionalProperties' must be explicitly set to false"),
    ({"type": "object", "properties": {"a": {"type": "string", "default": "x"}}, "additionalProperties": False},
     "output_config.format.schema.a: For 'string' type, property 'default' is not supported"),
])
def test_schemas_outside_claudes_subset_are_refused_like_the_api(server, client, schema, message):
    with pytest.raises(anthropic.BadRequestError) as info:
        ask(client, output_config={"format": {"type": "json_schema", "schema": schema}})
    assert info.value.status_code == 400
    assert info.value.body["error"] == {"type": "invalid_request_error", "message": message}


def test_a_batch_request_with_a_bad_schema_errors_inside_the_batch(server, client):
    bad = {"type": "object", "properties": {"t": {"type": "string", "minLength": 1}}, "additionalProperties": False}
    params = dict(model="claude-test", max_tokens=100, messages=[{"role": "user", "content": "hi"}],
                  output_config={"format": {"type": "json_schema", "schema": bad}})
    server.batch_delay = 0
    batch = client.messages.batches.create(requests=[{"custom_id": "a", "params": params}])
    time.sleep(0.05)
    [entry] = list(client.messages.batches.results(batch.id))
    assert entry.result.type == "errored"
    assert entry.result.error.error.type == "invalid_request_error"
    assert "property 'minLength' is not supported" in entry.result.error.error.message


def test_llama_cpp_mode_refuses_json_schema_and_fences_its_json():
    with FakeLLMServer(openai_mode="llama.cpp") as srv:
        c = openai.OpenAI(base_url=srv.base_url + "/v1", api_key="x", max_retries=0, timeout=5)
        with pytest.raises(openai.InternalServerError) as info:
            chat(c, response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": SCHEMA}})
        assert "Input should be 'text' or 'json_object'" in info.value.body["message"]
        text = chat(c, response_format={"type": "json_object", "schema": SCHEMA}).choices[0].message.content
        assert text.startswith("```json\n") and text.endswith("\n```")
        with pytest.raises(json.JSONDecodeError):
            json.loads(text.strip("`").removeprefix("json"))  # a raw newline inside a string
        assert json.loads(text.strip("`").removeprefix("json"), strict=False)["turns"]
        c.close()


def test_no_system_mode_drops_system_messages():
    with FakeLLMServer(openai_mode="no_system") as srv:
        c = openai.OpenAI(base_url=srv.base_url + "/v1", api_key="x", max_retries=0, timeout=5)
        c.chat.completions.create(model="m", messages=[{"role": "system", "content": "S"},
                                                       {"role": "user", "content": "U"}])
        assert srv.system_dropped == 1
        assert srv.chat_bodies[-1]["messages"] == [{"role": "user", "content": "U"}]
        c.close()


def test_paid_counts_every_billable_answer(server, client):
    server.faults = FaultPlan(permanent={"bad": "schema_invalid", "gone": "server_error"})
    ask(client, item="ok")
    ask(client, item="bad")
    with pytest.raises(anthropic.InternalServerError):
        ask(client, item="gone")
    assert server.paid["answers"] == 2
    assert server.paid["output_tokens"] > 0

def test_models_are_listed_in_each_apis_shape(server, client, oai):
    assert [m.id for m in client.models.list()] == list(server.models) and "claude-sonnet-5-5" in server.models
    page = client.models.list(limit=2)
    assert [m.id for m in page.data] == server.models[:2] and page.has_more and page.last_id == server.models[1]
    assert [m.id for m in client.models.list(limit=1)] == list(server.models)  # the SDK follows the pages
    first = page.data[0]
    assert (first.type, first.lifecycle, first.created_at.year) == ("model", "active", 2026) and first.display_name
    server.models = ["local-llama", "local-qwen"]
    listed = oai.models.list()
    assert [m.id for m in listed] == ["local-llama", "local-qwen"] and listed.data[0].owned_by == "fake"
    assert server.counts()["models"] == 7  # one request per page: 1 + 1 + 4 (limit=1) + 1
    for headers in ({"anthropic-version": "2023-06-01"}, {}):  # the same authentication rules as the rest
        raw = httpx2.get(server.base_url + "/v1/models", headers=headers, timeout=5)
        assert raw.status_code == 401


def test_a_doctor_probe_gets_a_probe_answer(server, client, oai):
    schema = {"type": "object", "additionalProperties": False, "required": ["ok", "word"],
              "properties": {"ok": {"type": "boolean"}, "word": {"type": "string"}}}
    message = ask(client, output_config={"format": {"type": "json_schema", "schema": schema}})
    assert json.loads(message.content[0].text) == {"ok": True, "word": "ready"}
    answer = chat(oai, response_format={"type": "json_schema", "json_schema": {"name": "probe", "schema": schema}})
    assert json.loads(answer.choices[0].message.content) == {"ok": True, "word": "ready"}
    server.faults = FaultPlan(permanent={"item-1": "schema_invalid"})
    assert json.loads(ask(client, output_config={"format": {"type": "json_schema", "schema": schema}})
                      .content[0].text) == {"ok": "yes"}
