"""Cross-process locks that say who holds them.

Each lock is a `filelock.FileLock` at `locks/<name>.lock`. Whoever takes it writes its command, process id and
start time beside it (`locks/<name>.holder.json`), so a process that cannot get it raises `LockHeld`, which
names the command that holds it and since when. `LockHeld` is a `filelock.Timeout` (code that catches that
keeps working) and a `WorkspaceError` (the CLI prints it as `error: ... Fix: ...` and exits 2).
"""

from __future__ import annotations

import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
from filelock import FileLock, Timeout

from brightrun.errors import WorkspaceError


def current_command() -> str:
    """How this process was started, as the holder file records it (`brightrun enrich -w data`)."""
    args = list(sys.argv) or ["python"]
    name = Path(args[0]).name
    return " ".join(["brightrun" if name in ("brightrun", "__main__.py") else name, *args[1:]])


class LockHeld(Timeout, WorkspaceError):  # noqa: N818 - a filelock.Timeout, named for what it means
    def __init__(self, lock_file: str, name: str, holder: dict | None) -> None:
        Timeout.__init__(self, lock_file)
        self.name = name
        self.holder = holder

    @property
    def who(self) -> str:
        """`brightrun enrich -w data` (process 123 on host) since 2026-01-02T03:04:05+00:00, or another process."""
        h = self.holder
        return (f"`{h.get('command')}` (process {h.get('pid')} on {h.get('host')}) since {h.get('since')}" if h
                else "another process")

    def __str__(self) -> str:
        return (f"the workspace lock {self.name!r} is held by {self.who}. Fix: wait for it to finish and try "
                f"again, or stop that process if it hangs (a lock of a process that died is free at once).")


class HolderLock:
    """A FileLock whose holder is written beside it; acquire/release/with as FileLock."""

    def __init__(self, path: Path, timeout: float) -> None:
        self._lock = FileLock(str(path), timeout=timeout)
        self.name = path.stem
        self.holder_path = path.with_suffix(".holder.json")

    @property
    def is_locked(self) -> bool:
        return self._lock.is_locked

    def holder(self) -> dict | None:
        try:
            return orjson.loads(self.holder_path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None

    def acquire(self, timeout: float | None = None, **options) -> HolderLock:
        try:
            self._lock.acquire(timeout=timeout, **options)
        except Timeout:
            raise LockHeld(self._lock.lock_file, self.name, self.holder()) from None
        if self._lock.lock_counter == 1:
            self._write_holder()
        return self

    def release(self, force: bool = False) -> None:
        if self._lock.lock_counter == 1 or force:
            self.holder_path.unlink(missing_ok=True)
        self._lock.release(force=force)

    def _write_holder(self) -> None:
        data = orjson.dumps({"command": current_command(), "pid": os.getpid(), "host": os.uname().nodename,
                             "since": datetime.now(UTC).isoformat(timespec="seconds")})
        tmp = self.holder_path.with_name(f".tmp-{uuid.uuid4().hex}-{self.holder_path.name}")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, self.holder_path)
        except OSError:  # the note is for people; the lock itself is held
            tmp.unlink(missing_ok=True)

    def __enter__(self) -> HolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
