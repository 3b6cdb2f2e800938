"""The whole road in a real browser, without a terminal: generate a job on Generate (scripted provider), see
it enriched, review one of its turns, add it to a training file and export it.

It starts from an empty workspace (the scaffolding library only), so everything the walk finds was made by it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import AppServer, choose, rerun_after, serve, wait_idle
from playwright.sync_api import expect

import brightrun.training_files as tf
from brightrun.exports import FORMATS
from brightrun.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


@pytest.fixture
def empty_app(tmp_path: Path) -> Iterator[AppServer]:
    Workspace.open(tmp_path / "ws")  # the scaffolding library, no data
    with serve(tmp_path / "ws", tmp_path / "streamlit.log") as server:
        yield server


def nav(page, title: str) -> None:
    link = page.locator('[data-testid="stSidebarNavLink"]').filter(has_text=title)
    rerun_after(page, link.click)


def test_generate_enrich_review_add_and_export_without_a_terminal(browser, empty_app: AppServer) -> None:
    ws = Workspace.open(empty_app.workspace)
    context = browser.new_context(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(empty_app.url)
        wait_idle(page, timeout=60_000)

        # Generate 16 scripted conversations (OpenAI's format needs at least 10 examples); "Enrich when done" is
        # on by default.
        nav(page, "Generate")
        choose(page, "Personas", "David Chen - The Pragmatic Optimist")
        choose(page, "Emotional arcs", "Fear -> Security (template)")
        number = page.get_by_label("Conversations per cell")
        rerun_after(page, lambda: (number.fill("2"), number.press("Enter")))
        expect(page.get_by_text(re.compile(r"16 conversation\(s\)")).first).to_be_visible()
        expect(page.get_by_role("switch", name="Enrich when done")).to_be_checked()
        page.get_by_role("button", name="Launch job").click()
        # The live panel follows the job, then its enrichment.
        expect(page.get_by_text("Enrichment: 16 of 16 conversation(s) enriched")).to_be_visible(timeout=120_000)
        assert ws.sql("SELECT DISTINCT enrichment_status FROM conversations").rows() == [("completed",)]

        # Review the first advisor turn of the conversation the queue opens.
        nav(page, "Review")
        name = page.get_by_role("textbox", name="Your name")
        name.fill("Ann")
        rerun_after(page, lambda: name.press("Enter"))
        opened = page.get_by_role("combobox", name="Open").input_value()
        conversation_id = opened.rsplit(" · ", 1)[-1]
        pair_id = ws.scalar("SELECT pair_id FROM training_pairs WHERE conversation_id = ? ORDER BY turn_number "
                            "LIMIT 1", [conversation_id])
        box = page.locator(f".st-key-rv_turn_{pair_id}")
        box.scroll_into_view_if_needed()
        box.get_by_role("radio", name="Thumbs up").click()
        rerun_after(page, box.get_by_role("button", name="Save").click)
        expect(box).to_contain_text("judged by you")
        assert ws.scalar("SELECT helpful FROM feedback WHERE target_id = ? AND reviewer = 'Ann'", [pair_id]) is True

        # Put it in a training file and export it.
        nav(page, "Training files")
        page.get_by_role("textbox", name="Name").fill("walk")
        rerun_after(page, page.get_by_role("button", name="Create").click)
        expect(page.get_by_role("combobox", name="Training file")).to_have_value("walk")
        rerun_after(page, page.get_by_role("button", name="Add 16 new", exact=True).click)
        expect(page.get_by_text("Added 16 new: walk is now version 2.")).to_be_visible()
        assert conversation_id in tf.members(ws, "walk") and len(tf.members(ws, "walk")) == 16
        page.get_by_role("tab", name="Export").click()  # a rerun (only the open tab runs); no wait
        choose(page, "Format", f"openai_sft · {FORMATS['openai_sft'].consumer} (sft)")  # waits for the tab's content
        # The data contracts never ran on this workspace: a reason is needed. It is typed at once, while a rerun
        # may still be drawing: the field keeps its text (tests/browser/test_export_reason_browser.py).
        page.get_by_role("textbox", name="Reason to export anyway").fill("walk test")
        rerun_after(page, page.get_by_role("button", name="Export", exact=True).click)
        expect(page.get_by_text("openai_sft export of v2 passes every check of its consumer.")).to_be_visible(
            timeout=60_000)
    finally:
        context.close()
    folder = ws.root / "exports" / "walk" / "v2" / "openai_sft"
    assert FORMATS["openai_sft"].validator(folder).ok
    assert sum(len(p.read_bytes().splitlines()) for p in folder.rglob("*.jsonl")) > 0
