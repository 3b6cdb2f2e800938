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
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq

from brightrun.errors import WorkspaceError
from brightrun.workspace.files import atomic_write_bytes, fsync_dir, read_json, write_json
from brightrun.workspace.locks import HolderLock
from brightrun.workspace.tables import SEQ, TABLES, TableSpec

MANIFEST = "_base.json"
MAX_BASE_FILES = 16
"""Past this many base files, compaction rewrites the base into one."""


@dataclass(frozen=True)
class TableFiles:
    """What a reader should read for one table, right now."""

    base: tuple[Path, ...]
    deltas: tuple[Path, ...]
    bad: tuple[tuple[Path, str], ...]
    columns: dict[str, int] = field(default_factory=dict, compare=False)
    """How many of the readable files hold each column (files written before a column existed lack it)."""

    @property
    def signature(self) -> tuple:
        return (self.base, self.deltas)


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


class TableStore:
    """Owns the `tables/` folder of a workspace."""

    def __init__(self, root: Path, compaction_memory: str = "1500MB") -> None:
        self.root = root
        self.compaction_memory = compaction_memory
        self.tables_dir = root / "tables"
        self.locks_dir = root / "locks"
        self.quarantine_dir = root / "quarantine"
        self._checked: dict[str, tuple[str | None, tuple[str, ...]]] = {}
        self._listed: dict[str, tuple[int, TableFiles]] = {}

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

    def scan(self, table: str, files: TableFiles | None = None) -> pl.LazyFrame:
        """The rows select_sql gives (latest per key, declared columns with their defaults, no _seq) as
        a polars LazyFrame over exactly `files`. For bulk reads of wide rows: polars keeps Parquet
        strings as views into the decoded pages instead of copying each value, several times faster
        than DuckDB handing the same rows over. Filters on it prune row groups by their statistics."""
        spec = self.spec(table)
        files = files if files is not None else self.files(table)
        if not files.base and not files.deltas:
            return pl.LazyFrame(schema=spec.schema)
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

        key = list(spec.key)
        if not files.deltas:
            return read(files.base).drop(SEQ)
        delta = read(files.deltas).sort(SEQ).unique(subset=key, keep="last", maintain_order=True)
        if not files.base:
            return delta.drop(SEQ)
        base = read(files.base).join(delta.select(key), on=key, how="anti")
        return pl.concat([base, delta], how="vertical").drop(SEQ)

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

    # -- compaction --------------------------------------------------------------------------

    def compact(self, table: str, *, min_parts: int = 2) -> int:
        """Merge the parts of `table` into the base; returns how many parts were absorbed.

        When no appended key already lives in the base (the usual case: new conversations, calls,
        turns), the parts become one more base file and the base is not rewritten; otherwise (rows
        updated in place, or too many base files) base and parts are rewritten into one file. Either
        way only keys and _seq are windowed, and whole rows stream through a join, so memory stays
        bounded by the keys, not by the text."""
        spec = self.spec(table)
        with self.lock(f"compact-{table}", timeout=600):
            self.drop_leftovers(table)
            files = self.files(table)
            self._quarantine(table, files.bad)
            if not files.deltas or (len(files.deltas) < min_parts and len(files.base) <= 1):
                return 0
            folder = self.folder(table)
            old = self.manifest(table)
            generation = old["generation"] + 1
            new_base = folder / f"base-{generation:06d}-{uuid.uuid4().hex[:8]}.parquet"
            tmp = folder / f".tmp-{new_base.name}"
            con = self._compaction_connection()
            try:
                tiered = (bool(files.base) and len(files.base) < MAX_BASE_FILES
                          and not self._updates_base(con, spec, files))
                sources = files.deltas if tiered else files.base + files.deltas
                self._write_latest(con, spec, sources, tmp)
            finally:
                con.close()
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, new_base)
            bases = [*old["base"], new_base.name] if tiered else [new_base.name]
            leftovers = [n for n in old["absorbed"] if (folder / n).exists()]
            absorbed = sorted({p.name for p in files.deltas} | set(leftovers))
            write_json(folder / MANIFEST, {"generation": generation, "base": bases, "absorbed": absorbed})
            for name in [*absorbed, *([] if tiered else old["base"])]:
                (folder / name).unlink(missing_ok=True)
            write_json(folder / MANIFEST, {"generation": generation, "base": bases, "absorbed": []})
            return len(files.deltas)

    def _compaction_connection(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        spill = self.locks_dir / "duckdb-spill"
        spill.mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory = '{spill}'")
        con.execute(f"SET memory_limit = '{self.compaction_memory}'")
        con.execute("SET threads = 1")  # a streaming rewrite: one thread keeps one row group in memory
        con.execute("SET preserve_insertion_order = false")
        return con

    @staticmethod
    def _listing(paths: tuple[Path, ...]) -> str:
        return ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths)

    def _updates_base(self, con: duckdb.DuckDBPyConnection, spec: TableSpec, files: TableFiles) -> bool:
        """Whether any appended key already has a row in the base."""
        keys = ", ".join(spec.key)
        on = " AND ".join(f"d.{k} = b.{k}" for k in spec.key)
        hit = con.sql(
            f"SELECT 1 FROM (SELECT {keys} FROM read_parquet([{self._listing(files.deltas)}])) d "
            f"SEMI JOIN (SELECT {keys} FROM read_parquet([{self._listing(files.base)}])) b ON {on} LIMIT 1"
        ).fetchall()
        return bool(hit)

    def _write_latest(self, con: duckdb.DuckDBPyConnection, spec: TableSpec, sources: tuple[Path, ...],
                      target: Path) -> None:
        """Write the latest row per key of `sources` to `target`, keeping _seq."""
        columns: dict[str, int] = {}
        for path in sources:
            for name in self._inspect(path)[1]:
                columns[name] = columns.get(name, 0) + 1
        subset = TableFiles((), sources, (), columns)
        listing = self._listing(sources)
        keys = ", ".join(spec.key)
        on = " AND ".join(f"t.{k} = l.{k}" for k in spec.key)
        con.execute(
            f"COPY (SELECT t.* FROM (SELECT {self._columns_sql(spec, subset)}, {SEQ} "
            f"FROM read_parquet([{listing}], union_by_name = true)) t "
            f"SEMI JOIN (SELECT {keys}, max({SEQ}) AS {SEQ} FROM read_parquet([{listing}], union_by_name = true) "
            f"GROUP BY ALL) l ON {on} AND t.{SEQ} = l.{SEQ}) "
            f"TO '{target}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE_BYTES '16MB')"
        )

    def drop_leftovers(self, table: str) -> list[str]:
        """Delete what a killed writer left in the table's folder; call it holding the table's compaction
        lock. Parts a committed base already holds (a compaction killed after its commit), a compaction's
        unfinished base, and an append's unfinished part whose process is gone (or that is over an hour
        old). Returns the names deleted."""
        folder, manifest = self.folder(table), self.manifest(table)
        gone = [name for name in manifest["absorbed"] if (folder / name).exists()]
        for name in gone:
            (folder / name).unlink(missing_ok=True)
        if manifest["absorbed"]:
            write_json(folder / MANIFEST, {**manifest, "absorbed": []})
        for stray in sorted(folder.glob(".tmp-*")):
            try:  # a writer may rename its temporary file into place between the listing and this look
                if stray.name.startswith(".tmp-base-") or not _writer_alive(stray.name) \
                        or time.time() - stray.stat().st_mtime > 3600:
                    stray.unlink(missing_ok=True)
                    gone.append(stray.name)
            except FileNotFoundError:
                continue
        return gone

    def _quarantine(self, table: str, bad: tuple[tuple[Path, str], ...]) -> None:
        for path, reason in bad:
            target = self.quarantine_dir / table / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), target)
            atomic_write_bytes(target.with_suffix(".reason.txt"), reason.encode())

    def compact_all(self, progress: Callable[[str, int], None] | None = None, *, tables: list[str] | None = None,
                    min_parts: int = 2) -> dict[str, int]:
        done = {}
        for table in tables or list(TABLES):
            done[table] = self.compact(table, min_parts=min_parts)
            if progress:
                progress(table, done[table])
        return done


def _writer_alive(name: str) -> bool:
    """Whether the process that is writing the temporary part `name` (`.tmp-part-<ns>-<pid>-<id>.parquet`)
    is alive; True for a name without a pid (left to the age rule)."""
    fields = name.split("-")
    if len(fields) < 5 or not fields[3].isdigit():
        return True
    try:
        os.kill(int(fields[3]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


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
