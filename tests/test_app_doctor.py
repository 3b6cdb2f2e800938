"""AppTest of the Generate page's "Check provider": the checks as a table, the live check's estimate first,
then the probe itself, against the fake LLM server."""

from __future__ import annotations

from pathlib import Path

import pytest
from llm_server import FakeLLMServer
from streamlit.testing.v1 import AppTest

from brightrun.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-ant-apptest-8d2e4f6a1b-never-show-me"


@pytest.fixture
def server():
    with FakeLLMServer(seed=2) as srv:
        yield srv


@pytest.fixture
def page(ws: Workspace, monkeypatch):
    monkeypatch.setenv("BRIGHTRUN_WORKSPACE", str(ws.root))
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL",
                 "BRIGHTRUN_ANTHROPIC_BASE_URL", "BRIGHTRUN_TRUSTED_BASE_URLS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(ROOT)

    def open_page(provider: str, base_url: str | None = None) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        at.switch_page("pages/views/generate.py").run()
        at.selectbox(key="g_provider").set_value(provider).run()
        if base_url:
            at.text_input(key=f"g_base_url_{provider}").set_value(base_url).run()
        assert not at.exception, at.exception
        return at
    return open_page


def checks(at: AppTest) -> dict[str, str]:
    table = at.table[0].value
    return dict(zip(table["check"], table["status"], strict=True))


def everything(at: AppTest) -> str:
    parts = [t.value.to_string() for t in at.table]
    for kind in (at.markdown, at.success, at.error, at.warning, at.info, at.caption):
        parts += [str(e.value) for e in kind]
    return "\n".join(parts)


def test_check_then_live_check_shows_the_estimate_first_and_records_the_probe(
        page, server: FakeLLMServer, ws: Workspace, monkeypatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("BRIGHTRUN_ANTHROPIC_BASE_URL", server.base_url)  # the operator's URL: the key may go there
    at = page("anthropic", server.base_url)
    assert not at.table and "g_doctor_live" not in [b.key for b in at.button]  # nothing checked yet
    at.button(key="g_doctor").click().run()
    assert not at.exception, at.exception
    assert checks(at) == {"key": "ok", "models": "ok", "model": "ok", "request": "not checked"}
    assert server.counts().get("messages", 0) == 0  # the first check sends no model request
    live = next(m.value for m in at.markdown if "Live check" in m.value)
    assert "claude-sonnet-5-5" in live and "$0.0016" in live
    at.button(key="g_doctor_live").click().run()
    assert not at.exception, at.exception
    assert set(checks(at).values()) == {"ok"} and "answer" in checks(at)
    assert any("every check that ran passed" in s.value for s in at.success)
    assert server.counts()["messages"] == 1
    assert ws.sql("SELECT action_type, status FROM llm_calls").row(0) == ("doctor_probe", "ok")
    assert KEY not in everything(at)


def test_without_a_key_the_check_fails_with_the_fix(page) -> None:
    at = page("anthropic")
    at.button(key="g_doctor").click().run()
    assert not at.exception, at.exception
    assert checks(at) == {"key": "failed", "models": "not checked", "model": "not checked",
                          "request": "not checked"}
    assert any("a check failed" in e.value for e in at.error)
    assert "Fix: export ANTHROPIC_API_KEY" in at.table[0].value["message"][0]


def test_scripted_is_checked_offline_and_offers_no_live_check(page) -> None:
    at = page("scripted")
    at.button(key="g_doctor").click().run()
    assert checks(at) == {"key": "ok", "models": "ok"}
    assert not any("Live check" in m.value for m in at.markdown)


def test_a_base_url_typed_in_the_page_gets_no_server_key_only_one_typed_with_it(page, monkeypatch) -> None:
    from key_listener import KeyListener

    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with KeyListener() as listener:
        at = page("anthropic", listener.url)
        at.button(key="g_doctor").click().run()
        assert not at.exception, at.exception
        assert checks(at)["key"] == "failed"
        assert "never sent to" in everything(at) and "Fix: type that host's key" in everything(at)
        assert listener.requests == [] and KEY not in everything(at)
        at.text_input(key="g_api_key_anthropic").set_value("typed-for-this-host").run()
        at.button(key="g_doctor").click().run()
        assert listener.requests and KEY not in listener.all_header_text()
        assert {r["headers"]["authorization"] for r in listener.requests} == {"Bearer typed-for-this-host"}
