"""The prompt registry: versions with labels and outcome metrics, and the diff of two versions."""

from __future__ import annotations

import pytest

from brightrun.enrichment.pipeline import enrich
from brightrun.errors import BrightRunError
from brightrun.feedback import record_feedback
from brightrun.generation import create_job, plan_uniform, run_job
from brightrun.prompts import registry as prompts
from brightrun.providers import ScriptedProvider
from brightrun.workspace import Workspace

KEY = "tpl_confusion_to_clarity"


def generate(ws: Workspace, job_id: str, count: int = 3) -> None:
    plan = plan_uniform(ws.scaffolding.cells(["david_chen"], ["confusion_to_clarity"], ["emergency_fund"]), count)
    create_job(ws, plan, provider="scripted", model="scripted-1", seed=7, job_id=job_id)
    run_job(ws, job_id, ScriptedProvider())


@pytest.fixture
def two_versions(ws: Workspace) -> tuple[Workspace, str, str]:
    generate(ws, "v1")
    path = ws.scaffolding_dir / "templates" / f"{KEY}.yaml"
    path.write_text(path.read_text().replace("Write a conversation of exactly",
                                             "Write a warm, realistic conversation of exactly"))
    ws.reload_scaffolding()
    generate(ws, "v2", count=2)
    enrich(ws)
    rows = ws.sql("SELECT DISTINCT template_version, first_used_at FROM prompt_templates p JOIN conversations c "
                  "ON c.template_key = p.template_key AND c.template_version = p.version ORDER BY 2").rows()
    assert len(rows) == 2
    return ws, rows[0][0], rows[1][0]


def test_versions_carry_their_outcomes(two_versions) -> None:
    ws, old, new = two_versions
    pairs = {v: ws.sql("SELECT pair_id FROM training_pairs WHERE template_version = ? ORDER BY pair_id",
                       [v])["pair_id"].to_list() for v in (old, new)}
    for pair in pairs[old][:4]:
        record_feedback(ws, "training_pair", pair, "ana", helpful=False, rating=2)
    record_feedback(ws, "training_pair", pairs[old][4], "ana", helpful=True, edited_response="Better.")
    for pair in pairs[new][:3]:
        record_feedback(ws, "training_pair", pair, "ana", helpful=True, rating=5)
    table = {r["version"]: r for r in prompts.versions(ws, KEY).to_dicts()}
    assert table[old]["conversations"] == 3 and table[new]["conversations"] == 2
    assert table[new]["is_current"] and not table[old]["is_current"]
    assert table[old]["thumbs_up_rate"] == pytest.approx(1 / 5) and table[old]["edit_rate"] == pytest.approx(1 / 5)
    assert table[new]["thumbs_up_rate"] == 1.0 and table[new]["mean_rating"] == 5.0
    assert table[old]["failure_rate"] == 0.0 and table[old]["tokens"] > 0
    assert table[old]["mean_quality"] == pytest.approx(ws.scalar(
        "SELECT avg(quality_score) FROM conversations WHERE template_version = ?", [old]))

    d = prompts.diff(ws, KEY, old, new)
    assert any(line.startswith("+Write a warm, realistic") for line in d.body_diff)
    assert any(line.startswith("-Write a conversation of exactly") for line in d.body_diff)
    assert d.system_diff == []  # the system prompt did not change
    metrics = dict(zip(d.metrics["metric"], zip(d.metrics["a"], d.metrics["b"], strict=True), strict=True))
    assert metrics["conversations"] == ("3", "2")
    assert metrics["thumbs_up (95% Wilson)"][0].startswith("20.0% [") and metrics["thumbs_up (95% Wilson)"][0].endswith(
        "of 5")
    assert "realistic" in d.html("body") and 'class="diff_add"' in d.html("body")
    # the table comes with its stylesheet: highlighted changes, and difflib's f/n/t navigation links hidden
    html = d.html("body")
    assert html.startswith("<style>") and ".diff_add{background:" in html and ".diff_sub{background:" in html
    assert "table.diff td.diff_next{display:none}" in html and html.count('class="diff_next"') > 0


def test_labels_point_at_one_version_and_keep_their_history(two_versions) -> None:
    ws, old, new = two_versions
    prompts.set_label(ws, KEY, old, "production", by="ana")
    prompts.set_label(ws, KEY, new, "candidate", by="ana")
    assert prompts.versions(ws, KEY).filter(version=old)["labels"].item() == "production"
    prompts.set_label(ws, KEY, new, "production", by="ben", note="won the experiment")
    current = {(r["label"], r["version"]) for r in prompts.labels(ws).to_dicts()}
    assert current == {("production", new), ("candidate", new)}
    assert prompts.versions(ws, KEY).filter(version=new)["labels"].item() == "candidate, production"
    history = prompts.label_history(ws, KEY)
    assert history.height == 3 and history["version"].to_list()[-1] == old
    prompts.remove_label(ws, KEY, "candidate")
    assert {r["label"] for r in prompts.labels(ws).to_dicts()} == {"production"}
    with pytest.raises(BrightRunError, match="not allowed"):
        prompts.set_label(ws, KEY, new, "Prod Label!")
    with pytest.raises(BrightRunError, match="no version 'nope'"):
        prompts.set_label(ws, KEY, "nope", "production")
    with pytest.raises(BrightRunError, match="no version"):
        prompts.diff(ws, KEY, old, "nope")


def test_prompts_page_labels_and_compares(two_versions, monkeypatch) -> None:
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    ws, old, new = two_versions
    root = Path(__file__).resolve().parent.parent
    monkeypatch.setenv("BRIGHTRUN_WORKSPACE", str(ws.root))
    monkeypatch.chdir(root)
    at = AppTest.from_file(str(root / "app.py"), default_timeout=90).run()
    at.switch_page("pages/views/prompts.py").run()
    assert not at.exception, at.exception
    at.selectbox(key="pr_template").set_value(KEY).run()
    shown = next(d.value for d in at.dataframe if "edit_rate" in d.value.columns)
    assert set(shown["version"]) == {old, new}
    at.selectbox(key="pr_label_version").set_value(new)
    at.text_input(key="pr_label_by").input("ana")
    next(b for b in at.get("form_submit_button") if b.label == "Set label").click().run()
    assert not at.exception, at.exception
    assert prompts.labels(ws).filter(template_key=KEY)["version"].to_list() == [new]
    assert any("production" in m.value and new in m.value for m in at.markdown)
    at.selectbox(key="pr_a").set_value(old)
    at.selectbox(key="pr_b").set_value(new).run()
    metrics = next(d.value for d in at.dataframe if "metric" in d.value.columns)
    assert metrics.set_index("metric").loc["conversations"].tolist() == ["3", "2"]
    assert any("Body" in m.value for m in at.markdown)
    at.button(key="pr_remove_production").click().run()
    assert prompts.labels(ws).filter(template_key=KEY).is_empty()


def test_cli_lists_labels_and_diffs(two_versions) -> None:
    import orjson
    from typer.testing import CliRunner

    from brightrun.cli.main import app

    ws, old, new = two_versions
    runner = CliRunner()
    path = str(ws.root)
    listed = runner.invoke(app, ["prompts", "list", KEY, "-w", path, "--json"])
    assert listed.exit_code == 0, listed.output
    assert {r["version"] for r in orjson.loads(listed.stdout)} == {old, new}
    assert runner.invoke(app, ["prompts", "label", KEY, new, "candidate", "-w", path]).exit_code == 0
    assert prompts.labels(ws)["label"].to_list() == ["candidate"]
    shown = runner.invoke(app, ["prompts", "diff", KEY, old, new, "-w", path])
    assert shown.exit_code == 0 and "+Write a warm, realistic" in shown.stdout and "no change" in shown.stdout
    assert runner.invoke(app, ["prompts", "unlabel", KEY, "candidate", "-w", path]).exit_code == 0
    assert prompts.labels(ws).is_empty()
    bad = runner.invoke(app, ["prompts", "label", KEY, "nope", "x", "-w", path])
    assert bad.exit_code != 0 and "no version 'nope'" in str(bad.exception)
