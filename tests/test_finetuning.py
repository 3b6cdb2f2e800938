"""The fine-tuning registry and OpenAI submission, against a local fake of the Files and fine-tuning APIs driven
by the real `openai` SDK: statuses and their history, ids, estimated and actual costs, the uploaded bytes,
faults (401, 500, lost answers, a crash mid-submission) and resuming, models and their versions."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import polars as pl
import pytest
from openai_ft_server import FakeOpenAIFineTuning

from brightrun.exports.cost import training_prices
from brightrun.finetuning import (
    FineTuningError,
    cancel_job,
    check_hyperparameters,
    deploy_model,
    estimate_job,
    get_job,
    job_events,
    job_folder,
    list_jobs,
    list_models,
    map_status,
    openai_client,
    refresh_jobs,
    resume_job,
    submit_job,
)
from brightrun.training_files import TrainingFileError, add_conversations, create_training_file
from brightrun.workspace import Workspace

MODEL = "gpt-4o-mini-2024-07-18"
PRICE = 3.00  # USD per million training tokens of MODEL in brightrun/exports/training_prices.yaml
FORCE = "contracts run in CI"


def client_of(server: FakeOpenAIFineTuning, key: str | None = None):
    return openai_client(server.base_url, key or server.api_key)


def statuses(ws: Workspace, job_id: str) -> list[str]:
    return job_events(ws, job_id)["status"].to_list()


def lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def test_submit_follow_and_cost_a_job(advisor: Workspace, server: FakeOpenAIFineTuning) -> None:
    client = client_of(server)
    job = submit_job(advisor, "advisor", base_model=MODEL, hyperparameters={"n_epochs": 2}, suffix="adv",
                     client=client, force_reason=FORCE)
    remote = server.job(job.external_job_id)
    assert (job.status, job.provider_status, remote["status"]) == ("validating_files",) * 3
    assert (job.training_file, job.training_file_version, job.format, job.provider) == ("advisor", 2, "openai_sft",
                                                                                         "openai")
    assert job.content_hash and len(job.content_hash) == 64 and job.forced == FORCE
    assert statuses(advisor, job.job_id) == ["created", "uploading", "uploading", "uploading", "submitted",
                                             "validating_files"]
    assert [(m, p, s) for m, p, s in server.requests] == [("POST", "/v1/files", 200)] * 2 + [
        ("POST", "/v1/fine_tuning/jobs", 200)]
    # What was uploaded is exactly the export, byte for byte, and the job points at it.
    data = job_folder(advisor, job.job_id) / "data"
    train, valid = server.files[job.training_file_id], server.files[job.validation_file_id]
    assert (remote["training_file"], remote["validation_file"]) == (train.id, valid.id)
    assert train.content == (data / "train.jsonl").read_bytes() and valid.content == (data / "validation.jsonl").read_bytes()
    assert train.lines() == lines(data / "train.jsonl") and train.purpose == "fine-tune"
    members = advisor.scalar("SELECT count(*) FROM conversations WHERE persona_key IN ('marcus_chen', 'david_chen')")
    assert len(train.lines()) + len(valid.lines()) + len(lines(data / "test.jsonl")) == members
    assert remote["hyperparameters"]["n_epochs"] == 2 and remote["suffix"] == "adv"
    assert remote["metadata"]["brightrun_job_id"] == job.job_id and remote["model"] == MODEL
    # The estimate: the training split at 2 epochs, priced from the table; the same as before submitting.
    before = estimate_job(advisor, "advisor", MODEL, epochs=2)
    assert before.epochs == 2 and before.examples == len(train.lines())
    assert job.estimated_tokens == before.charged_tokens and job.estimated_cost_usd == before.cost_usd
    assert job.estimated_cost_usd == pytest.approx(before.charged_tokens * PRICE / 1e6, abs=1e-6)

    server.advance(job.external_job_id)
    assert [j.status for j in refresh_jobs(advisor, client)] == ["queued"]
    assert refresh_jobs(advisor, client) == []  # nothing changed: nothing recorded
    assert server.finish(job.external_job_id) == "succeeded"
    done = refresh_jobs(advisor, client)[0]
    remote = server.job(job.external_job_id)
    assert done.status == "succeeded" and done.trained_tokens == remote["trained_tokens"] > 0
    assert done.actual_cost_usd == round(remote["trained_tokens"] * PRICE / 1e6, 6)
    assert done.fine_tuned_model == remote["fine_tuned_model"] and done.fine_tuned_model.startswith(f"ft:{MODEL}:")
    assert statuses(advisor, job.job_id)[-2:] == ["queued", "succeeded"]
    models = list_models(advisor).to_dicts()
    assert [(m["model_id"], m["version_label"], m["environment"], m["job_id"], m["training_file_version"])
            for m in models] == [(done.fine_tuned_model, "v1", "none", job.job_id, 2)]
    assert models[0]["actual_cost_usd"] == done.actual_cost_usd
    assert refresh_jobs(advisor, client) == [] and list_models(advisor).height == 1  # a model is added once

    # A second job on the same training file and base model makes v2; deploying moves production to it.
    second = submit_job(advisor, "advisor", base_model=MODEL, client=client, force_reason=FORCE)
    assert second.estimated_cost_usd == estimate_job(advisor, "advisor", MODEL).cost_usd
    server.finish(second.external_job_id)
    refresh_jobs(advisor, client)
    labels = {m["version_label"]: m["model_id"] for m in list_models(advisor).to_dicts()}
    assert set(labels) == {"v1", "v2"}
    deploy_model(advisor, labels["v1"], "production")
    deploy_model(advisor, labels["v2"], "production")
    envs = {m["version_label"]: m["environment"] for m in list_models(advisor).to_dicts()}
    assert envs == {"v1": "none", "v2": "production"}
    with pytest.raises(FineTuningError, match="unknown environment"):
        deploy_model(advisor, labels["v1"], "prod")
    assert list_jobs(advisor)["job_id"].to_list() == [second.job_id, job.job_id]


def test_an_invalid_export_is_refused_and_nothing_is_recorded(demo_copy: Workspace,
                                                              server: FakeOpenAIFineTuning) -> None:
    ids = demo_copy.sql("SELECT conversation_id FROM conversations ORDER BY conversation_id LIMIT 6")
    create_training_file(demo_copy, "tiny")
    add_conversations(demo_copy, "tiny", ids["conversation_id"].to_list())
    with pytest.raises(FineTuningError, match="min_examples") as caught:
        submit_job(demo_copy, "tiny", base_model=MODEL, client=client_of(server), force_reason=FORCE)
    assert "at least 10 training examples" in str(caught.value) and caught.value.problems
    assert list_jobs(demo_copy).height == 0 and server.requests == []
    assert not any((demo_copy.root / "finetuning").glob("*/data"))


def test_a_version_whose_records_changed_is_refused(advisor: Workspace, server: FakeOpenAIFineTuning) -> None:
    pair = advisor.sql("SELECT * FROM training_pairs WHERE persona_key = 'marcus_chen' ORDER BY pair_id LIMIT 1")
    advisor.append("training_pairs", pair.with_columns(target_response=pl.lit("Rewritten after the version.")))
    with pytest.raises(FineTuningError, match="changed since the version was made"):
        submit_job(advisor, "advisor", base_model=MODEL, client=client_of(server), force_reason=FORCE)
    assert list_jobs(advisor).height == 0 and server.requests == []


def test_the_data_contracts_gate_a_submission(advisor: Workspace, server: FakeOpenAIFineTuning) -> None:
    with pytest.raises(TrainingFileError, match="brightrun validate"):
        submit_job(advisor, "advisor", base_model=MODEL, client=client_of(server))
    assert list_jobs(advisor).height == 0 and server.requests == []


def test_no_key_names_openai_api_key(advisor: Workspace, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(FineTuningError, match="OPENAI_API_KEY is not set") as caught:
        submit_job(advisor, "advisor", base_model=MODEL, force_reason=FORCE)
    assert "Fix:" in str(caught.value)
    assert list_jobs(advisor).height == 0


def test_a_refused_key_fails_with_the_fix_then_resumes(advisor: Workspace, server: FakeOpenAIFineTuning,
                                                       monkeypatch) -> None:
    wrong = "sk-wrong-key-abcdef123456"
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", wrong)
    with pytest.raises(FineTuningError) as caught:
        submit_job(advisor, "advisor", base_model=MODEL, force_reason=FORCE)
    message = str(caught.value)
    assert "HTTP 401" in message and "Fix: set OPENAI_API_KEY" in message and "brightrun finetune resume" in message
    assert wrong not in message and server.requests == [("POST", "/v1/files", 401)]  # a 401 is not retried
    job = list_jobs(advisor).to_dicts()[0]
    assert (job["status"], job["external_job_id"], job["training_file_id"]) == ("failed", None, None)
    assert "OPENAI_API_KEY" in job["error"]

    monkeypatch.setenv("OPENAI_API_KEY", server.api_key)
    resumed = resume_job(advisor, job["job_id"])
    assert resumed.status == "validating_files" and resumed.error is None and len(server.jobs) == 1
    assert statuses(advisor, job["job_id"])[:3] == ["created", "uploading", "failed"]
    with pytest.raises(FineTuningError, match="already at OpenAI"):
        resume_job(advisor, job["job_id"])
    # Neither key reached a record, an event or a file of the workspace.
    for path in advisor.root.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert wrong.encode() not in content and server.api_key.encode() not in content, path


def test_a_500_is_retried(advisor: Workspace, server: FakeOpenAIFineTuning) -> None:
    server.inject("server_error", 1, path="/v1/files")
    job = submit_job(advisor, "advisor", base_model=MODEL, client=client_of(server), force_reason=FORCE)
    assert job.status == "validating_files"
    assert [s for m, p, s in server.requests if p == "/v1/files"] == [500, 200, 200]
    assert len(server.files) == 2 and len(server.jobs) == 1


def test_persistent_500s_fail_cleanly_and_resume_uploads_nothing_twice(advisor: Workspace,
                                                                      server: FakeOpenAIFineTuning) -> None:
    client = client_of(server)
    server.inject("server_error", 3, path="/v1/fine_tuning/jobs", method="POST")
    with pytest.raises(FineTuningError, match="HTTP 500") as caught:
        submit_job(advisor, "advisor", base_model=MODEL, client=client, force_reason=FORCE)
    assert caught.value.transient and "brightrun finetune resume" in str(caught.value)
    job = list_jobs(advisor).to_dicts()[0]
    assert job["status"] == "failed" and job["external_job_id"] is None and job["training_file_id"] in server.files
    assert server.jobs == {} and server.count("POST", "/v1/fine_tuning/jobs") == 3
    # before each retry of the creation it asked whether OpenAI had the job after all
    assert server.count("GET", "/v1/fine_tuning/jobs") == 2

    resumed = resume_job(advisor, job["job_id"], client=client)
    assert resumed.external_job_id in server.jobs and len(server.jobs) == 1
    assert server.count("POST", "/v1/files") == 2  # the files uploaded before the failure were not sent again
    assert server.count("GET", "/v1/fine_tuning/jobs") == 3  # a resume asks first, too


def test_a_lost_creation_answer_does_not_create_the_job_twice(advisor: Workspace,
                                                              server: FakeOpenAIFineTuning) -> None:
    server.inject("drop_after", 1, path="/v1/fine_tuning/jobs", method="POST")
    job = submit_job(advisor, "advisor", base_model=MODEL, client=client_of(server), force_reason=FORCE)
    assert len(server.jobs) == 1 and job.external_job_id in server.jobs
    assert server.count("POST", "/v1/fine_tuning/jobs") == 1 and server.count("GET", "/v1/fine_tuning/jobs") == 1


def test_a_crash_between_upload_and_creation_loses_nothing(advisor: Workspace, server: FakeOpenAIFineTuning,
                                                           cli_env: dict) -> None:
    server.inject("hang", 1, path="/v1/fine_tuning/jobs", method="POST")
    env = {**cli_env, "OPENAI_API_KEY": server.api_key, "OPENAI_BASE_URL": server.base_url}
    command = [sys.executable, "-m", "brightrun", "finetune", "submit", "advisor", "--model", MODEL, "--force", FORCE,
               "-w", str(advisor.root)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rows = list_jobs(advisor)
            if rows.height and rows["validation_file_id"][0] is not None:
                break
            assert process.poll() is None, process.communicate()
            time.sleep(0.1)
        time.sleep(0.3)  # the creation request is now on its way (and hangs)
    finally:
        process.kill()
        process.wait(30)
    job = list_jobs(advisor).to_dicts()[0]
    assert (job["status"], job["external_job_id"]) == ("uploading", None) and job["training_file_id"] in server.files
    assert server.jobs == {}
    resumed = resume_job(advisor, job["job_id"], client=client_of(server))
    assert resumed.status == "validating_files" and list(server.jobs) == [resumed.external_job_id]
    assert server.count("POST", "/v1/files") == 2


def test_a_failed_job_records_the_reason_and_no_model(advisor: Workspace, server: FakeOpenAIFineTuning) -> None:
    client = client_of(server)
    server.fail_next_job("The training file has duplicated examples (fake).")
    job = submit_job(advisor, "advisor", base_model=MODEL, client=client, force_reason=FORCE)
    server.finish(job.external_job_id)
    failed = refresh_jobs(advisor, client)[0]
    assert failed.status == "failed" and "invalid_training_file" in failed.error and "duplicated" in failed.error
    assert failed.actual_cost_usd is None and failed.fine_tuned_model is None and list_models(advisor).height == 0
    with pytest.raises(FineTuningError, match="cannot be resumed|already at OpenAI"):
        resume_job(advisor, job.job_id, client=client)


def test_cancel(advisor: Workspace, server: FakeOpenAIFineTuning) -> None:
    client = client_of(server)
    job = submit_job(advisor, "advisor", base_model=MODEL, client=client, force_reason=FORCE)
    cancelled = cancel_job(advisor, job.job_id, client=client)
    assert cancelled.status == "cancelled" and server.job(job.external_job_id)["status"] == "cancelled"
    with pytest.raises(FineTuningError, match="already ended"):
        cancel_job(advisor, job.job_id, client=client)
    assert refresh_jobs(advisor, client) == []


def test_models_without_a_price_and_refused_models(advisor: Workspace, server: FakeOpenAIFineTuning) -> None:
    client = client_of(server)
    unpriced = "gpt-9-nano-2031-01-01"
    assert training_prices(advisor.root).get(unpriced) is None
    job = submit_job(advisor, "advisor", base_model=unpriced, client=client, force_reason=FORCE)
    assert job.estimated_cost_usd is None and "training_prices.yaml" in job.cost_note and job.estimated_tokens > 0
    server.finish(job.external_job_id)
    done = refresh_jobs(advisor, client)[0]
    assert done.status == "succeeded" and done.trained_tokens > 0 and done.actual_cost_usd is None

    with pytest.raises(FineTuningError, match="vertex model"):
        submit_job(advisor, "advisor", base_model="gemini-2.5-flash", client=client, force_reason=FORCE)
    server.models = {MODEL}
    with pytest.raises(FineTuningError, match="HTTP 400.*not available for fine-tuning"):
        submit_job(advisor, "advisor", base_model="gpt-4.1-2025-04-14", client=client, force_reason=FORCE)
    refused = get_job(advisor, list_jobs(advisor)["job_id"][0])
    assert refused.status == "failed" and refused.base_model == "gpt-4.1-2025-04-14"


def test_hyperparameters_and_statuses() -> None:
    assert check_hyperparameters({"n_epochs": 3, "batch_size": "auto", "learning_rate_multiplier": 0.5}) == {
        "n_epochs": 3, "learning_rate_multiplier": 0.5}
    for bad in ({"n_epochs": 0}, {"n_epochs": 2.5}, {"n_epochs": True}, {"learning_rate_multiplier": 0},
                {"temperature": 1}):
        with pytest.raises(FineTuningError, match="Fix:"):
            check_hyperparameters(bad)
    assert [map_status(s) for s in ("validating_files", "queued", "running", "succeeded", "failed", "cancelled",
                                    "pausing", None)] == [
        "validating_files", "queued", "running", "succeeded", "failed", "cancelled", "submitted", "submitted"]
