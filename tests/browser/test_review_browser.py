"""The Review page in a real browser: enter a name, review three advisor turns (a thumbs up, a rating, an
edit), reload, and see them counted and pre-filled; the edit sits beside the original in the workspace.

It writes feedback, so it serves its own copy of the demo workspace instead of the shared `demo_app`."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import AppServer, rerun_after, serve, track, wait_idle
from playwright.sync_api import expect

from brightrun.feedback import ReviewFilter, review_queue
from brightrun.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

SCREENSHOT = "/tmp/brightrun_browser_review.png"
EDIT = "Let's take this one step at a time. What matters most to you right now?"


@pytest.fixture
def review_app(demo_ws_path: Path, tmp_path: Path) -> Iterator[AppServer]:
    """The app over a private copy of the demo workspace, which the test may write to."""
    target = tmp_path / "ws"
    shutil.copytree(demo_ws_path, target, ignore=shutil.ignore_patterns("locks"))
    with serve(target, tmp_path / "streamlit.log") as server:
        yield server


def turn(page, pair_id: str):
    box = page.locator(f".st-key-rv_turn_{pair_id}")
    box.scroll_into_view_if_needed()
    return box


def judge(page, pair_id: str):
    """A turn with its judgement form drawn: only the turn in focus opens by itself, another on a click."""
    box = turn(page, pair_id)
    if not box.get_by_role("button", name="Save").count():
        rerun_after(page, box.get_by_text("Your judgement").first.click)
        expect(box.get_by_role("button", name="Save")).to_be_visible()
    return box


def save(page, pair_id: str) -> None:
    """Save a turn: only that turn's fragment reruns, not the page."""
    button = turn(page, pair_id).get_by_role("button", name="Save")
    tracker = track(page)
    before = (tracker.finished, tracker.fragment_runs)
    rerun_after(page, button.click)
    assert (tracker.finished - before[0], tracker.fragment_runs - before[1]) == (1, 1)
    expect(turn(page, pair_id)).to_contain_text("judged by you")


def progress_caption(page):
    return page.get_by_text(re.compile(r"conversations reviewed · [\d,]+ of [\d,]+ turns judged"))


def test_review_three_turns_and_see_them_after_a_reload(browser, review_app: AppServer) -> None:
    ws = Workspace.open(review_app.workspace)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(review_app.url)
        wait_idle(page, timeout=60_000)
        link = page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="Review")
        rerun_after(page, link.click)
        expect(page).to_have_url(re.compile(r"/review"))
        expect(page.get_by_text("nothing can be saved without it")).to_be_visible()

        name = page.get_by_role("textbox", name="Your name")
        name.fill("Ann")
        rerun_after(page, lambda: name.press("Enter"))
        expect(page).to_have_url(re.compile(r"/review\?(.*&)?reviewer=Ann"))
        expect(progress_caption(page)).to_contain_text("0 of 791 turns judged by you")

        # The first conversation of the queue opens; review three of its advisor turns.
        opened = review_queue(ws, ReviewFilter(by="Ann"))["conversation_id"][0]
        expect(page.get_by_role("combobox", name="Open")).to_have_value(re.compile(re.escape(opened)))
        pairs = ws.sql("SELECT pair_id, target_response FROM training_pairs WHERE conversation_id = ? "
                       "ORDER BY turn_number", [opened]).rows()
        assert len(pairs) >= 3
        (up, _), (rated, _), (edited, original) = pairs[:3]

        judge(page, up).get_by_role("radio", name="Thumbs up").click()
        save(page, up)
        judge(page, rated).get_by_role("radio", name="4 out of 5 stars").click()
        save(page, rated)
        judge(page, edited).get_by_text("Edit the response").first.click()  # the edit box opens when asked
        turn(page, edited).get_by_role("textbox", name="Edit the response").fill(EDIT)
        save(page, edited)
        # The queue's progress catches up on the next run of the page (no full rerun per save).
        expect(progress_caption(page)).to_contain_text("0 of 791 turns judged by you")

        # A reload keeps the name (it is in the address), the counts and every saved value.
        page.reload()
        wait_idle(page, timeout=60_000)
        expect(page.get_by_role("textbox", name="Your name")).to_have_value("Ann")
        expect(progress_caption(page)).to_contain_text("3 of 791 turns judged by you")
        expect(page.get_by_role("combobox", name="Open")).to_have_value(re.compile(re.escape(opened)))
        expect(page.get_by_text(re.compile(r"you judged 3 of \d+ advisor turn"))).to_be_visible()
        expect(judge(page, up).get_by_role("radio", name="Thumbs up")).to_have_attribute("aria-checked", "true")
        expect(judge(page, rated).get_by_role("radio", name="4 out of 5 stars")).to_have_attribute(
            "aria-checked", "true")
        expect(judge(page, edited).get_by_role("textbox", name=re.compile("Edit the response"))).to_have_value(EDIT)
        for pair_id in (up, rated, edited):
            expect(turn(page, pair_id)).to_contain_text("judged by you")

        # The edit sits beside the original: a feedback row of its own, the training pair untouched.
        rows = ws.sql("""SELECT f.target_id, f.helpful, f.rating, f.edited_response, p.target_response
                         FROM feedback f JOIN training_pairs p ON p.pair_id = f.target_id
                         WHERE f.source = 'review' AND f.reviewer = 'Ann' ORDER BY f.created_at""").rows()
        assert rows == [(up, True, None, None, pairs[0][1]), (rated, None, 4, None, pairs[1][1]),
                        (edited, None, None, EDIT, original)]

        # Keyboard: J moves on to the next conversation of the queue (when no field has the focus).
        page.evaluate("() => document.activeElement && document.activeElement.blur()")
        rerun_after(page, lambda: page.keyboard.press("j"))
        expect(page.get_by_text(re.compile(r"^Conversation 2 of 160"))).to_be_visible()
        page.screenshot(path=SCREENSHOT, full_page=True)
    except Exception:
        page.screenshot(path=SCREENSHOT, full_page=True)
        raise
    finally:
        context.close()
