"""Validating and normalizing the rows of an app log, a chunk at a time, with polars expressions.

`validate_chunk` reads a chunk's mapped source columns and returns the good rows as normalized
fields plus a BadRow for every problem of every bad row. A row with any problem is left out whole;
the rows around it go on. The checks (MAX_TEXT_CHARS and friends are the limits):

- action_type, input, output: present and not blank.
- input_tokens, output_tokens: whole numbers, not negative; latency_ms: a number, not negative.
- rating: a whole number from 1 to 5; helpful: true/false, 1/0, yes/no, y/n, up/down, 👍/👎,
  thumbs_up/thumbs_down, +1/-1 (any case; empty means not given).
- created_at, feedback_at: ISO 8601 (with or without a zone; no zone means UTC), a date, or Unix
  seconds or milliseconds, between 1970 and 2100.
- input, output, feedback_text: at most MAX_TEXT_CHARS characters; the short fields (action type,
  ids, category, model) at most MAX_SHORT_CHARS.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import polars as pl

from brightrun.applogs.mapping import ColumnMapping
from brightrun.applogs.readers import LINE, BadRow

MAX_TEXT_CHARS = 200_000
MAX_SHORT_CHARS = 1_000
SHORT_FIELDS = ("action_type", "user_id", "session_id", "category", "model", "call_id")
LONG_FIELDS = ("input", "output", "feedback_text")
INT_FIELDS = ("input_tokens", "output_tokens")
TIME_FIELDS = ("created_at", "feedback_at")
_UTC = pl.Datetime("us", "UTC")
RENAMED = {"call_id": "source_id"}
"""The app's own call id is kept as source_id; call_id is BrightRun's."""
_LOW, _HIGH = datetime(1970, 1, 1), datetime(2100, 1, 1)

HELPFUL_VALUES = {
    **dict.fromkeys(["true", "t", "1", "1.0", "yes", "y", "up", "👍", "thumbs_up", "thumbsup", "thumbs up", "+1",
                     "helpful", "like", "liked"], True),
    **dict.fromkeys(["false", "f", "0", "0.0", "no", "n", "down", "👎", "thumbs_down", "thumbsdown", "thumbs down",
                     "-1", "not_helpful", "unhelpful", "dislike", "disliked"], False),
}

FIXES = {
    "required": "fill it in, or remove the row (action type, input and output are required)",
    "int": "write a whole number of tokens (0 or more), or leave it empty",
    "latency_ms": "write the latency in milliseconds (0 or more), or leave it empty",
    "rating": "use a whole number from 1 to 5, or leave it empty",
    "helpful": "use true/false, 1/0, yes/no, up/down or 👍/👎, or leave it empty",
    "time": "use ISO 8601 (2025-03-01T14:05:00Z), a date (2025-03-01) or Unix seconds, or leave it empty",
    "long": f"shorten it to at most {MAX_TEXT_CHARS:,} characters, or split the call",
    "short": f"shorten it to at most {MAX_SHORT_CHARS:,} characters",
}


def _blank(expr: pl.Expr) -> pl.Expr:
    return expr.is_null() | ~expr.str.contains(r"\S")


def _short(expr: pl.Expr, n: int = 60) -> pl.Expr:
    return pl.when(expr.str.len_chars() > n).then(expr.str.slice(0, n) + "…").otherwise(expr)


def _text(frame: pl.DataFrame, column: str, field: str) -> pl.Expr:
    """The source column as text (temporal columns of Parquet stay as they are for the time fields)."""
    dtype = frame.schema[column]
    expr = pl.col(column)
    if field in TIME_FIELDS and (dtype.is_temporal() or dtype.is_numeric()):
        return expr.alias(field)
    if dtype == pl.String:
        return expr.alias(field)
    return expr.cast(pl.String).alias(field)


def _epoch(s: pl.Series) -> pl.Series:
    num = s.cast(pl.Float64, strict=False)
    num = pl.select(pl.when(s.str.contains(r"^\d{9,13}(\.\d+)?$")).then(num)).to_series()
    return pl.select(pl.when(num >= 1e11).then(num * 1_000).otherwise(num * 1_000_000)).to_series().cast(pl.Int64
                                                                                                    ).cast(_UTC)


# Tried in order on the rows not parsed yet: the usual log formats first, so most rows parse once.
_TIME_PARSERS = [
    lambda s: s.str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", strict=False, time_unit="us").dt.replace_time_zone("UTC"),
    lambda s: s.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_unit="us", time_zone="UTC"),
    lambda s: _normal_time(s).str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_unit="us",
                                              time_zone="UTC"),
    lambda s: _normal_time(s).str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z", strict=False, time_unit="us",
                                              time_zone="UTC"),
    lambda s: _normal_time(s).str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False, time_unit="us"
                                              ).dt.replace_time_zone("UTC"),
    lambda s: _normal_time(s).str.to_datetime("%Y-%m-%dT%H:%M", strict=False, time_unit="us"
                                              ).dt.replace_time_zone("UTC"),
    lambda s: s.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
    _epoch,
]


def _normal_time(s: pl.Series) -> pl.Series:
    return s.str.replace(r"^(\d{4}-\d{2}-\d{2})[ T]", "${1}T").str.replace(r"[Zz]$", "+00:00")


def parse_times(series: pl.Series) -> pl.Series:
    """A column of timestamps as UTC instants (null where empty or not understood). Text: ISO 8601 with
    or without a zone (none means UTC), a date, Unix seconds or milliseconds; or Parquet's own types."""
    dtype = series.dtype
    if isinstance(dtype, pl.Datetime):
        zoned = series.dt.replace_time_zone("UTC") if dtype.time_zone is None else series.dt.convert_time_zone("UTC")
        return zoned.cast(_UTC)
    if isinstance(dtype, pl.Date):
        return series.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if dtype.is_numeric():
        return _epoch(series.cast(pl.Float64).cast(pl.String))
    text = series.cast(pl.String).str.strip_chars()
    out = pl.Series(series.name, [None] * len(text), dtype=_UTC)
    todo = text.is_not_null() & (text != "")
    for parser in _TIME_PARSERS:
        if not todo.any():
            break
        index = todo.arg_true()
        parsed = parser(text.gather(index)).cast(_UTC)
        found = parsed.is_not_null()
        if found.any():
            out = out.scatter(index.filter(found), parsed.filter(found))
            todo = todo.scatter(index.filter(found), False)
    return out


def _number(field: str) -> pl.Expr:
    s = pl.col(field).str.strip_chars()
    return pl.when(s == "").then(None).otherwise(s).cast(pl.Float64, strict=False)


def validate_chunk(chunk: pl.DataFrame, mapping: ColumnMapping) -> tuple[pl.DataFrame, list[BadRow]]:
    """(good rows with normalized fields and _line, the problems of the bad rows)."""
    fields = mapping.fields()
    f = chunk.select(pl.col(LINE), *[_text(chunk, c, name) for name, c in fields.items()])
    present = set(fields)
    parsed: list[pl.Expr] = []
    checks: list[tuple[str, pl.Expr, pl.Expr, str]] = []  # (field, is bad, reason, fix)

    def given(name: str) -> pl.Expr:
        return ~_blank(pl.col(name)) if f.schema[name] == pl.String else pl.col(name).is_not_null()

    for name in ("action_type", "input", "output"):
        col = pl.col(name)
        label = name.replace("_", " ")
        checks.append((name, _blank(col), pl.when(col.is_null()).then(pl.lit(f"the {label} is missing"))
                       .otherwise(pl.lit(f"the {label} is empty")), FIXES["required"]))
    for name in present & {*SHORT_FIELDS, *LONG_FIELDS}:
        col, limit = pl.col(name), (MAX_TEXT_CHARS if name in LONG_FIELDS else MAX_SHORT_CHARS)
        too_long = pl.when(col.str.len_bytes() > limit).then(col.str.len_chars() > limit).otherwise(False)
        length = col.str.len_chars().map_elements(lambda n: f"{n:,}", return_dtype=pl.String)
        checks.append((name, too_long, pl.format(f"the {name.replace('_', ' ')} is {{}} characters long "
                                                f"(the limit is {limit:,})", length),
                       FIXES["long" if limit == MAX_TEXT_CHARS else "short"]))
    for name in present & {*INT_FIELDS, "latency_ms", "rating"}:
        raw, num = pl.col(name), pl.col(f"_{name}")
        parsed.append(_number(name).alias(f"_{name}"))
        fix = FIXES["int"] if name in INT_FIELDS else FIXES[name]
        checks.append((name, given(name) & (num.is_null() | num.is_nan()),
                       pl.format("'{}' is not a number", _short(raw.str.strip_chars())), fix))
        checks.append((name, num.is_infinite(), pl.format("'{}' is not a finite number", raw.str.strip_chars()), fix))
        if name == "rating":
            checks.append((name, num.is_finite() & (num != num.floor()),
                           pl.format("rating {} is not a whole number", raw.str.strip_chars()), fix))
            checks.append((name, num.is_finite() & (num == num.floor()) & ((num < 1) | (num > 5)),
                           pl.format("rating {} is outside 1..5", raw.str.strip_chars()), fix))
            continue
        checks.append((name, num < 0, pl.format("{} is negative", raw.str.strip_chars()), fix))
        if name in INT_FIELDS:
            checks.append((name, (num >= 0) & num.is_finite() & ((num != num.floor()) | (num > 1e12)),
                           pl.format("{} is not a whole number of tokens", raw.str.strip_chars()), fix))
    if "helpful" in present:
        raw = pl.col("helpful")
        parsed.append(raw.str.strip_chars().str.to_lowercase()
                      .replace_strict(HELPFUL_VALUES, default=None, return_dtype=pl.Boolean).alias("_helpful"))
        checks.append(("helpful", given("helpful") & pl.col("_helpful").is_null(),
                       pl.format("'{}' is not a thumbs value", _short(raw.str.strip_chars())), FIXES["helpful"]))
    for name in present & set(TIME_FIELDS):
        parsed.append(pl.lit(parse_times(f[name])).alias(f"_{name}"))
        ts = pl.col(f"_{name}")
        text = pl.col(name) if f.schema[name] == pl.String else pl.col(name).cast(pl.String)
        checks.append((name, given(name) & (ts.is_null() | (ts < pl.lit(_LOW).dt.replace_time_zone("UTC"))
                                           | (ts >= pl.lit(_HIGH).dt.replace_time_zone("UTC"))),
                       pl.format("'{}' is not a timestamp between 1970 and 2100", _short(text)), FIXES["time"]))

    f = f.with_columns(parsed) if parsed else f
    flags = f.select([cond.fill_null(False).alias(f"_bad{i}") for i, (_, cond, _, _) in enumerate(checks)])
    any_bad = flags.select(pl.any_horizontal(pl.all()).alias("bad"))["bad"]
    bad_rows: list[BadRow] = []
    if any_bad.any():
        bad = pl.concat([f, flags], how="horizontal").filter(any_bad)
        for i, (name, _, reason, fix) in enumerate(checks):
            hit = bad.filter(pl.col(f"_bad{i}"))
            if hit.height == 0:
                continue
            value = pl.col(name) if f.schema[name] == pl.String else pl.col(name).cast(pl.String)
            rows = hit.select(pl.col(LINE), reason.alias("reason"), _short(value, 120).alias("value"))
            column = fields.get(name, "")
            bad_rows += [BadRow(line, name, column, why, fix, val) for line, why, val in rows.iter_rows()]
        bad_rows.sort(key=lambda b: (b.line, b.field))
        f = f.filter(~any_bad)
    return _normalized(f, present), bad_rows


def _normalized(f: pl.DataFrame, present: set[str]) -> pl.DataFrame:
    def text(name: str, strip: bool) -> pl.Expr:
        if name not in present:
            return pl.lit(None, dtype=pl.String).alias(RENAMED.get(name, name))
        col = pl.col(name).str.strip_chars() if strip else pl.col(name)
        return pl.when(_blank(pl.col(name))).then(None).otherwise(col).alias(RENAMED.get(name, name))

    def parsed(name: str, dtype: pl.DataType) -> pl.Expr:
        return (pl.col(f"_{name}") if name in present else pl.lit(None)).cast(dtype).alias(name)

    return f.select(
        pl.col(LINE),
        *[text(n, strip=True) for n in SHORT_FIELDS],
        *[text(n, strip=False) for n in LONG_FIELDS],
        parsed("input_tokens", pl.Int64), parsed("output_tokens", pl.Int64), parsed("latency_ms", pl.Float64),
        parsed("rating", pl.Int64), parsed("helpful", pl.Boolean),
        parsed("created_at", _UTC), parsed("feedback_at", _UTC),
    )


IDENTITY = ("action_type", "user_id", "session_id", "category", "input", "output", "model", "input_tokens",
            "output_tokens", "latency_ms", "created_at", "source_id")
"""What makes two rows the same call: every mapped value but the feedback (a re-export with feedback
added later is the same call, and its feedback updates)."""


def call_ids(good: pl.DataFrame) -> pl.Series:
    """Deterministic call ids from the normalized values of each row (not the file, not the line)."""
    parts = [pl.col(n).cast(pl.Int64).cast(pl.String) if n == "created_at" else pl.col(n).cast(pl.String)
             for n in IDENTITY]
    keys = good.select(pl.concat_str([p.fill_null("\x00") for p in parts], separator="\x1f").alias("k"))["k"]
    sha = hashlib.sha256
    return pl.Series("call_id", ["imp-" + sha(k.encode()).hexdigest()[:32] for k in keys.to_list()], dtype=pl.String)
