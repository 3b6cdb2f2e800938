"""A new prompt version from the app in a real browser: edit a template's body on the Prompts page (an unknown
placeholder is refused and Save stays disabled), save it as version 2, then "Start an experiment against the current
version" lands on Experiments' form with the replaced version as control and the new one as the test variant."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import AppServer, choose, open_deep_link, rerun_after, serve, wait_idle
from playwright.sync_api import expect

from brightrun.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]
KEY = "tpl_confusion_to_clarity"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[AppServer]:
    Workspace.open(tmp_path / "ws")
    with serve(tmp_path / "ws", tmp_path / "streamlit.log") as server:
        yield server


def test_edit_save_and_start_an_experiment(browser, app: AppServer) -> None:
    ws = Workspace.open(app.workspace)
    old = ws.scaffolding.versions[KEY]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    try:
        open_deep_link(page, app.url + "/prompts", "Prompts")
        choose(page, "Template", f"{ws.scaffolding.templates[KEY].name} · {KEY}")
        body = page.get_by_role("textbox", name="Body", exact=True)
        save = page.get_by_role("button", name="Save as version 2")
        expect(save).to_be_disabled()
        original = body.input_value()

        def type_and_leave(text: str) -> None:
            body.fill(text)
            body.press("Tab")  # a text area sends its value when it loses focus

        rerun_after(page, lambda: type_and_leave(original + "Mention {{pet_name}} once.\n"))
        expect(page.get_by_text(re.compile(r"unknown placeholder \{\{pet_name\}\}"))).to_be_visible()
        expect(save).to_be_disabled()
        rerun_after(page, lambda: type_and_leave(original + "Mention {{persona_name}} once.\n"))
        expect(page.get_by_text("unknown placeholder")).to_have_count(0)
        expect(save).to_be_enabled()
        rerun_after(page, save.click)
        new = Workspace.open(app.workspace).scaffolding.versions[KEY]
        assert new != old
        expect(page.get_by_text(f"Saved as version 2 ({new})")).to_be_visible()

        rerun_after(page, page.get_by_role("button", name="Start an experiment against the current version").click,
                    timeout=60_000)
        wait_idle(page, timeout=60_000)
        assert "/experiments" in page.url
        expect(page.get_by_role("tab", name="New experiment")).to_have_attribute("aria-selected", "true")
        expect(page.get_by_role("combobox", name="Control: template version", exact=True)).to_have_value(
            re.compile(rf"^{old} · "))
        expect(page.get_by_role("combobox", name="Test variant 1: template version", exact=True)).to_have_value(
            re.compile(rf"^{new} · .*current"))
    finally:
        page.close()


def test_the_effectiveness_report_is_on_its_own_tab(browser, app: AppServer) -> None:
    """The page opens on the template's versions; the effectiveness report (every template) is drawn when its tab
    is chosen, and the template's editor is then not drawn."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    try:
        open_deep_link(page, app.url + "/prompts", "Prompts")
        expect(page.get_by_role("textbox", name="Body", exact=True)).to_be_visible()
        expect(page.get_by_role("heading", name="Effectiveness")).to_have_count(0)
        rerun_after(page, page.get_by_role("tab", name="Effectiveness (every template)").click)
        wait_idle(page)
        expect(page.get_by_role("heading", name="Effectiveness")).to_be_visible()
        expect(page.get_by_text("Associational.", exact=False).first).to_be_visible()
        expect(page.get_by_role("textbox", name="Body", exact=True)).to_have_count(0)
    finally:
        page.close()
