"""Reading an app log in chunks: JSONL, CSV (or TSV) and Parquet, with the line of every row.

Line numbers are what a user sees in an editor, 1-based:

- JSONL: the physical line of the record (blank lines count, and are skipped).
- CSV/TSV: the physical line where the record starts; the header is line 1, so the first data row
  is line 2 (a quoted field with line breaks makes a record span several lines).
- Parquet: the row number, 1-based (there is no header line).

Problems that make a row unreadable (a JSONL line that is not a JSON object, a CSV record with the
wrong number of fields, bytes that are not UTF-8) are reported as bad rows of field "row"; the rows
around them are read on.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import polars as pl
import pyarrow.parquet as pq

from brightrun.errors import BrightRunError

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv",
           ".parquet": "parquet", ".pq": "parquet"}
CHUNK_BYTES = 32 * 1024 * 1024
CHUNK_ROWS = 100_000
SAMPLE_LINES = 20_000
_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
               type(None): "null"}
LINE = "_line"


@dataclass
class BadRow:
    """One problem of one row: where (line, field, source column), why, and how to fix it."""

    line: int
    field: str
    column: str
    reason: str
    fix: str
    value: str | None = None

    def __str__(self) -> str:
        where = f"{self.column}: " if self.column else ""
        return f"line {self.line}: {where}{self.reason}. Fix: {self.fix}"


@dataclass
class Chunk:
    frame: pl.DataFrame
    """The mapped source columns (String for JSONL and CSV, their own types for Parquet) and _line."""
    bad: list[BadRow] = field(default_factory=list)
    rows: int = 0
    """Data rows read in this chunk, bad ones included."""
    done: int = 0
    """Progress so far, in the unit of `total_units` (bytes, or rows for Parquet)."""


def detect_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise BrightRunError(f"{path.name}: cannot tell the format from {path.suffix or 'no suffix'!r}. "
                             f"Fix: use a .jsonl, .csv, .tsv or .parquet file.")
    return fmt


def total_units(path: Path, fmt: str) -> int:
    if fmt == "parquet":
        return pq.ParquetFile(path).metadata.num_rows
    return path.stat().st_size


def _value_text(value: object) -> str:
    return orjson.dumps(value).decode() if isinstance(value, dict | list) else str(value)


def file_columns(path: Path, fmt: str) -> list[str]:
    """The columns of the log: the header (CSV), the schema (Parquet), or the keys of the first
    SAMPLE_LINES records (JSONL), in order of first appearance."""
    if fmt == "parquet":
        return list(pq.read_schema(path).names)
    if fmt in ("csv", "tsv"):
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
            header = next(csv.reader(handle, delimiter="\t" if fmt == "tsv" else ","), [])
        return [h.strip() for h in header]
    keys: dict[str, None] = {}
    with open(path, "rb") as handle:
        for n, line in enumerate(handle):
            if n >= SAMPLE_LINES:
                break
            if n == 0 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            try:
                record = orjson.loads(line) if line.strip() else None
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, dict):
                keys.update(dict.fromkeys(record))
    return list(keys)


def iter_chunks(path: Path, fmt: str, columns: list[str], *, chunk_bytes: int = CHUNK_BYTES,
                chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    if fmt == "jsonl":
        yield from _jsonl_chunks(path, columns, chunk_bytes)
    elif fmt in ("csv", "tsv"):
        yield from _csv_chunks(path, columns, chunk_rows, "\t" if fmt == "tsv" else ",")
    else:
        yield from _parquet_chunks(path, columns, chunk_rows)


# -- JSONL -------------------------------------------------------------------------------------------


def _jsonl_chunks(path: Path, columns: list[str], chunk_bytes: int) -> Iterator[Chunk]:
    schema = {c: pl.String() for c in columns}
    first_line, done = 1, 0
    with open(path, "rb") as handle:
        if handle.read(1) == b"[":
            raise BrightRunError(f"{path.name} is a JSON array, not JSON Lines. Fix: write one JSON object per "
                                 f"line (e.g. `jq -c '.[]' {path.name} > log.jsonl`).")
        handle.seek(0)
        rest = b""
        while True:
            block = handle.read(chunk_bytes)
            data = rest + block
            if not data:
                break
            if block:
                cut = data.rfind(b"\n")
                if cut < 0:  # one line longer than a chunk: read on until its end
                    rest = data
                    continue
                data, rest = data[:cut + 1], data[cut + 1:]
            else:
                rest = b""
            if first_line == 1 and data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark
                data = data[3:]
            done += len(data)
            count = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
            chunk = _jsonl_fast(data, count, first_line, schema)
            if chunk is None:  # a blank or bad line: line by line
                lines = data.split(b"\n")
                if lines and lines[-1] == b"":
                    lines.pop()
                chunk = _jsonl_frame(lines, first_line, schema)
            chunk.done = done
            first_line += count
            yield chunk
            if not block:
                break


def _jsonl_fast(data: bytes, count: int, first_line: int, schema: dict[str, pl.DataType]) -> Chunk | None:
    """The chunk read in one go, when every line is a JSON object (no blank or bad line)."""
    try:
        frame = pl.read_ndjson(io.BytesIO(data), schema=schema)
    except Exception:  # noqa: BLE001 - some line is bad: the caller reads line by line
        return None
    if frame.height != count:  # blank lines were skipped: their numbers must be counted
        return None
    frame = frame.with_columns(pl.int_range(first_line, first_line + count, dtype=pl.Int64).alias(LINE))
    return Chunk(frame, [], rows=count)


def _jsonl_frame(lines: list[bytes], first_line: int, schema: dict[str, pl.DataType]) -> Chunk:
    numbers = [first_line + i for i, line in enumerate(lines) if line.strip()]
    kept = lines if len(numbers) == len(lines) else [line for line in lines if line.strip()]
    bad: list[BadRow] = []
    try:
        frame = _read_ndjson(kept, schema)
    except Exception:  # noqa: BLE001 - some line is bad: find which, then read the others
        good_lines, good_numbers = [], []
        for number, line in zip(numbers, kept, strict=True):
            problem = _json_problem(line)
            if problem:
                bad.append(BadRow(number, "row", "", problem[0], problem[1], _snippet(line)))
            else:
                good_lines.append(line)
                good_numbers.append(number)
        kept, numbers = good_lines, good_numbers
        try:
            frame = _read_ndjson(kept, schema)
        except Exception:  # noqa: BLE001 - a type polars cannot read as text: read record by record
            frame = _records_frame([orjson.loads(line) for line in kept], schema)
    frame = frame.with_columns(pl.Series(LINE, numbers, dtype=pl.Int64))
    return Chunk(frame, bad, rows=len(numbers) + len(bad))


def _read_ndjson(lines: list[bytes], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    if not lines:
        return pl.DataFrame(schema=schema)
    return pl.read_ndjson(io.BytesIO(b"\n".join(lines)), schema=schema)


def _records_frame(records: list[dict], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    data = {c: [None if r.get(c) is None else _value_text(r[c]) for r in records] for c in schema}
    return pl.DataFrame(data, schema=schema)


def _json_problem(line: bytes) -> tuple[str, str] | None:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        if "utf-8" in str(exc).lower():
            return "the line is not valid UTF-8", "re-export the log as UTF-8"
        why = re.sub(r": line \d+ column (\d+) \(char \d+\)", r" at column \1", str(exc))
        return f"the line is not valid JSON ({why})", "repair the line (one complete JSON object per line) or remove it"
    if not isinstance(record, dict):
        return (f"the line is a JSON {_JSON_TYPES.get(type(record), 'value')}, not an object",
                "write one JSON object per line, e.g. {\"step\": ..., \"prompt\": ..., \"response\": ...}")
    return None


def _snippet(raw: bytes | str, limit: int = 120) -> str:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "…"


# -- CSV ---------------------------------------------------------------------------------------------


def _decoded_lines(handle, bad_lines: set[int]) -> Iterator[str]:
    """The file's lines as text; a line that is not UTF-8 is decoded with replacement and noted."""
    for number, raw in enumerate(handle, start=1):
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            bad_lines.add(number)
            text = raw.decode("utf-8", errors="replace")
        yield text


def _csv_chunks(path: Path, columns: list[str], chunk_rows: int, delimiter: str) -> Iterator[Chunk]:
    limit = csv.field_size_limit()
    csv.field_size_limit(1 << 30)  # over-size text is a bad row with a clear reason, not a crash
    try:
        with open(path, "rb") as handle:
            bad_lines: set[int] = set()
            reader = csv.reader(_decoded_lines(handle, bad_lines), delimiter=delimiter)
            header = [h.strip() for h in next(reader, [])]
            index = {name: header.index(name) for name in columns}
            width = len(header)
            values: dict[str, list[str | None]] = {c: [] for c in columns}
            numbers: list[int] = []
            bad: list[BadRow] = []
            rows, last = 0, reader.line_num
            while True:
                try:
                    record = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    rows += 1
                    bad.append(BadRow(last + 1, "row", "", f"the record is not valid CSV ({exc})",
                                      "repair the record (quote fields that hold the delimiter or quotes)"))
                    last = reader.line_num
                    continue
                start, last = last + 1, reader.line_num
                if not record or (len(record) == 1 and not record[0].strip()):
                    continue
                rows += 1
                if any(n in bad_lines for n in range(start, last + 1)):
                    bad.append(BadRow(start, "row", "", "the record is not valid UTF-8", "re-export the log as UTF-8",
                                      _snippet(delimiter.join(record))))
                elif len(record) != width:
                    bad.append(BadRow(start, "row", "",
                                      f"the record has {len(record)} fields where the header has {width}",
                                      "quote fields that hold the delimiter, a quote or a line break, "
                                      "and give every row the header's columns", _snippet(delimiter.join(record))))
                else:
                    numbers.append(start)
                    for c, i in index.items():
                        values[c].append(record[i])
                if rows >= chunk_rows:
                    yield _csv_chunk(values, numbers, bad, rows, handle.tell())
                    values, numbers, bad, rows = {c: [] for c in columns}, [], [], 0
            if rows:
                yield _csv_chunk(values, numbers, bad, rows, handle.tell())
    finally:
        csv.field_size_limit(limit)


def _csv_chunk(values: dict[str, list], numbers: list[int], bad: list[BadRow], rows: int, done: int) -> Chunk:
    frame = pl.DataFrame(values, schema={c: pl.String() for c in values})
    return Chunk(frame.with_columns(pl.Series(LINE, numbers, dtype=pl.Int64)), bad, rows, done)


# -- Parquet -----------------------------------------------------------------------------------------


def _parquet_chunks(path: Path, columns: list[str], chunk_rows: int) -> Iterator[Chunk]:
    source = pq.ParquetFile(path)
    first = 1
    for batch in source.iter_batches(batch_size=chunk_rows, columns=columns):
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        frame = frame.with_columns([_as_text(frame[c]) for c in frame.columns if _nested(frame[c].dtype)])
        frame = frame.with_columns(pl.int_range(first, first + frame.height, dtype=pl.Int64).alias(LINE))
        first += frame.height
        yield Chunk(frame, [], frame.height, first - 1)


def _nested(dtype: pl.DataType) -> bool:
    return isinstance(dtype, pl.List | pl.Struct | pl.Array | pl.Binary)


def _as_text(series: pl.Series) -> pl.Series:
    if isinstance(series.dtype, pl.Binary):
        return pl.Series(series.name, [None if v is None else v.decode("utf-8", errors="replace")
                                       for v in series.to_list()], dtype=pl.String)
    return pl.Series(series.name, [None if v is None else _value_text(v) for v in series.to_list()], dtype=pl.String)
