"""AppTest: Conversations and Quality take their filters and the open item from the address (a reload or a
shared link), and the Conversations search takes `10%` literally."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from brightrun.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def opened(demo_ws_path: Path, monkeypatch):
    monkeypatch.setenv("BRIGHTRUN_WORKSPACE", str(demo_ws_path))
    monkeypatch.chdir(ROOT)

    def open_(page: str, **params: str | list[str]) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        for key, value in params.items():
            at.query_params[key] = value
        at.switch_page(page).run()
        assert not at.exception, at.exception
        return at
    return open_


def test_conversations_open_from_the_address(opened, demo_ws: Workspace) -> None:
    cid, title = demo_ws.sql("SELECT conversation_id, title FROM conversations WHERE persona_key = 'david_chen' "
                             "ORDER BY created_at DESC, conversation_id LIMIT 1").row(0)
    at = opened("pages/views/conversations.py", f_personas="David Chen - The Pragmatic Optimist",
                open_conversation=f"{title} · {cid}")
    assert at.multiselect(key="f_personas").value == ["david_chen"]
    assert at.selectbox(key="open_conversation").value == cid
    assert any(h.value == title for h in at.subheader)


def test_quality_opens_its_record_from_the_address(opened, demo_ws: Workspace) -> None:
    cid = demo_ws.sql("SELECT conversation_id FROM conversations WHERE persona_key = 'david_chen' "
                      "ORDER BY quality_score, conversation_id LIMIT 1").item()
    at = opened("pages/views/quality.py", q_drill="David Chen", q_open=cid)
    assert at.selectbox(key="q_drill").value == "david_chen"
    assert at.selectbox(key="q_open").value == cid
