"""The validation report: what ran, what failed, with failing records; saved in the workspace."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from brightrun.errors import WorkspaceError
from brightrun.workspace import Workspace
from brightrun.workspace.files import atomic_write_bytes

REPORT_PATH = Path("reports") / "validation.json"
MAX_EXAMPLES = 5


class ExpectationResult(BaseModel):
    """One expectation of one suite, run on one table."""

    expectation_type: str
    column: str | None = Field(description="the column checked; 'a, b' for a pair or compound check")
    description: str = Field(description="what it checks, in plain English")
    success: bool
    unexpected_count: int | None = Field(default=None, description="failing rows (None for table-level checks)")
    unexpected_percent: float | None = None
    examples: list[dict[str, Any]] = Field(
        default_factory=list,
        description=f"up to {MAX_EXAMPLES} failing records: their ids and the offending values")
    error: str | None = Field(default=None, description="why the expectation could not run, if it could not")


class SuiteResult(BaseModel):
    table: str
    rows: int
    success: bool
    expectations: list[ExpectationResult]

    def failures(self) -> list[ExpectationResult]:
        return [e for e in self.expectations if not e.success]


class ValidationReport(BaseModel):
    run_at: datetime
    success: bool
    workspace: str
    suites: list[SuiteResult]
    seconds: float

    def failures(self) -> list[tuple[str, ExpectationResult]]:
        """Every failed expectation, as (table, result), in suite order."""
        return [(s.table, e) for s in self.suites for e in s.expectations if not e.success]

    def suite(self, table: str) -> SuiteResult:
        for suite in self.suites:
            if suite.table == table:
                return suite
        raise KeyError(f"the report has no suite for {table!r} (it has {[s.table for s in self.suites]})")


def report_path(ws: Workspace) -> Path:
    return ws.root / REPORT_PATH


def save_report(ws: Workspace, report: ValidationReport) -> Path:
    """Write the report to <workspace>/reports/validation.json (atomically); returns the path."""
    path = report_path(ws)
    atomic_write_bytes(path, report.model_dump_json(indent=2).encode())
    return path


def latest_report(ws: Workspace) -> ValidationReport | None:
    """The last saved report, or None when the contracts never ran on this workspace."""
    path = report_path(ws)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return ValidationReport.model_validate_json(data)
    except ValidationError as exc:
        raise WorkspaceError(
            f"{path}: not a readable validation report ({exc.error_count()} problem(s), first: "
            f"{exc.errors()[0]['msg']}). Fix: run `brightrun validate` again to rewrite it, or delete the file."
        ) from None


def _value(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_example(example: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in example.items())


def summarize(report: ValidationReport) -> str:
    """A human summary: one line per suite, then each failing expectation with an example."""
    verdict = "PASSED" if report.success else "FAILED"
    lines = [f"Data contracts {verdict} on {report.workspace} in {report.seconds:.1f} s "
             f"({report.run_at:%Y-%m-%d %H:%M:%S} UTC)"]
    for suite in report.suites:
        failed = suite.failures()
        mark = "ok  " if suite.success else "FAIL"
        lines.append(f"  {mark} {suite.table}: {suite.rows:,} rows, {len(suite.expectations)} expectations, "
                     f"{len(failed)} failed")
        for result in failed:
            if result.error:
                detail = f"could not run: {result.error}"
            elif result.unexpected_count is not None:
                detail = f"{result.unexpected_count:,} rows ({result.unexpected_percent or 0:.2f}%)"
            else:
                detail = "failed"
            lines.append(f"       - {result.description}: {detail}")
            if result.examples:
                lines.append(f"         e.g. {describe_example(result.examples[0])}")
    return "\n".join(lines)
