"""Data contracts: the GX suites pass on the demo, and each planted violation fails the expectation
that guards against it, with a failing example naming the record."""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from brightrun.enrichment.pipeline import MAX_TURN_CHARS, MAX_TURNS
from brightrun.errors import BrightRunError
from brightrun.explore.browse import ENRICHMENT_STATUSES
from brightrun.validation import (
    ContractError,
    ValidationReport,
    frames,
    latest_report,
    load_suites,
    report_path,
    run_contracts,
    save_report,
    suite_dir,
    summarize,
)
from brightrun.workspace import Workspace
from brightrun.workspace.tables import TABLES

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 21, tzinfo=UTC)
CID = "conv-demo-template-000007"
"""A completed demo conversation that the planting tests change."""


# -- helpers ------------------------------------------------------------------------------------


def rows(ws: Workspace, table: str, where: dict[str, object]) -> pl.DataFrame:
    """Current rows of the stored `table` whose columns equal `where`."""
    frame = ws.store.read(table).filter(**where).select(list(TABLES[table].schema))
    assert frame.height, f"no {table} rows where {where}"
    return frame


def replace(ws: Workspace, table: str, where: dict[str, object], **changes: object) -> pl.DataFrame:
    """Append new versions of matching rows with `changes` (the views then show the new ones)."""
    frame = rows(ws, table, where).with_columns(
        [pl.lit(v, dtype=TABLES[table].schema[k]).alias(k) for k, v in changes.items()])
    ws.append(table, frame)
    return frame


def failed(report: ValidationReport, table: str) -> dict[str, object]:
    """{description: result} of the failed expectations of one suite."""
    return {e.description: e for e in report.suite(table).failures()}


def check(ws: Workspace, table: str) -> dict[str, object]:
    return failed(run_contracts(ws, tables=[table]), table)


# -- the demo passes ----------------------------------------------------------------------------


def test_contracts_pass_on_the_demo(demo_ws: Workspace) -> None:
    messages: list[str] = []
    report = run_contracts(demo_ws, progress=messages.append)
    assert report.success, summarize(report)
    assert report.failures() == []
    assert [s.table for s in report.suites] == ["conversations", "turns", "training_pairs", "feedback", "judge_scores"]
    counts = {t: demo_ws.scalar(f"SELECT count(*) FROM {t}") for t in ("conversations", "turns", "training_pairs",
                                                                        "feedback", "judge_scores")}
    assert counts["conversations"] == 160
    assert {s.table: s.rows for s in report.suites} == counts
    sizes = {s.table: len(s.expectations) for s in report.suites}
    assert sizes == {t: len(s.expectations) for t, s in load_suites().items()}
    assert min(sizes[t] for t in ("conversations", "turns", "training_pairs")) >= 10
    for suite in report.suites:
        for result in suite.expectations:
            assert result.success and result.unexpected_count in (0, None) and result.examples == []
            assert result.description and result.error is None
    assert report.workspace == str(demo_ws.root) and report.seconds > 0
    assert report.run_at.tzinfo is not None
    assert "turns: checking 1,582 rows against 10 expectations" in messages
    text = summarize(report)
    assert text.splitlines()[0].startswith("Data contracts PASSED")
    assert "ok   training_pairs: " in text and "0 failed" in text
    assert os.environ["GX_ANALYTICS_ENABLED"] == "false"


def test_an_empty_workspace_passes(ws: Workspace) -> None:
    report = run_contracts(ws)
    assert report.success
    assert [(s.table, s.rows) for s in report.suites] == [(t, 0) for t in ["conversations", "turns", "training_pairs", "feedback", "judge_scores"]]


# -- each planted violation fails its expectation -------------------------------------------------


def test_duplicate_training_pair_for_one_turn(demo_copy: Workspace) -> None:
    pair = rows(demo_copy, "training_pairs", {"conversation_id": CID, "turn_number": 2})
    demo_copy.append("training_pairs", pair.with_columns(pl.lit(f"{CID}_turn2_copy").alias("pair_id")))
    fails = check(demo_copy, "training_pairs")
    assert set(fails) == {"the pair id is <conversation_id>_turn<turn_number>",
                          "one training pair per conversation turn"}
    wrong_id = fails["the pair id is <conversation_id>_turn<turn_number>"]
    assert wrong_id.unexpected_count == 1
    assert wrong_id.examples == [{"pair_id": f"{CID}_turn2_copy", "conversation_id": CID, "turn_number": 2,
                                  "pair_id_expected": f"{CID}_turn2"}]
    twice = fails["one training pair per conversation turn"]
    assert twice.unexpected_count == 2 and twice.expectation_type == "expect_compound_columns_to_be_unique"
    assert {e["pair_id"] for e in twice.examples} == {f"{CID}_turn2", f"{CID}_turn2_copy"}


def test_duplicate_conversation_id(demo_copy: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    # Storage keeps one row per key, so a duplicate id can only come from a storage fault: simulate one
    # by doubling a row in the frame the suite reads.
    doubled = frames.Frame("conversations", ("conversation_id",),
                           f"SELECT * FROM ({frames.CONVERSATIONS.sql}) UNION ALL "
                           f"SELECT * FROM ({frames.CONVERSATIONS.sql}) WHERE conversation_id = '{CID}'")
    monkeypatch.setattr(frames, "CONVERSATIONS", doubled)
    fails = check(demo_copy, "conversations")
    assert set(fails) == {"conversation ids are unique"}
    assert fails["conversation ids are unique"].unexpected_count == 2
    assert [e["conversation_id"] for e in fails["conversation ids are unique"].examples] == [CID, CID]


def test_role_outside_the_set(demo_copy: Workspace) -> None:
    replace(demo_copy, "turns", {"conversation_id": CID, "turn_number": 3}, role="bot")
    fails = check(demo_copy, "turns")
    assert set(fails) == {"role is user or assistant", "roles alternate, user (client) first"}
    assert fails["role is user or assistant"].unexpected_count == 1
    assert fails["role is user or assistant"].examples == [{"conversation_id": CID, "turn_number": 3, "role": "bot"}]


def test_two_user_turns_in_a_row(demo_copy: Workspace) -> None:
    replace(demo_copy, "turns", {"conversation_id": CID, "turn_number": 4}, role="user")
    report = run_contracts(demo_copy, tables=["turns", "training_pairs"])
    fails = failed(report, "turns")
    assert set(fails) == {"roles alternate, user (client) first"}
    assert fails["roles alternate, user (client) first"].examples == [
        {"conversation_id": CID, "turn_number": 4, "role": "user", "role_expected": "assistant"}]
    # The training pair made from turn 4 now points at a client turn.
    pair_fails = failed(report, "training_pairs")
    assert set(pair_fails) == {"the pair's turn is a stored assistant (advisor) turn"}
    assert pair_fails["the pair's turn is a stored assistant (advisor) turn"].examples == [
        {"pair_id": f"{CID}_turn4", "conversation_id": CID, "turn_number": 4, "source_turn_role": "user"}]


@pytest.mark.parametrize("content", ["", "   \n\t ", "\u200b\u00a0\ufeff"])
def test_blank_content(demo_copy: Workspace, content: str) -> None:
    replace(demo_copy, "turns", {"conversation_id": CID, "turn_number": 5}, content=content)
    fails = check(demo_copy, "turns")
    assert "content is not empty or blank" in fails
    assert fails["content is not empty or blank"].examples == [
        {"conversation_id": CID, "turn_number": 5, "content_blank": True, "content_chars": len(content)}]
    assert set(fails) == {"content is not empty or blank"}


def test_overlong_content(demo_copy: Workspace) -> None:
    replace(demo_copy, "turns", {"conversation_id": CID, "turn_number": 2}, content="word " * 4001)
    fails = check(demo_copy, "turns")
    assert set(fails) == {f"content is at most {MAX_TURN_CHARS:,} characters"}
    assert fails[f"content is at most {MAX_TURN_CHARS:,} characters"].examples == [
        {"conversation_id": CID, "turn_number": 2, "content_chars": 20005}]


def test_quality_score_out_of_range(demo_copy: Workspace) -> None:
    replace(demo_copy, "training_pairs", {"conversation_id": CID, "turn_number": 2}, quality_score=11.5,
            empathy=1.7)
    replace(demo_copy, "conversation_quality", {"conversation_id": CID}, quality_score=-0.5,
            arc_adherence=1.2)
    report = run_contracts(demo_copy, tables=["conversations", "training_pairs"])
    pair_fails = failed(report, "training_pairs")
    assert set(pair_fails) == {"quality score is between 0 and 10", "empathy score is between 0 and 1",
                               "quality score is 10 x the weighted mean of its dimensions (within 0.01)"}
    assert pair_fails["quality score is between 0 and 10"].examples == [
        {"pair_id": f"{CID}_turn2", "conversation_id": CID, "turn_number": 2, "quality_score": 11.5}]
    assert pair_fails["empathy score is between 0 and 1"].examples[0]["empathy"] == 1.7
    conversation_fails = failed(report, "conversations")
    assert set(conversation_fails) == {"quality score is between 0 and 10", "arc adherence is between 0 and 1"}
    assert conversation_fails["quality score is between 0 and 10"].examples == [
        {"conversation_id": CID, "quality_score": -0.5}]
    assert conversation_fails["arc adherence is between 0 and 1"].examples == [
        {"conversation_id": CID, "arc_adherence": 1.2}]
    assert conversation_fails["quality score is between 0 and 10"].unexpected_percent == pytest.approx(100 / 160)


def test_turn_number_gap(demo_copy: Workspace) -> None:
    last = demo_copy.scalar("SELECT max(turn_number) FROM turns WHERE conversation_id = ?", [CID])
    demo_copy.append("turns", [{"conversation_id": CID, "turn_number": last + 2, "role": "user",
                                "content": "One more question, after a gap."}])
    report = run_contracts(demo_copy, tables=["turns", "conversations"])
    fails = failed(report, "turns")
    assert set(fails) == {"turn numbers are contiguous from 1 in each conversation"}
    assert fails["turn numbers are contiguous from 1 in each conversation"].examples == [
        {"conversation_id": CID, "turn_number": last + 2, "turn_number_expected": last + 1}]
    conversation_fails = failed(report, "conversations")
    assert set(conversation_fails) == {"turn count equals the number of turns stored"}
    assert conversation_fails["turn count equals the number of turns stored"].examples == [
        {"conversation_id": CID, "turn_count": last, "turns_stored": last + 1}]


def test_unknown_enrichment_status(demo_copy: Workspace) -> None:
    replace(demo_copy, "conversation_status", {"conversation_id": CID}, status="archived")
    fails = check(demo_copy, "conversations")
    description = "enrichment status is not_started, enrichment_in_progress, completed or failed"
    assert set(fails) == {description}
    assert fails[description].examples == [{"conversation_id": CID, "enrichment_status": "archived"}]


def test_orphan_turns(demo_copy: Workspace) -> None:
    demo_copy.append("turns", [
        {"conversation_id": "ghost", "turn_number": 1, "role": "user", "content": "Hello?"},
        {"conversation_id": "ghost", "turn_number": 2, "role": "assistant", "content": "Hi. What's on your mind?"},
    ])
    fails = check(demo_copy, "turns")
    assert set(fails) == {"every turn belongs to a stored conversation (conversations view)"}
    result = fails["every turn belongs to a stored conversation (conversations view)"]
    assert result.unexpected_count == 2
    assert result.examples == [{"conversation_id": "ghost", "turn_number": n, "conversation_exists": False}
                               for n in (1, 2)]


def test_orphan_training_pair(demo_copy: Workspace) -> None:
    pair = rows(demo_copy, "training_pairs", {"conversation_id": CID, "turn_number": 2})
    demo_copy.append("training_pairs", pair.with_columns(pl.lit("ghost").alias("conversation_id"),
                                                         pl.lit("ghost_turn2").alias("pair_id")))
    fails = check(demo_copy, "training_pairs")
    assert set(fails) == {"every training pair belongs to a stored conversation (conversations view)",
                          "the pair's turn is a stored assistant (advisor) turn"}
    orphan = fails["every training pair belongs to a stored conversation (conversations view)"]
    assert orphan.examples == [{"pair_id": "ghost_turn2", "conversation_id": "ghost", "turn_number": 2,
                                "conversation_exists": False}]
    assert fails["the pair's turn is a stored assistant (advisor) turn"].examples[0]["source_turn_role"] == (
        "(no such turn)")


def test_unknown_persona_key(demo_copy: Workspace) -> None:
    replace(demo_copy, "conversations", {"conversation_id": CID}, persona_key="nobody")
    report = run_contracts(demo_copy, tables=["conversations", "training_pairs"])
    fails = failed(report, "conversations")
    description = "the persona key names a persona of the scaffolding (personas view)"
    assert set(fails) == {description}
    assert fails[description].examples == [{"conversation_id": CID, "persona_exists": False,
                                             "persona_key": "nobody"}]
    # Its training pairs still carry the old persona: they no longer match their conversation.
    mismatch = failed(report, "training_pairs")["persona, arc, topic, template and template version match "
                                                 "the pair's conversation"]
    pairs = demo_copy.scalar("SELECT count(*) FROM training_pairs WHERE conversation_id = ?", [CID])
    assert mismatch.unexpected_count == pairs
    old = demo_copy.scalar("SELECT persona_key FROM training_pairs WHERE conversation_id = ? LIMIT 1", [CID])
    assert mismatch.examples[0]["scaffold_mismatch"] == f"persona_key {old} (conversation: nobody)"


def test_unknown_template_version_and_job(demo_copy: Workspace) -> None:
    replace(demo_copy, "conversations", {"conversation_id": CID}, template_version="000000000000",
            job_id="no-such-job")
    fails = check(demo_copy, "conversations")
    assert set(fails) == {
        "the template key and version are a known prompt template version (prompt_templates view)",
        "the batch job that produced the conversation exists (batch_jobs view)"}
    example = fails["the template key and version are a known prompt template version (prompt_templates view)"]
    assert example.examples[0]["template_version"] == "000000000000"
    assert fails["the batch job that produced the conversation exists (batch_jobs view)"].examples == [
        {"conversation_id": CID, "job_exists": False, "job_id": "no-such-job"}]


def test_completed_conversation_without_pairs(demo_copy: Workspace) -> None:
    cid = "conv-demo-template-000008"
    conversation = rows(demo_copy, "conversations", {"conversation_id": cid})
    replace(demo_copy, "conversations", {"conversation_id": cid}, conversation_id="fresh-copy")
    demo_copy.append("conversation_status", [{"conversation_id": "fresh-copy", "status": "completed",
                                              "enrichment_version": "2", "updated_at": NOW}])
    turns = rows(demo_copy, "turns", {"conversation_id": cid})
    demo_copy.append("turns", turns.with_columns(pl.lit("fresh-copy").alias("conversation_id")))
    fails = check(demo_copy, "conversations")
    assert set(fails) == {"completed conversations have a quality score",
                          "completed conversations have one training pair per advisor turn"}
    assert fails["completed conversations have one training pair per advisor turn"].examples == [
        {"conversation_id": "fresh-copy", "pairs_stored": 0, "assistant_turns": conversation["turn_count"][0] // 2,
         "enrichment_status": "completed"}]


def test_summary_names_the_failing_record(demo_copy: Workspace) -> None:
    replace(demo_copy, "turns", {"conversation_id": CID, "turn_number": 3}, role="bot")
    report = run_contracts(demo_copy)
    assert not report.success
    assert [(t, e.description) for t, e in report.failures()] == [
        ("turns", "role is user or assistant"), ("turns", "roles alternate, user (client) first")]
    assert [s.success for s in report.suites] == [True, False, True, True, True]
    text = summarize(report)
    assert text.splitlines()[0].startswith("Data contracts FAILED")
    assert "FAIL turns: 1,582 rows, 10 expectations, 2 failed" in text
    assert "- role is user or assistant: 1 rows" in text
    assert f"e.g. conversation_id='{CID}', turn_number=3, role='bot'" in text


# -- reports ------------------------------------------------------------------------------------


def test_report_round_trip(demo_copy: Workspace) -> None:
    assert latest_report(demo_copy) is None
    replace(demo_copy, "turns", {"conversation_id": CID, "turn_number": 3}, role="bot")
    report = run_contracts(demo_copy, tables=["turns"])
    path = save_report(demo_copy, report)
    assert path == demo_copy.root / "reports" / "validation.json" == report_path(demo_copy)
    assert json.loads(path.read_text())["suites"][0]["table"] == "turns"
    again = latest_report(demo_copy)
    assert again == report
    assert again.failures()[0][1].examples[0]["role"] == "bot"
    assert not list(path.parent.glob(".tmp-*"))


def test_corrupt_report_is_a_clear_error(demo_copy: Workspace) -> None:
    path = report_path(demo_copy)
    path.parent.mkdir(parents=True)
    for content in ("{not json", '{"success": true}'):
        path.write_text(content)
        with pytest.raises(BrightRunError, match="validation.json.*Fix: run `brightrun validate` again"):
            latest_report(demo_copy)


# -- the suites themselves ----------------------------------------------------------------------


def test_suites_are_great_expectations_suites() -> None:
    import great_expectations as gx

    assert suite_dir() == ROOT / "expectations"
    suites = load_suites()
    assert list(suites) == ["conversations", "turns", "training_pairs", "feedback", "judge_scores"]
    for name, suite in suites.items():
        assert isinstance(suite, gx.ExpectationSuite) and suite.name == name
        raw = json.loads((suite_dir() / f"{name}.json").read_text())
        assert len(suite.expectations) == len(raw["expectations"])
        assert all(e.description for e in suite.expectations)


def test_suite_limits_follow_the_code() -> None:
    def kwargs(table: str, description: str) -> dict:
        raw = json.loads((suite_dir() / f"{table}.json").read_text())
        return next(e["kwargs"] for e in raw["expectations"] if e["description"] == description)

    statuses = kwargs("conversations", "enrichment status is not_started, enrichment_in_progress, completed or failed")
    assert statuses["value_set"] == ENRICHMENT_STATUSES
    assert kwargs("turns", f"turn number is between 1 and {MAX_TURNS}")["max_value"] == MAX_TURNS
    assert kwargs("conversations", f"turn count is between 2 and {MAX_TURNS}")["max_value"] == MAX_TURNS
    assert kwargs("turns", f"content is at most {MAX_TURN_CHARS:,} characters")["max_value"] == MAX_TURN_CHARS


def test_the_wheel_ships_the_suites() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert include["expectations"] == "brightrun/_expectations"


def test_an_installed_package_finds_its_suites(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from brightrun.validation import suites

    packaged = tmp_path / "_expectations"
    shutil.copytree(ROOT / "expectations", packaged)
    monkeypatch.setattr(suites, "PACKAGED", packaged)
    assert suite_dir() == packaged
    assert list(load_suites()) == ["conversations", "turns", "training_pairs", "feedback", "judge_scores"]


@pytest.fixture
def suites_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "expectations"
    shutil.copytree(suite_dir(), folder)
    return folder


def test_missing_suite_names_the_file(demo_ws: Workspace, suites_copy: Path) -> None:
    (suites_copy / "turns.json").unlink()
    with pytest.raises(ContractError, match=r"turns\.json: the suite file is missing\. Fix: restore it"):
        run_contracts(demo_ws, suites_folder=suites_copy)
    with pytest.raises(BrightRunError, match=r"turns\.json"):
        load_suites(suites_copy)


@pytest.mark.parametrize("problem, message", [
    ("{not json", r"training_pairs\.json: not valid JSON .*Fix: correct the syntax"),
    ('{"name": "training_pairs"}', r"training_pairs\.json: not a Great Expectations suite"),
    ("unknown type", r"training_pairs\.json: expectation #1 \(expect_pigs_to_fly\) is not valid"),
    ("no column", r"training_pairs\.json: expectation #1 \(expect_column_values_to_not_be_null\) is not valid"),
    ("no description", r"training_pairs\.json: expectation #1 .* has no description"),
    ("wrong name", r"training_pairs\.json: the suite is named 'pairs'"),
])
def test_invalid_suite_names_the_file(suites_copy: Path, problem: str, message: str) -> None:
    path = suites_copy / "training_pairs.json"
    suite = json.loads(path.read_text())
    if problem == "unknown type":
        suite["expectations"][0]["type"] = "expect_pigs_to_fly"
    elif problem == "no column":
        del suite["expectations"][0]["kwargs"]["column"]
    elif problem == "no description":
        del suite["expectations"][0]["description"]
    elif problem == "wrong name":
        suite["name"] = "pairs"
    text = problem if problem.startswith("{") else json.dumps(suite)
    path.write_text(text)
    with pytest.raises(ContractError, match=message):
        load_suites(suites_copy)


def test_suite_using_an_unknown_column(demo_ws: Workspace, suites_copy: Path) -> None:
    path = suites_copy / "turns.json"
    suite = json.loads(path.read_text())
    suite["expectations"][0]["kwargs"]["column"] = "turn_colour"
    path.write_text(json.dumps(suite))
    with pytest.raises(ContractError, match=r"turns\.json: the suite uses column\(s\) turn_colour.*Fix: use one of"):
        run_contracts(demo_ws, tables=["turns"], suites_folder=suites_copy)


def test_unknown_table_is_refused(demo_ws: Workspace) -> None:
    with pytest.raises(ContractError, match="no suite for 'turn'. Fix: choose from conversations, "
                                            "feedback, judge_scores, training_pairs, turns"):
        run_contracts(demo_ws, tables=["turn"])


def test_a_suite_for_another_view_needs_no_code(demo_ws: Workspace, suites_copy: Path) -> None:
    (suites_copy / "batch_jobs.json").write_text(json.dumps({
        "name": "batch_jobs", "expectations": [
            {"type": "expect_column_values_to_be_in_set", "description": "job status is known",
             "kwargs": {"column": "status", "value_set": ["queued", "processing", "completed", "failed",
                                                           "cancelled"]}},
            {"type": "expect_column_values_to_be_in_set", "description": "every job is cancelled",
             "kwargs": {"column": "status", "value_set": ["cancelled"]}},
        ]}))
    report = run_contracts(demo_ws, tables=["batch_jobs"], suites_folder=suites_copy)
    suite = report.suite("batch_jobs")
    assert suite.rows == 2 and [e.success for e in suite.expectations] == [True, False]
    assert suite.expectations[1].examples == [{"job_id": "demo-edge-case", "status": "completed"},
                                              {"job_id": "demo-template", "status": "completed"}]
