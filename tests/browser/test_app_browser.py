"""The main flow in a real browser: the overview's heatmap, filtering conversations, opening one."""

from __future__ import annotations

import re

from conftest import choose, wait_idle


def match_count(page) -> int:
    text = page.get_by_text(re.compile(r"conversation\(s\) match")).first.inner_text()
    return int(text.split()[0].replace(",", ""))


def test_overview_heatmap_filter_and_open_a_conversation(browser, demo_app, tmp_path) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(demo_app.url)
    wait_idle(page)
    assert page.get_by_role("heading", name="Overview").is_visible()
    heatmap = page.locator(".js-plotly-plot").first
    heatmap.wait_for(state="visible")
    assert "David Chen" in heatmap.inner_text() and "Confusion -> Clarity" in heatmap.inner_text()

    page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="Conversations").click()
    page.get_by_role("heading", name="Conversations").wait_for()
    wait_idle(page)
    everything = match_count(page)
    assert everything == 160

    choose(page, "Persona", "David Chen - The Pragmatic Optimist")
    page.wait_for_function(
        "() => !document.body.innerText.includes('160 conversation(s) match')", timeout=30_000)
    narrowed = match_count(page)
    assert 0 < narrowed < everything

    box = page.locator('[data-testid="stSelectbox"]').filter(has=page.get_by_text("Open conversation", exact=True))
    box.locator("input").click()
    page.get_by_role("option").first.click()
    wait_idle(page)
    page.locator('[data-testid="stChatMessage"]').first.wait_for()
    assert page.locator('[data-testid="stChatMessage"]').count() > 2
    body = page.locator("body").inner_text()
    assert "Client" in body and "Advisor" in body and "Persona" in body and "David Chen" in body
    page.get_by_text("The LLM call behind it").click()
    page.get_by_text("System prompt").wait_for()
    page.screenshot(path=str(tmp_path / "conversation.png"), full_page=True)
    page.close()
