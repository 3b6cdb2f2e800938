"""The Quality page in a real browser: select a row of the scores table (drawn first) or click a bar of the score
chart, get that group's records, open one; a reload keeps the group and the open record (they live in the
address)."""

from __future__ import annotations

import re

import pytest
from conftest import choose, open_deep_link, rerun_after, wait_idle
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

SCREENSHOT = "/tmp/brightrun_browser_quality.png"
RECORDS = re.compile(r"([\d,]+) conversation\(s\), weakest first")


def records_count(page) -> int:
    caption = page.locator('[data-testid="stCaptionContainer"]').filter(has_text=RECORDS)
    expect(caption).to_have_count(1)
    return int(RECORDS.search(caption.inner_text()).group(1).replace(",", ""))


def test_drill_from_a_bar_to_a_record(demo_page, demo_ws) -> None:
    page = demo_page
    try:
        link = page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="Quality")
        rerun_after(page, link.click)
        expect(page).to_have_url(re.compile(r"/quality$"))
        expect(page.get_by_role("heading", name="Quality", exact=True)).to_be_visible()
        assert records_count(page) == 160
        key = demo_ws.sql("SELECT persona_key FROM conversations GROUP BY 1 ORDER BY avg(quality_score) LIMIT 1").item()
        expected = demo_ws.scalar("SELECT count(*) FROM conversations WHERE persona_key = ?", [key])

        # The first run shows the scores as a table; selecting its first (weakest) row drills down like a bar.
        expect(page.locator(".js-plotly-plot")).to_have_count(0)
        grid = page.locator(".st-key-q_group_table [data-testid='stDataFrameResizable']")
        box = grid.bounding_box()
        assert box is not None
        rerun_after(page, lambda: page.mouse.click(box["x"] + 15, box["y"] + 35 + 17))  # the first row's marker
        expect(page.get_by_text(RECORDS)).to_contain_text(f"{expected} conversation(s)")
        page.goto(re.sub(r"\?.*$", "", page.url))  # the plain page again: every persona
        wait_idle(page, timeout=60_000)
        expect(page.get_by_text(RECORDS)).to_contain_text("160 conversation(s)")

        # The score chart has one bar per persona; the first (weakest) bar is clicked.
        rerun_after(page, page.locator('[data-testid="stButtonGroup"] button').filter(has_text="Bars").click)
        plot = page.locator(".st-key-q_chart .js-plotly-plot")
        expect(plot).to_be_visible()
        bars = plot.locator(".barlayer .point")
        expect(bars).to_have_count(4)
        weakest_label = plot.locator(".xtick text").first.text_content()
        box = bars.first.bounding_box()
        assert box is not None
        rerun_after(page, lambda: page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.75))

        # The records below are now that persona's conversations only.
        expect(page.locator(".st-key-q_drill").get_by_role("combobox", name="Persona")).to_have_value(weakest_label)
        expect(page.get_by_text(RECORDS)).to_contain_text(f"{expected} conversation(s)")
        assert records_count(page) == expected < 160

        # Open the weakest record of that group: its turns read as a chat with per-turn scores.
        weakest = demo_ws.sql("""SELECT conversation_id FROM conversations WHERE persona_key = ?
                                 ORDER BY quality_score, conversation_id LIMIT 1""", [key]).item()
        # The selectbox is below the fold; bring it into view first, or the scroll that Playwright's click
        # makes closes the list the click opens.
        page.get_by_role("combobox", name="Open a record").scroll_into_view_if_needed()
        page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
        choose(page, "Open a record", weakest)
        messages = page.locator('[data-testid="stChatMessage"]')
        expect(messages.first).to_be_visible()
        first_turn = demo_ws.sql("SELECT content FROM turns WHERE conversation_id = ? ORDER BY turn_number LIMIT 1",
                                 [weakest]).item()
        expect(messages.first).to_contain_text(first_turn[:60])
        expect(messages.filter(has_text=re.compile(r"Advisor · turn \d+ · score \d")).first).to_be_visible()

        # A reload (or the address shared) keeps the group and the open record.
        expect(page).to_have_url(re.compile(rf"q_open={re.escape(weakest)}"))
        page.reload()
        wait_idle(page, timeout=60_000)
        expect(page.locator(".st-key-q_drill").get_by_role("combobox", name="Persona")).to_have_value(weakest_label)
        assert records_count(page) == expected
        expect(page.get_by_role("combobox", name="Open a record")).to_have_value(weakest)
        expect(page.locator('[data-testid="stChatMessage"]').first).to_contain_text(first_turn[:60])
        page.screenshot(path=SCREENSHOT, full_page=True)
    except Exception:
        page.screenshot(path=SCREENSHOT, full_page=True)
        raise


def test_the_metric_survives_another_tab_and_a_reload(demo_page, demo_app) -> None:
    """The chosen metric is in the address (as the app writes it: its label); after a visit to another tab and
    back, and after a reload of that address, the metric is still the chosen one."""
    page = demo_page
    label = "Empathy (0-1, per turn)"
    open_deep_link(page, demo_app.url.rstrip("/") + "/quality", "Quality")
    choose(page, "Metric", label)
    expect(page).to_have_url(re.compile(r"q_metric=Empathy"))
    rerun_after(page, page.get_by_role("tab", name="Duplicates").click)
    rerun_after(page, page.get_by_role("tab", name="Scores").click)
    expect(page.get_by_role("combobox", name="Metric")).to_have_value(label)
    expect(page).to_have_url(re.compile(r"q_metric=Empathy"))
    page.reload()
    wait_idle(page, timeout=60_000)
    expect(page.get_by_role("combobox", name="Metric")).to_have_value(label)
