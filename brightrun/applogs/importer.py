"""Importing a production app's log: every good row an `llm_calls` row (and a `feedback` row when it
carries a thumbs, a rating or a comment), every bad row reported by line, nothing imported twice.

Identity, so that importing again adds nothing:

- import_id = "log-" + the first 16 hex digits of the file's SHA-256: the same bytes, the same import.
- call_id = "imp-" + SHA-256 of the row's normalized values (action type, user, session, category,
  input, output, model, tokens, latency, timestamp as an instant, the app's call id if mapped), never
  of the file name or the line: the same call in a re-exported file (other order, other format, CSV
  instead of JSONL) is the same call. Feedback is not part of it, so a re-export with feedback added
  later updates the feedback of the same call. Rows identical in all of these are one call (map the
  app's call-id column to keep them apart).
- feedback_id = "fb-" + call_id: one imported judgement per call; a changed one is a new version of
  the same row (the feedback view shows the latest).

Bad rows go to the `import_errors` table (import_id, line, field, source_column, reason, fix, value;
values redacted of personal data) and the summary to `<workspace>/imports/<import_id>.json`.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl
from filelock import Timeout

from brightrun.applogs import pii
from brightrun.applogs.mapping import PII_FIELDS, ColumnMapping, guess_mapping
from brightrun.applogs.readers import (
    CHUNK_BYTES,
    CHUNK_ROWS,
    FORMATS,
    LINE,
    SAMPLE_LINES,
    BadRow,
    detect_format,
    file_columns,
    iter_chunks,
    total_units,
)
from brightrun.applogs.rows import call_ids, validate_chunk
from brightrun.errors import BrightRunError
from brightrun.providers.pricing import price_table
from brightrun.workspace import Workspace, utcnow
from brightrun.workspace.files import atomic_write_bytes, file_sha256, read_json, write_json
from brightrun.workspace.tables import TABLES

KEPT_ERRORS = 1_000
"""Problems kept in the result and the summary file; the import_errors table holds all of them."""
IMPORT_TABLES = ["llm_calls", "feedback", "import_errors"]


@dataclass
class ImportProgress:
    rows: int
    imported: int
    bad_rows: int
    done: int
    total: int
    """done/total: bytes of the file (JSONL, CSV) or rows (Parquet)."""


@dataclass
class ImportResult:
    import_id: str
    file: str
    format: str
    sha256: str
    mapping: dict[str, str]
    rows: int = 0
    """Data rows read, bad ones included."""
    imported: int = 0
    """Good rows: new calls + already present + duplicates within the file."""
    new_calls: int = 0
    already_present: int = 0
    """Good rows whose call an earlier import already brought in."""
    duplicates_in_file: int = 0
    bad_rows: int = 0
    """Rows left out (each has one or more problems in `errors`)."""
    error_count: int = 0
    errors: list[BadRow] = field(default_factory=list)
    """The first KEPT_ERRORS problems, by line; `import_errors` holds all."""
    feedback_rows: int = 0
    """Good rows that carry feedback (thumbs, rating or comment)."""
    new_feedback: int = 0
    updated_feedback: int = 0
    pii: dict[str, dict[str, int]] = field(default_factory=dict)
    """Personal data found in the good rows: source column -> kind -> count."""
    action_types: dict[str, int] = field(default_factory=dict)
    started_at: datetime | None = None
    seconds: float = 0.0
    report: str = ""

    @property
    def nothing_new(self) -> bool:
        return self.new_calls == 0 and self.new_feedback == 0 and self.updated_feedback == 0

    def pii_total(self) -> int:
        return sum(sum(kinds.values()) for kinds in self.pii.values())

    def to_dict(self, errors: int | None = None) -> dict:
        data = asdict(self)
        data["errors"] = [asdict(e) for e in self.errors[:errors]]
        data["nothing_new"] = self.nothing_new
        return data


def inspect_log(path: str | Path) -> tuple[str, list[str], ColumnMapping | None]:
    """(format, columns, the guessed mapping or None) of a log, for a form to show before importing."""
    path = _existing(path)
    fmt = detect_format(path)
    columns = file_columns(path, fmt)
    try:
        return fmt, columns, guess_mapping(columns)
    except BrightRunError:
        return fmt, columns, None


def list_imports(ws: Workspace) -> list[dict]:
    """The summary of every import into the workspace (counts, mapping, PII per column, the first
    errors), newest first."""
    folder = ws.root / "imports"
    reports = [read_json(p) for p in folder.glob("log-*.json")] if folder.is_dir() else []
    return sorted(reports, key=lambda r: str(r.get("started_at")), reverse=True)


def save_upload(ws: Workspace, name: str, data: bytes) -> Path:
    """Keep an uploaded log under `<workspace>/imports/uploads/` (a safe name, prefixed by its content
    hash so two uploads never overwrite each other) and return its path, ready for `import_log`."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).strip("._") or "log"
    suffix = Path(base).suffix.lower()
    if suffix not in FORMATS:
        raise BrightRunError(f"{name}: not a log file BrightRun reads. Fix: upload a .jsonl, .csv, .tsv or "
                             f".parquet file.")
    path = ws.root / "imports" / "uploads" / f"{hashlib.sha256(data).hexdigest()[:12]}-{base[-100:]}"
    if not path.exists():
        atomic_write_bytes(path, data)
    return path


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise BrightRunError(f"no file {path}. Fix: give the path of a .jsonl, .csv or .parquet log.")
    return path


def import_log(ws: Workspace, path: str | Path, mapping: ColumnMapping | None = None, *,
               progress: Callable[[ImportProgress], None] | None = None, provider_name: str = "import",
               chunk_bytes: int = CHUNK_BYTES, chunk_rows: int = CHUNK_ROWS) -> ImportResult:
    """Import an app log (JSONL, CSV/TSV or Parquet, by suffix) into `llm_calls` and `feedback`.

    `mapping` says which column holds which field (default: guessed from the column names). Bad rows
    are reported with their line and left out; the good rows are imported. Importing the same rows
    again adds nothing (result.new_calls == 0, result.already_present == the good rows)."""
    start = time.perf_counter()
    path = _existing(path)
    fmt = detect_format(path)
    columns = file_columns(path, fmt)
    where = path.name + (f" (the keys of its first {SAMPLE_LINES:,} records)" if fmt == "jsonl" else "")
    mapping = (mapping or guess_mapping(columns)).check(columns, where=where)
    sha = file_sha256(path)
    import_id = f"log-{sha[:16]}"
    result = ImportResult(import_id, str(path), fmt, sha, mapping.fields(), started_at=utcnow())
    try:
        with ws.lock(f"import-{import_id}", timeout=5):
            _Run(ws, path, fmt, mapping, result, provider_name, progress).run(chunk_bytes, chunk_rows)
    except Timeout:
        raise BrightRunError(f"{path.name} is being imported by another process right now. "
                             f"Fix: wait for that import to finish; importing it again then adds nothing.") from None
    result.seconds = time.perf_counter() - start
    report = ws.root / "imports" / f"{import_id}.json"
    result.report = str(report)
    write_json(report, _summary(report, result))
    return result


REIMPORT_FIELDS = ("started_at", "file", "rows", "new_calls", "already_present", "bad_rows", "new_feedback",
                   "updated_feedback", "seconds")


def _summary(report: Path, result: ImportResult) -> dict:
    """The summary to keep for this file: the first import's, with each later import of the same file listed
    under `reimports` (its counts only), so a re-import that adds nothing never hides what the first one
    brought in. A summary that cannot be read is replaced by this import's."""
    first = None
    if report.is_file():
        try:
            first = read_json(report)
        except (OSError, ValueError):
            first = None
    if not isinstance(first, dict) or "new_calls" not in first:
        return result.to_dict(errors=200)
    again = result.to_dict(errors=0)
    first["reimports"] = [*first.get("reimports", []), {k: again[k] for k in REIMPORT_FIELDS}]
    return first


class _SortedIds:
    """Membership in a fixed set of ids, sorted once and binary-searched per chunk (a hash set of a
    million ids rebuilt for every chunk cost more than the rest of the import)."""

    def __init__(self, ids: pl.Series) -> None:
        self.ids = ids.drop_nulls().sort()

    def contains(self, values: pl.Series) -> pl.Series:
        if self.ids.len() == 0:
            return pl.repeat(False, values.len(), eager=True)
        at = self.ids.search_sorted(values).clip(0, self.ids.len() - 1)
        return (self.ids.gather(at) == values).fill_null(False)


def _in_set(values: pl.Series, among: set[str]) -> pl.Series:
    return pl.Series([v in among for v in values.to_list()], dtype=pl.Boolean)


class _Run:
    """One import: the state carried from chunk to chunk."""

    def __init__(self, ws: Workspace, path: Path, fmt: str, mapping: ColumnMapping, result: ImportResult,
                 provider: str, progress: Callable[[ImportProgress], None] | None) -> None:
        self.ws, self.path, self.fmt, self.mapping, self.result = ws, path, fmt, mapping, result
        self.provider, self.progress = provider, progress
        self.now = result.started_at
        self.before = _SortedIds(ws.sql("SELECT call_id FROM llm_calls WHERE import_id IS NOT NULL")["call_id"])
        self.mine: set[str] = set()
        """The calls this import wrote."""
        self.feedback = ws.sql("SELECT feedback_id, helpful, rating, comment FROM feedback "
                               "WHERE starts_with(source, 'import:')")
        self.feedback_ids = _SortedIds(self.feedback["feedback_id"])
        self.feedback_written: set[str] = set()
        self.logged = ws.sql("SELECT line, field FROM import_errors WHERE import_id = ?", [result.import_id])
        self.prices = price_table(ws.root)
        self.pii: dict[str, dict[str, int]] = {}
        self.total = total_units(path, fmt)

    def run(self, chunk_bytes: int, chunk_rows: int) -> None:
        r = self.result
        for chunk in iter_chunks(self.path, self.fmt, self.mapping.columns(), chunk_bytes=chunk_bytes,
                                 chunk_rows=chunk_rows):
            good, bad = validate_chunk(chunk.frame, self.mapping)
            bad = sorted([*chunk.bad, *bad], key=lambda b: (b.line, b.field))
            for b in bad:  # a report is built from the log too: no personal data in it
                b.reason, b.value = pii.redact(b.reason), pii.redact(b.value)
            r.rows += chunk.rows
            r.bad_rows += len({b.line for b in bad})
            r.error_count += len(bad)
            r.errors += bad[:max(0, KEPT_ERRORS - len(r.errors))]
            self._record_errors(bad)
            if good.height:
                self._import(good)
            if self.progress:
                self.progress(ImportProgress(r.rows, r.imported, r.bad_rows, chunk.done, self.total))
        r.errors.sort(key=lambda b: (b.line, b.field))
        r.pii = {c: dict(kinds) for c, kinds in self.pii.items()}
        self.ws.compact(tables=IMPORT_TABLES, min_parts=8)

    def _import(self, good: pl.DataFrame) -> None:
        r = self.result
        good = good.with_columns(call_ids(good))
        r.imported += good.height
        for name, n in good["action_type"].value_counts().iter_rows():
            r.action_types[name] = r.action_types.get(name, 0) + n
        self._count_pii(good)
        unique = good.unique("call_id", keep="last", maintain_order=True)
        seen_before, seen_here = self.before.contains(unique["call_id"]), _in_set(unique["call_id"], self.mine)
        r.duplicates_in_file += good.height - unique.height + int((seen_here & ~seen_before).sum())
        r.already_present += int(seen_before.sum())
        new = unique.filter(~seen_before & ~seen_here)
        r.new_calls += new.height
        if new.height:
            self.ws.append("llm_calls", self._calls(new))
            self.mine.update(new["call_id"].to_list())
        self._import_feedback(unique)

    def _count_pii(self, good: pl.DataFrame) -> None:
        fields = self.mapping.fields()
        text = [f for f in PII_FIELDS if f in fields]
        if not text:
            return
        counts = pii.pii_counts(good, text)
        for f, kind, n in counts.select("column", "kind", "count").iter_rows():
            kinds = self.pii.setdefault(fields[f], dict.fromkeys(pii.KINDS, 0))
            kinds[kind] += n

    def _calls(self, new: pl.DataFrame) -> pl.DataFrame:
        models = new["model"].fill_null("unknown").unique().to_list()
        prices = pl.DataFrame({"model": models,
                               "_pin": [(p.input if (p := self.prices.price(m)) else 0.0) for m in models],
                               "_pout": [(p.output if (p := self.prices.price(m)) else 0.0) for m in models]})
        frame = new.with_columns(pl.col("model").fill_null("unknown"),
                                 pl.col("input_tokens").fill_null(0), pl.col("output_tokens").fill_null(0))
        frame = frame.join(prices, on="model", how="left")
        values = {
            "call_id": pl.col("call_id"), "action_type": pl.col("action_type"), "provider": pl.lit(self.provider),
            "model": pl.col("model"),
            "request": pl.struct(pl.col("input").alias("prompt")).struct.json_encode(),
            "response": pl.col("output"), "input_tokens": pl.col("input_tokens"),
            "output_tokens": pl.col("output_tokens"),
            "cost_usd": (pl.col("input_tokens") * pl.col("_pin") + pl.col("output_tokens") * pl.col("_pout")) / 1e6,
            "latency_ms": pl.col("latency_ms").fill_null(0.0), "cache_hit": pl.lit(False), "attempt": pl.lit(1),
            "status": pl.lit("ok"), "created_at": pl.col("created_at").fill_null(pl.lit(self.now)),
            "user_id": pl.col("user_id"), "session_id": pl.col("session_id"), "category": pl.col("category"),
            "import_id": pl.lit(self.result.import_id), "source_line": pl.col(LINE),
        }
        schema = TABLES["llm_calls"].schema
        return frame.select([values.get(c, pl.lit(None)).cast(t).alias(c) for c, t in schema.items()])

    def _import_feedback(self, unique: pl.DataFrame) -> None:
        r = self.result
        has = unique.filter(pl.col("helpful").is_not_null() | pl.col("rating").is_not_null()
                            | pl.col("feedback_text").is_not_null())
        r.feedback_rows += has.height
        if not has.height:
            return
        rows = has.select(
            ("fb-" + pl.col("call_id")).alias("feedback_id"), pl.lit("llm_call").alias("target_type"),
            pl.col("call_id").alias("target_id"), pl.lit(None, dtype=pl.String).alias("conversation_id"),
            ("app:" + pl.coalesce("user_id", "session_id", pl.lit("anonymous"))).alias("reviewer"),
            pl.col("helpful"), pl.col("rating"), pl.col("feedback_text").alias("comment"),
            pl.lit(None, dtype=pl.String).alias("edited_response"),
            pl.lit(f"import:{r.import_id}").alias("source"),
            pl.coalesce("feedback_at", "created_at", pl.lit(self.now)).alias("created_at"),
        )
        key = ["feedback_id", "helpful", "rating", "comment"]
        changed = rows.join(self.feedback, on=key, how="anti", nulls_equal=True)
        if not changed.height:
            return
        known = self.feedback_ids.contains(changed["feedback_id"])
        again = _in_set(changed["feedback_id"], self.feedback_written)  # a call repeated in this file
        r.updated_feedback += int((known & ~again).sum())
        r.new_feedback += int((~known & ~again).sum())
        self.ws.append("feedback", changed.select(list(TABLES["feedback"].schema)))
        self.feedback_written.update(changed["feedback_id"].to_list())

    def _record_errors(self, bad: list[BadRow]) -> None:
        if not bad:
            return
        frame = pl.DataFrame(
            [{"import_id": self.result.import_id, "line": b.line, "field": b.field, "source_column": b.column,
              "reason": b.reason, "fix": b.fix, "value": b.value, "file": self.path.name,
              "created_at": self.now} for b in bad],
            schema=TABLES["import_errors"].schema,
        ).unique(["line", "field"], keep="first", maintain_order=True)
        frame = frame.join(self.logged, on=["line", "field"], how="anti")
        if frame.height:
            self.ws.append("import_errors", frame)
