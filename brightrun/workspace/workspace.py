"""The workspace: one folder, one storage layer, one in-memory DuckDB per process."""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from brightrun.errors import BrightRunError, WorkspaceError
from brightrun.scaffolding import Scaffolding, default_library, load_scaffolding
from brightrun.workspace.store import TableFiles, TableStore
from brightrun.workspace.tables import TABLES
from brightrun.workspace.views import DERIVED_VIEWS, TABLE_VIEWS

ENV_VAR = "BRIGHTRUN_WORKSPACE"
DEFAULT_PATH = Path("data")


def resolve_path(path: str | os.PathLike | None = None) -> Path:
    """The workspace folder: the argument, else $BRIGHTRUN_WORKSPACE, else ./data."""
    if path:
        return Path(path)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else DEFAULT_PATH


def contains(column: str) -> str:
    """The SQL that tests `column` for `contains_pattern(text)` (one `?`): `contains("title")`. A
    case-insensitive regular expression rather than ILIKE: DuckDB's RE2 finds a word in a conversation's
    turns about twice as fast (100,000 conversations: 279 against 589 ms)."""
    return f"regexp_matches({column}, ?)"


def contains_pattern(text: str) -> str:
    """The pattern that finds `text` anywhere, ignoring case, taken literally: every character but a letter
    or digit is written as its code point (`\\x{25}` for `%`), so no character of `text` is an operator."""
    return "(?i)" + "".join(c if c.isalnum() else f"\\x{{{ord(c):x}}}" for c in text)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Workspace:
    """A BrightRun workspace. Safe for the app, the CLI and notebooks to use at the same time."""

    def __init__(self, root: Path, threads: int = 2) -> None:
        self.root = root
        self.store = TableStore(root)
        self._con = duckdb.connect()
        self._con.execute(f"SET threads = {int(threads)}")
        # Table files never change once written (a new one has a new name), so DuckDB may keep their Parquet
        # footers between queries: a lookup of one conversation's pairs among 500,000 takes 4 ms, not 13 ms
        # spent parsing the row-group statistics again that let it skip all but one row group.
        self._con.execute("SET parquet_metadata_cache = true")
        self._lock = threading.RLock()
        self._signatures: dict[str, tuple] = {}
        self._scaffolding: Scaffolding | None = None
        self._scaffold_stamp: tuple | None = None
        self._scaffold_checked = 0.0
        self.problems: list[str] = []
        self._recovered = False
        self._memo: dict[object, tuple[tuple, object]] = {}
        self._background: threading.Thread | None = None
        self._background_error: BaseException | None = None

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike | None = None, *, create: bool = True, threads: int = 2) -> Workspace:
        """Open (and by default create) the workspace at `path`; `threads` bounds DuckDB's threads.

        With create=False nothing is created: a folder that is not a workspace (no `tables/`) is a
        WorkspaceError, so a mistyped path never turns into an empty workspace that reads like lost data."""
        root = resolve_path(path).resolve()
        if root.exists() and not root.is_dir():
            raise WorkspaceError(f"{root} is a file, not a folder. Fix: point --workspace at a folder.")
        if not create:
            if not (root / "tables").is_dir():
                what = "no workspace at" if not root.exists() else "no workspace (no tables/ folder) in"
                raise WorkspaceError(
                    f"{what} {root}. Fix: give the right path with --workspace or $BRIGHTRUN_WORKSPACE, or make "
                    f"one there with `brightrun demo --workspace {root}`.")
            return cls(root, threads=threads)
        if not root.exists():
            root.mkdir(parents=True)
        scaffolding = root / "scaffolding"
        if not scaffolding.exists():
            shutil.copytree(default_library(), scaffolding)
        for sub in ("tables", "documents", "locks"):
            (root / sub).mkdir(exist_ok=True)
        return cls(root, threads=threads)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    @property
    def scaffolding_dir(self) -> Path:
        return self.root / "scaffolding"

    @property
    def scaffolding(self) -> Scaffolding:
        """The validated scaffolding library, reloaded when a YAML file changes."""
        now = time.monotonic()
        if self._scaffolding is not None and now - self._scaffold_checked < 1.0:
            return self._scaffolding
        self._scaffold_checked = now
        stamp = tuple(
            (str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(self.scaffolding_dir.rglob("*.yaml"))
        )
        if self._scaffolding is None or stamp != self._scaffold_stamp:
            self._scaffolding = load_scaffolding(self.scaffolding_dir)
            self._scaffold_stamp = stamp
            self._register_scaffolding(self._scaffolding)
        return self._scaffolding

    def reload_scaffolding(self) -> Scaffolding:
        """Read the YAML again now (it is otherwise re-checked at most once a second)."""
        self._scaffold_checked = 0.0
        return self.scaffolding

    # -- writing -----------------------------------------------------------------------------

    def append(self, table: str, rows: pl.DataFrame | list[dict]) -> None:
        self.store.append(table, rows)

    def append_models(self, table: str, records: list[Any]) -> None:
        if records:
            self.store.append(table, [r.model_dump() for r in records])

    def lock(self, name: str, timeout: float = 60.0):
        """A cross-process lock for a read-then-write operation of a few milliseconds."""
        return self.store.lock(name, timeout)

    def lock_held(self, name: str) -> bool:
        """True when a live process holds the lock `name` (a job being run, an enrichment run)."""
        lock = self.lock(name, timeout=0)
        try:
            lock.acquire()
        except TimeoutError:
            return True
        except OSError:  # a read-only workspace: no process can be holding a lock in it
            return False
        lock.release()
        return False

    def data_version(self, tables: list[str] | None = None) -> tuple:
        """What the data of `tables` (default: all) and the scaffolding are now: equal values, equal data.
        Every change (an append, a compaction, a YAML edit) gives a new value; it costs one listing per table."""
        _ = self.scaffolding
        return (self._scaffold_stamp, *(self.store.files(t).signature for t in (tables or TABLES)))

    def memo(self, key: object, compute, tables: list[str] | None = None):
        """`compute()`, computed once per data version of `tables` (default: all) and kept in this Workspace
        object (the app keeps one per process, so every page and session shares it). `key` names the
        computation and its arguments; the value is shared: never change it."""
        version = self.data_version(tables)
        hit = self._memo.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        value = compute()
        if len(self._memo) >= 256:
            self._memo.clear()
        self._memo[key] = (version, value)
        return value

    def recover(self) -> list[str]:
        """Clean what killed writers left (brightrun.workspace.recovery) and compact tables left with many
        parts; every writer calls this as it starts. Runs once per Workspace object; returns what it did."""
        if self._recovered:
            return []
        self._recovered = True
        from brightrun.workspace.recovery import COMPACT_AT, recover_tables, recover_training_files

        done, crowded = recover_tables(self.store)
        done += recover_training_files(self.store)
        if crowded:
            merged = self.compact(tables=crowded, min_parts=COMPACT_AT)
            done += [f"{table}: compacted {n} parts" for table, n in merged.items() if n]
        if done:
            self._signatures.clear()
        return done

    def compact(self, progress=None, *, tables: list[str] | None = None, min_parts: int = 2,
                publish: bool = True) -> dict[str, int]:
        """Merge small parts (all tables, or `tables`) into the bases; safe while others read and write.
        Then (unless `publish` is False) publish the tables whose rows changed as Delta tables (publish)."""
        result = self.store.compact_all(progress, tables=tables, min_parts=min_parts)
        with self._lock:
            self._signatures.clear()
        if publish:
            self.publish(tables)
        return result

    def compact_in_background(self, *, tables: list[str] | None = None, min_parts: int = 2) -> None:
        """Start `compact(tables=..., min_parts=...)` (and the publication that follows it) in a thread and return
        at once: what a writer does after its rows are committed, so the caller gets its result without waiting
        for housekeeping. Runs after any compaction this object started earlier; the process waits for it before
        it exits (the thread is not a daemon), and `wait_for_background()` waits for it and reports its error.
        Readers meanwhile are safe: a read that meets a part the compaction removed lists the files again."""
        previous = self._background

        def work() -> None:
            if previous is not None:
                previous.join()
            try:
                self.compact(tables=tables, min_parts=min_parts)
            except BaseException as exc:  # noqa: BLE001 - kept for wait_for_background, and logged
                self._background_error = exc
                logging.getLogger("brightrun").warning("background compaction of %s failed: %s", self.root, exc)

        self._background = threading.Thread(target=work, name="brightrun-compaction", daemon=False)
        self._background.start()

    def wait_for_background(self, timeout: float | None = None) -> bool:
        """Wait for the compaction started by compact_in_background (if any); True when none is left running.
        Raises the error it met, once (the rows it was tidying are committed either way)."""
        thread = self._background
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                return False
            self._background = None
        error, self._background_error = self._background_error, None
        if error is not None:
            if isinstance(error, BrightRunError):
                raise error
            raise WorkspaceError(f"compacting the tables in the background failed ({error}); the rows are committed "
                                 f"and readable. Fix: run `brightrun compact`.") from error
        return True

    def publish(self, tables: list[str] | None = None) -> dict:
        """Write the current rows of `tables` (default: all) whose files changed as Delta tables under
        `delta/<table>/`, for other engines; returns {table: Published} (brightrun.workspace.publish)."""
        from brightrun.workspace.publish import publish

        return publish(self.store, tables)

    # -- reading -----------------------------------------------------------------------------

    def sql(self, query: str, params: list | dict | None = None, *, read_only: bool = False) -> pl.DataFrame:
        """Run SQL over the workspace views; parameters are bound, never pasted. This is full DuckDB with the
        rights of the user running it (it can read and write files); read_only=True runs it where no file can
        be read or written (`brightrun.workspace.sandbox`), the mode for SQL a browser user gives."""
        if read_only:
            from brightrun.workspace.sandbox import read_only_sql

            return read_only_sql(self, query, params)
        with self._lock:
            for attempt in range(5):
                try:
                    self.refresh()
                    return self._con.sql(query, params=params).pl()
                except duckdb.IOException as exc:
                    # A file vanished under us (another process compacted the table): list again.
                    self._signatures.clear()
                    if attempt == 4:
                        raise WorkspaceError(
                            f"the workspace changed while reading ({exc}). Fix: retry the query."
                        ) from exc
                    time.sleep(0.05 * (attempt + 1))
                except duckdb.Error as exc:
                    damaged = self._damaged_file(exc)
                    if damaged is None or attempt == 4:
                        raise WorkspaceError(f"query failed: {exc}".strip()) from exc
                    # A file that read well before is damaged now: inspect it again, so it is reported
                    # and left out of the views, and run the query over the rest.
                    self.store.recheck(damaged)
                    self._signatures.clear()
        raise AssertionError("unreachable")

    def _damaged_file(self, exc: Exception) -> Path | None:
        """The workspace Parquet file a DuckDB error says it could not read, if any."""
        match = re.search(r"'([^']+\.parquet)'", str(exc))
        if match is None:
            return None
        path = Path(match.group(1))
        tables = (self.root / "tables").resolve()
        return path if path.resolve().is_relative_to(tables) and path.exists() else None

    def read(self, table: str, query: Callable[[pl.LazyFrame], pl.LazyFrame] = lambda rows: rows, *,
             seq: bool = False) -> pl.DataFrame:
        """`query` over a table's current rows (the rows of its view, as a polars LazyFrame; with `seq`, also
        each row's _seq, the stamp of the append that wrote it), collected. For bulk reads of wide rows,
        where polars is several times faster than DuckDB handing them over (TableStore.scan). Lists the
        files again and retries when another process compacted one away under the read."""
        for attempt in range(5):
            files = self.store.files(table)
            try:
                return query(self.store.scan(table, files, seq=seq)).collect()
            except Exception as exc:  # noqa: BLE001 - polars reports a vanished file in several ways
                listed = (*files.base, *files.deltas)
                vanished = [p for p in listed if not p.exists()]
                if not vanished:
                    for path in listed:  # a file damaged since it was checked is reported, then left out
                        self.store.recheck(path)
                    if self.store.files(table).signature == files.signature or attempt == 4:
                        raise WorkspaceError(f"reading table {table!r} failed: {exc}".strip()) from exc
                elif attempt == 4:
                    raise WorkspaceError(f"the workspace changed while reading ({exc}). Fix: retry.") from exc
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def stream(self, table: str, columns: list[str], rows: int = 20_000) -> Iterator[pa.RecordBatch]:
        """`columns` of a table's current rows (its view's rows), in record batches of about `rows` rows, read
        from the files current when the stream starts by a DuckDB connection of its own: one pass over a table
        too large to hold at once (the quality report's texts)."""
        schema = self.store.spec(table).schema
        unknown = [c for c in columns if c not in schema]
        if unknown:
            raise WorkspaceError(f"table {table!r} has no column {unknown[0]!r}. Fix: use one of {', '.join(schema)}.")
        con = duckdb.connect()
        try:
            query = f"SELECT {', '.join(columns)} FROM ({self.store.select_sql(table, self.store.files(table))})"
            yield from con.sql(query).to_arrow_reader(rows)
        except duckdb.IOException as exc:  # a file compacted away by another process during the pass
            raise WorkspaceError(f"the workspace changed while reading {table!r} ({exc}). Fix: run again.") from exc
        finally:
            con.close()

    def scalar(self, query: str, params: list | dict | None = None) -> Any:
        frame = self.sql(query, params)
        return frame.item(0, 0) if frame.height else None

    def table_files(self, table: str) -> TableFiles:
        return self.store.files(table)

    def refresh(self) -> None:
        """Point the views at the current files; cheap when nothing changed."""
        with self._lock:
            _ = self.scaffolding
            problems: list[str] = []
            changed = False
            for table in TABLES:
                files = self.store.files(table)
                problems += [f"tables/{table}/{p.name}: {why}. It is left out of every view; "
                             f"`brightrun compact` moves it to quarantine/." for p, why in files.bad]
                if self._signatures.get(table) != files.signature:
                    self._con.execute(f"CREATE OR REPLACE VIEW _t_{table} AS {self.store.select_sql(table, files)}")
                    self._signatures[table] = files.signature
                    changed = True
            self.problems = problems
            if changed or not self._views_ready:
                for name, table in TABLE_VIEWS.items():
                    self._con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM _t_{table}")
                for name, body in DERIVED_VIEWS.items():
                    self._con.execute(f"CREATE OR REPLACE VIEW {name} AS {body}")
                self._views_ready = True

    _views_ready = False

    def _register_scaffolding(self, scaffolding: Scaffolding, con: duckdb.DuckDBPyConnection | None = None) -> None:
        from brightrun.scaffolding import scaffolding_frames

        for name, frame in scaffolding_frames(scaffolding).items():
            (con or self._con).register(f"_scaffold_{name}", frame.to_arrow())

    def views(self) -> list[str]:
        """The public view names."""
        return sorted([*TABLE_VIEWS, *DERIVED_VIEWS])

    def close(self) -> None:
        """Wait for any background compaction (its error, if any, is logged, not raised), then close."""
        if self._background is not None:
            self._background.join()
            self._background = None
        self._con.close()


def open_workspace(path: str | os.PathLike | None = None) -> Workspace:
    """Open a workspace for a notebook: `ws = open_workspace()`; `ws.sql("select ...")`."""
    try:
        return Workspace.open(path)
    except BrightRunError:
        raise
    except OSError as exc:
        raise WorkspaceError(f"cannot open workspace {path}: {exc}. Fix: check the folder's permissions.") from exc
