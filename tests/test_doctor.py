"""`brightrun doctor` against the fake LLM server (real HTTP, the official SDKs): keys, model lists, the live
probe, refused connections, and keys that never show."""

from __future__ import annotations

import socket

import orjson
import pytest
from llm_server import FakeLLMServer, FaultPlan
from typer.testing import CliRunner

from brightrun.cli.main import app
from brightrun.doctor.checks import run_doctor
from brightrun.doctor.messages import KEY_VARIABLES, explain, is_alias_of
from brightrun.doctor.probe import PROBE_ACTION, PROBE_SCHEMA, ProbeAnswer, estimate_probe, parse_probe
from brightrun.doctor.schemas import outgoing_schemas
from brightrun.errors import ProviderError
from brightrun.providers.base import ProviderResponse
from brightrun.providers.errors import KINDS
from brightrun.providers.schema import claude_schema
from brightrun.workspace import Workspace

KEY = "sk-ant-doctor-5e1b7c0d9a-never-print-me"
OPENAI_KEY = "sk-proj-doctor-3f9a1c-never-print-me"
runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL",
                 "BRIGHTRUN_WORKSPACE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server():
    with FakeLLMServer(seed=5) as srv:
        yield srv


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def statuses(report) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


def message(report, name: str) -> str:
    return next(c.message for c in report.checks if c.name == name)


def doctor(*args: str, env: dict | None = None):
    return runner.invoke(app, ["doctor", *args], env={"COLUMNS": "250", **(env or {})})


def test_the_probe_schema_is_inside_claudes_subset_and_its_model_checks_answers() -> None:
    assert claude_schema(PROBE_SCHEMA) == PROBE_SCHEMA  # nothing for the SDK's transform to move or drop
    assert outgoing_schemas()["doctor_probe"] is PROBE_SCHEMA
    assert ProbeAnswer.model_validate_json('{"ok": true, "word": "ready"}').word == "ready"
    fenced = ProviderResponse(text='```json\n{"ok": true, "word": "ready"}\n```', model="m")
    assert parse_probe(fenced).ok is True
    with pytest.raises(ValueError, match="at ok"):
        parse_probe(ProviderResponse(text='{"ok": "maybe", "word": "ready"}', model="m"))
    with pytest.raises(ValueError, match="cut off"):
        parse_probe(ProviderResponse(text='{"ok": tr', model="m", stop_reason="max_tokens"))


def test_anthropic_with_a_key_lists_models_and_a_live_probe_passes_and_is_recorded(
        monkeypatch, server: FakeLLMServer, ws: Workspace) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    announced = []

    def announce(report, estimate) -> None:  # the estimate comes before anything is sent
        announced.append((estimate.cost_usd, server.counts().get("messages", 0)))

    report = run_doctor(["anthropic"], base_url=server.base_url, live=True, trusted_base_url=True, ws=ws, announce=announce)
    claude = report.providers[0]
    assert report.exit_code == 0 and claude.ok
    assert statuses(claude) == {"key": "ok", "models": "ok", "model": "ok", "probe cost": "ok", "request": "ok",
                                "answer": "ok", "tokens and cost": "ok"}
    assert claude.models == server.models and "claude-sonnet-5-5" in claude.models
    estimate = estimate_probe("anthropic", "claude-sonnet-5-5")
    assert announced == [(estimate.cost_usd, 0)] and 0 < estimate.cost_usd < 0.01
    assert "$0.0016" in message(claude, "probe cost")
    assert server.counts()["messages"] == 1 and server.counts()["models"] == 1
    expected = (claude.input_tokens * 2 + claude.output_tokens * 10) / 1e6  # claude-sonnet-5-5's price
    assert claude.input_tokens > 0 and claude.cost_usd == pytest.approx(expected, abs=1e-6)
    assert "word='ready'" in message(claude, "answer")
    call = ws.sql("SELECT * FROM llm_calls").row(0, named=True)
    assert (call["call_id"], call["action_type"], call["provider"], call["status"]) == (
        claude.call_id, PROBE_ACTION, "anthropic", "ok")
    assert call["cost_usd"] == pytest.approx(claude.cost_usd) and KEY not in call["request"]
    assert KEY not in report.model_dump_json()


def test_a_dated_model_id_counts_as_its_alias(monkeypatch, server: FakeLLMServer) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    server.models = ["claude-sonnet-5-5-20260301", "claude-haiku-4-5-20251001"]
    claude = run_doctor(["anthropic"], base_url=server.base_url, trusted_base_url=True).providers[0]
    assert statuses(claude)["model"] == "ok" and "as claude-sonnet-5-5-20260301" in message(claude, "model")
    assert statuses(claude)["request"] == "not_checked" and "--live" in message(claude, "request")
    assert is_alias_of("gpt-4o", "gpt-4o-2024-08-06") and is_alias_of("llama3", "llama3:latest")
    assert not is_alias_of("gpt-4o", "gpt-4o-mini") and not is_alias_of("claude-sonnet-5", "claude-sonnet-5-5")


def test_anthropic_without_a_key_says_what_it_could_not_check(server: FakeLLMServer) -> None:
    report = run_doctor(["anthropic"], base_url=server.base_url, live=True, trusted_base_url=True)
    claude = report.providers[0]
    assert statuses(claude)["key"] == "failed" and "Fix: export ANTHROPIC_API_KEY" in message(claude, "key")
    assert {s for name, s in statuses(claude).items() if name != "key"} == {"not_checked"}
    assert "without ANTHROPIC_API_KEY" in message(claude, "models")
    assert report.exit_code == 1 and server.counts()["total"] == 0  # nothing was sent
    # Not asked for by name: skipped, with the reason, and the run passes.
    default = run_doctor()
    assert [p.provider for p in default.providers] == ["scripted"] and default.exit_code == 0
    assert "ANTHROPIC_API_KEY is not set" in default.skipped["anthropic"]
    assert "OPENAI_BASE_URL" in default.skipped["openai-compatible"]
    # The same through the command line: exit 1 when asked for explicitly, 0 by default.
    named = doctor("--provider", "anthropic")
    assert named.exit_code == 1, named.output
    assert "not checked" in named.stdout and "Fix: export ANTHROPIC_API_KEY" in named.stdout
    plain = doctor()
    assert plain.exit_code == 0, plain.output
    assert "skipped anthropic: ANTHROPIC_API_KEY is not set" in plain.stdout


def test_an_unknown_model_fails_with_the_fix(monkeypatch, server: FakeLLMServer) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    result = doctor("-p", "anthropic", "--model", "claude-sonnet-9-9", "--base-url", server.base_url, "--json")
    assert result.exit_code == 1, result.output
    claude = orjson.loads(result.stdout)["providers"][0]
    checks = {c["name"]: c for c in claude["checks"]}
    assert checks["models"]["status"] == "ok" and checks["model"]["status"] == "failed"
    assert "claude-sonnet-9-9 is not among the 4 model(s)" in checks["model"]["message"]
    assert "Fix: pass --model with one of claude-sonnet-5-5" in checks["model"]["message"]


def test_openai_compatible_against_the_fake_server(monkeypatch, server: FakeLLMServer, ws: Workspace) -> None:
    server.models = ["local-llama-3", "gpt-4o-mini"]
    env = {"OPENAI_BASE_URL": server.base_url + "/v1", "OPENAI_API_KEY": OPENAI_KEY}
    result = doctor("--model", "local-llama-3", "--live", "--json", "-w", str(ws.root), env=env)
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert [p["provider"] for p in report["providers"]] == ["scripted", "openai-compatible"]  # configured
    oai = report["providers"][1]
    checks = {c["name"]: c["status"] for c in oai["checks"]}
    assert checks == {"key": "ok", "models": "ok", "model": "ok", "probe cost": "not_checked", "request": "ok",
                      "answer": "ok", "tokens and cost": "not_checked"}
    assert "unknown price: local-llama-3 is not in the price table" in result.output  # shown before sending
    assert result.output.index("Sending one probe") < result.output.index('"providers"')
    assert oai["input_tokens"] > 0 and oai["cost_usd"] is None
    assert ws.sql("SELECT model, action_type FROM llm_calls").row(0) == ("local-llama-3", PROBE_ACTION)
    assert OPENAI_KEY not in result.output and server.counts()["chat"] == 1
    # A local server needs no key: a placeholder is sent, and the key check says so.
    nokey = run_doctor(["openai-compatible"], base_url=server.base_url + "/v1", model="gpt-4o-mini",
                       trusted_base_url=True).providers[0]
    assert statuses(nokey)["key"] == "ok" and "not needed for the local server" in message(nokey, "key")
    assert statuses(nokey)["model"] == "ok"


def test_a_refused_connection_is_explained_and_exits_1(monkeypatch, closed_port: int) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    result = doctor("-p", "anthropic", "--base-url", f"http://127.0.0.1:{closed_port}", "--live")
    assert result.exit_code == 1, result.output
    text = " ".join(result.stdout.split())
    assert f"nothing is listening at http://127.0.0.1:{closed_port} (connection refused)" in text
    assert "Fix: check the base URL, that the server is running" in text
    assert "no probe sent: listing models failed (connection error)" in text
    # the provider's words, not markup: anthropic 2.16 says "Connection error", 2.17 names the refused connect call
    assert "[anthropic: APIConnectionError: Connection" in text and "]. Fix:" in text
    assert KEY not in result.output


def test_a_refused_key_a_bad_answer_and_a_404_each_get_their_message(monkeypatch, server: FakeLLMServer) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    server.faults = FaultPlan(permanent={"brightrun-doctor": "authentication"})  # the probe's item key
    claude = run_doctor(["anthropic"], base_url=server.base_url, live=True, trusted_base_url=True).providers[0]
    assert statuses(claude)["request"] == "failed"
    assert "the key was refused" in message(claude, "request") and "Fix: set a valid key in ANTHROPIC_API_KEY" \
        in message(claude, "request")
    server.faults = FaultPlan(permanent={"brightrun-doctor": "schema_invalid"})
    claude = run_doctor(["anthropic"], base_url=server.base_url, live=True, trusted_base_url=True).providers[0]
    assert statuses(claude)["request"] == "ok" and statuses(claude)["answer"] == "failed"
    assert "does not match the probe schema at ok" in message(claude, "answer")
    assert statuses(claude)["tokens and cost"] == "ok"  # a bad answer is still paid for
    claude = run_doctor(["anthropic"], base_url=server.base_url + "/nope", live=True, trusted_base_url=True).providers[0]
    assert statuses(claude)["models"] == "failed" and "has no models endpoint" in message(claude, "models")
    assert statuses(claude)["request"] == "failed" and "'claude-sonnet-5-5' (or the endpoint) was not found" \
        in message(claude, "request")


def test_the_key_never_appears_even_when_pasted_into_the_base_url(monkeypatch, server: FakeLLMServer) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    result = doctor("-p", "anthropic", "--base-url", f"{server.base_url}/{KEY}", "--live", "--json")
    assert result.exit_code == 1
    assert KEY not in result.output and "[redacted]" in result.stdout


def test_scripted_is_always_fine_and_usage_errors_exit_2() -> None:
    scripted = run_doctor(["scripted"], live=True).providers[0]
    assert set(statuses(scripted).values()) == {"ok"} and "offline" in message(scripted, "key")
    bad = doctor("--provider", "nope")
    assert bad.exit_code == 2 and "unknown provider 'nope'" in bad.output


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_provider_error_kind_is_explained_with_a_fix(kind: str) -> None:
    for step in ("models", "probe"):
        text = explain(ProviderError(f"anthropic: something. Fix: {KINDS[kind][1]}.", error_type=kind), step,
                       "anthropic", "https://api.anthropic.com", "claude-sonnet-5-5")
        assert "Fix: " in text and text.count("Fix:") == 1, text
    assert set(KEY_VARIABLES) == {"anthropic", "openai-compatible"}
