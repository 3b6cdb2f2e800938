"""What a killed writer leaves behind, cleaned when the next writer starts (`Workspace.recover`).

A writer is anything that changes the workspace: a generation job, an enrichment run, a training-file
build, a compaction. Each calls `Workspace.recover()` as it starts (once per Workspace object), which
cleans, without waiting for any lock another process holds:

- per table, holding that table's compaction lock (so no compaction of it is running):
  - parts a committed base already holds (named in the manifest's `absorbed` list: a compaction killed
    after its commit and before its deletions);
  - a compaction's unfinished new base (`.tmp-base-*`);
  - an append's unfinished part (`.tmp-part-*`) whose process is gone (the writer's pid is in the name);
- tables left with `COMPACT_AT` parts or more (a job killed during its final compaction leaves every part
  it wrote) are compacted;
- per training file, holding that file's lock (so no build of it is running): an unfinished build folder
  (`.tmp-*`) is removed, and a build killed between its two renames gets its complete earlier folder back.

A table whose compaction, or a training file whose build, is running in another process is left alone:
its files are that process's. A read-only workspace is left as it is.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from brightrun.workspace.files import fsync_dir
from brightrun.workspace.store import TableStore
from brightrun.workspace.tables import TABLES

TRAINING_FILES = "training_files"
"""The folder under the workspace root holding one folder per training file."""
COMPACT_AT = 64
"""A table with this many parts is compacted when a writer starts (a job compacts its tables as it ends)."""


def training_file_lock(name: str) -> str:
    """The lock a training file's writers hold (its name, case-folded, hashed: any name makes a file name)."""
    return f"training-file-{hashlib.sha256(name.lower().encode()).hexdigest()[:16]}"


def recover_build_folder(folder: Path) -> list[str]:
    """Undo what a build killed part-way left in a training file's folder; call it holding the file's lock
    (then no other build is running). A `.tmp-*` folder is an unfinished build: removed. A `.old-*-vN`
    folder whose `vN` is missing was killed between the two renames of a build's replace: it is the complete
    earlier build, so it goes back to `vN`; beside a `vN` it is removed. Returns what it did."""
    done = []
    for leftover in sorted(folder.glob(".tmp-*")):
        shutil.rmtree(leftover, ignore_errors=True)
        done.append(f"removed {leftover.name}")
    for old in sorted(folder.glob(".old-*")):
        target = folder / old.name.rsplit("-", 1)[-1]
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            done.append(f"removed {old.name}")
        else:
            os.replace(old, target)
            done.append(f"restored {target.name}")
    if done:
        fsync_dir(folder)
    return done


def _held_or_unwritable(store: TableStore, name: str):
    """The lock `name` acquired without waiting, or None when another process holds it or the workspace
    cannot be written (nothing to clean then)."""
    lock = store.lock(name, timeout=0)
    try:
        lock.acquire()
    except (TimeoutError, OSError):
        return None
    return lock


def recover_tables(store: TableStore, compact_at: int = COMPACT_AT) -> tuple[list[str], list[str]]:
    """Clean each table's leftovers (under its compaction lock); returns (what was removed, the tables
    holding `compact_at` parts or more, for the caller to compact)."""
    done: list[str] = []
    crowded: list[str] = []
    for table in TABLES:
        if not store.folder(table).is_dir():
            continue
        lock = _held_or_unwritable(store, f"compact-{table}")
        if lock is None:
            continue
        try:
            done += [f"{table}/{name}" for name in store.drop_leftovers(table)]
            if len(store.files(table).deltas) >= compact_at:
                crowded.append(table)
        finally:
            lock.release()
    return done, crowded


def recover_training_files(store: TableStore) -> list[str]:
    """Clean each training file's unfinished builds (under the file's lock)."""
    root = store.root / TRAINING_FILES
    if not root.is_dir():
        return []
    done = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if not any(folder.glob(".tmp-*")) and not any(folder.glob(".old-*")):
            continue
        lock = _held_or_unwritable(store, training_file_lock(folder.name))
        if lock is None:
            continue
        try:
            done += [f"{folder.name}/{what}" for what in recover_build_folder(folder)]
        finally:
            lock.release()
    return done
