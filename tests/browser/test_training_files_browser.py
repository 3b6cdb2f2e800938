"""The Training files page in a real browser: create a training file, add conversations from a filter
(its eligible conversations are added, the two not enriched are left out and said so), see the same
filter refused with its list once it has nothing new, export to OpenAI's chat format and download the
training split.

It writes to the workspace, so it serves its own copy of the demo workspace. Two conversations of one
persona are marked as not enriched before the app starts: that persona's filter then holds an
ineligible selection."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from conftest import AppServer, choose, rerun_after, serve, wait_idle
from playwright.sync_api import expect

import brightrun.training_files as tf
from brightrun.explore.browse import filter_options
from brightrun.exports import FORMATS
from brightrun.workspace import Workspace, utcnow

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

SCREENSHOT = "/tmp/brightrun_browser_training_files.png"


@pytest.fixture
def prepared(demo_ws_path: Path, tmp_path: Path) -> tuple[Path, str, list[str]]:
    """A private demo copy where two conversations of the first persona are not enriched."""
    target = tmp_path / "ws"
    shutil.copytree(demo_ws_path, target, ignore=shutil.ignore_patterns("locks"))
    ws = Workspace.open(target)
    persona = next(iter(ws.scaffolding.personas))
    stale = ws.sql("SELECT conversation_id FROM conversations WHERE persona_key = ? ORDER BY conversation_id "
                   "LIMIT 2", [persona])["conversation_id"].to_list()
    ws.append("conversation_status", [{"conversation_id": cid, "status": "not_started", "enrichment_version": "2",
                                       "updated_at": utcnow()} for cid in stale])
    return target, persona, stale


@pytest.fixture
def app(prepared, tmp_path: Path) -> Iterator[AppServer]:
    with serve(prepared[0], tmp_path / "streamlit.log") as server:
        yield server


def test_create_from_a_filter_blocked_then_added_and_exported(browser, app: AppServer, prepared,
                                                               tmp_path: Path) -> None:
    _, persona, stale = prepared
    ws = Workspace.open(app.workspace)
    labels = filter_options(ws)
    wanted = tf.ids_from_filter(ws, {"persona_key": [persona], "enrichment_status": ["completed"]})
    context = browser.new_context(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(app.url)
        wait_idle(page, timeout=60_000)
        link = page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="Training files")
        rerun_after(page, link.click)
        expect(page).to_have_url(re.compile(r"/training_files"))
        expect(page.get_by_text("No training file yet")).to_be_visible()

        # Create it.
        page.get_by_role("textbox", name="Name").fill("coaching-v1")
        page.get_by_role("textbox", name="Description").fill("The first coaching set")
        rerun_after(page, page.get_by_role("button", name="Create").click)
        expect(page.get_by_role("combobox", name="Training file")).to_have_value("coaching-v1")

        # A filter that holds two conversations that are not enriched: the others are added, the two left out.
        choose(page, "Persona", labels["personas"][persona])
        matching = len(wanted) + len(stale)
        expect(page.get_by_text(f"{matching:,} conversation(s) match this filter.")).to_be_visible()
        rerun_after(page, page.get_by_role("button", name=f"Add {len(wanted):,} new (2 not enriched)").click)
        expect(page.get_by_text(f"Added {len(wanted):,} new (2 not enriched): coaching-v1 is now version 2.")
               ).to_be_visible()
        assert sorted(tf.members(ws, "coaching-v1")) == sorted(wanted)

        # The same filter again adds nothing: refused, with the list of what it leaves out and why.
        rerun_after(page, page.get_by_role(
            "button", name=f"Add 0 new ({len(wanted):,} already members, 2 not enriched)").click)
        alert = page.get_by_role("alert").filter(has_text="nothing was added")
        expect(alert).to_contain_text(f"{len(wanted):,} already members, 2 not enriched")
        expect(page.get_by_text(f"Nothing was changed. {matching:,} conversation(s) blocked it:")).to_be_visible()
        assert tf.get_version(ws, "coaching-v1").version == 2
        expect(page.get_by_text(f"Left out: {len(wanted):,} already members, 2 not enriched")).to_be_visible()

        # Export to OpenAI chat format: the contracts never ran on this copy, so a reason is asked.
        page.get_by_role("tab", name="Export").click()  # starts a rerun (the tab is in the address); no wait
        expect(page.get_by_text("have not run on this workspace")).to_be_visible()
        choose(page, "Format", f"openai_sft · {FORMATS['openai_sft'].consumer} (sft)")
        page.get_by_role("textbox", name="Reason to export anyway").fill("browser test")
        rerun_after(page, page.get_by_role("button", name="Export", exact=True).click)
        expect(page.get_by_text("openai_sft export of v2 passes every check of its consumer.")).to_be_visible(
            timeout=60_000)

        with page.expect_download() as info:
            page.get_by_role("button", name="Download data/train.jsonl").click()
        download = info.value
        assert download.suggested_filename == "train.jsonl"
        saved = tmp_path / "downloaded-train.jsonl"
        download.save_as(saved)
        page.screenshot(path=SCREENSHOT, full_page=True)
    finally:
        context.close()

    on_disk = ws.root / "exports" / "coaching-v1" / "v2" / "openai_sft" / "data" / "train.jsonl"
    assert saved.read_bytes() == on_disk.read_bytes()
    rows = [orjson.loads(line) for line in saved.read_bytes().splitlines()]
    version = tf.get_version(ws, "coaching-v1")
    assert len(rows) == version.splits.count("train") > 0
    assert all(r["messages"][0]["role"] == "system" and r["messages"][-1]["role"] == "assistant" for r in rows)
    assert FORMATS["openai_sft"].validator(on_disk.parent.parent).ok
