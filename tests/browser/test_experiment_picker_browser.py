"""The Experiments page in a real browser: after "Generate the arms" the page says the experiment's current
status without a reload (the picker used to keep saying "draft": a selectbox keeps the label it was given)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import AppServer, rerun_after, serve, wait_idle
from playwright.sync_api import expect

from brightrun.experiments import create_experiment, load_experiment
from brightrun.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


@pytest.fixture
def draft_app(tmp_path: Path) -> Iterator[AppServer]:
    from test_experiments import KEY, add_guided_version

    ws = Workspace.open(tmp_path / "ws")
    old, new = add_guided_version(ws)
    persona = next(iter(ws.scaffolding.personas))
    topic = next(iter(ws.scaffolding.topics))
    create_experiment(ws, experiment_id="small", name="Small one", template_key=KEY,
                      control={"name": "control", "template_version": old},
                      variants=[{"name": "guided", "template_version": new}], personas=[persona], topics=[topic])
    with serve(ws.root, tmp_path / "streamlit.log") as server:
        yield server


def test_the_picker_shows_running_once_the_arms_are_generated(browser, draft_app: AppServer) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    try:
        page.goto(draft_app.url + "/experiments")
        wait_idle(page, timeout=60_000)
        notice = page.get_by_role("dialog").filter(has_text="Page not found")
        if notice.count():
            page.keyboard.press("Escape")
        picker = page.get_by_role("combobox", name="Open experiment")
        expect(picker).to_have_value(re.compile(r"Small one · small"))
        rerun_after(page, page.get_by_role("button", name="Generate the arms").click, timeout=120_000)
        wait_idle(page, timeout=120_000)
        assert load_experiment(Workspace.open(draft_app.workspace), "small").status == "running"
        badge = page.get_by_role("paragraph").filter(has_text=re.compile(r"^(draft|running)$"))  # by the title
        expect(badge).to_have_text("running")
        expect(picker).not_to_have_value(re.compile("draft"))
    finally:
        page.close()
