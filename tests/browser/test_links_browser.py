"""Pages link to each other: a click on a coverage cell of Overview lists that cell's conversations."""

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
