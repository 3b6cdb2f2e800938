"""A shared link opened first thing after the app starts: the page it names, with no "Page not found"
dialog over it (plain `streamlit run app.py` showed one to the first session; `make run` serves through
brightrun.ui.serve)."""

from __future__ import annotations

import pytest
from conftest import open_deep_link, serve

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


def test_a_deep_link_is_the_first_thing_a_fresh_server_serves(browser, demo_ws_path, tmp_path) -> None:
    with serve(demo_ws_path, tmp_path / "streamlit.log") as server:  # its own server: no session ran app.py
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(30_000)
        try:
            open_deep_link(page, f"{server.url}/review", "Review")
            open_deep_link(page, f"{server.url}/conversations", "Conversations")
            assert page.get_by_role("dialog").count() == 0
        finally:
            context.close()
