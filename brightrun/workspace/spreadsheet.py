"""CSV for spreadsheets: text cells that a spreadsheet would run as a formula are neutralised.

The OWASP rule (CSV injection): a text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a
leading apostrophe, so Excel, LibreOffice and Google Sheets show it as text instead of evaluating it
(`=HYPERLINK(...)`, `+cmd|' /C calc'!A0`). Numbers, dates and booleans are written as they are. Every CSV
BrightRun writes goes through `csv_bytes`.
"""

from __future__ import annotations

import polars as pl

FORMULA_START = r"^[=+\-@\t\r]"


def neutralise_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with every text cell that starts like a formula prefixed with an apostrophe."""
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    return frame.with_columns(
        pl.when(pl.col(name).str.contains(FORMULA_START)).then(pl.lit("'") + pl.col(name)).otherwise(pl.col(name))
        .alias(name) for name in text)


def csv_bytes(frame: pl.DataFrame) -> bytes:
    """`frame` as CSV (UTF-8, a header row), formulas neutralised."""
    return neutralise_formulas(frame).write_csv().encode()
