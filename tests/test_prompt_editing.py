"""A new template version from edited text (brightrun.prompts.editing): placeholder checks, the preview, saving as
the next version into the workspace's scaffolding, numbering, and two processes saving at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brightrun.errors import TemplateError
from brightrun.generation import create_job, plan_uniform
from brightrun.generation.jobs import template_at_version
from brightrun.prompts import editing
from brightrun.workspace import Workspace

KEY = "tpl_confusion_to_clarity"
ROOT = Path(__file__).resolve().parent.parent


def texts(ws: Workspace, extra: str = "") -> tuple[str, str]:
    t = ws.scaffolding.templates[KEY]
    return t.system_prompt, t.body + extra


def test_save_writes_the_yaml_and_records_both_versions(ws: Workspace) -> None:
    old = ws.scaffolding.versions[KEY]
    system, body = texts(ws, "Keep every advisor turn under 120 words.\n")
    saved = editing.save_version(ws, KEY, system, body)
    assert (saved.previous, saved.number) == (old, 2)
    assert saved.version != old
    assert saved.path == ws.scaffolding_dir / "templates" / f"{KEY}.yaml"
    assert "Keep every advisor turn under 120 words." in saved.path.read_text()
    fresh = Workspace.open(ws.root)  # another process reads the YAML: the saved text is the current version
    assert fresh.scaffolding.versions[KEY] == saved.version
    assert fresh.scaffolding.templates[KEY].body == body
    rows = fresh.sql("SELECT version, is_current FROM prompt_templates WHERE template_key = ? ORDER BY first_used_at",
                     [KEY]).rows()
    assert rows == [(old, False), (saved.version, True)]
    assert template_at_version(fresh, KEY, old).body == texts(ws)[1].removesuffix(
        "Keep every advisor turn under 120 words.\n")  # the replaced version stays usable
    others = {k: v for k, v in fresh.scaffolding.versions.items() if k != KEY}
    assert others == {k: v for k, v in Workspace.open(ws.root).scaffolding.versions.items() if k != KEY}
    job = create_job(fresh, plan_uniform(fresh.scaffolding.cells(["david_chen"], ["confusion_to_clarity"],
                                                                 ["emergency_fund"]), 1),
                     provider="scripted", model="scripted-1", job_id="after")
    assert fresh.sql("SELECT template_version FROM batch_items WHERE job_id = ?", [job.job_id]).item() == saved.version


def test_only_the_edited_fields_change(ws: Workspace) -> None:
    before = ws.scaffolding.templates[KEY]
    system, body = texts(ws, "One more line.\n")
    editing.save_version(ws, KEY, system + "Be brief.\n", body)
    after = Workspace.open(ws.root).scaffolding.templates[KEY]
    assert after.model_dump(exclude={"system_prompt", "body"}) == before.model_dump(exclude={"system_prompt", "body"})
    assert (after.system_prompt, after.body) == (system + "Be brief.\n", body)


def test_an_unknown_placeholder_is_named_with_the_known_ones_and_nothing_is_written(ws: Workspace) -> None:
    path = ws.scaffolding_dir / "templates" / f"{KEY}.yaml"
    before = path.read_bytes()
    system, body = texts(ws, "The client's pet: {{pet_name}}.\n")
    draft = editing.check_draft(ws, KEY, system, body)
    assert not draft.ok and draft.template is None
    [problem] = draft.problems
    assert "unknown placeholder {{pet_name}}" in problem
    assert "persona_name" in problem and "opening" in problem  # built-in and this template's variation
    assert "Fix:" in problem
    with pytest.raises(TemplateError, match=r"\{\{pet_name\}\}"):
        editing.save_version(ws, KEY, system, body)
    assert path.read_bytes() == before
    assert ws.sql("SELECT count(*) FROM prompt_templates WHERE template_key = ?", [KEY]).item() == 1


def test_every_unknown_placeholder_in_both_fields_is_listed(ws: Workspace) -> None:
    system, body = texts(ws, "{{a_thing}} and {{b_thing}}\n")
    draft = editing.check_draft(ws, KEY, system + "{{c_thing}}", body)
    assert [p.split(".")[0] for p in draft.problems] == [
        "system prompt: unknown placeholder {{c_thing}}", "body: unknown placeholder {{a_thing}}",
        "body: unknown placeholder {{b_thing}}"]


def test_the_scaffoldings_own_checks_apply(ws: Workspace) -> None:
    system, body = texts(ws)
    unclosed = editing.check_draft(ws, KEY, system, body + "{{persona_name\n")
    assert "has no matching" in unclosed.problems[0]
    unused = editing.check_draft(ws, KEY, system, body.replace("{{opening}}", "how they like"))
    assert "neither system_prompt nor body uses {{opening}}" in unused.problems[0]
    empty = editing.check_draft(ws, KEY, "  \n", body)
    assert empty.problems == ["the system prompt is empty. Fix: write the system prompt, or start again from the "
                              "current version's text."]


def test_a_draft_knows_when_it_is_the_current_text(ws: Workspace) -> None:
    system, body = texts(ws)
    draft = editing.check_draft(ws, KEY, system, body.replace("\n", "\r\n"))  # a browser's line ends
    assert draft.ok and draft.unchanged and draft.version == ws.scaffolding.versions[KEY]
    with pytest.raises(TemplateError, match=r"this text is version 1 \(\w+\) already. Fix: change the text"):
        editing.save_version(ws, KEY, system, body)


def test_versions_are_numbered_in_order_and_a_known_text_is_refused(ws: Workspace) -> None:
    system, body = texts(ws)
    second = editing.save_version(ws, KEY, system, body + "Second.\n")
    third = editing.save_version(ws, KEY, system, body + "Third.\n")
    assert (second.number, third.number) == (2, 3)
    assert list(editing.version_numbers(ws, KEY).values()) == [1, 2, 3]
    with pytest.raises(TemplateError, match="this text is version 2"):
        editing.save_version(ws, KEY, system, body + "Second.\n")


@pytest.mark.parametrize("name", ["../personas", "tpl_confusion_to_clarity\n", "TPL", "", None])
def test_a_template_name_from_the_browser_is_checked(ws: Workspace, name) -> None:
    with pytest.raises(TemplateError, match="Fix:"):
        editing.check_draft(ws, name, "x", "y")


def test_text_is_stored_as_text(ws: Workspace) -> None:
    system, body = texts(ws)
    odd = "key: value # not a comment\n- not a list\n<script>alert(1)</script> ünïcode \"quotes\" 'single'\n"
    saved = editing.save_version(ws, KEY, system, body + odd)
    assert Workspace.open(ws.root).scaffolding.templates[KEY].body == body + odd
    assert saved.number == 2


def test_the_preview_is_rendered_for_the_chosen_cell(ws: Workspace) -> None:
    system, body = texts(ws, "Client again: {{persona_name}}.\n")
    draft = editing.check_draft(ws, KEY, system, body)
    rendered_system, rendered_body = editing.preview(ws, draft.template, "david_chen", "confusion_to_clarity",
                                                     "emergency_fund")
    persona = ws.scaffolding.personas["david_chen"].name
    assert rendered_body.endswith(f"Client again: {persona}.\n")
    assert ws.scaffolding.topics["emergency_fund"].name in rendered_body
    assert "{{" not in rendered_system + rendered_body
    assert ws.scaffolding.consultant.name in rendered_system
    with pytest.raises(TemplateError, match="no persona 'nobody'. Fix: pick one of"):
        editing.preview(ws, draft.template, "nobody", "confusion_to_clarity", "emergency_fund")


SAVER = """
import sys, time
from pathlib import Path
from brightrun.prompts import editing
from brightrun.workspace import Workspace
ws, sync = Workspace.open(sys.argv[1]), Path(sys.argv[3])
t = ws.scaffolding.templates[sys.argv[2]]
(sync / sys.argv[4]).touch()  # ready: imports done, the template read
while not (sync / "go").exists():
    time.sleep(0.001)
print(editing.save_version(ws, sys.argv[2], t.system_prompt, t.body + f"Saver {sys.argv[4]}.\\n").version)
"""


def test_processes_saving_at_once_lose_no_version(ws: Workspace, tmp_path: Path) -> None:
    sync = tmp_path / "sync"
    sync.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", SAVER, str(ws.root), KEY, str(sync), str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for i in range(3)]
    deadline = time.monotonic() + 120
    while len(list(sync.iterdir())) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    (sync / "go").touch()  # all three save at the same moment
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 3, [err for _, err in outs]
    saved = {out.strip() for out, _ in outs}
    numbers = editing.version_numbers(Workspace.open(ws.root), KEY)
    assert len(saved) == 3 and saved <= set(numbers)
    assert sorted(numbers.values()) == [1, 2, 3, 4]
    bodies = Workspace.open(ws.root).sql("SELECT body FROM prompt_templates WHERE template_key = ?", [KEY])
    assert sorted(b.rsplit("\n", 2)[-2] for b in bodies["body"] if "Saver" in b) == [f"Saver {i}." for i in range(3)]
