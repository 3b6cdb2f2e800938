"""Published copies for other engines: each table's current rows as a Delta Lake table.

Layout, beside `tables/`::

    delta/<table>/                Delta tables written with `deltalake.write_deltalake`, one per table
    delta/_published.json         a hint: the source files and Delta version each table was last published from

Publishing a table writes its current rows (one per key, the rows of its view) as one new table version
(`mode="overwrite"`), streamed from DuckDB in record batches. The live store stays the truth; a table
whose files did not change since it was last published is skipped. When the table's only change since its
last publication is new base files added by compaction (the usual case after a job: new conversations,
calls and turns, whose keys no earlier row has), only those files' rows are appended as the new version
(`mode="append"`, see `appendable`), so publishing after each job costs what the job wrote, not the whole
table. Delta's commit protocol makes the new version visible only once its log entry is renamed into place,
so a publish killed half-way leaves the previous version whole (the orphaned data files go at the next
vacuum).

Pins: a training-file version pins the Delta versions of the tables it is made of (PINNED_TABLES) that
hold its rows: at the first publish that sees it in the published `training_file_versions`, one row per
table goes into the `delta_pins` table (training_file, training_file_version, table_name,
delta_version), which is itself published. After each publish the table is vacuumed, keeping every
version a pin names (the current one is always kept); older logs are never cleaned up, so a pinned
version stays readable by time travel (`DeltaTable(path, version=v)`, `spark ... versionAsOf`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from brightrun.errors import WorkspaceError
from brightrun.workspace.files import read_json, write_json
from brightrun.workspace.store import TableFiles, TableStore
from brightrun.workspace.tables import TABLES

DELTA_DIR = "delta"
STATE = "_published.json"
PINNED_TABLES = ("training_files", "training_file_versions", "training_file_conversations", "training_pairs")
"""The tables a training file is built from: a training-file version pins their Delta versions."""
CONFIGURATION = {
    "delta.checkpointInterval": "10",        # a checkpoint every 10 versions: readers replay at most 9 commits
    "delta.enableExpiredLogCleanup": "false",  # pinned versions stay readable by time travel, however old
}
BATCH_ROWS = 65_536


@dataclass(frozen=True)
class Published:
    """One table's publication: the Delta version holding its current rows, and what this run wrote."""

    table: str
    version: int
    rows: int | None
    """Rows written now; None when the table had not changed and was skipped."""
    seconds: float


def delta_root(store: TableStore) -> Path:
    return store.root / DELTA_DIR


def delta_path(store: TableStore, table: str) -> Path:
    return delta_root(store) / store.spec(table).name


def source_signature(files: TableFiles) -> str:
    """What the current rows of a table are read from: its base and part file names (each unique)."""
    names = "\n".join(["base", *(p.name for p in files.base), "parts", *(p.name for p in files.deltas)])
    return hashlib.sha256(names.encode()).hexdigest()


def current_rows(con: duckdb.DuckDBPyConnection, store: TableStore, table: str,
                 files: TableFiles) -> pa.RecordBatchReader:
    """The table's current rows (exactly its view's rows), streamed in record batches from DuckDB."""
    return con.sql(store.select_sql(table, files)).to_arrow_reader(BATCH_ROWS)


def _counted(reader: pa.RecordBatchReader, counter: list[int]) -> pa.RecordBatchReader:
    def batches() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            counter[0] += batch.num_rows
            yield batch

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


def _write(con: duckdb.DuckDBPyConnection, store: TableStore, table: str, files: TableFiles,
           signature: str, added: tuple[Path, ...] | None = None) -> tuple[int, int]:
    """Write the table's current rows as a new version; (that version, rows written). `added`: the new base
    files whose rows alone are appended (appendable's answer); None overwrites the table with every row."""
    from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake

    path = delta_path(store, table)
    path.parent.mkdir(parents=True, exist_ok=True)
    counter = [0]
    if added is None:
        rows, options = current_rows(con, store, table, files), {"mode": "overwrite", "schema_mode": "overwrite"}
    else:
        subset = TableFiles(added, (), (), {c: len(added) for c in files.columns})
        rows, options = con.sql(store.select_sql(table, subset)).to_arrow_reader(BATCH_ROWS), {"mode": "append"}
    write_deltalake(
        path, _counted(rows, counter), name=table, configuration=CONFIGURATION,
        writer_properties=WriterProperties(compression="ZSTD"),
        commit_properties=CommitProperties(custom_metadata={"brightrun.source": signature}), **options,
    )
    return DeltaTable(path).version(), counter[0]


def _shape(store: TableStore, table: str) -> str:
    """The table's declared columns and types: a published copy is appended to only with the same shape."""
    spec = store.spec(table)
    return hashlib.sha256(repr([(c, str(t)) for c, t in spec.schema.items()]).encode()).hexdigest()[:16]


def appendable(store: TableStore, table: str, files: TableFiles, entry: dict | None) -> tuple[Path, ...] | None:
    """The base files to append, when publishing `table` may append instead of rewriting: its last
    publication (`entry`) was read from base files only, those are still the first base files now, the others
    were added since by compactions that only add rows with new keys (the store's tiered compaction: a
    compaction that updates a row rewrites the base as one new file, which is not an extension), there are no
    parts now, every file holds every column, the columns are the same, and the Delta table is still at the
    version we wrote. None: rewrite the table whole."""
    if (entry is None or entry.get("parts") != [] or files.deltas or entry.get("shape") != _shape(store, table)
            or not isinstance(entry.get("base"), list)):
        return None
    names, old = [p.name for p in files.base], entry["base"]
    if len(names) <= len(old) or names[:len(old)] != old:
        return None
    if any(files.columns.get(c, 0) != len(files.base) for c in store.spec(table).schema):
        return None
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        if DeltaTable(delta_path(store, table)).version() != entry.get("tail"):
            return None  # written since by someone else, or its publication never finished
    except TableNotFoundError:
        return None
    return files.base[len(old):]


def _steady(store: TableStore, table: str):
    """Hold off compaction of `table` (which deletes the parts it absorbs) while its files are listed and
    read; appends go on, and a part written after the listing is simply published next time."""
    return store.lock(f"compact-{store.spec(table).name}", timeout=600)


def _live(con: duckdb.DuckDBPyConnection, store: TableStore, table: str, columns: str) -> list[tuple]:
    """`columns` of the table's current rows in the live store."""
    with _steady(store, table):
        return con.sql(f"SELECT {columns} FROM ({store.select_sql(table, store.files(table))})").fetchall()


def _pins(con: duckdb.DuckDBPyConnection, store: TableStore) -> dict[str, set[int]]:
    """The Delta versions each table's pins name."""
    pins: dict[str, set[int]] = {}
    for table, version in _live(con, store, "delta_pins", "table_name, delta_version"):
        pins.setdefault(table, set()).add(version)
    return pins


def _unpinned(con: duckdb.DuckDBPyConnection, store: TableStore, state: dict | None) -> list[tuple[str, int]]:
    """Training-file versions that have no pin yet: in the published training_file_versions (as `state`
    names it), or with `state` None in the live store."""
    from deltalake import DeltaTable

    if state is None:
        versions = _live(con, store, "training_file_versions", "name, version")
    else:
        entry = state.get("training_file_versions")
        uris = DeltaTable(delta_path(store, "training_file_versions"), version=entry["version"]).file_uris() \
            if entry else []
        versions = con.sql("SELECT name, version FROM read_parquet(?)", params=[uris]).fetchall() if uris else []
    have = set(_live(con, store, "delta_pins", "training_file, training_file_version"))
    return sorted(set(versions) - have)


def _vacuum(store: TableStore, table: str, keep: set[int]) -> None:
    from deltalake import DeltaTable

    # `full` also removes data files no commit names (left by a publish killed mid-write); the publish
    # lock is held, so no BrightRun writer has files in flight
    DeltaTable(delta_path(store, table)).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False,
                                                full=True, keep_versions=sorted(keep))


def publish(store: TableStore, tables: list[str] | None = None) -> dict[str, Published]:
    """Publish `tables` (default: all) whose rows changed since their last publication; then pin the new
    training-file versions and vacuum what was written. Returns each table's publication."""
    names = [store.spec(t).name for t in tables] if tables else list(TABLES)  # an unknown name: nothing is done
    try:
        import deltalake  # noqa: F401 - a dependency since issue 18; an older install may lack it
    except ImportError as exc:
        raise WorkspaceError(
            "publishing the Delta copies needs the `deltalake` package, which is not installed (the workspace's "
            "own tables are unaffected). Fix: run `make install` (or `pip install -e .`).") from exc
    done: dict[str, Published] = {}
    root = delta_root(store)
    with store.lock("publish", timeout=1800), duckdb.connect() as con, _Writing(store) as writing:
        state_path = root / STATE
        state: dict = read_json(state_path) if state_path.exists() else {}

        def one(table: str) -> None:
            with _steady(store, table):
                steady(table)

        def steady(table: str) -> None:
            started = time.perf_counter()
            files = store.files(table)
            signature = source_signature(files)
            entry = state.get(table)
            if (entry is not None and entry["source"] == signature
                    and (delta_path(store, table) / "_delta_log").is_dir()):
                # a table written earlier in this run keeps its entry (it is vacuumed below)
                done.setdefault(table, Published(table, entry["version"], None, time.perf_counter() - started))
                return
            try:
                version, rows = _write(writing.connection(), store, table, files, signature,
                                       appendable(store, table, files, entry))
            except Exception as exc:  # noqa: BLE001 - deltalake and DuckDB raise many kinds; all mean the same
                raise WorkspaceError(
                    f"publishing table {table!r} as Delta under {delta_path(store, table)} failed ({exc}); its "
                    f"previous published version is intact and the workspace's own tables are unaffected. "
                    f"Fix: free disk space or check the folder's permissions, then run `brightrun publish`."
                ) from exc
            state[table] = {"source": signature, "version": version, "published_at": datetime.now(UTC).isoformat(),
                            "base": [p.name for p in files.base], "parts": [p.name for p in files.deltas],
                            "shape": _shape(store, table)}
            write_json(state_path, state)
            done[table] = Published(table, version, rows, time.perf_counter() - started)

        for table in names:
            one(table)
        if _unpinned(con, store, None):
            for table in PINNED_TABLES:  # the pins must name versions that hold these training-file versions
                one(table)
            unpinned = _unpinned(con, store, state)
            now = datetime.now(UTC)
            store.append("delta_pins", [
                {"training_file": name, "training_file_version": version, "table_name": table,
                 "delta_version": state[table]["version"], "pinned_at": now}
                for name, version in unpinned for table in PINNED_TABLES])
            one("delta_pins")
        pins = _pins(con, store)
        for table, result in done.items():
            if result.rows is not None:
                started = time.perf_counter()
                _vacuum(store, table, pins.get(table, set()))
                state[table]["tail"] = _latest_version(store, table)  # the vacuum's own commits came after
                done[table] = replace(result, seconds=result.seconds + time.perf_counter() - started)
        write_json(state_path, state)
    return done


def _latest_version(store: TableStore, table: str) -> int:
    from deltalake import DeltaTable

    return DeltaTable(delta_path(store, table)).version()


class _Writing:
    """The connection the rows stream through, opened when the first table is written (bounded memory,
    spilling to disk, timestamps in UTC)."""

    def __init__(self, store: TableStore) -> None:
        self.store = store
        self.con: duckdb.DuckDBPyConnection | None = None

    def connection(self) -> duckdb.DuckDBPyConnection:
        if self.con is None:
            self.con = self.store._compaction_connection()
            self.con.execute("SET TimeZone = 'UTC'")
        return self.con

    def __enter__(self) -> _Writing:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.con is not None:
            self.con.close()
