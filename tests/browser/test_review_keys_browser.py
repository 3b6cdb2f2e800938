"""Review by keyboard in a real browser: U gives the turn in focus a thumbs up, 4 rates it, and the saved
judgement shows on that turn and lands in the workspace."""

from __future__ import annotations

import re

import pytest
from conftest import AppServer, rerun_after, wait_idle
from playwright.sync_api import expect
from test_review_browser import review_app  # noqa: F401 - the fixture: a private copy of the demo

from brightrun.feedback import ReviewFilter, review_queue
from brightrun.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


def test_keys_judge_the_turn_in_focus(browser, review_app: AppServer) -> None:  # noqa: F811
    ws = Workspace.open(review_app.workspace)
    opened = review_queue(ws, ReviewFilter(by="Ann"))["conversation_id"][0]
    first = ws.sql("SELECT pair_id FROM training_pairs WHERE conversation_id = ? ORDER BY turn_number LIMIT 1",
                   [opened]).item()
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(30_000)
    page.goto(review_app.url)
    wait_idle(page, timeout=60_000)
    link = page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="Review")
    rerun_after(page, link.click)
    name = page.get_by_role("textbox", name="Your name")
    name.fill("Ann")
    rerun_after(page, lambda: name.press("Enter"))
    expect(page.get_by_text(re.compile(r"Keys \(when not typing in a field\): U thumbs up"))).to_be_visible()
    page.evaluate("document.activeElement && document.activeElement.blur()")  # not typing in a field
    rerun_after(page, lambda: page.keyboard.press("u"))
    rerun_after(page, lambda: page.keyboard.press("4"))
    turn = page.locator(f".st-key-rv_turn_{first}")
    expect(turn).to_contain_text("judged by you: thumbs up, 4/5")
    assert ws.sql("SELECT helpful, rating FROM feedback_latest WHERE target_id = ? AND reviewer = 'Ann'",
                  [first]).row(0) == (True, 4)
