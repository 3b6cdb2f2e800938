"""The app asks nothing of another host: its favicon is served by the app (a Material icon as page_icon made
every page fetch it from fonts.gstatic.com, which fails offline)."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from conftest import rerun_after, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


def test_every_request_stays_on_the_app(browser, demo_app) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    elsewhere = []
    page.on("request", lambda r: urlparse(r.url).hostname not in ("127.0.0.1", None) and elsewhere.append(r.url))
    try:
        page.goto(demo_app.url)
        wait_idle(page, timeout=60_000)
        for title in ("Conversations", "Generate"):
            link = page.locator('[data-testid="stSidebarNavLink"]').filter(has_text=title)
            rerun_after(page, link.click)
        icon = page.locator('link[rel="icon"], link[rel="shortcut icon"]').first.get_attribute("href")
        assert icon and urlparse(icon).hostname in (None, "127.0.0.1"), icon
        assert elsewhere == []
    finally:
        context.close()
