"""AppTest of the Fine-tuning page: empty, a submitted job in the table and refreshed to success with its model,
and a submission through the form (estimate first) against the local fake of OpenAI's fine-tuning API."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from openai_ft_server import FakeOpenAIFineTuning
from streamlit.testing.v1 import AppTest
from test_finetuning import FORCE, MODEL

from brightrun.finetuning import estimate_job, list_jobs, list_models, openai_client, submit_job
from brightrun.finetuning.tables import fmt_cost
from brightrun.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
PAGE = "pages/views/finetuning.py"


@pytest.fixture
def open_page(monkeypatch):
    def opener(ws: Workspace, server: FakeOpenAIFineTuning | None = None) -> AppTest:
        monkeypatch.setenv("BRIGHTRUN_WORKSPACE", str(ws.root))
        if server is None:
            monkeypatch.delenv("OPENAI_API_KEY", raising=False)
            monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
        else:
            monkeypatch.setenv("OPENAI_API_KEY", server.api_key)
            monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.chdir(ROOT)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
        at.switch_page(PAGE).run()
        assert not at.exception, at.exception
        return at
    return opener


def texts(elements) -> str:
    return "\n".join(e.value for e in elements)


def table(at: AppTest, *columns: str) -> list[dict] | None:
    """The rows of the dataframe shown with all of `columns` (a read-only st.dataframe has no key in AppTest)."""
    found = [d.value for d in at.dataframe if set(columns) <= set(d.value.columns)]
    assert len(found) <= 1
    return found[0].to_dict("records") if found else None


def jobs_shown(at: AppTest) -> list[dict]:
    return table(at, "job", "status", "estimated cost", "OpenAI job")


def test_empty_workspace_says_how_to_start(ws: Workspace, open_page) -> None:
    at = open_page(ws)
    assert not at.error, texts(at.error)
    info = texts(at.info)
    assert "No fine-tuning jobs yet" in info and "brightrun training-file create" in info
    assert jobs_shown(at) is None and table(at, "model", "version", "environment") is None


def test_a_submitted_job_is_shown_and_refreshed(advisor: Workspace, server: FakeOpenAIFineTuning,
                                                open_page) -> None:
    job = submit_job(advisor, "advisor", base_model=MODEL, client=openai_client(server.base_url, server.api_key),
                     force_reason=FORCE)
    at = open_page(advisor, server)
    [row] = jobs_shown(at)
    assert (row["job"], row["status"], row["base model"], row["training file"]) == (
        job.job_id, "validating_files", MODEL, "advisor v2")
    assert (row["estimated cost"], row["actual cost"], row["OpenAI job"]) == (
        fmt_cost(job.estimated_cost_usd), "–", job.external_job_id)
    assert "appears here once its job has succeeded" in texts(at.caption)

    server.finish(job.external_job_id)
    at.button(key="ft_refresh").click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert "Refreshed: 1 job(s) changed." in texts(at.success)
    [row] = jobs_shown(at)
    done = list_jobs(advisor).to_dicts()[0]
    assert row["status"] == "succeeded" and row["actual cost"] == fmt_cost(done["actual_cost_usd"])
    assert row["fine-tuned model"] == server.job(job.external_job_id)["fine_tuned_model"]
    [model] = table(at, "model", "version", "environment")
    assert (model["model"], model["version"], model["environment"]) == (row["fine-tuned model"], "v1", "none")
    at.selectbox(key="ft_deploy_env").set_value("production")
    at.button(key="ft_deploy").click().run()
    assert list_models(advisor)["environment"].to_list() == ["production"]


def test_submitting_through_the_form(advisor: Workspace, server: FakeOpenAIFineTuning, open_page) -> None:
    at = open_page(advisor, server)
    assert "No fine-tuning jobs yet" in texts(at.info)
    at.selectbox(key="ft_file").set_value("advisor")
    at.selectbox(key="ft_model").set_value(MODEL)
    at.number_input(key="ft_epochs").set_value(2).run()
    estimate = estimate_job(advisor, "advisor", MODEL, epochs=2)
    assert at.metric[0].value == fmt_cost(estimate.cost_usd)
    assert f"{estimate.charged_tokens:,} charged tokens (2 epoch(s), given)" in texts(at.caption)
    assert "never run" in texts(at.warning)  # no data-contract run: a reason is asked for
    at.text_input(key="ft_force").input(FORCE)
    at.text_input(key="ft_suffix").input("adv")
    at.button(key="ft_submit").click().run()
    assert not at.exception and not at.error, texts(at.error)
    [job] = list_jobs(advisor).to_dicts()
    assert "Submitted " + job["job_id"] in texts(at.success)
    assert (job["status"], job["forced"], job["suffix"]) == ("validating_files", FORCE, "adv")
    assert orjson.loads(job["hyperparameters"]) == {"n_epochs": 2} and job["estimated_cost_usd"] == estimate.cost_usd
    assert list(server.jobs) == [job["external_job_id"]]
    assert [r["job"] for r in jobs_shown(at)] == [job["job_id"]]


def test_without_a_key_nothing_can_be_submitted(advisor: Workspace, open_page) -> None:
    at = open_page(advisor)
    assert "OPENAI_API_KEY is not set" in texts(at.warning)
    assert at.button(key="ft_submit").disabled and at.button(key="ft_refresh").disabled
