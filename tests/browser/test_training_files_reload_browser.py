"""Training files in a real browser keeps its open file and tab in the address: after a reload the same file and
tab are open, and the last export of the file's version offers its downloads again."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import AppServer, choose, open_deep_link, rerun_after, serve, wait_idle
from playwright.sync_api import expect

import brightrun.training_files as tf
from brightrun.training_files.export import export_folder, export_version
from brightrun.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


@pytest.fixture
def app(demo_ws_path: Path, tmp_path: Path) -> Iterator[AppServer]:
    """A demo copy with two training files; the second ("beta") exported to OpenAI's chat format."""
    target = tmp_path / "ws"
    shutil.copytree(demo_ws_path, target, ignore=shutil.ignore_patterns("locks"))
    ws = Workspace.open(target)
    ids = ws.sql("SELECT conversation_id FROM conversations ORDER BY conversation_id LIMIT 20")["conversation_id"]
    for name in ("alpha", "beta"):
        tf.create_training_file(ws, name)
        tf.add_conversations(ws, name, ids.to_list())
    version = tf.get_version(ws, "beta").version
    export_version(ws, "beta", "openai_sft", export_folder(ws, "beta", version, "openai_sft"), force_reason="a dry run")
    with serve(target, tmp_path / "streamlit.log") as server:
        yield server


def test_reload_keeps_the_file_the_tab_and_the_last_exports_downloads(browser, app: AppServer) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        open_deep_link(page, app.url + "/training_files", "Training files")
        choose(page, "Training file", "beta")
        rerun_after(page, page.get_by_role("tab", name="Export").click)
        expect(page).to_have_url(re.compile(r"training_file=beta"))
        expect(page).to_have_url(re.compile(r"tf_tab=Export"))
        download = page.get_by_role("button", name="Download data/train.jsonl")
        expect(download).to_be_visible()

        page.reload()
        wait_idle(page, timeout=60_000)
        expect(page.get_by_role("combobox", name="Training file", exact=True)).to_have_value("beta")
        expect(page.get_by_role("tab", name="Export")).to_have_attribute("aria-selected", "true")
        expect(page.get_by_text(re.compile(r"Last export of v2: openai_sft"))).to_be_visible()
        with page.expect_download() as info:
            download.click()
        saved = info.value.path()
        on_disk = export_folder(Workspace.open(app.workspace), "beta", 2, "openai_sft") / "data" / "train.jsonl"
        assert Path(saved).read_bytes() == on_disk.read_bytes()
    finally:
        context.close()
