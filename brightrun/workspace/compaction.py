"""Compaction of a table folder: its parts merged into the base, leftovers of killed writers dropped, unreadable
files moved to quarantine. A part of TableStore (brightrun.workspace.store), kept apart as the one place that
rewrites and deletes table files.

The commit point is the manifest's rename: compaction writes the new base, renames the manifest into place,
then deletes what it replaced; a crash at any moment leaves either the old or the new state, never a doubled row.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import duckdb

from brightrun.workspace.files import atomic_write_bytes, write_json
from brightrun.workspace.tables import SEQ, TABLES, TableFiles, TableSpec

MANIFEST = "_base.json"
MAX_BASE_FILES = 16
"""Past this many base files, compaction rewrites the base into one."""


class Compaction:
    """TableStore's compaction (TableStore inherits it); uses the store's listing, locks and column SQL."""

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
