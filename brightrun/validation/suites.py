"""Find, load and check the Great Expectations suites in expectations/ (one JSON file per table)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from brightrun.validation.errors import ContractError

PACKAGED = Path(__file__).resolve().parent.parent / "_expectations"
"""Where an installed wheel keeps the suites (pyproject force-include)."""
CHECKOUT = Path(__file__).resolve().parent.parent.parent / "expectations"
"""Where a source checkout keeps them."""

COLUMN_ARGS = ("column", "column_A", "column_B")
REQUIRED = ("conversations", "turns", "training_pairs")
"""The tables that always have a suite; more may be added as <view>.json."""


def suite_dir() -> Path:
    """The folder of the suites: expectations/ in a checkout, brightrun/_expectations when installed."""
    return PACKAGED if PACKAGED.is_dir() else CHECKOUT


def import_gx() -> Any:
    """Great Expectations, imported on first use (it takes seconds) and never phoning home."""
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    import great_expectations as gx

    return gx


def suite_columns(suite: Any) -> list[str]:
    """Every column a suite's expectations read, in order of first use."""
    seen: dict[str, None] = {}
    for expectation in suite.expectations:
        kwargs = expectation.configuration.kwargs
        for arg in COLUMN_ARGS:
            if isinstance(kwargs.get(arg), str):
                seen[kwargs[arg]] = None
        for column in kwargs.get("column_list") or []:
            seen[column] = None
        for column in (expectation.meta or {}).get("show", []):
            seen[column] = None
    return list(seen)


def _fail(path: Path, what: str, fix: str) -> ContractError:
    return ContractError(f"{path}: {what}. Fix: {fix}.")


def load_suite(path: Path) -> Any:
    """One suite file as a GX ExpectationSuite; any problem raises ContractError naming the file."""
    gx = import_gx()
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise _fail(path, "the suite file is missing", f"restore it from git (expectations/{path.name}) or "
                    f"reinstall BrightRun, which ships it") from None
    except orjson.JSONDecodeError as exc:
        raise _fail(path, f"not valid JSON ({exc})", "correct the syntax, or restore the file from git") from None
    if not isinstance(data, dict) or not isinstance(data.get("expectations"), list):
        raise _fail(path, "not a Great Expectations suite (no 'expectations' list)",
                    "write it as {\"name\": ..., \"expectations\": [...]}, as suite.to_json_dict() does")
    if data.get("name") != path.stem:
        raise _fail(path, f"the suite is named {data.get('name')!r}, not after its file",
                    f"set \"name\": \"{path.stem}\" (the table it checks)")
    descriptions: set[str] = set()
    for number, raw in enumerate(data["expectations"], start=1):
        kind = raw.get("type") if isinstance(raw, dict) else repr(raw)
        where = f"expectation #{number} ({kind})"
        if not isinstance(raw, dict):
            raise _fail(path, f"{where} is not an object", "write it as {\"type\": ..., \"kwargs\": {...}}")
        description = raw.get("description")
        if not isinstance(description, str) or not description.strip():
            raise _fail(path, f"{where} has no description", "add \"description\": a plain-English sentence of "
                        "what it checks (reports show it)")
        if description in descriptions:
            raise _fail(path, f"{where}: the description {description!r} is used twice",
                        "give every expectation its own description")
        descriptions.add(description)
        try:
            ExpectationConfiguration(**raw).to_domain_obj()
        except Exception as exc:  # noqa: BLE001 - GX raises many kinds; all mean this entry is wrong
            raise _fail(path, f"{where} is not valid: {exc}".rstrip(),
                        "use a built-in expectation type with its documented kwargs "
                        "(see expectations/README.md)") from None
    try:
        suite = gx.ExpectationSuite(**data)
    except Exception as exc:  # noqa: BLE001
        raise _fail(path, f"Great Expectations rejects the suite: {exc}", "compare it with a working suite") from None
    if len(suite.expectations) != len(data["expectations"]):
        raise _fail(path, "Great Expectations dropped an expectation of the suite",
                    "check each entry's type and kwargs")
    return suite


def load_suites(folder: Path | None = None, tables: list[str] | None = None) -> dict[str, Any]:
    """The suites of `tables` (default: the three required ones plus any other *.json in the folder),
    by table name, from `folder` (default: suite_dir()). A missing or invalid file raises ContractError."""
    folder = folder or suite_dir()
    if tables is None:
        extra = sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
        tables = list(dict.fromkeys([*REQUIRED, *extra]))
    return {table: load_suite(folder / f"{table}.json") for table in tables}
