"""AppTest of the Prompts page's New version: placeholders checked as the text changes (Save disabled while a
problem stands), a preview for the chosen cell, "Save as version N+1", and "Start an experiment against the current
version" opening Experiments with both versions chosen."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from brightrun.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
KEY = "tpl_confusion_to_clarity"


def previews(at: AppTest, ws: Workspace) -> list[str]:
    """The preview's rendered system prompt and body (the page's only code blocks)."""
    return [c.value for c in at.code]


def open_prompts(root: Path, monkeypatch, template: str | None = KEY) -> AppTest:
    """The Prompts page on the workspace at `root`, with `template` chosen (None: the page's first)."""
    monkeypatch.setenv("BRIGHTRUN_WORKSPACE", str(root))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.switch_page("pages/views/prompts.py").run()
    if template:
        at.selectbox(key="pr_template").set_value(template).run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def page(ws: Workspace, monkeypatch) -> AppTest:
    return open_prompts(ws.root, monkeypatch)


def test_edit_check_preview_save_and_start_an_experiment(page: AppTest, ws: Workspace) -> None:
    at = page
    old = ws.scaffolding.versions[KEY]
    save = at.button(key="pr_save")
    assert save.label == "Save as version 2" and save.disabled  # nothing edited yet
    body = at.text_area(key=f"pr_edit_body_{KEY}")
    original = body.value
    body.input(original + "Mention {{pet_name}} once.\n").run()
    errors = [e.value.replace("\\", "") for e in at.error]  # shown as plain text: Markdown escaped
    assert len(errors) == 1 and "unknown placeholder {{pet_name}}" in errors[0]
    assert "persona_name" in errors[0] and "Fix:" in errors[0]
    assert at.button(key="pr_save").disabled
    assert previews(at, ws) == []  # no preview of text that cannot render

    at.text_area(key=f"pr_edit_body_{KEY}").input(original + "Mention the client's name: {{persona_name}}.\n").run()
    assert not at.error
    assert previews(at, ws) == []  # the preview on request (its code blocks cost the first run)
    at.toggle(key="pr_preview").set_value(True).run()
    at.selectbox(key="pr_preview_persona").set_value("david_chen")
    at.selectbox(key="pr_preview_topic").set_value("emergency_fund").run()
    rendered = previews(at, ws)[1]
    assert rendered.endswith(f"Mention the client's name: {ws.scaffolding.personas['david_chen'].name}.")
    assert ws.scaffolding.topics["emergency_fund"].name in rendered and "{{" not in rendered
    assert not at.button(key="pr_save").disabled

    at.button(key="pr_save").click().run()
    assert not at.exception, at.exception
    fresh = Workspace.open(ws.root)
    new = fresh.scaffolding.versions[KEY]
    assert new != old and fresh.scaffolding.templates[KEY].body.endswith("{{persona_name}}.\n")
    assert any(f"Saved as version 2 (`{new}`)" in s.value for s in at.success)
    assert at.button(key="pr_save").label == "Save as version 3" and at.button(key="pr_save").disabled
    versions = next(d.value for d in at.dataframe if "edit_rate" in d.value.columns)
    assert set(versions["version"]) == {old, new}

    at.button(key="pr_start_experiment").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="ex_new_template").value == KEY
    assert at.selectbox(key=f"ex_new_arm_version_{KEY}_0").value == old
    assert at.selectbox(key=f"ex_new_arm_version_{KEY}_1").value == new
    assert "new_template" not in at.query_params  # applied once, not on every rerun


def test_a_removed_variation_placeholder_blocks_saving(page: AppTest) -> None:
    at = page
    body = at.text_area(key=f"pr_edit_body_{KEY}")
    body.input(body.value.replace("{{opening}}", "as they like")).run()
    assert any("{{opening}}" in e.value.replace("\\", "") for e in at.error)
    assert at.button(key="pr_save").disabled
