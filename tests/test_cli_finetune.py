"""`brightrun finetune submit|list|show|resume|cancel|deploy` against the local fake of OpenAI's fine-tuning API."""

from __future__ import annotations

import orjson
from openai_ft_server import FakeOpenAIFineTuning
from test_finetuning import FORCE, MODEL, PRICE
from typer.testing import CliRunner

from brightrun.cli.main import app
from brightrun.finetuning import estimate_job, list_jobs
from brightrun.workspace import Workspace

runner = CliRunner()


def test_submit_list_refresh_show_and_deploy(advisor: Workspace, server: FakeOpenAIFineTuning) -> None:
    path = str(advisor.root)
    env = {"OPENAI_API_KEY": server.api_key, "OPENAI_BASE_URL": server.base_url, "COLUMNS": "250"}
    empty = runner.invoke(app, ["finetune", "list", "-w", path], env=env)
    assert empty.exit_code == 0 and "No fine-tuning jobs yet" in empty.stdout

    estimate = runner.invoke(app, ["finetune", "submit", "advisor", "--model", MODEL, "--epochs", "3", "--estimate",
                                   "--json", "-w", path], env=env)
    assert estimate.exit_code == 0, estimate.output
    expected = estimate_job(advisor, "advisor", MODEL, epochs=3)
    assert orjson.loads(estimate.stdout)["cost_usd"] == expected.cost_usd and server.requests == []

    blocked = runner.invoke(app, ["finetune", "submit", "advisor", "--model", MODEL, "-w", path], env=env)
    assert blocked.exit_code != 0 and "brightrun validate" in str(blocked.exception)
    submitted = runner.invoke(app, ["finetune", "submit", "advisor", "--model", MODEL, "--epochs", "3", "--suffix",
                                    "adv", "--force", FORCE, "--json", "-w", path], env=env)
    assert submitted.exit_code == 0, submitted.output
    job = orjson.loads(submitted.stdout)
    assert job["status"] == "validating_files" and job["external_job_id"] in server.jobs
    assert job["estimated_cost_usd"] == expected.cost_usd and orjson.loads(job["hyperparameters"]) == {"n_epochs": 3}

    listed = runner.invoke(app, ["finetune", "list", "-w", path], env=env)
    assert listed.exit_code == 0 and job["job_id"] in listed.stdout and "validating_files" in listed.stdout

    server.finish(job["external_job_id"])
    refreshed = runner.invoke(app, ["finetune", "list", "--refresh", "--json", "-w", path], env=env)
    assert refreshed.exit_code == 0, refreshed.output
    data = orjson.loads(refreshed.stdout)
    remote = server.job(job["external_job_id"])
    [row] = data["jobs"]
    assert row["status"] == "succeeded" and row["trained_tokens"] == remote["trained_tokens"]
    assert row["actual_cost_usd"] == round(remote["trained_tokens"] * PRICE / 1e6, 6)
    assert [(m["model_id"], m["version_label"]) for m in data["models"]] == [(remote["fine_tuned_model"], "v1")]
    table = runner.invoke(app, ["finetune", "list", "-w", path], env=env)
    assert "Fine-tuned models" in table.stdout and "succeeded" in table.stdout

    shown = runner.invoke(app, ["finetune", "show", job["job_id"], "--json", "-w", path])
    history = [e["status"] for e in orjson.loads(shown.stdout)["events"]]
    assert history[0] == "created" and history[-1] == "succeeded"
    deployed = runner.invoke(app, ["finetune", "deploy", remote["fine_tuned_model"], "staging", "-w", path])
    assert deployed.exit_code == 0 and "staging" in deployed.output
    again = orjson.loads(runner.invoke(app, ["finetune", "list", "--json", "-w", path]).stdout)
    assert again["models"][0]["environment"] == "staging"


def test_without_a_key_and_resume_and_cancel(advisor: Workspace, server: FakeOpenAIFineTuning) -> None:
    path = str(advisor.root)
    nokey = runner.invoke(app, ["finetune", "submit", "advisor", "--model", MODEL, "--force", FORCE, "-w", path],
                          env={"OPENAI_API_KEY": "", "OPENAI_BASE_URL": server.base_url})
    assert nokey.exit_code != 0 and "OPENAI_API_KEY is not set" in str(nokey.exception)
    assert list_jobs(advisor).height == 0

    env = {"OPENAI_API_KEY": server.api_key, "OPENAI_BASE_URL": server.base_url, "COLUMNS": "250"}
    server.inject("server_error", 3, path="/v1/fine_tuning/jobs", method="POST")
    failed = runner.invoke(app, ["finetune", "submit", "advisor", "--model", MODEL, "--force", FORCE, "-w", path],
                           env=env)
    assert failed.exit_code != 0 and "HTTP 500" in str(failed.exception)
    job_id = list_jobs(advisor)["job_id"][0]
    listed = runner.invoke(app, ["finetune", "list", "-w", path], env=env)
    assert f"brightrun finetune resume {job_id}" in listed.stdout
    resumed = runner.invoke(app, ["finetune", "resume", job_id, "-w", path], env=env)
    assert resumed.exit_code == 0 and "validating_files" in resumed.output and len(server.jobs) == 1
    cancelled = runner.invoke(app, ["finetune", "cancel", job_id, "-w", path], env=env)
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.output
    assert list(server.jobs.values())[0]["status"] == "cancelled"
