"""Tables as folders of immutable Parquet parts: append, list, compact, quarantine.

Layout of one table folder::

    tables/<name>/part-<ns>-<pid>-<rand>.parquet   appended rows (deltas)
    tables/<name>/base-<gen>-<rand>.parquet        compacted rows, one row per key
    tables/<name>/_base.json                       the manifest naming the base and what it absorbed

A reader uses the base of the manifest plus every part the manifest did not absorb. Compaction
writes the new base, then renames the manifest into place (the commit point), then deletes what it
replaced; a crash at any moment leaves either the old or the new state, never a doubled row.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq

from brightrun.errors import WorkspaceError
from brightrun.workspace.compaction import MANIFEST, Compaction
from brightrun.workspace.files import fsync_dir, read_json
from brightrun.workspace.locks import HolderLock
from brightrun.workspace.tables import SEQ, TABLES, TableFiles, TableSpec


class _Clock:
    """A per-process monotonic nanosecond stamp, so two appends never share a _seq."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns())
            return self._last


_CLOCK = _Clock()

_SETTLED_NS = 1_000_000_000
"""How old a table folder's mtime must be before a listing of it is reused (see TableStore.files)."""

PART_COMPRESSION = "snappy"
"""The codec of an append's part. Parts live until the next compaction, which rewrites them as zstd: Snappy
costs less than half of zstd's CPU to write (a 500-call flush of `llm_calls`: ~15 against ~34 ms), and a
flush runs while the job's calls go on, on the same cores. (Snappy rather than LZ4: polars writes Parquet's
older LZ4 codec, which some readers refuse; every Parquet reader takes Snappy.)"""


class TableStore(Compaction):
    """Owns the `tables/` folder of a workspace."""

    def __init__(self, root: Path, compaction_memory: str = "1500MB") -> None:
        self.root = root
        self.compaction_memory = compaction_memory
        self.tables_dir = root / "tables"
        self.locks_dir = root / "locks"
        self.quarantine_dir = root / "quarantine"
        self._checked: dict[str, tuple[str | None, tuple[str, ...]]] = {}
        self._listed: dict[str, tuple[int, TableFiles]] = {}
        self._rows: dict[str, int] = {}

    def spec(self, table: str) -> TableSpec:
        try:
            return TABLES[table]
        except KeyError:
            raise WorkspaceError(f"unknown table {table!r}. Fix: use one of {', '.join(TABLES)}.") from None

    def folder(self, table: str) -> Path:
        return self.tables_dir / self.spec(table).name

    def lock(self, name: str, timeout: float = 60.0) -> HolderLock:
        """A cross-process lock; one that cannot be had raises LockHeld, naming the command holding it."""
        self.locks_dir.mkdir(parents=True, exist_ok=True)
        return HolderLock(self.locks_dir / f"{name}.lock", timeout=timeout)

    # -- writing -----------------------------------------------------------------------------

    def conform(self, table: str, frame: pl.DataFrame) -> pl.DataFrame:
        """Cast `frame` to the table's declared columns; a missing or unknown column is an error."""
        spec = self.spec(table)
        missing = [c for c in spec.schema if c not in frame.columns]
        extra = [c for c in frame.columns if c not in spec.schema and c != SEQ]
        if missing or extra:
            raise WorkspaceError(
                f"rows for table {table!r} do not match its columns (missing: {missing or 'none'}; "
                f"unknown: {extra or 'none'}). Fix: build the rows from the table's model."
            )
        return frame.select([pl.col(c).cast(t, strict=True) for c, t in spec.schema.items()])

    def rows_frame(self, table: str, rows: list[dict]) -> pl.DataFrame:
        """The rows as a frame of the table's columns; rows with a missing or unknown column are an error."""
        spec = self.spec(table)
        keys = set().union(*(row.keys() for row in rows)) if rows else set(spec.schema)
        if keys != set(spec.schema) or any(len(row) != len(spec.schema) for row in rows):
            missing = sorted(set(spec.schema) - keys) or sorted(
                c for c in spec.schema if any(c not in row for row in rows))
            raise WorkspaceError(
                f"rows for table {table!r} do not match its columns (missing: {missing or 'none'}; "
                f"unknown: {sorted(keys - set(spec.schema)) or 'none'}). Fix: build the rows from the "
                f"table's model.")
        return pl.DataFrame(rows, schema=spec.schema)

    def append(self, table: str, rows: pl.DataFrame | list[dict]) -> Path | None:
        """Write rows as one new immutable part; returns its path (None when there are no rows)."""
        frame = rows if isinstance(rows, pl.DataFrame) else self.rows_frame(table, rows)
        if frame.height == 0:
            return None
        frame = self.conform(table, frame)
        key = list(self.spec(table).key)
        frame = frame.unique(subset=key, keep="last", maintain_order=True)
        frame = frame.with_columns(pl.lit(_CLOCK.next(), dtype=pl.Int64).alias(SEQ))
        path = self.folder(table) / f"part-{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".tmp-{path.name}"
        try:
            frame.write_parquet(tmp, compression=PART_COMPRESSION, statistics=True)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(path.parent)
        self._checked[str(path)] = (None, tuple(frame.columns))
        return path

    # -- reading -----------------------------------------------------------------------------

    def _inspect(self, path: Path) -> tuple[str | None, tuple[str, ...]]:
        """(None, columns) when the file is readable Parquet, else (the reason, ()); once per file."""
        cached = self._checked.get(str(path))
        if cached is not None:
            return cached
        try:
            result: tuple[str | None, tuple[str, ...]] = (None, tuple(pq.read_schema(path).names))
        except FileNotFoundError:
            return ("vanished", ())
        except Exception as exc:  # noqa: BLE001 - any unreadable file is reported, not raised
            result = (f"unreadable Parquet file ({type(exc).__name__}: {exc})", ())
        self._checked[str(path)] = result
        return result

    def recheck(self, path: Path) -> None:
        """Forget what is known of a file, so the next listing inspects it again (it changed on disk)."""
        self._checked.pop(str(path), None)

    def _problem(self, path: Path) -> str | None:
        return self._inspect(path)[0]

    def manifest(self, table: str) -> dict:
        path = self.folder(table) / MANIFEST
        if not path.exists():
            return {"generation": 0, "base": [], "absorbed": []}
        return read_json(path)

    def files(self, table: str) -> TableFiles:
        """The table's current files. Every change the store makes to a table is a file created, renamed into
        place or deleted in its folder (parts, the manifest, compaction), which changes the folder's mtime; so a
        listing is kept, and reused while the folder's mtime is what it was, only when that mtime was over a
        second old as the listing began (a change within the file system's clock tick of an earlier change
        would keep the same mtime). Every query asks for every table's files, and a listing reads the manifest
        and the folder: ~0.3 ms a table."""
        folder = self.folder(table)
        try:
            stamp = os.stat(folder).st_mtime_ns
        except (FileNotFoundError, NotADirectoryError):
            return TableFiles((), (), ())
        hit = self._listed.get(table)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        settled = time.time_ns() - stamp > _SETTLED_NS  # before listing: any change after it gets a newer mtime
        listed = self._list(table, folder)
        if settled:
            self._listed[table] = (stamp, listed)
        else:
            self._listed.pop(table, None)
        return listed

    def _list(self, table: str, folder: Path) -> TableFiles:
        if not folder.is_dir():
            return TableFiles((), (), ())
        manifest = self.manifest(table)
        absorbed = set(manifest["absorbed"])
        base = tuple(folder / name for name in manifest["base"])
        deltas: list[Path] = []
        bad: list[tuple[Path, str]] = []
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if not (entry.name.startswith("part-") and entry.name.endswith(".parquet")):
                continue
            if entry.name in absorbed:
                continue
            path = Path(entry.path)
            problem = self._problem(path)
            if problem == "vanished":
                continue
            if problem:
                bad.append((path, problem))
            else:
                deltas.append(path)
        columns: dict[str, int] = {}
        for path in (*base, *deltas):
            for name in self._inspect(path)[1]:
                columns[name] = columns.get(name, 0) + 1
        return TableFiles(base, tuple(deltas), tuple(bad), columns)

    def row_count(self, table: str) -> int | None:
        """How many current rows the table holds, from the Parquet footers alone, when it is only its compacted
        base or only one appended part (each holds one row per key, so every stored row counts); None while
        parts wait to be merged into a base (then count the view). A footer is read once per file: no table
        file ever changes."""
        files = self.files(table)
        if files.deltas and (files.base or len(files.deltas) > 1):
            return None
        total = 0
        for path in files.base or files.deltas:
            rows = self._rows.get(str(path))
            if rows is None:
                try:
                    rows = self._rows[str(path)] = pq.ParquetFile(path).metadata.num_rows
                except FileNotFoundError:  # compacted away since the listing
                    return None
            total += rows
        return total

    def read(self, table: str) -> pl.DataFrame:
        """The current rows of a table (latest per key), without the _seq column."""
        con = duckdb.connect()
        sql = self.select_sql(table, self.files(table))
        return con.sql(sql).pl()

    def select_sql(self, table: str, files: TableFiles) -> str:
        """SQL for the latest row per key of `table`, read from exactly `files`."""
        spec = self.spec(table)
        key = ", ".join(spec.key)
        cols = self._columns_sql(spec, files)

        def read(paths: tuple[Path, ...]) -> str:
            listing = ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths)
            return f"read_parquet([{listing}], union_by_name = true)"

        if not files.base and not files.deltas:
            typed = ", ".join(f"CAST(NULL AS {_duck_type(t)}) AS {c}" for c, t in spec.schema.items())
            return f"SELECT {typed} WHERE false"
        delta = (
            f"SELECT {cols} FROM {read(files.deltas)} "
            f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {SEQ} DESC) = 1"
        )
        if not files.base:
            return delta
        base = f"SELECT {cols} FROM {read(files.base)}"
        if not files.deltas:
            return base
        return (
            f"SELECT * FROM ({base}) b WHERE NOT EXISTS (SELECT 1 FROM ({delta}) d WHERE "
            + " AND ".join(f"d.{k} = b.{k}" for k in spec.key)
            + f") UNION ALL BY NAME {delta}"
        )

    def scan(self, table: str, files: TableFiles | None = None, *, seq: bool = False) -> pl.LazyFrame:
        """The rows select_sql gives (latest per key, declared columns with their defaults, no _seq) as
        a polars LazyFrame over exactly `files`. For bulk reads of wide rows: polars keeps Parquet
        strings as views into the decoded pages instead of copying each value, several times faster
        than DuckDB handing the same rows over. Filters on it prune row groups by their statistics.
        With `seq`, each row keeps its _seq: the stamp of the append that wrote it, which no other
        append shares (so a key with the same _seq is the same written row)."""
        spec = self.spec(table)
        files = files if files is not None else self.files(table)
        if not files.base and not files.deltas:
            return pl.LazyFrame(schema={**spec.schema, **({SEQ: pl.Int64} if seq else {})})
        everywhere = len(files.base) + len(files.deltas)

        def column(c: str, dtype: pl.DataType, present: tuple[str, ...]) -> pl.Expr:
            held = files.columns.get(c, 0)
            default = pl.lit(spec.defaults.get(c), dtype=dtype)
            if c not in present:
                return default.alias(c)
            if 0 < held < everywhere and c in spec.defaults:
                return pl.coalesce(pl.col(c).cast(dtype), default).alias(c)
            return pl.col(c).cast(dtype).alias(c)

        def read(paths: tuple[Path, ...]) -> pl.LazyFrame:
            frames = []
            for path in paths:
                present = self._inspect(path)[1]
                frames.append(pl.scan_parquet(path).select(
                    *(column(c, t, present) for c, t in spec.schema.items()), pl.col(SEQ)))
            return pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]

        key, drop = list(spec.key), [] if seq else [SEQ]
        if not files.deltas:
            return read(files.base).drop(drop)
        delta = read(files.deltas).sort(SEQ).unique(subset=key, keep="last", maintain_order=True)
        if not files.base:
            return delta.drop(drop)
        base = read(files.base).join(delta.select(key), on=key, how="anti")
        return pl.concat([base, delta], how="vertical").drop(drop)

    @staticmethod
    def _columns_sql(spec: TableSpec, files: TableFiles) -> str:
        """The declared columns, with a default for files written before a column existed."""
        everywhere = len(files.base) + len(files.deltas)
        exprs = []
        for c, t in spec.schema.items():
            held = files.columns.get(c, 0)
            default = _literal(spec.defaults.get(c))
            if held == 0:
                exprs.append(f"CAST({default} AS {_duck_type(t)}) AS {c}")
            elif held < everywhere and c in spec.defaults:
                exprs.append(f"coalesce({c}, {default}) AS {c}")
            else:
                exprs.append(c)
        return ", ".join(exprs)


def _literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _duck_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.List):
        return f"{_duck_type(dtype.inner)}[]"
    if isinstance(dtype, pl.Struct):
        return "STRUCT(" + ", ".join(f"{f.name} {_duck_type(f.dtype)}" for f in dtype.fields) + ")"
    simple = {pl.String: "VARCHAR", pl.Int64: "BIGINT", pl.Float64: "DOUBLE", pl.Boolean: "BOOLEAN"}
    for kind, name in simple.items():
        if isinstance(dtype, kind):
            return name
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ"
    raise TypeError(f"no DuckDB type for {dtype}")
