"""The reason typed on Training files -> Export survives a rerun that arrives while it is typed.

Only the open tab runs (the Export tab's content comes with the rerun that opening it starts), so the reason is
typed once the tab is drawn; a rerun can still come while it is being typed (another format picked, a change
message going away). The field's value lives in the browser alone until Enter or a click elsewhere: when a rerun
re-drew the tabs (they moved up a place when the message above them went away), the field was drawn anew and
lost its text, and Export ran without it and was refused. The reason and Export are one form now, and the tabs
keep their place.

The test makes the window certain: it holds the server's messages from the format change until the reason is
typed, then lets them through one at a time, each drawn before the next (as from a slow server), and only then
clicks Export."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import AppServer, open_deep_link, rerun_after, serve
from playwright.sync_api import expect

import brightrun.training_files as tf
from brightrun.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


@pytest.fixture
def app(demo_ws_path: Path, tmp_path: Path) -> Iterator[AppServer]:
    """A demo copy with an empty training file; the data contracts never ran on it."""
    target = tmp_path / "ws"
    shutil.copytree(demo_ws_path, target, ignore=shutil.ignore_patterns("locks"))
    tf.create_training_file(Workspace.open(target), "walk")
    with serve(target, tmp_path / "streamlit.log") as server:
        yield server


class SlowServer:
    """Routes the app's websockets through the test: while `holding`, the server's messages wait here."""

    def __init__(self, page) -> None:
        self.holding = False
        self.held: list[tuple[object, bytes | str]] = []
        page.route_web_socket(re.compile(r".*/_stcore/stream"), self._connect)

    def _connect(self, route) -> None:
        server = route.connect_to_server()

        def from_server(message: bytes | str) -> None:
            if self.holding:
                self.held.append((route, message))
            else:
                route.send(message)

        server.on_message(from_server)
        route.on_message(server.send)

    def release_slowly(self, page) -> int:
        """Let the held messages through one at a time, each drawn by the browser before the next."""
        count = 0
        while self.held:
            route, message = self.held.pop(0)
            route.send(message)
            count += 1
            page.wait_for_timeout(30)
        self.holding = False
        for route, message in self.held:  # what arrived during the last wait
            route.send(message)
        self.held.clear()
        return count


def test_a_reason_typed_while_a_rerun_comes_goes_with_export(browser, app: AppServer) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        slow = SlowServer(page)
        open_deep_link(page, app.url + "/training_files", "Training files")
        rerun_after(page, page.get_by_role("button", name=re.compile(r"^Add \d+ new$")).click)
        expect(page.get_by_text(re.compile(r"walk is now version 2\.$"))).to_be_visible()
        rerun_after(page, page.get_by_role("tab", name="Export").click)  # the tab's content comes with this run
        reason = page.get_by_role("textbox", name="Reason to export anyway")
        expect(reason).to_be_visible()

        slow.holding = True
        page.get_by_role("combobox", name="Format").click()
        page.get_by_role("option", name="alpaca · LLaMA-Factory, Axolotl (sft)").click()  # a rerun, its messages held
        reason.fill("a dry run of the loader")
        page.wait_for_timeout(1_000)  # the server finishes the rerun meanwhile
        assert slow.release_slowly(page) > 10, "the format change started no rerun"
        page.wait_for_function("() => document.querySelector('[data-testid=\"stApp\"]')"
                               ".getAttribute('data-test-script-state') === 'notRunning'")
        expect(reason).to_have_value("a dry run of the loader")

        rerun_after(page, page.get_by_role("button", name="Export", exact=True).click)
        expect(page.get_by_text("alpaca export of v2 passes every check of its consumer.")).to_be_visible(
            timeout=60_000)
        expect(page.get_by_text("recorded reason: a dry run of the loader")).to_be_visible()
    finally:
        context.close()
    assert tf.get_version(Workspace.open(app.workspace), "walk").version == 2
