"""Data contracts: the Great Expectations suites in expectations/ run against the workspace tables.

    report = run_contracts(ws)           # every suite; or tables=["turns"]
    save_report(ws, report)              # <workspace>/reports/validation.json, what the app shows
    print(summarize(report))             # one line per suite, failing expectations with an example
    latest_report(ws)                    # the last saved report, or None

Great Expectations is imported on first use (it takes seconds) with analytics off, in an ephemeral
context: nothing is written outside the workspace and nothing is sent anywhere.

May import: errors, quality, workspace.
"""

from brightrun.validation.errors import ContractError
from brightrun.validation.report import (
    ExpectationResult,
    SuiteResult,
    ValidationReport,
    latest_report,
    report_path,
    save_report,
    summarize,
)
from brightrun.validation.runner import run_contracts
from brightrun.validation.suites import load_suites, suite_dir

__all__ = [
    "ContractError",
    "ExpectationResult",
    "SuiteResult",
    "ValidationReport",
    "latest_report",
    "load_suites",
    "report_path",
    "run_contracts",
    "save_report",
    "suite_dir",
    "summarize",
]
