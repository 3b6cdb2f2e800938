"""Issue 17's smaller items: the export's default format, the Experiments page after Create, readable p-values,
messages without pydantic's wording, both coverage heatmaps in one order, key columns first, a re-import that
keeps the first import's summary, and a retried job's rate."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import orjson
import polars as pl
import pytest
from streamlit.testing.v1 import AppTest
from test_app_training_files import create
from test_app_training_files import open_page as open_training_files
from test_experiments import KEY

import brightrun.generation.views as views
from brightrun.applogs import import_log, list_imports
from brightrun.errors import BrightRunError
from brightrun.experiments import create_experiment
from brightrun.feedback import record_feedback
from brightrun.generation import create_job, load_job, make_plan, retry_failed
from brightrun.quality.report import build_quality_report, save_quality_report
from brightrun.ui import fmt_p, p_text
from brightrun.workspace import Workspace, utcnow

ROOT = Path(__file__).resolve().parent.parent


def open_app(workspace: Path, monkeypatch, page: str | None = None) -> AppTest:
    monkeypatch.setenv("BRIGHTRUN_WORKSPACE", str(workspace))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def heatmap(at: AppTest, key: str) -> tuple[dict, dict]:
    """(the heatmap trace, the figure's layout) of the chart with `key`."""
    spec = json.loads(next(c for c in at.get("plotly_chart") if c.proto.id.endswith(key)).proto.spec)
    trace = next(t for t in spec["data"] if t.get("type") == "heatmap")
    return trace, spec["layout"]


# ------------------------------------------------------------------------------------------ export default

def test_the_export_offers_openai_chat_sft_first(demo_copy: Workspace, monkeypatch) -> None:
    at = create(open_training_files(demo_copy.root, monkeypatch), "coaching")
    at.session_state["tf_tab"] = "Export"  # only the open tab runs
    box = at.run().selectbox(key="export_format")
    assert box.value == "openai_sft" and box.options[0].startswith("openai_sft")


# ------------------------------------------------------------------------------------ experiments after Create

def test_after_create_the_page_leaves_the_form_for_the_new_experiment(ws: Workspace, monkeypatch) -> None:
    at = open_app(ws.root, monkeypatch, "pages/views/experiments.py")
    at.session_state["ex_tab"] = "New experiment"  # the user is on the form
    at.run()
    at.selectbox(key="ex_new_template").set_value(KEY).run()
    at.text_input(key="ex_new_id").input("warm")
    at.button(key="ex_new_submit").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.session_state["ex_tab"] == "Experiments"
    assert at.selectbox(key="ex_open").value == "warm"


# ------------------------------------------------------------------------------------------------ p-values

@pytest.mark.parametrize(("p", "shown"), [(3e-19, "< 0.0001"), (0.00009999, "< 0.0001"), (0.0001, "0.0001"),
                                          (0.012345, "0.012"), (0.05, "0.05"), (0.5, "0.5"), (1.0, "1"),
                                          (None, "–"), (float("nan"), "–")])
def test_p_values_read_as_people_write_them(p, shown) -> None:
    assert fmt_p(p) == shown


def test_p_value_columns_of_a_table_become_text_and_the_rest_stays() -> None:
    frame = pl.DataFrame({"feature": ["words", "questions"], "rho": [0.41, -0.2],
                          "p_value": [3e-19, 0.2], "p_adjusted": [None, 0.04]})
    shown = p_text(frame)
    assert shown["p_value"].to_list() == ["< 0.0001", "0.2"] and shown["p_adjusted"].to_list() == ["–", "0.04"]
    assert shown["rho"].to_list() == [0.41, -0.2] and shown.columns == frame.columns


# ------------------------------------------------------------------------------------ pydantic's wording

def test_an_invalid_experiment_says_what_and_how_without_pydantic_wording(ws: Workspace) -> None:
    with pytest.raises(BrightRunError) as caught:
        create_experiment(ws, experiment_id="twins", name="Twins", template_key=KEY, control={"name": "same"},
                          variants=[{"name": "same"}])
    message = str(caught.value)
    assert message == ("experiment 'twins' is not valid: arm names must differ (got same, same). "
                       "Fix: correct it and create it again.")
    with pytest.raises(BrightRunError) as caught:
        create_experiment(ws, experiment_id="hot", name="Hot", template_key=KEY, control={"name": "control"},
                          variants=[{"name": "v", "temperature": 3}])
    assert str(caught.value).startswith("experiment 'hot' is not valid: field variants.0.temperature: Input should "
                                        "be less than or equal to 1. Fix: ")


def test_empty_feedback_says_what_to_give(demo_copy: Workspace) -> None:
    pair = demo_copy.sql("SELECT pair_id FROM training_pairs LIMIT 1").item()
    with pytest.raises(BrightRunError) as caught:
        record_feedback(demo_copy, "training_pair", pair, "ana")
    message = str(caught.value)
    assert "Value error" not in message and message.count("Fix:") == 1
    assert "feedback must carry a thumbs, a rating, a comment or an edit" in message


# ------------------------------------------------------------------------------- heatmaps and key columns

def test_both_coverage_heatmaps_list_personas_in_the_same_order_top_down(demo_copy: Workspace, monkeypatch) -> None:
    save_quality_report(demo_copy, build_quality_report(demo_copy))
    overview = open_app(demo_copy.root, monkeypatch)
    overview.session_state["ov_coverage_tab"] = "Heatmap"  # only the open tab draws (the page budget)
    quality = open_app(demo_copy.root, monkeypatch, "pages/views/quality.py")
    quality.session_state["q_tab"] = "Approved coverage"
    overview.run(), quality.run()
    (o_trace, o_layout), (q_trace, q_layout) = heatmap(overview, "coverage_heatmap"), heatmap(quality, "cov_heatmap")
    assert len(o_trace["y"]) > 3 and o_trace["y"] == q_trace["y"] and o_trace["x"] == q_trace["x"]
    top_down = [o_layout["yaxis"].get("autorange"), q_layout["yaxis"].get("autorange")]
    assert top_down == ["reversed", "reversed"]  # both: the first row of the matrix on top


def test_quality_tables_show_the_score_first(demo_copy: Workspace, monkeypatch) -> None:
    save_quality_report(demo_copy, build_quality_report(demo_copy))
    at = open_app(demo_copy.root, monkeypatch, "pages/views/quality.py")
    records = next(d.value for d in at.dataframe if d.proto.id.endswith("q_records"))
    assert list(records.columns)[:2] == ["quality_score", "title"]
    at.selectbox(key="q_open").set_value(records["conversation_id"].iloc[0]).run()
    pairs = next(d.value for d in at.dataframe if "client_emotion" in d.value.columns)  # read-only: no key
    assert list(pairs.columns)[:2] == ["turn_number", "quality_score"]
    at.selectbox(key="q_metric").set_value("arc_adherence").run()
    records = next(d.value for d in at.dataframe if d.proto.id.endswith("q_records"))
    assert list(records.columns)[:2] == ["arc_adherence", "quality_score"]


# ----------------------------------------------------------------------------------------- app-log re-import

def test_a_reimport_keeps_the_first_summary_and_lists_itself(ws: Workspace, tmp_path: Path) -> None:
    rows = [{"ts": f"2026-01-0{1 + i % 9}T10:00:00Z", "user": f"u{i}", "action_type": "scene_generation",
             "prompt": f"prompt {i}", "output": f"output {i}", "model": "m", "thumbs": "up"} for i in range(12)]
    path = tmp_path / "calls.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    first = import_log(ws, path)
    assert first.new_calls == 12
    again = import_log(ws, path)
    assert again.nothing_new and again.report == first.report
    (summary,) = list_imports(ws)
    assert summary["new_calls"] == 12 and summary["already_present"] == 0  # the first import's figures
    assert [(r["new_calls"], r["already_present"]) for r in summary["reimports"]] == [(0, 12)]
    import_log(ws, path)
    assert len(list_imports(ws)[0]["reimports"]) == 2


# ------------------------------------------------------------------------------------- a retried job's rate

def test_a_retried_job_shows_no_rate_of_the_earlier_run_and_then_its_own(ws: Workspace, monkeypatch) -> None:
    job = create_job(ws, make_plan(ws, ["david_chen"], None, None, count=1)[:20], provider="scripted", model="", seed=1,
                     job_id="r")
    items = ws.sql("SELECT * FROM batch_items WHERE job_id = 'r' ORDER BY item_index")
    start = utcnow() - timedelta(minutes=30)
    # The first run: 18 made and 2 failed (20 ended) in 60 s, half an hour ago.
    ws.append_models("batch_jobs", [job.model_copy(update={
        "status": "completed", "done": 18, "failed": 2, "run_started_at": start, "run_start_finished": 0,
        "started_at": start, "finished_at": start + timedelta(seconds=60), "updated_at": start + timedelta(seconds=60)})])
    ws.append("batch_items", items.head(2).with_columns(pl.lit("failed").alias("status")))
    assert views.job_state(ws, "r")["rate_per_minute"] == 20.0  # 20 ended in its 60 s, not over the half hour since
    assert retry_failed(ws, "r") == 2
    assert views.job_state(ws, "r")["rate_per_minute"] is None  # waiting: the first run's rate is not this one's
    # The retry's run: its 2 items in 0.05 s, a burst that says nothing per minute.
    begun = utcnow()
    retried = load_job(ws, "r").model_copy(update={
        "status": "completed", "done": 20, "failed": 0, "run_started_at": begun, "run_start_finished": 18,
        "finished_at": begun + timedelta(seconds=0.05), "updated_at": begun + timedelta(seconds=0.05)})
    ws.append_models("batch_jobs", [retried])
    assert views.job_state(ws, "r")["rate_per_minute"] is None
    # A retry that lasted 12 s: its own 2 items over its own 12 s.
    ws.append_models("batch_jobs", [retried.model_copy(update={"finished_at": begun + timedelta(seconds=12),
                                                               "updated_at": begun + timedelta(seconds=13)})])
    assert views.job_state(ws, "r")["rate_per_minute"] == 10.0



# ---------------------------------------------------------------------------------------- review keys

def test_keyboard_judgements_go_to_the_turn_in_focus_and_keep_the_rest(demo_copy: Workspace, monkeypatch) -> None:
    from test_app_review import open_page as open_review

    at = open_review(demo_copy.root, monkeypatch, reviewer="Ann")
    cid = at.selectbox(key="rv_open").value
    first, second = demo_copy.sql("SELECT pair_id FROM training_pairs WHERE conversation_id = ? ORDER BY turn_number",
                                  [cid])["pair_id"].to_list()[:2]
    record_feedback(demo_copy, "training_pair", first, "Ann", comment="kind but vague")
    at.run()
    assert at.button(key="rv_key_u").proto.shortcut.lower() == "u"
    assert [at.button(key=f"rv_key_{n}").proto.shortcut for n in range(1, 6)] == ["1", "2", "3", "4", "5"]
    assert any("**U** thumbs up, **D** thumbs down, **1**–**5** rating" in c.value for c in at.caption)

    at.button(key="rv_key_u").click().run()
    at.button(key="rv_key_4").click().run()
    assert not at.exception
    latest = demo_copy.sql("SELECT target_id, helpful, rating, comment FROM feedback_latest WHERE reviewer = 'Ann'")
    assert latest.rows() == [(first, True, 4, "kind but vague")]  # both on the first turn, its comment kept
    at.button(key="rv_key_d").click().run()  # the first turn has both: the focus moved on
    assert demo_copy.sql("SELECT helpful, rating FROM feedback_latest WHERE target_id = ? AND reviewer = 'Ann'",
                         [second]).row(0) == (False, None)


# ------------------------------------------------------------------------------ links from a weak record

def _links(at: AppTest) -> list:
    return [link for link in at.get("page_link") if link.proto.label == "Review this"]


def test_a_weak_record_links_to_review_and_joins_a_training_file(demo_copy: Workspace, monkeypatch) -> None:
    from brightrun.training_files import create_training_file, members

    save_quality_report(demo_copy, build_quality_report(demo_copy))
    create_training_file(demo_copy, "keep")
    at = open_app(demo_copy.root, monkeypatch, "pages/views/quality.py")
    records = next(d.value for d in at.dataframe if d.proto.id.endswith("q_records"))
    weakest = records["conversation_id"].iloc[0]
    at.selectbox(key="q_open").set_value(weakest).run()
    (link,) = _links(at)
    assert link.proto.page == "review" and link.proto.query_string == f"conversation={weakest}"
    at.selectbox(key="q_record_tf").set_value("keep").run()
    at.button(key="q_record_add").click().run()
    assert not at.exception and members(demo_copy, "keep") == [weakest]
    assert any(f"Added {weakest} to keep" in s.value for s in at.success)
    at.button(key="q_record_add").click().run()  # again: refused with its reason, nothing added
    assert members(demo_copy, "keep") == [weakest] and at.error


def test_a_duplicate_cluster_links_its_record(demo_copy: Workspace, monkeypatch) -> None:
    save_quality_report(demo_copy, build_quality_report(demo_copy))
    at = open_app(demo_copy.root, monkeypatch, "pages/views/quality.py")
    at.session_state["q_tab"] = "Duplicates"
    at.run().segmented_control(key="dup_scope").set_value("training pairs").run()  # the demo's clusters are of pairs
    first = at.selectbox(key="dup_left_0").value
    conversation = demo_copy.sql("SELECT conversation_id FROM training_pairs WHERE pair_id = ?", [first]).item()
    (link,) = _links(at)
    assert link.proto.query_string == f"conversation={conversation}"
    assert at.caption and any("No training file yet" in c.value for c in at.caption)


def test_review_opens_the_linked_conversation(demo_copy: Workspace, monkeypatch) -> None:
    from test_app_review import open_page as open_review

    last = demo_copy.sql("SELECT conversation_id FROM conversations WHERE enrichment_status = 'completed' "
                         "ORDER BY conversation_id DESC LIMIT 1").item()
    at = open_review(demo_copy.root, monkeypatch, reviewer="Ann")
    assert at.selectbox(key="rv_open").value != last
    at.query_params["conversation"] = last
    at.run()
    assert not at.exception and at.selectbox(key="rv_open").value == last
