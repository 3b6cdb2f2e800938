"""The Conversations page in a real browser: a search for `10%` finds the conversations that say it, and a
reload keeps the filters and the open conversation (they live in the address)."""

from __future__ import annotations

import re

import polars as pl
import pytest
from conftest import choose, rerun_after, wait_idle
from playwright.sync_api import expect

from brightrun.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


def open_conversations(page, url: str) -> None:
    link = page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="Conversations")
    rerun_after(page, link.click)
    expect(page).to_have_url(re.compile(r"/conversations"))


def test_search_for_a_percentage(demo_page, demo_app, demo_ws_path) -> None:
    ws = Workspace.open(demo_ws_path)
    said = ws.read("turns").filter(pl.col("content").str.contains("10%", literal=True))["conversation_id"].n_unique()
    assert said > 0
    open_conversations(demo_page, demo_app.url)
    box = demo_page.get_by_role("textbox", name="Search titles and turns")
    box.fill("10%")
    rerun_after(demo_page, lambda: box.press("Enter"))
    expect(demo_page.get_by_text(re.compile(r"conversation\(s\) match"))).to_have_text(
        f"{said:,} conversation(s) match")


def test_a_reload_keeps_the_filter_and_the_open_conversation(demo_page, demo_app, demo_ws_path) -> None:
    ws = Workspace.open(demo_ws_path)
    page = demo_page
    open_conversations(page, demo_app.url)
    choose(page, "Persona", "David Chen - The Pragmatic Optimist")
    first = ws.sql("SELECT conversation_id, title FROM conversations WHERE persona_key = 'david_chen' "
                   "ORDER BY created_at DESC, conversation_id LIMIT 1").row(0)
    choose(page, "Open conversation", f"{first[1]} · {first[0]}")
    expect(page.get_by_role("heading", name=first[1])).to_be_visible()
    # The address names them (by their labels, as Streamlit binds widgets to it).
    expect(page).to_have_url(re.compile(r"f_personas=David\+Chen"))
    expect(page).to_have_url(re.compile(rf"open_conversation=[^&]*{re.escape(first[0])}"))

    page.reload()
    wait_idle(page, timeout=60_000)
    expect(page.get_by_role("heading", name=first[1])).to_be_visible()
    persona = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Persona").first
    expect(persona).to_contain_text("David Chen - The Pragmatic Optimist")
    count = ws.scalar("SELECT count(*) FROM conversations WHERE persona_key = 'david_chen'")
    expect(page.get_by_text(re.compile(r"conversation\(s\) match"))).to_have_text(f"{count:,} conversation(s) match")
