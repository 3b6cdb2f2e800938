"""AppTest of the Generate page: plan, estimate, launch, live progress, failures, retry, quota."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from brightrun.generation import create_job, make_plan, run_job
from brightrun.providers import ScriptedProvider
from brightrun.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def page(demo_copy: Workspace, monkeypatch):
    monkeypatch.setenv("BRIGHTRUN_WORKSPACE", str(demo_copy.root))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.chdir(ROOT)

    def open_page() -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        at.switch_page("pages/views/generate.py").run()
        assert not at.exception, at.exception
        return at
    return open_page


def test_estimate_follows_the_plan(page) -> None:
    at = page()
    assert "Estimate" in at.info[0].value and "320 conversation(s)" in at.info[0].value
    at.multiselect(key="g_personas").set_value(["david_chen"]).run()
    at.multiselect(key="g_arcs").set_value(["fear_to_security", "grief_to_planning"]).run()
    at.number_input(key="g_number").set_value(3).run()
    assert "48 conversation(s)" in at.info[0].value  # 1 x 2 x 8 cells x 3


def test_launch_runs_the_job_in_the_background_and_shows_progress(page, demo_copy: Workspace) -> None:
    at = page()
    at.multiselect(key="g_personas").set_value(["marcus_chen"]).run()
    at.multiselect(key="g_arcs").set_value(["anger_to_resolution"]).run()
    at.button(key="g_launch").click().run()
    assert not at.exception
    job_id = at.selectbox(key="g_watch_select").value
    assert job_id.startswith("job-")
    assert job_id in str(at.query_params["job"])  # the URL names the job, so a reload keeps watching it
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = demo_copy.sql("SELECT status, done FROM batch_jobs WHERE job_id = ?", [job_id])
        if state.height and state.item(0, 0) == "completed":
            break
        time.sleep(0.2)
    assert state.row(0) == ("completed", 8)
    at.run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Done"] == "8 / 8" and metrics["Failed"] == "0"
    assert any("No failures" in c.value for c in at.caption)


def test_failures_are_listed_and_can_be_retried(page, demo_copy: Workspace) -> None:
    plan = make_plan(demo_copy, ["priya_natarajan"], ["crisis_to_stabilization"], None, count=1)
    job = create_job(demo_copy, plan, provider="scripted", model="scripted-1", seed=2, job_id="flaky",
                     provider_options={"permanent_failure_rate": 0.5, "seed": 2})
    run_job(demo_copy, job.job_id, ScriptedProvider(permanent_failure_rate=0.5, seed=2), max_attempts=1)
    failed = demo_copy.sql("SELECT count(*) FROM batch_items WHERE job_id = 'flaky' AND status = 'failed'").item()
    assert failed > 0
    at = page()
    at.selectbox(key="g_watch_select").set_value("flaky").run()
    table = next(d.value for d in at.dataframe if "error_type" in d.value.columns)
    assert len(table) == failed and set(table["error_type"]) == {"malformed_output"}
    assert {m.label: m.value for m in at.metric}["Failed"] == str(failed)
    at.button(key="g_retry").click().run()
    assert not at.exception
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if demo_copy.sql("SELECT status FROM batch_jobs WHERE job_id = 'flaky'").item() == "completed" and \
                not demo_copy.sql("SELECT count(*) FROM batch_items WHERE job_id = 'flaky' AND status = 'pending'").item():
            break
        time.sleep(0.2)
    # The same permanent faults fail again, but every item was tried again and is on record.
    attempts = demo_copy.sql("SELECT max(attempt) FROM failed_generations WHERE job_id = 'flaky'").item()
    assert attempts >= 2


def test_quota_mode_generates_only_what_is_missing(page, demo_copy: Workspace) -> None:
    empty = demo_copy.sql("""
        SELECT count(*) FROM personas p CROSS JOIN emotional_arcs a CROSS JOIN training_topics t
        WHERE NOT EXISTS (SELECT 1 FROM conversations c WHERE c.persona_key = p.persona_key
                          AND c.arc_key = a.arc_key AND c.topic_key = t.topic_key)""").item()
    assert empty > 0  # the demo leaves some cells empty
    at = page()
    at.radio(key="g_mode").set_value("Fill to quota").run()
    at.number_input(key="g_number").set_value(1).run()
    assert f"{empty} conversation(s)" in at.info[0].value  # quota 1 fills exactly the empty cells
    full = demo_copy.sql("SELECT persona_key, arc_key, topic_key FROM conversations "
                         "GROUP BY ALL ORDER BY count(*) DESC LIMIT 1").row(0)
    for key, value in zip(("g_personas", "g_arcs", "g_topics"), full, strict=True):
        at.multiselect(key=key).set_value([value]).run()
    assert any("nothing to generate" in s.value for s in at.success)


def test_claude_without_a_key_warns(page) -> None:
    at = page()
    at.selectbox(key="g_provider").set_value("anthropic").run()
    assert any("ANTHROPIC_API_KEY" in w.value for w in at.warning)
    assert "claude-sonnet-5-5" == at.text_input(key="g_model_anthropic").value


def test_a_local_server_job_from_the_page_falls_back_and_says_so(page, demo_copy: Workspace) -> None:
    import orjson
    from llm_server import FakeLLMServer

    with FakeLLMServer(seed=4, openai_mode="llama.cpp") as server:
        at = page()
        at.selectbox(key="g_provider").set_value("openai-compatible").run()
        at.multiselect(key="g_personas").set_value(["marcus_chen"]).run()
        at.multiselect(key="g_arcs").set_value(["anger_to_resolution"]).run()
        at.text_input(key="g_base_url_openai-compatible").set_value(server.base_url + "/v1").run()
        assert at.selectbox(key="g_json_mode").value == "auto"
        at.button(key="g_launch").click().run()
        assert any("needs its model id" in e.value for e in at.error)  # no Claude name sent to a local server
        at.text_input(key="g_model_openai-compatible").set_value("gemma-3-1b").run()
        at.toggle(key="g_fold_system").set_value(True).run()
        at.button(key="g_launch").click().run()
        assert not at.exception
        job_id = at.selectbox(key="g_watch_select").value
        job = demo_copy.sql("SELECT provider_options, model FROM batch_jobs WHERE job_id = ?", [job_id]).row(0)
        assert orjson.loads(job[0]) == {"base_url": server.base_url + "/v1", "json_mode": "auto", "fold_system": True}
        assert job[1] == "gemma-3-1b"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            state = demo_copy.sql("SELECT status, done, note FROM batch_jobs WHERE job_id = ?", [job_id])
            if state.item(0, 0) == "completed":
                break
            time.sleep(0.2)
        status, done, note = state.row(0)
        assert (status, done) == ("completed", 8) and "fell back to json_object" in note
        assert server.system_dropped == 0 and server.chat_bodies[0]["messages"][0]["role"] == "user"


def test_the_job_history_is_drawn_when_opened(page, demo_copy: Workspace) -> None:
    """The page budget: the history table (a page's first table loads the browser's data grid) is drawn when
    its expander is opened, and then lists the newest jobs with their state and cost."""
    at = page()
    assert not [d for d in at.dataframe if "job_id" in d.value.columns]
    (history,) = [e for e in at.expander if e.label.startswith("Job history")]
    newest = demo_copy.sql("SELECT job_id FROM batch_jobs ORDER BY created_at DESC")["job_id"].to_list()
    assert f"the {len(newest)} newest job(s)" in history.label
    at.session_state["g_history_open"] = True
    at.run()
    assert not at.exception, at.exception
    (table,) = [d.value for d in at.dataframe if "job_id" in d.value.columns]
    assert list(table["job_id"]) == newest and {"state", "cost_usd"} <= set(table.columns)
