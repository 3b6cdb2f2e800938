"""One id rule (`fullmatch`): a trailing newline (or any character outside the rule) in an id or name a user
gives is refused with a clear error at every entry point, and nothing is created."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brightrun.cli.main import app
from brightrun.errors import BrightRunError, check_name, id_pattern
from brightrun.workspace import Workspace

runner = CliRunner()
KEY = "tpl_confusion_to_clarity"


def test_check_name_refuses_a_trailing_newline_that_dollar_lets_through() -> None:
    pattern = id_pattern(64)
    assert re.match(pattern.pattern + "$", "tf\n")  # why `$` was not enough
    assert check_name("tf", "job id", pattern, "ids") == "tf"
    for bad in ["tf\n", "tf\r\n", " tf", "", "Tf", "t" * 65, None]:
        with pytest.raises(BrightRunError, match=r"job id .* is not allowed\. Fix: use ids\."):
            check_name(bad, "job id", pattern, "ids")


def refused(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, BrightRunError), (args, result.output)
    assert message in str(result.exception) and "Fix:" in str(result.exception), str(result.exception)


def test_a_trailing_newline_is_refused_at_every_entry_point(ws: Workspace) -> None:
    path = str(ws.root)
    refused(["generate", "-w", path, "--persona", "marcus_chen", "--arc", "fear_to_security", "--topic",
             "emergency_fund", "--count", "1", "--job-id", "tf\n"], "job id 'tf\\n' is not allowed")
    refused(["jobs", "resume", "tf\n", "-w", path], "no job 'tf\\n'")
    refused(["experiments", "create", "exp\n", "-w", path, "--template", KEY, "--control", "control=",
             "--variant", "warm="], "experiment id 'exp\\n' is not allowed")
    refused(["prompts", "label", KEY, "0123abcd", "prod\n", "-w", path], "label 'prod\\n' is not allowed")
    refused(["datasets", "build", "ds\n", "-w", path], "dataset name 'ds\\n' is not allowed")
    refused(["training-file", "create", "tf\n", "-w", path], "training file name 'tf\\n' is not allowed")
    for table in ["batch_jobs", "batch_items", "conversations", "experiments", "template_labels", "training_files"]:
        assert ws.scalar(f"SELECT count(*) FROM {table}") == 0, table
    made = [p.name for p in Path(path).rglob("*") if "\n" in p.name]
    assert made == []
    assert not (Path(path) / "datasets").exists() or not any((Path(path) / "datasets").iterdir())


def test_arm_names_follow_the_same_rule(ws: Workspace) -> None:
    from brightrun.experiments import create_experiment

    with pytest.raises(BrightRunError, match=r"arm name 'warm\\n' is not allowed. Fix: use 1 to 30 lower-case"):
        create_experiment(ws, experiment_id="exp", name="exp", template_key=KEY, control={"name": "control"},
                          variants=[{"name": "warm\n"}])
    assert ws.scalar("SELECT count(*) FROM experiments") == 0
