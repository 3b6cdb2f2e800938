"""Pages link to each other: a click on a coverage cell of Overview (its table, drawn first, or its heatmap)
lists that cell's conversations."""

from __future__ import annotations

import re

import pytest
from conftest import rerun_after, wait_idle
from playwright.sync_api import expect

from brightrun.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


def test_a_heatmap_cell_opens_its_conversations(demo_page, demo_ws_path) -> None:
    ws = Workspace.open(demo_ws_path)
    persona, arc = next(iter(ws.scaffolding.personas)), next(iter(ws.scaffolding.arcs))
    rows, cols = len(ws.scaffolding.personas), len(ws.scaffolding.arcs)
    expected = ws.scalar("SELECT count(*) FROM conversations WHERE persona_key = ? AND arc_key = ?", [persona, arc])
    page = demo_page
    rerun_after(page, page.get_by_role("tab", name="Heatmap").click)  # the table is the first tab
    plot = page.locator(".st-key-coverage_heatmap .js-plotly-plot")
    plot.scroll_into_view_if_needed()
    area = plot.locator(".nsewdrag").first.bounding_box()
    assert area is not None
    x, y = area["x"] + area["width"] / (2 * cols), area["y"] + area["height"] / (2 * rows)  # the top-left cell
    rerun_after(page, lambda: page.mouse.click(x, y))
    wait_idle(page, timeout=60_000)
    expect(page).to_have_url(re.compile(r"/conversations"))
    expect(page.get_by_text(re.compile(r"conversation\(s\) match"))).to_have_text(f"{expected:,} conversation(s) match")
    name = ws.scaffolding.personas[persona].name
    expect(page.locator('[data-testid="stMultiSelect"]').filter(has_text="Persona").first).to_contain_text(name)


def test_a_coverage_table_cell_opens_its_conversations(demo_page, demo_ws_path) -> None:
    """The first run shows coverage as a table (no chart to load); a click on a count lists that cell."""
    ws = Workspace.open(demo_ws_path)
    page = demo_page
    grid = page.locator(".st-key-coverage_table [data-testid='stDataFrameResizable']")
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    assert box is not None
    # A count in the first row (the header row and each row are 35 px high; the first column names the persona).
    rerun_after(page, lambda: page.mouse.click(box["x"] + box["width"] * 0.6, box["y"] + 35 + 17))
    wait_idle(page, timeout=60_000)
    expect(page).to_have_url(re.compile(r"/conversations"))
    persona = next(iter(ws.scaffolding.personas))  # the first row
    expect(page.locator('[data-testid="stMultiSelect"]').filter(has_text="Persona").first).to_contain_text(
        ws.scaffolding.personas[persona].name)
    chosen = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Emotional arc").first.inner_text()
    (arc,) = [k for k, a in ws.scaffolding.arcs.items() if f"{a.name} (" in chosen]  # the clicked column
    expected = ws.scalar("SELECT count(*) FROM conversations WHERE persona_key = ? AND arc_key = ?", [persona, arc])
    expect(page.get_by_text(re.compile(r"conversation\(s\) match"))).to_have_text(f"{expected:,} conversation(s) match")
