"""Read-only commands (status, sql, every show and list) on a path without a workspace say so, exit 2 with a
Fix, and create nothing there."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brightrun.cli.main import app, main
from brightrun.errors import WorkspaceError

runner = CliRunner()
READ_ONLY = [
    ["status"], ["sql", "SELECT 1"], ["jobs", "list"], ["jobs", "show", "j1"], ["experiments", "list"],
    ["experiments", "report", "e1"], ["datasets", "list"], ["finetune", "list"], ["finetune", "show", "j1"],
    ["prompts", "list"], ["prompts", "diff", "tpl_confusion_to_clarity", "a", "b"], ["training-file", "show", "tf"],
]


@pytest.mark.parametrize("command", READ_ONLY, ids=lambda c: " ".join(c[:2]))
def test_a_read_only_command_at_a_mistyped_path_creates_nothing(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "typo" / "ws"
    result = runner.invoke(app, [*command, "-w", str(missing)])
    assert isinstance(result.exception, WorkspaceError), result.output
    message = str(result.exception)
    assert f"no workspace at {missing}" in message and "Fix:" in message and "brightrun demo" in message
    assert not (tmp_path / "typo").exists()

    # A folder that exists but is not a workspace is left as it was.
    plain = tmp_path / "notes"
    plain.mkdir()
    result = runner.invoke(app, [*command, "-w", str(plain)])
    assert isinstance(result.exception, WorkspaceError) and "no workspace" in str(result.exception)
    assert list(plain.iterdir()) == []


def test_the_command_line_exits_2_with_the_fix(tmp_path: Path, monkeypatch, capsys) -> None:
    missing = tmp_path / "typo"
    monkeypatch.setattr(sys, "argv", ["brightrun", "status", "-w", str(missing)])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "error: no workspace at" in err and "Fix:" in err and "brightrun demo --workspace" in err
    assert not missing.exists()


def test_read_only_commands_still_read_a_workspace(demo_copy) -> None:
    status = runner.invoke(app, ["status", "-w", str(demo_copy.root), "--json"])
    assert status.exit_code == 0, status.output
    sql = runner.invoke(app, ["sql", "SELECT count(*) AS n FROM conversations", "-w", str(demo_copy.root), "--json"])
    assert sql.exit_code == 0 and '"n":' in sql.stdout
