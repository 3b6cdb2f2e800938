"""A laptop screen (1024x768): no metric on Overview or Generate is cut; the tiles wrap onto more rows."""

from __future__ import annotations

import pytest
from conftest import wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

CUT_JS = """() => [...document.querySelectorAll('[data-testid="stMetricValue"]')].map(e => ({
    text: e.innerText,
    cut: [e, ...e.querySelectorAll('*')].some(x => x.scrollWidth > x.clientWidth + 1),
}))"""


@pytest.mark.parametrize(("path", "expected"), [("", 9), ("/generate", 6)])
def test_no_metric_is_cut_at_1024x768(browser, demo_app, path: str, expected: int) -> None:
    context = browser.new_context(viewport={"width": 1024, "height": 768})
    page = context.new_page()
    try:
        page.goto(demo_app.url + path)
        wait_idle(page, timeout=60_000)
        page.locator('[data-testid="stMetricValue"]').nth(expected - 1).wait_for()
        metrics = page.evaluate(CUT_JS)
        assert len(metrics) >= expected
        assert [m["text"] for m in metrics if m["cut"]] == []
    finally:
        context.close()


OUTSIDE_JS = """() => {
    const group = [...document.querySelectorAll('[data-testid="stButtonGroup"]')][0];
    const clip = group.closest('[data-testid="stColumn"]') || document.body;
    const edge = Math.min(window.innerWidth, clip.getBoundingClientRect().right);
    return [...group.querySelectorAll('button')].map(b => ({text: b.innerText, right: b.getBoundingClientRect().right,
                                                          edge: edge}));
}"""


def test_every_group_by_option_on_quality_is_on_screen_at_1024x768(browser, demo_app) -> None:
    context = browser.new_context(viewport={"width": 1024, "height": 768})
    page = context.new_page()
    try:
        page.goto(demo_app.url + "/quality")
        wait_idle(page, timeout=60_000)
        page.locator('[data-testid="stButtonGroup"] button').first.wait_for()
        options = page.evaluate(OUTSIDE_JS)
        assert len(options) >= 5, options
        assert [o["text"] for o in options if o["right"] > o["edge"] + 1] == [], options
    finally:
        context.close()
