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
