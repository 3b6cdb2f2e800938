"""Secrets never follow a user-supplied URL: the server's key goes only to the provider's official host or a
base URL the operator set (environment, command line); a base URL typed in the app gets only a key typed with
it. Proven against a real local listener that records every header it receives."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import orjson
import pytest
from key_listener import KeyListener

from brightrun.doctor.checks import run_doctor
from brightrun.errors import JobStopped, ProviderError
from brightrun.generation import RunSettings, create_job, launch_background, make_plan, run_job
from brightrun.generation.control import change_provider_settings
from brightrun.providers import get_provider
from brightrun.providers.keys import key_may_go_to, resolve_key
from brightrun.workspace import Workspace

SERVER_KEY = "sk-ant-server-only-7c1d9e2f"
OPENAI_SERVER_KEY = "sk-proj-server-only-4b8a6f"
TYPED = "sk-typed-in-the-form-91ab"
FAST = RunSettings(concurrency=2, max_attempts=1, flush_items=50, flush_seconds=0.3, backoff_base=0.01)


@pytest.fixture(autouse=True)
def server_keys(monkeypatch) -> None:
    for name in ("ANTHROPIC_BASE_URL", "OPENAI_BASE_URL", "BRIGHTRUN_ANTHROPIC_BASE_URL",
                 "BRIGHTRUN_OPENAI_BASE_URL", "BRIGHTRUN_TRUSTED_BASE_URLS", "ANTHROPIC_AUTH_TOKEN",
                 "BRIGHTRUN_HOST_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SERVER_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_SERVER_KEY)


def attempt(ws: Workspace, job_id: str, **options) -> None:
    """Run a job against the listener, which refuses every call (401): the job stops, its requests are logged."""
    with contextlib.suppress(JobStopped):
        run_job(ws, job_id, settings=FAST, **options)


@pytest.fixture
def listener():
    with KeyListener() as srv:
        yield srv


def test_the_server_key_goes_to_the_official_host_and_operator_urls_only(monkeypatch) -> None:
    assert resolve_key("anthropic", None) == SERVER_KEY
    assert resolve_key("anthropic", "https://api.anthropic.com/") == SERVER_KEY
    assert resolve_key("openai-compatible", "https://api.openai.com/v1") == OPENAI_SERVER_KEY
    for url in ("http://127.0.0.1:9999", "https://api.anthropic.com.evil.example", "http://api.anthropic.com",
                "https://evil.example/?https://api.anthropic.com"):
        assert resolve_key("anthropic", url) is None, url
    assert resolve_key("anthropic", "http://127.0.0.1:9999", typed_key=TYPED) == TYPED
    assert resolve_key("anthropic", "http://127.0.0.1:9999", trusted=True) == SERVER_KEY
    monkeypatch.setenv("BRIGHTRUN_ANTHROPIC_BASE_URL", "http://gateway.internal:8080/anthropic/")
    assert key_may_go_to("anthropic", "http://GATEWAY.internal:8080/anthropic")
    assert not key_may_go_to("anthropic", "http://gateway.internal:8081/anthropic")  # another port
    assert not key_may_go_to("anthropic", "http://gateway.internal:8080/other")  # another path
    monkeypatch.setenv("BRIGHTRUN_TRUSTED_BASE_URLS", "http://a.internal/v1, http://b.internal/v1")
    assert resolve_key("openai-compatible", "http://b.internal/v1") == OPENAI_SERVER_KEY
    assert resolve_key("openai-compatible", "http://c.internal/v1") is None


def test_claude_refuses_to_send_the_server_key_to_a_typed_url(listener: KeyListener) -> None:
    with pytest.raises(ProviderError, match="Fix: type that host's key") as caught:
        get_provider("anthropic", base_url=listener.url)
    assert SERVER_KEY not in str(caught.value)
    assert listener.requests == []


def test_a_job_created_as_the_app_does_sends_no_server_key(ws: Workspace, listener: KeyListener) -> None:
    plan = make_plan(ws, ["david_chen"], ["confusion_to_clarity"], ["mortgage_payoff_strategy"], count=2)
    # What the Generate page stores: the base URL typed in the browser, no key, no operator mark.
    job = create_job(ws, plan, provider="openai-compatible", model="m", provider_options={"base_url": listener.url})
    attempt(ws, job.job_id)
    assert len(listener.requests) == 2
    assert SERVER_KEY not in listener.all_header_text() and OPENAI_SERVER_KEY not in listener.all_header_text()
    assert {r["headers"]["authorization"] for r in listener.requests} == {"Bearer not-needed"}
    # A key typed in the form goes to that host for that run only, and no job row holds it.
    claude = create_job(ws, plan, provider="anthropic", model="claude-sonnet-5-5",
                        provider_options={"base_url": listener.url})
    with pytest.raises(ProviderError, match="no key for the base URL"):
        run_job(ws, claude.job_id, settings=FAST)
    attempt(ws, claude.job_id, api_key=TYPED)
    headers = [r["headers"] for r in listener.requests[2:]]
    assert headers and {h.get("authorization") for h in headers} == {f"Bearer {TYPED}"}
    assert SERVER_KEY not in listener.all_header_text()
    stored = ws.sql("SELECT provider_options FROM batch_jobs")["provider_options"].to_list()
    assert not any(TYPED in s or SERVER_KEY in s for s in stored)


def test_a_base_url_from_the_command_line_is_the_operators(ws: Workspace, listener: KeyListener) -> None:
    plan = make_plan(ws, ["david_chen"], ["confusion_to_clarity"], ["mortgage_payoff_strategy"], count=1)
    job = create_job(ws, plan, provider="openai-compatible", model="m", provider_options={"base_url": "http://x"})
    # Changed by anything but the command line, the base URL stays untrusted; by the operator, it is trusted.
    change_provider_settings(ws, job.job_id, base_url=listener.url)
    attempt(ws, job.job_id)
    assert OPENAI_SERVER_KEY not in listener.all_header_text()
    job = create_job(ws, plan, provider="openai-compatible", model="m", provider_options={"base_url": "http://x"})
    change_provider_settings(ws, job.job_id, base_url=listener.url, operator=True)
    assert orjson.loads(ws.sql("SELECT provider_options FROM batch_jobs WHERE job_id = ?", [job.job_id])
                        ["provider_options"][0])["trusted_base_url"] is True
    attempt(ws, job.job_id)
    assert f"Bearer {OPENAI_SERVER_KEY}" in listener.all_header_text()


def test_doctor_sends_no_server_key_to_a_typed_url(listener: KeyListener) -> None:
    claude = run_doctor(["anthropic"], base_url=listener.url).providers[0]
    key = next(c for c in claude.checks if c.name == "key")
    assert key.status == "failed" and "never sent to" in key.message and "Fix:" in key.message
    local = run_doctor(["openai-compatible"], base_url=listener.url, model="m").providers[0]
    assert any(c.name == "key" and c.status == "ok" for c in local.checks)
    assert listener.requests and OPENAI_SERVER_KEY not in listener.all_header_text()
    assert SERVER_KEY not in listener.all_header_text()
    run_doctor(["anthropic"], base_url=listener.url, api_key=TYPED)
    assert TYPED in listener.all_header_text() and SERVER_KEY not in listener.all_header_text()


def test_a_typed_key_reaches_the_background_job_by_its_environment_only(ws: Workspace, listener: KeyListener,
                                                                         monkeypatch) -> None:
    plan = make_plan(ws, ["david_chen"], ["confusion_to_clarity"], ["mortgage_payoff_strategy"], count=1)
    job = create_job(ws, plan, provider="anthropic", model="claude-sonnet-5-5", max_attempts=1,
                     provider_options={"base_url": listener.url})
    monkeypatch.setenv("PYTHONPATH", str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    pid = launch_background(ws, job.job_id, api_key=TYPED)
    subprocess.run([sys.executable, "-c", f"import os,time\nwhile os.path.exists('/proc/{pid}') and "
                    f"open('/proc/{pid}/stat').read().split()[2] != 'Z': time.sleep(0.1)"], timeout=60)
    assert listener.requests and {r["headers"].get("authorization") for r in listener.requests} == {f"Bearer {TYPED}"}
    assert SERVER_KEY not in listener.all_header_text()
    assert TYPED not in (ws.root / "logs" / f"{job.job_id}.log").read_text()


HOST_KEY = "gateway-token-for-this-host-only-5e2a"


def test_a_key_configured_for_an_exact_host_goes_to_that_host_only(monkeypatch) -> None:
    monkeypatch.setenv("BRIGHTRUN_HOST_KEYS", orjson.dumps({"http://gateway.internal:8080/": HOST_KEY}).decode())
    for url in ("http://gateway.internal:8080", "http://GATEWAY.internal:8080/v1", "http://gateway.internal:8080/x"):
        assert resolve_key("anthropic", url) == HOST_KEY, url
        assert resolve_key("openai-compatible", url) == HOST_KEY, url
    for url in ("http://gateway.internal:8081", "https://gateway.internal:8080", "http://gateway.internal",
                "http://gateway.internal.evil.example:8080", "http://evil.example/?http://gateway.internal:8080"):
        assert resolve_key("anthropic", url) is None, url
    assert resolve_key("anthropic", "http://gateway.internal:8080", typed_key=TYPED) == TYPED
    assert resolve_key("anthropic", None) == SERVER_KEY  # the official host keeps the server's key
    monkeypatch.setenv("BRIGHTRUN_HOST_KEYS", "gateway.internal=token")
    with pytest.raises(ProviderError, match="BRIGHTRUN_HOST_KEYS is not a JSON object.*Fix:") as caught:
        resolve_key("anthropic", "http://gateway.internal:8080")
    assert "token" not in str(caught.value).split("Fix:")[0]


def test_a_base_url_typed_in_the_app_gets_its_hosts_configured_key_and_no_other(ws: Workspace, listener: KeyListener,
                                                                                 monkeypatch) -> None:
    with KeyListener() as other:
        monkeypatch.setenv("BRIGHTRUN_HOST_KEYS", orjson.dumps({listener.url: HOST_KEY}).decode())
        plan = make_plan(ws, ["david_chen"], ["confusion_to_clarity"], ["mortgage_payoff_strategy"], count=1)
        for url in (listener.url, other.url):  # what the Generate page stores: the typed URL, no key
            job = create_job(ws, plan, provider="anthropic", model="claude-sonnet-5-5",
                             provider_options={"base_url": url})
            if url == other.url:
                with pytest.raises(ProviderError, match="no key for the base URL"):
                    run_job(ws, job.job_id, settings=FAST)
            else:
                attempt(ws, job.job_id)
        assert listener.requests and {r["headers"].get("authorization") for r in listener.requests} == {f"Bearer {HOST_KEY}"}
        assert other.requests == []
        assert SERVER_KEY not in listener.all_header_text()


def test_host_keys_from_streamlit_secrets() -> None:
    from streamlit.testing.v1 import AppTest

    def page() -> None:
        import streamlit as st

        from brightrun.providers.keys import resolve_key

        st.write(f"gateway={resolve_key('anthropic', 'http://gateway.internal:8080')}")
        st.write(f"elsewhere={resolve_key('anthropic', 'http://elsewhere.internal:8080')}")

    at = AppTest.from_function(page)
    at.secrets["host_keys"] = {"http://gateway.internal:8080": HOST_KEY}
    at.run()
    shown = [m.value for m in at.markdown]
    assert shown == [f"gateway={HOST_KEY}", "elsewhere=None"]
