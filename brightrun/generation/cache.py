"""Never pay twice: a journal of every answer received, and the response cache it feeds.

Every provider answer that came with a body is appended to `journal/<job>/<pid>-<ns>.jsonl` the
moment it arrives (one unbuffered write, so it survives SIGKILL of the process). Each flush of the
runner writes those answers to the `response_cache` table and starts a new journal file; when a run
starts, journals its job left behind (a crash) are folded into the table first. A request whose
cache key (a hash of the full request) is in the cache with a usable answer is answered from it
without a call. Unusable answers (that failed the schema) are kept on record and never served to another
request, so a retry asks the model again; they are replayed only to the call that paid for them, after a
crash, so that the correction which followed is asked again byte for byte and found in the cache too.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson

from brightrun.providers.base import ProviderResponse
from brightrun.workspace import Workspace, utcnow


class Journal:
    def __init__(self, ws: Workspace, job_id: str) -> None:
        self.folder = ws.root / "journal" / job_id
        self.path: Path | None = None
        self._fd: int | None = None

    def write(self, entry: dict) -> None:
        if self._fd is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.path = self.folder / f"{os.getpid()}-{time.time_ns()}.jsonl"
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.write(self._fd, orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def rotate(self) -> Path | None:
        """Close the current file (the next answer starts a new one) and return it, to be deleted once
        its answers are in the tables."""
        path = self.path
        self.close()
        self.path = None
        return path

    def pending_files(self) -> list[Path]:
        return sorted(self.folder.glob("*.jsonl")) if self.folder.is_dir() else []


def read_journal(path: Path) -> list[dict]:
    """The complete lines of a journal file (a line torn by a crash is skipped)."""
    entries = []
    for line in path.read_bytes().splitlines():
        try:
            entries.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    return entries


def cache_row(key: str, sample: str, provider: str, response: ProviderResponse, cost: float, call_id: str,
              job_id: str, usable: bool) -> dict:
    return {"cache_key": key, "sample": sample, "provider": provider, "model": response.model, "text": response.text,
            "input_tokens": response.input_tokens, "output_tokens": response.output_tokens,
            "stop_reason": response.stop_reason, "batch": response.batch, "cost_usd": cost,
            "paid_by_call": call_id, "job_id": job_id, "usable": usable, "created_at": utcnow()}


def fold_journals(ws: Workspace, job_id: str) -> int:
    """Move every journaled answer of `job_id` into the response cache; returns how many."""
    journal = Journal(ws, job_id)
    files = journal.pending_files()
    rows = [entry["cache"] for path in files for entry in read_journal(path)]
    if rows:
        ws.append("response_cache", [{**r, "created_at": utcnow()} for r in rows])
    for path in files:
        path.unlink(missing_ok=True)
    return len(rows)


class ResponseCache:
    """The cache entries a run may use, held in memory: usable answers (served to any equal request), and this
    job's unusable answers (served only to the very call that paid for them, so that after a crash the
    correction that followed can be asked again exactly as before, and found in the cache)."""

    def __init__(self, ws: Workspace, job_id: str, samples: list[str]) -> None:
        frame = ws.sql("SELECT * FROM response_cache WHERE (usable AND (job_id = ? OR sample IN (SELECT unnest(?)))) "
                       "OR (NOT usable AND job_id = ?)", [job_id, samples, job_id])
        self.entries: dict[str, dict] = {}
        self.unusable: dict[str, dict] = {}
        for row in frame.iter_rows(named=True):
            self.put(row)

    def get(self, key: str, call_id: str) -> dict | None:
        row = self.entries.get(key)
        if row is None:
            row = self.unusable.get(key)
            if row is None or row["paid_by_call"] != call_id:
                return None
        return row

    def put(self, row: dict) -> None:
        (self.entries if row["usable"] else self.unusable)[row["cache_key"]] = row

    @staticmethod
    def response(row: dict, *, replay: bool) -> ProviderResponse:
        """The cached answer; `replay` means it is this very call's own answer, recovered after a crash."""
        return ProviderResponse(text=row["text"], model=row["model"], input_tokens=row["input_tokens"],
                                output_tokens=row["output_tokens"], stop_reason=row["stop_reason"],
                                batch=row["batch"], cache_hit=not replay)
