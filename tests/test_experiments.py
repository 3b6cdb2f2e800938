"""Experiments end to end: two template versions generated with the scripted provider (one truly better),
reviewed by simulated feedback, report the better one; an A/A experiment reports no winner."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from brightrun.enrichment.pipeline import enrich
from brightrun.experiments import (
    ExperimentError,
    assign,
    create_experiment,
    experiment_report,
    load_experiment,
    results_frame,
    run_experiment,
    set_status,
)
from brightrun.generation.jobs import record_template_versions
from brightrun.models import Feedback
from brightrun.workspace import Workspace, utcnow

KEY = "tpl_confusion_to_clarity"
GUIDED = ("Mirror the client's words when you acknowledge a feeling, and close every advisor turn with "
          "one concrete action.")


def simulate_reviews(ws: Workspace, seed: int = 0) -> None:
    """A reviewer who likes better answers: thumbs up with probability rising with the pair's quality."""
    rng = random.Random(seed)
    pairs = ws.sql("SELECT pair_id, conversation_id, quality_score FROM training_pairs ORDER BY pair_id").rows()
    now = utcnow()
    ws.append_models("feedback", [
        Feedback(feedback_id=f"sim-{seed}-{pair}", target_type="training_pair", target_id=pair, conversation_id=cid,
                 reviewer="simulated", helpful=rng.random() < min(1.0, max(0.0, (q - 4) / 6)), created_at=now)
        for pair, cid, q in pairs])


def add_guided_version(ws: Workspace) -> tuple[str, str]:
    """Record the current version of KEY, then make a second one whose system prompt adds GUIDED (truly
    better with the scripted provider); returns (old, new)."""
    old = record_template_versions(ws, {KEY})[KEY]
    path = ws.scaffolding_dir / "templates" / f"{KEY}.yaml"
    path.write_text(path.read_text().replace("system_prompt: |\n", f"system_prompt: |\n  {GUIDED}\n", 1))
    ws.reload_scaffolding()
    new = record_template_versions(ws, {KEY})[KEY]
    assert new != old
    return old, new


def run_confounded_mix(ws: Workspace, old: str, new: str) -> None:
    """Experiment `mix` (control old, variant new), generated, enriched and reviewed unevenly: the variant's
    reviewed conversations are mostly a hard-to-please persona's, the control's mostly others'."""
    create_experiment(ws, experiment_id="mix", name="Mix", template_key=KEY, control={"name": "control",
                      "template_version": old}, variants=[{"name": "variant", "template_version": new}],
                      guardrails=[], per_arm=5, seed=5)
    run_experiment(ws, "mix")
    enrich(ws)
    rng = random.Random(7)
    rows = ws.sql("""SELECT c.conversation_id, c.persona_key, c.job_id, p.pair_id FROM conversations c
                     JOIN training_pairs p USING (conversation_id) ORDER BY p.pair_id""").rows()
    by_conversation: dict[str, tuple[str, str, list[str]]] = {}
    for cid, persona, job, pair in rows:
        by_conversation.setdefault(cid, (persona, job, []))[2].append(pair)
    feedback, now = [], utcnow()
    for index, (cid, (persona, job, pairs)) in enumerate(sorted(by_conversation.items())):
        hard, variant = persona == "marcus_chen", job.endswith("-variant")
        if variant != hard and index % 10:  # review mostly hard/variant and easy/control conversations
            continue
        p = (0.25 if hard else 0.7) + (0.2 if variant else 0.0)
        up = rng.random() < p
        feedback += [Feedback(feedback_id=f"mix-{pair}", target_type="training_pair", target_id=pair,
                              conversation_id=cid, reviewer="r", helpful=up, created_at=now) for pair in pairs]
    ws.append_models("feedback", feedback)


@pytest.fixture
def versions(ws: Workspace) -> tuple[Workspace, str, str]:
    return (ws, *add_guided_version(ws))


def test_the_truly_better_version_wins(versions) -> None:
    ws, old, new = versions
    exp = create_experiment(ws, experiment_id="guided", name="Guided prompt", template_key=KEY,
                            hypothesis="Mirroring and one concrete action raise the thumbs-up rate",
                            control={"name": "control", "template_version": old},
                            variants=[{"name": "guided", "template_version": new}],
                            success_metric="thumbs_up", guardrails=["failed", "response_words"], per_arm=15, seed=3)
    assert exp.status == "draft" and (exp.control.template_version, exp.variants[0].template_version) == (old, new)
    run_experiment(ws, "guided")
    enrich(ws)
    simulate_reviews(ws)
    report = experiment_report(ws, "guided", allow_simulated=True, fixed_sample=True)  # statistics on simulated data
    arms = {r["arm"]: r for r in report.arms.to_dicts()}
    assert arms["control"]["conversations"] == arms["guided"]["conversations"] == 4 * 8 * 15
    assert ws.scalar("SELECT count(DISTINCT template_version) FROM conversations WHERE job_id = 'exp-guided-guided'") == 1
    # Better answers are longer here, and the experiment said longer is worse: the guardrail holds the win back.
    assert report.decision.winner is None and report.decision.candidates == ["guided"]
    assert "response_words" in report.decision.failed_guardrails["guided"][0]

    create_experiment(ws, experiment_id="guided-2", name="Guided prompt, length allowed", template_key=KEY,
                      control={"name": "control", "template_version": old},
                      variants=[{"name": "guided", "template_version": new}], success_metric="thumbs_up",
                      guardrails=["failed"], per_arm=15, seed=3)
    run_experiment(ws, "guided-2")
    enrich(ws)
    simulate_reviews(ws, seed=2)
    report = experiment_report(ws, "guided-2", allow_simulated=True, fixed_sample=True)  # the one planned look
    assert report.decision.winner == "guided", report.decision.reason
    assert report.decision.confidence > 0.95
    table = results_frame(report)
    main = table.filter(metric="thumbs_up").row(0, named=True)
    assert main["abs_lift"] > 0 and main["p_adjusted"] < 0.05 and main["low"] < main["estimate"] < main["high"]
    assert report.srm is not None and not report.srm.mismatch
    assert set(report.strata["guided"]) == {"persona", "topic"}
    assert load_experiment(ws, "guided-2").status == "running"
    set_status(ws, "guided-2", "completed")
    with pytest.raises(ExperimentError, match="completed"):
        run_experiment(ws, "guided-2")


def test_scripted_arms_show_simulated_data_and_no_winner(versions) -> None:
    """The scripted provider raises the quality of a version that adds GUIDED, so on quality_score the
    statistics find a 'winner'; the data are simulated, so the report names them and decides nothing."""
    ws, old, new = versions
    create_experiment(ws, experiment_id="natural", name="Scripted", template_key=KEY,
                      control={"name": "control", "template_version": old},
                      variants=[{"name": "guided", "template_version": new}], success_metric="quality_score",
                      guardrails=[], per_arm=3, seed=1)
    run_experiment(ws, "natural")
    enrich(ws)
    statistics_only = experiment_report(ws, "natural", allow_simulated=True)
    assert statistics_only.decision.winner == "guided", statistics_only.decision.reason
    report = experiment_report(ws, "natural")
    assert report.scripted == {"control": 1.0, "guided": 1.0} and report.simulated
    assert report.decision.winner is None and report.decision.confidence is None
    assert report.decision.reason.startswith("Simulated data: no decision.") and "Fix:" in report.decision.reason
    assert report.data_note().startswith("Simulated data: scripted (simulated) conversations per arm: control 100%")
    table = results_frame(report)
    assert table["scripted_share"].to_list() == [1.0] and table["control_scripted_share"].to_list() == [1.0]
    assert report.arms["scripted_share"].to_list() == [1.0, 1.0]


def test_an_a_a_experiment_has_no_winner(versions) -> None:
    ws, _, new = versions
    create_experiment(ws, experiment_id="aa", name="A/A", template_key=KEY,
                      control={"name": "a", "template_version": new}, variants=[{"name": "b", "template_version": new}],
                      per_arm=5, seed=11)
    run_experiment(ws, "aa")
    enrich(ws)
    simulate_reviews(ws, seed=1)
    report = experiment_report(ws, "aa", allow_simulated=True)
    assert report.decision.winner is None and report.decision.reason.startswith("No winner yet")
    assert results_frame(report).filter(metric="thumbs_up")["p_adjusted"].item() > 0.05


def test_definitions_are_checked_and_statuses_move_one_way(versions) -> None:
    ws, old, _ = versions
    with pytest.raises(ExperimentError, match="arm names must differ"):
        create_experiment(ws, experiment_id="x", name="x", template_key=KEY, control={"name": "a"},
                          variants=[{"name": "a"}])
    with pytest.raises(ExperimentError, match="unknown metric"):
        create_experiment(ws, experiment_id="x", name="x", template_key=KEY, control={"name": "a"},
                          variants=[{"name": "b"}], success_metric="happiness")
    with pytest.raises(ExperimentError, match="not recorded"):
        create_experiment(ws, experiment_id="x", name="x", template_key=KEY, control={"name": "a"},
                          variants=[{"name": "b", "template_version": "0000"}])
    exp = create_experiment(ws, experiment_id="x", name="x", template_key=KEY, control={"name": "a"},
                            variants=[{"name": "b", "template_version": old}])
    assert exp.control.template_version != old  # pinned to the version current at creation
    draft = experiment_report(ws, "x")  # nothing generated yet: a report that says so, not a crash
    assert draft.decision.winner is None and draft.results == [] and draft.warnings
    with pytest.raises(ExperimentError, match="already exists"):
        create_experiment(ws, experiment_id="x", name="x", template_key=KEY, control={"name": "a"},
                          variants=[{"name": "b"}])
    with pytest.raises(ExperimentError, match="cannot become completed"):
        set_status(ws, "x", "completed")
    assert set_status(ws, "x", "running").status == "running"
    assert set_status(ws, "x", "paused").status == "paused"


def test_assignment_is_stable_and_balanced() -> None:
    arms = ["control", "test"]
    units = [f"user-{i}" for i in range(10_000)]
    first = [assign("exp1", u, arms) for u in units]
    assert first == [assign("exp1", u, arms) for u in units]
    counts = Counter(first)
    assert abs(counts["control"] - 5000) < 200
    other = [assign("exp2", u, arms) for u in units]
    assert 0.45 < sum(a == b for a, b in zip(first, other, strict=True)) / len(units) < 0.55  # independent
    weighted = Counter(assign("exp1", u, arms, [9, 1]) for u in units)
    assert abs(weighted["test"] - 1000) < 120
    assert assign("exp1", "user-0", arms) == "control"  # pinned: sha256 is the same on every machine


def test_a_confounded_persona_mix_makes_naive_and_stratified_disagree(versions) -> None:
    """The arms are balanced, but the reviews are not: the variant's reviewed conversations are mostly a
    hard-to-please persona's, the control's mostly others'. Within each persona the variant is better;
    pooled naively it looks worse. The report says so."""
    ws, old, new = versions
    run_confounded_mix(ws, old, new)
    report = experiment_report(ws, "mix")
    persona = report.strata["variant"]["persona"]
    assert persona.naive_diff < 0 < persona.mh_diff
    assert persona.simpson_warning and "Simpson" in persona.simpson_warning
    assert any("by persona" in w and "Simpson" in w for w in report.warnings)


def test_cli_create_run_report_list_status(versions) -> None:
    import orjson
    from typer.testing import CliRunner

    from brightrun.cli.main import app

    ws, old, new = versions
    runner = CliRunner()
    path = str(ws.root)
    made = runner.invoke(app, ["experiments", "create", "cli-exp", "-w", path, "--template", KEY, "--control",
                               f"control={old}", "--variant", "guided=", "--persona", "david_chen", "--persona",
                               "marcus_chen", "--per-arm", "24", "--seed", "4"])
    assert made.exit_code == 0, made.output
    assert load_experiment(ws, "cli-exp").variants[0].template_version == new  # empty version: the current one
    ran = runner.invoke(app, ["experiments", "run", "cli-exp", "-w", path])
    assert ran.exit_code == 0, ran.output
    assert ws.scalar("SELECT count(*) FROM conversations WHERE job_id LIKE 'exp-cli-exp-%'") == 2 * 2 * 8 * 24
    simulate_reviews(ws)
    shown = runner.invoke(app, ["experiments", "report", "cli-exp", "-w", path, "--json"])
    assert shown.exit_code == 0, shown.output
    data = orjson.loads(shown.stdout)
    # scripted arms: simulated data, named, and no decision (the statistics alone would name "guided")
    assert data["decision"]["winner"] is None and data["decision"]["reason"].startswith("Simulated data: no decision")
    assert data["data"] == {"simulated": True, "scripted_share": {"control": 1.0, "guided": 1.0},
                            "note": data["data"]["note"]} and data["data"]["note"].startswith("Simulated data")
    assert [a["scripted_share"] for a in data["arms"]] == [1.0, 1.0] and data["srm"]["mismatch"] is False
    assert {r["metric"] for r in data["results"]} == {"thumbs_up", "failed"}
    assert data["planned_n_per_arm"] == 2 * 8 * 24 and data["interim"] is False
    main = next(r for r in data["results"] if r["metric"] == "thumbs_up")
    for key in ("rel_lift", "rel_low", "rel_high", "control_low", "control_high", "seq_p_value", "seq_low",
                "seq_high", "seq_tau", "scripted_share", "p_adjusted", "effect_size"):
        assert main[key] is not None, key
    assert main["seq_low"] <= main["abs_lift"] <= main["seq_high"] and main["seq_p_value"] >= main["p_value"]
    persona = data["strata"]["guided"]["persona"]
    assert {"cmh_p", "cmh_p_uncorrected", "balance_p", "homogeneity_p", "strata"} <= set(persona)
    assert data["minimum_detectable_effect"]["method"] == "Cohen's h (arcsine approximation)"
    assert data["decision"]["decided_on"] == "always-valid p-values"
    assert experiment_report(ws, "cli-exp", allow_simulated=True, fixed_sample=True).decision.winner == "guided"
    safe = experiment_report(ws, "cli-exp", allow_simulated=True)  # the default: always-valid p-values
    assert not safe.fixed_sample and "always-valid adjusted p" in safe.decision.reason
    text = runner.invoke(app, ["experiments", "report", "cli-exp", "-w", path])
    assert text.stdout.startswith("Simulated data") and "Simulated data: no decision" in text.stdout
    assert "valid only at the planned size (384 conversations per arm)" in " ".join(text.stdout.split())
    assert not re.search(r"\d\.\d{5,}|\de-\d", text.stdout), text.stdout  # readable numbers (exact ones in --json)
    listed = runner.invoke(app, ["experiments", "list", "-w", path, "--json"])
    assert [e["status"] for e in orjson.loads(listed.stdout)] == ["running"]
    assert runner.invoke(app, ["experiments", "status", "cli-exp", "paused", "-w", path]).exit_code == 0
    bad = runner.invoke(app, ["experiments", "status", "cli-exp", "draft", "-w", path])
    assert bad.exit_code != 0 and "cannot become draft" in str(bad.exception)


def test_the_page_verdict_follows_the_p_value_the_decision_uses() -> None:
    # fixed-sample significant, always-valid not: before the single planned look the page must not say "better"
    from types import SimpleNamespace

    from brightrun.ui.experiments import verdict

    r = SimpleNamespace(significant=True, improves=True, guardrail=False, alpha=0.05, p_adjusted=0.01,
                        seq_p_adjusted=0.4, seq_p_value=0.3)
    assert verdict(r, fixed_sample=True) == "better"
    assert verdict(r, fixed_sample=False) == "not significant"
    worse = SimpleNamespace(significant=True, improves=False, guardrail=True, alpha=0.05, p_value=0.001,
                            seq_p_value=0.01, seq_p_adjusted=None)
    assert verdict(worse, fixed_sample=False) == "worse"
