"""Run the suites on the workspace: build each table's frame in DuckDB, hand it to Great Expectations
as pandas (the one polars -> pandas boundary), and turn GX's results into a ValidationReport."""

from __future__ import annotations

import gc
import time
import warnings
from collections.abc import Callable
from numbers import Integral
from pathlib import Path
from typing import Any

import polars as pl

from brightrun.validation.errors import ContractError
from brightrun.validation.frames import Frame, frame_for
from brightrun.validation.report import MAX_EXAMPLES, ExpectationResult, SuiteResult, ValidationReport
from brightrun.validation.suites import REQUIRED, import_gx, load_suites, suite_columns, suite_dir
from brightrun.workspace import Workspace, utcnow

Progress = Callable[[str], None]


def run_contracts(ws: Workspace, *, tables: list[str] | None = None, progress: Progress | None = None,
                  suites_folder: Path | None = None) -> ValidationReport:
    """Run the suites of `tables` (default: every suite) on the workspace; returns the report (it is
    not saved: see save_report). Suites come from `suites_folder` (default: suite_dir())."""
    started, run_at = time.perf_counter(), utcnow()
    say = progress or (lambda message: None)
    folder = suites_folder or suite_dir()
    if tables is not None:
        unknown = [t for t in tables if t not in REQUIRED and not (folder / f"{t}.json").exists()]
        if unknown or not tables:
            have = sorted({*REQUIRED, *(p.stem for p in folder.glob("*.json"))})
            raise ContractError(f"no suite for {', '.join(map(repr, unknown)) or 'an empty list of tables'}. "
                                f"Fix: choose from {', '.join(have)}.")
    say("loading Great Expectations and the suites")
    suites = load_suites(folder, tables)
    results = []
    for table, suite in suites.items():
        spec = frame_for(ws, table, set(suite_columns(suite)))
        say(f"{table}: reading")
        frame = ws.sql(spec.sql)
        _check_columns(folder / f"{table}.json", suite, frame)
        say(f"{table}: checking {frame.height:,} rows against {len(suite.expectations)} expectations")
        results.append(_run_suite(spec, suite, frame))
        del frame
        gc.collect()  # GX's caches of the last frame go before the next one is read
        say(f"{table}: {'passed' if results[-1].success else 'FAILED'}")
    return ValidationReport(run_at=run_at, success=all(r.success for r in results), workspace=str(ws.root),
                            suites=results, seconds=round(time.perf_counter() - started, 3))


def _pandas_source() -> Any:
    """A pandas data source in an ephemeral (in-memory, offline) GX context, without progress bars."""
    gx = import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context.data_sources.add_pandas("brightrun")


def _check_columns(path: Path, suite: Any, frame: pl.DataFrame) -> None:
    missing = [c for c in suite_columns(suite) if c not in frame.columns]
    if missing:
        raise ContractError(
            f"{path}: the suite uses column(s) {', '.join(missing)}, which the {suite.name} frame does not have. "
            f"Fix: use one of {', '.join(frame.columns)}, or derive the column in brightrun/validation/frames.py.")


def _run_suite(spec: Frame, suite: Any, frame: pl.DataFrame) -> SuiteResult:
    """One suite on its frame, in a context of its own, so nothing of this frame outlives the call."""
    asset = _pandas_source().add_dataframe_asset(spec.table)
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(
        batch_parameters={"dataframe": frame.to_pandas()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        validation = batch.validate(suite, result_format={"result_format": "SUMMARY",
                                                          "partial_unexpected_count": MAX_EXAMPLES})
    by_description = {r.expectation_config.description: r for r in validation.results}
    expectations = [_result(by_description.get(e.description), e, spec, frame) for e in suite.expectations]
    return SuiteResult(table=spec.table, rows=frame.height, success=all(e.success for e in expectations),
                       expectations=expectations)


def _domain(kwargs: dict) -> list[str]:
    if kwargs.get("column_list"):
        return list(kwargs["column_list"])
    return [kwargs[a] for a in ("column", "column_A", "column_B") if isinstance(kwargs.get(a), str)]


def _error(outcome: Any) -> str | None:
    info = outcome.exception_info or {}
    entries = [info] if "raised_exception" in info else list(info.values())
    messages = [str(e.get("exception_message")) for e in entries if isinstance(e, dict) and e.get("raised_exception")]
    return "; ".join(messages) or None


def _result(outcome: Any, expectation: Any, spec: Frame, frame: pl.DataFrame) -> ExpectationResult:
    config = expectation.configuration
    domain = _domain(config.kwargs)
    base = {"expectation_type": config.type, "column": ", ".join(domain) or None,
            "description": expectation.description}
    if outcome is None:
        return ExpectationResult(**base, success=False, error="Great Expectations returned no result for it")
    error = _error(outcome)
    result = outcome.result or {}
    examples: list[dict[str, Any]] = []
    if not outcome.success and not error:
        shown = list(dict.fromkeys([*spec.ids, *domain, *(expectation.meta or {}).get("show", [])]))
        rows = [int(i) for i in result.get("partial_unexpected_index_list") or [] if isinstance(i, Integral)]
        examples = [frame.select(shown).row(i, named=True) for i in rows[:MAX_EXAMPLES] if 0 <= i < frame.height]
        if not examples and "observed_value" in result:
            examples = [{"observed_value": result["observed_value"]}]
    return ExpectationResult(
        **base, success=bool(outcome.success) and not error,
        unexpected_count=result.get("unexpected_count"), unexpected_percent=result.get("unexpected_percent"),
        examples=examples, error=error)
