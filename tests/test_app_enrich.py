"""Enrichment from the app: "Enrich N pending" on Overview and Conversations runs in a background process with
its progress on file; Generate enriches a new job when it is done (on by default)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from brightrun.enrichment import background, enrichment_state, launch_enrichment, run_tracked
from brightrun.errors import BrightRunError
from brightrun.workspace import Workspace, utcnow

ROOT = Path(__file__).resolve().parent.parent


def unenrich(ws: Workspace, n: int) -> list[str]:
    """Mark the first n conversations as not enriched (as if they were new)."""
    ids = ws.sql("SELECT conversation_id FROM conversations ORDER BY conversation_id LIMIT ?",
                 [n])["conversation_id"].to_list()
    ws.append("conversation_status", [{"conversation_id": c, "status": "not_started", "enrichment_version": "2",
                                       "updated_at": utcnow()} for c in ids])
    return ids


def wait_for(condition, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.2)


@pytest.fixture
def open_page(demo_copy: Workspace, monkeypatch):
    monkeypatch.setenv("BRIGHTRUN_WORKSPACE", str(demo_copy.root))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.chdir(ROOT)

    def open_(page: str | None = None) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        if page:
            at.switch_page(page).run()
        assert not at.exception, at.exception
        return at
    return open_


def test_tracked_run_records_progress_and_the_outcome(demo_copy: Workspace) -> None:
    ids = unenrich(demo_copy, 5)
    before = enrichment_state(demo_copy)
    assert (before.pending, before.running, before.state) == (5, False, None)
    seen = []
    result = run_tracked(demo_copy, progress=lambda done, total: seen.append((done, total)))
    assert result.enriched == 5 and seen[-1] == (5, 5)
    after = enrichment_state(demo_copy)
    assert (after.pending, after.state, after.done, after.total, after.enriched) == (0, "completed", 5, 5, 5)
    assert after.pairs == result.pairs > 0 and after.finished_at is not None
    assert demo_copy.scalar("SELECT count(*) FROM conversations WHERE conversation_id IN (SELECT unnest(?)) "
                            "AND enrichment_status = 'completed'", [ids]) == 5


def test_a_run_is_refused_while_another_holds_the_lock_and_a_dead_start_shows_as_failed(demo_copy: Workspace,
                                                                                         monkeypatch) -> None:
    unenrich(demo_copy, 2)
    lock = demo_copy.lock("enrichment", timeout=0)
    lock.acquire()
    try:
        assert enrichment_state(demo_copy).running
        with pytest.raises(BrightRunError, match="already running.*Fix:"):
            launch_enrichment(demo_copy)
        with pytest.raises(BrightRunError, match="lock 'enrichment' is held by .*Fix: wait for it"):
            run_tracked(demo_copy)
    finally:
        lock.release()
    # A launch whose process never took the lock: "starting" for the grace period, then failed with the log named.
    background._write(demo_copy, state="starting", done=0, total=0)
    assert enrichment_state(demo_copy).running
    monkeypatch.setattr(background, "STARTING_GRACE_S", 0.0)
    state = enrichment_state(demo_copy)
    assert not state.running and state.state == "failed" and "logs/enrichment.log" in state.error
    assert state.pending == 2


def test_overview_enriches_the_pending_conversations_in_the_background(open_page, demo_copy: Workspace) -> None:
    unenrich(demo_copy, 7)
    at = open_page()
    assert {m.label: m.value for m in at.metric}["Enriched"] == "96%"
    button = at.button(key="ov_enrich")
    assert button.label == "Enrich 7 pending"
    button.click().run()
    assert not at.exception
    wait_for(lambda: enrichment_state(demo_copy).state == "completed")
    at.run()
    assert {m.label: m.value for m in at.metric}["Enriched"] == "100%"
    assert not [b for b in at.button if b.key == "ov_enrich"]
    assert enrichment_state(demo_copy).enriched == 7


def test_conversations_offers_the_same_and_nothing_when_all_is_enriched(open_page, demo_copy: Workspace) -> None:
    at = open_page("pages/views/conversations.py")
    assert not [b for b in at.button if b.key == "cv_enrich"]
    unenrich(demo_copy, 3)
    at = open_page("pages/views/conversations.py")
    assert at.button(key="cv_enrich").label == "Enrich 3 pending"


def test_training_files_offers_to_enrich_what_it_cannot_add_yet(open_page, demo_copy: Workspace) -> None:
    at = open_page("pages/views/training_files.py")
    assert not [b for b in at.button if b.key == "tf_enrich"]
    unenrich(demo_copy, 2)
    at = open_page("pages/views/training_files.py")
    assert at.button(key="tf_enrich").label == "Enrich 2 pending"


def test_generate_enriches_a_new_job_when_done_by_default(open_page, demo_copy: Workspace) -> None:
    at = open_page("pages/views/generate.py")
    assert at.toggle(key="g_enrich").value is True
    at.multiselect(key="g_personas").set_value(["marcus_chen"]).run()
    at.multiselect(key="g_arcs").set_value(["anger_to_resolution"]).run()
    at.button(key="g_launch").click().run()
    job_id = at.selectbox(key="g_watch_select").value

    def enriched() -> bool:
        row = demo_copy.sql("SELECT count(*), count_if(enrichment_status = 'completed') FROM conversations "
                            "WHERE job_id = ?", [job_id]).row(0)
        return row == (8, 8)
    wait_for(enriched)
    wait_for(lambda: not enrichment_state(demo_copy).running)
    at.run()
    assert any("Enrichment: 8 of 8 conversation(s) enriched" in c.value for c in at.caption)


def test_generate_without_enrichment_leaves_the_job_pending(open_page, demo_copy: Workspace) -> None:
    at = open_page("pages/views/generate.py")
    at.multiselect(key="g_personas").set_value(["marcus_chen"]).run()
    at.multiselect(key="g_arcs").set_value(["anger_to_resolution"]).run()
    at.toggle(key="g_enrich").set_value(False).run()
    at.button(key="g_launch").click().run()
    job_id = at.selectbox(key="g_watch_select").value
    wait_for(lambda: demo_copy.scalar("SELECT status FROM batch_jobs WHERE job_id = ?", [job_id]) == "completed")
    at.run()
    assert any("Enrichment: 0 of 8 conversation(s) enriched" in c.value for c in at.caption)
    assert enrichment_state(demo_copy).pending == 8
