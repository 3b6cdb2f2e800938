"""AppTest: Conversations and Quality take their filters and the open item from the address (a reload or a
shared link), and the Conversations search takes `10%` literally; Generate links a job to its conversations there."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from test_job_conversations import a_job

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


def test_conversations_take_the_job_from_the_address(opened, demo_ws: Workspace) -> None:
    job, made = a_job(demo_ws)
    at = opened("pages/views/conversations.py", f_jobs=job)
    assert at.multiselect(key="f_jobs").value == [job]
    assert any(c.value.startswith(f"{made:,} conversation(s) match") for c in at.caption)


def test_generate_links_the_watched_job_to_its_conversations(opened, demo_ws: Workspace) -> None:
    job, made = a_job(demo_ws)
    at = opened("pages/views/generate.py", job=job)
    assert at.selectbox(key="g_watch_select").value == job
    [link] = [p.proto for p in at.get("page_link") if "conversations" in p.proto.page]
    assert link.query_string == f"f_jobs={job}"
    done = demo_ws.sql("SELECT done FROM batch_jobs WHERE job_id = ?", [job]).item()
    assert link.label == f"Its conversations ({done:,})"
