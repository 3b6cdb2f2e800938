"""The App logs page in a real browser: upload a CSV log, import it with the guessed mapping, see it counted."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import AppServer, rerun_after, serve, wait_idle
from playwright.sync_api import expect

from brightrun.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

CSV = """timestamp,user_id,session_id,action_type,prompt,response,thumbs_up,rating
2026-01-05T09:00:00Z,u1,s1,frequency_flip,I never have enough time,You are choosing where your time goes,true,5
2026-01-05T09:01:00Z,u1,s1,blueprint_generation,Write my blueprint,Step one: mornings for you,false,
2026-01-05T09:02:00Z,u2,s2,scene_generation,,An empty prompt is a bad row,,
"""


@pytest.fixture
def app(demo_ws_path: Path, tmp_path: Path) -> Iterator[tuple[AppServer, Path]]:
    target = tmp_path / "ws"
    shutil.copytree(demo_ws_path, target, ignore=shutil.ignore_patterns("locks"))
    with serve(target, tmp_path / "streamlit.log") as server:
        yield server, target


def test_upload_a_csv_log_and_import_it(browser, app, tmp_path: Path) -> None:
    server, workspace = app
    log = tmp_path / "app_calls.csv"
    log.write_text(CSV)
    before = Workspace.open(workspace).scalar("SELECT count(*) FROM llm_calls WHERE import_id IS NOT NULL")
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(server.url)
        wait_idle(page, timeout=60_000)
        link = page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="App logs")
        rerun_after(page, link.click)
        expect(page.get_by_role("heading", name="App logs", exact=True)).to_be_visible()

        uploader = page.locator('[data-testid="stFileUploader"] input[type="file"]')
        rerun_after(page, lambda: uploader.set_input_files(str(log)))
        expect(page.get_by_text(re.compile(r"CSV · 8 column\(s\)"))).to_be_visible()
        # The mapping was guessed from the column names; import with it.
        rerun_after(page, page.get_by_role("button", name="Import").click)
        expect(page.get_by_text("Imported 2 new call(s)")).to_be_visible()
        after = Workspace.open(workspace).scalar("SELECT count(*) FROM llm_calls WHERE import_id IS NOT NULL")
        assert after == before + 2

        # The Imports tab lists it with its bad row, found by its line (the header is line 1).
        rerun_after(page, page.get_by_role("tab", name="Imports").click)  # only the open tab runs: a rerun
        expect(page.get_by_text(re.compile(r"Bad rows: 1\b"))).to_be_visible()
        bad = Workspace.open(workspace).sql("SELECT line, field FROM import_errors ORDER BY import_id DESC")
        assert (4, "input") in bad.rows()
        page.screenshot(path="/tmp/brightrun_browser_applogs.png", full_page=True)
    except Exception:
        page.screenshot(path="/tmp/brightrun_browser_applogs.png", full_page=True)
        raise
    finally:
        context.close()
