"""The main flow in a real browser over the 160-conversation demo workspace: the overview's coverage
heatmap, the Conversations page, filtering by persona, opening one conversation as a chat."""

from __future__ import annotations

import re

import pytest
from conftest import choose, rerun_after, wait_idle
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

SCREENSHOT = "/tmp/brightrun_browser.png"
OVERVIEW_SCREENSHOT = "/tmp/brightrun_browser_overview.png"
MATCH = re.compile(r"([\d,]+) conversation\(s\) match")


def match_caption(page):
    return page.locator('[data-testid="stCaptionContainer"]').filter(has_text=MATCH)


def match_count(page) -> int:
    caption = match_caption(page)
    expect(caption).to_have_count(1)
    return int(MATCH.search(caption.inner_text()).group(1).replace(",", ""))


CONTENT_HEIGHT_JS = """() => Math.max(document.documentElement.scrollHeight, ...Array.from(
    document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"], '
                              + '[data-testid="stAppScrollToBottomContainer"]'), e => e.scrollHeight))"""


def show_whole_page(page, width: int = 1400, limit: int = 12_000) -> None:
    """Grow the viewport to the content: Streamlit scrolls inside its own container, so a full-page
    screenshot alone shows only the first screen."""
    for _ in range(5):
        needed = min(int(page.evaluate(CONTENT_HEIGHT_JS)), limit)
        if needed <= page.viewport_size["height"]:
            return
        page.set_viewport_size({"width": width, "height": needed})
        page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")


def test_overview_heatmap_filter_and_open_a_conversation(demo_page, demo_app) -> None:
    page = demo_page
    try:
        # Overview: the coverage heatmap is drawn by plotly and names the personas.
        expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
        expect(page.locator(".st-key-coverage_table [data-testid='stDataFrame']")).to_be_visible()  # drawn first
        expect(page.locator(".js-plotly-plot")).to_have_count(0)  # no chart on the first run: the page budget
        rerun_after(page, page.get_by_role("tab", name="Heatmap").click)
        heatmap = page.locator(".st-key-coverage_heatmap .js-plotly-plot")
        expect(heatmap).to_be_visible()
        expect(heatmap).to_contain_text("David Chen")
        expect(heatmap).to_contain_text("Priya Natarajan")
        expect(page.get_by_text(re.compile(r"empty cell\(s\) and \d+ thin cell\(s\)"))).to_be_visible()
        page.screenshot(path=OVERVIEW_SCREENSHOT)

        # Conversations, via the sidebar navigation.
        link = page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="Conversations")
        rerun_after(page, link.click)
        expect(page).to_have_url(re.compile(r"/conversations$"))
        expect(page.get_by_role("heading", name="Conversations", exact=True)).to_be_visible()
        everything = match_count(page)
        assert everything == 160

        # Filter by one persona: fewer conversations match, but some do.
        choose(page, "Persona", "David Chen - The Pragmatic Optimist")
        chips = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Persona").first
        expect(chips).to_contain_text("David Chen - The Pragmatic Optimist")
        expect(match_caption(page)).not_to_have_text(f"{everything} conversation(s) match")
        narrowed = match_count(page)
        assert 0 < narrowed < everything

        # Open the first conversation of the list: it reads as a chat, with its scaffold.
        choose(page, "Open conversation")
        messages = page.locator('[data-testid="stChatMessage"]')
        expect(messages.first).to_be_visible()
        assert messages.count() > 2
        expect(messages.filter(has_text="Client").first).to_be_visible()
        expect(messages.filter(has_text="Advisor").first).to_be_visible()
        main = page.locator('[data-testid="stMain"]')
        for field in ("Persona", "Arc", "Topic", "Template"):  # the scaffold, as bold labels above the chat
            expect(main.locator("strong").filter(has_text=re.compile(rf"^{field}$"))).to_be_visible()
        expect(main.locator("p").filter(has=page.locator("strong", has_text="Persona"))
               ).to_contain_text("David Chen - The Pragmatic Optimist")
        expect(page.locator('[data-testid="stException"]')).to_have_count(0)

        # The LLM call behind it (an expander drawn when opened: opening it reruns the page).
        expander = page.locator('[data-testid="stExpander"]').filter(has_text="The LLM call behind it")
        rerun_after(page, expander.get_by_text("The LLM call behind it").click)
        expect(expander.get_by_text("System prompt", exact=True)).to_be_visible()
        expect(expander.get_by_text("Raw response", exact=True)).to_be_visible()
        wait_idle(page)

        # Grow the viewport to the whole page (Streamlit scrolls inside its own container), then shoot.
        show_whole_page(page)
        expect(expander.get_by_text("System prompt", exact=True)).to_be_visible()
        page.screenshot(path=SCREENSHOT, full_page=True)
    except Exception as exc:
        try:
            page.screenshot(path=SCREENSHOT, full_page=True)
        except Exception:  # noqa: BLE001 - the original failure matters more
            pass
        raise AssertionError(f"{exc}\n(screenshot: {SCREENSHOT})\n{demo_app.logs()}") from exc
