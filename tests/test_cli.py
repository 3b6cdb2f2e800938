"""The brightrun command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
from typer.testing import CliRunner

from brightrun.cli.main import app
from brightrun.workspace import Workspace

runner = CliRunner()


def test_demo_makes_exactly_n_conversations_and_enriches_them(tmp_path: Path) -> None:
    path = tmp_path / "ws"
    result = runner.invoke(app, ["demo", "--workspace", str(path), "--conversations", "37"])
    assert result.exit_code == 0, result.output
    ws = Workspace.open(path)
    assert ws.sql("SELECT count(*) FROM conversations").item() == 37
    assert ws.sql("SELECT count(*) FROM conversations WHERE enrichment_status = 'completed'").item() == 37
    assert (path / "scaffolding" / "personas.yaml").exists()
    # The demo comes with its quality report and passing data contracts, so the Quality page is complete.
    from brightrun.quality.report import latest_quality_report
    from brightrun.validation import latest_report

    assert latest_quality_report(ws).conversations == 37
    assert latest_report(ws).success and "data contracts pass" in result.output
    again = runner.invoke(app, ["demo", "--workspace", str(path)])
    assert again.exit_code != 0 and "already holds conversations" in str(again.exception)


def test_generate_enrich_sql_and_status(tmp_path: Path) -> None:
    path = str(tmp_path / "ws")
    result = runner.invoke(app, ["generate", "-w", path, "--persona", "marcus_chen", "--arc", "fear_to_security",
                                 "--topic", "emergency_fund", "--topic", "estate_planning_basics", "--count", "3",
                                 "--job-id", "cli-job", "--json"])
    assert result.exit_code == 0, result.output
    job = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert (job["job_id"], job["status"], job["done"], job["total"]) == ("cli-job", "completed", 6, 6)
    result = runner.invoke(app, ["enrich", "-w", path, "--json"])
    assert orjson.loads(result.stdout)["enriched"] == 6
    result = runner.invoke(app, ["sql", "SELECT topic_key, count(*) AS n FROM conversations GROUP BY 1 ORDER BY 1",
                                 "-w", path, "--json"])
    assert orjson.loads(result.stdout) == [{"topic_key": "emergency_fund", "n": 3},
                                           {"topic_key": "estate_planning_basics", "n": 3}]
    table = runner.invoke(app, ["sql", "SELECT count(*) AS n FROM training_pairs", "-w", path])
    assert "1 row(s)" in table.stdout
    status = orjson.loads(runner.invoke(app, ["status", "-w", path, "--json"]).stdout)
    assert status["totals"]["conversations"] == 6 and status["jobs"][0]["job_id"] == "cli-job"
    rerun = runner.invoke(app, ["generate", "-w", path, "--job-id", "cli-job", "--json"])
    assert orjson.loads(rerun.stdout.strip().splitlines()[-1])["done"] == 6  # finished job: nothing more
    assert Workspace.open(path).sql("SELECT count(*) FROM conversations").item() == 6


def test_workspace_env_var_is_honoured(tmp_path: Path, monkeypatch) -> None:
    envws = tmp_path / "envws"
    monkeypatch.setenv("BRIGHTRUN_WORKSPACE", str(envws))
    missing = runner.invoke(app, ["sql", "SELECT count(*) AS n FROM personas", "--json"])
    assert f"no workspace at {envws}" in str(missing.exception) and not envws.exists()  # sql creates nothing
    Workspace.open(envws)
    result = runner.invoke(app, ["sql", "SELECT count(*) AS n FROM personas", "--json"])
    assert orjson.loads(result.stdout) == [{"n": 4}]


def test_errors_exit_2_with_the_fix(tmp_path: Path, cli_env: dict) -> None:
    command = [sys.executable, "-m", "brightrun", "generate", "-w", str(tmp_path / "ws"), "--arc", "nope"]
    done = subprocess.run(command, capture_output=True, text=True, env=cli_env, timeout=60)
    assert done.returncode == 2
    assert "unknown arc key(s) nope" in done.stderr and "Fix" in done.stderr and "Traceback" not in done.stderr
    bad_sql = [sys.executable, "-m", "brightrun", "sql", "SELECT * FROM nowhere", "-w", str(tmp_path / "ws")]
    done = subprocess.run(bad_sql, capture_output=True, text=True, env=cli_env, timeout=60)
    assert done.returncode == 2 and "query failed" in done.stderr


def test_schema_lists_and_prints_entities() -> None:
    listing = runner.invoke(app, ["schema"])
    assert "training_pair" in listing.stdout and "llm_call" in listing.stdout
    schema = orjson.loads(runner.invoke(app, ["schema", "conversation"]).stdout)
    assert {"conversation_id", "template_version", "provider"} <= set(schema["properties"])


def test_compact_merges_parts(tmp_path: Path) -> None:
    path = str(tmp_path / "ws")
    runner.invoke(app, ["demo", "-w", path, "--conversations", "20", "--no-reports"])
    result = runner.invoke(app, ["compact", "-w", path])
    assert result.exit_code == 0 and "Compacted" in result.output
    ws = Workspace.open(path)
    assert ws.table_files("conversations").deltas == () and ws.sql("SELECT count(*) FROM conversations").item() == 20


def test_jobs_commands(tmp_path: Path) -> None:
    from brightrun.generation import load_job
    from brightrun.providers import ScriptedProvider

    path = str(tmp_path / "ws")
    ws = Workspace.open(path)
    from brightrun.generation import create_job, make_plan, run_job

    job = create_job(ws, make_plan(ws, ["jennifer_walsh"], ["grief_to_planning"], None, count=1), provider="scripted",
                     model="scripted-1", job_id="flaky", provider_options={"permanent_failure_rate": 0.5, "seed": 1},
                     temperature=0.3, max_tokens=1000)
    run_job(ws, job.job_id, ScriptedProvider(permanent_failure_rate=0.5, seed=1), max_attempts=1)
    failed = load_job(ws, "flaky").failed
    assert failed > 0
    listing = orjson.loads(runner.invoke(app, ["jobs", "list", "-w", path, "--json"]).stdout)
    assert listing[0]["job_id"] == "flaky" and listing[0]["state"] == "completed"
    shown = orjson.loads(runner.invoke(app, ["jobs", "show", "flaky", "-w", path, "--json"]).stdout)
    assert shown["job"]["failed"] == failed and len(shown["failures"]) == failed
    assert {f["error_type"] for f in shown["failures"]} == {"malformed_output"}
    request = orjson.loads(ws.sql("SELECT request FROM llm_calls LIMIT 1").item())
    assert (request["temperature"], request["max_tokens"]) == (0.3, 1000)  # the job's overrides
    retried = runner.invoke(app, ["jobs", "retry-failed", "flaky", "-w", path, "--no-run"])
    assert f"{failed} failed item(s) of flaky queued again" in retried.output
    assert ws.sql("SELECT count(*) FROM batch_items WHERE status = 'pending'").item() == failed
    cancel = runner.invoke(app, ["jobs", "cancel", "flaky", "-w", path])
    assert cancel.exit_code == 0 and "Cancel requested" in cancel.output
    resumed = runner.invoke(app, ["jobs", "resume", "flaky", "-w", path, "--json"])  # resume clears the cancel
    # Half the items fail on every attempt: the work asked for was not done, so the exit code says so.
    still = load_job(ws, "flaky")
    assert still.failed > 0 and resumed.exit_code == 1, resumed.output
    assert f"{still.failed} of {still.total} conversation(s) not made" in resumed.output
    assert "commonest reason: malformed_output" in resumed.output
    assert ws.sql("SELECT count(*) FROM batch_items WHERE status = 'pending'").item() == 0
    missing = runner.invoke(app, ["jobs", "show", "nope", "-w", path])
    assert missing.exit_code != 0 and "no job 'nope'" in str(missing.exception)


def test_status_json_has_integer_counts(tmp_path: Path) -> None:
    path = str(tmp_path / "ws")
    runner.invoke(app, ["demo", "-w", path, "--conversations", "12", "--no-reports"])
    totals = orjson.loads(runner.invoke(app, ["status", "-w", path, "--json"]).stdout)["totals"]
    for name in ("conversations", "enriched", "enrichment_failed", "training_pairs", "jobs", "jobs_running",
                 "llm_calls", "failed_calls", "failed_generations", "input_tokens", "output_tokens"):
        assert isinstance(totals[name], int), name
    assert totals["enriched"] == 12
