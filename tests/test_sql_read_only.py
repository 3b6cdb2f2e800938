"""`brightrun sql --read-only`: the workspace views, and no file read or written."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from brightrun.cli.main import app
from brightrun.errors import WorkspaceError
from brightrun.workspace import Workspace

runner = CliRunner()


def test_read_only_sql_refuses_files_and_still_reads_the_views(demo_copy: Workspace, tmp_path: Path) -> None:
    path = str(demo_copy.root)
    target = tmp_path / "out.csv"
    inside = demo_copy.root / "tables" / "feedback" / "evil.parquet"
    for query in [f"COPY (SELECT * FROM conversations) TO '{target}'",
                  f"COPY (SELECT 1 AS a) TO '{inside}' (USE_TMP_FILE false)",
                  "SELECT * FROM read_csv('/etc/passwd', sep = ':')",
                  "SELECT * FROM read_text('/etc/hostname')",
                  "SELECT * FROM glob('/etc/*')",
                  "SET enable_external_access = true"]:
        result = runner.invoke(app, ["sql", query, "-w", path, "--read-only"])
        assert isinstance(result.exception, WorkspaceError), (query, result.output)
        assert "Fix:" in str(result.exception)
    assert not target.exists() and not inside.exists()

    expected = demo_copy.sql("SELECT persona_key, count(*) AS n FROM conversations GROUP BY 1 ORDER BY 1").to_dicts()
    query = "SELECT persona_key, count(*) AS n FROM conversations GROUP BY 1 ORDER BY 1"
    shown = runner.invoke(app, ["sql", query, "-w", path, "--read-only", "--json"])
    assert shown.exit_code == 0, shown.output
    assert orjson.loads(shown.stdout) == expected and len(expected) > 1
    derived = "SELECT count(*) FROM feedback_latest f JOIN conversations c ON c.conversation_id = f.target_id"
    assert demo_copy.sql(derived, read_only=True).item() == demo_copy.scalar(derived)


def test_plain_sql_is_full_duckdb(demo_copy: Workspace, tmp_path: Path) -> None:
    """What the help says: without --read-only the user's own rights apply."""
    target = tmp_path / "out.csv"
    result = runner.invoke(app, ["sql", f"COPY (SELECT 1 AS a) TO '{target}'", "-w", str(demo_copy.root)])
    assert result.exit_code == 0 and target.read_text() == "a\n1\n"
