"""Enrichment the app starts and watches: a run in a detached process (it outlives the page, like a generation
job), its progress on file, and what is still pending.

Whoever enriches through `run_tracked` (the `brightrun enrich` command, a job resumed with `--enrich`) writes
its progress to `documents/enrichment/run.json` in the workspace: `state` (starting, running, completed,
failed), `done` and `total` conversations, the counts of the outcome and the error. A run is live while a
process holds the enrichment lock; between the launch and the child taking the lock the file says
"starting" (for at most STARTING_GRACE_S, after which a child that never started is taken as dead: its log is
`logs/enrichment.log`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from brightrun.enrichment.pipeline import ENRICHMENT_VERSION, EnrichResult, enrich
from brightrun.errors import BrightRunError
from brightrun.workspace import Workspace, utcnow
from brightrun.workspace.files import read_json, write_json

STARTING_GRACE_S = 60.0
LOG_NAME = "enrichment.log"


@dataclass(frozen=True)
class EnrichmentState:
    """What the app shows: how many conversations wait, and the current or last run."""

    pending: int
    """Conversations not enriched at the current enrichment version (those that failed at it excluded)."""
    failed: int
    """Conversations whose enrichment failed at the current version (a run tries them again)."""
    running: bool
    state: str | None
    """starting, running, completed or failed; None when nothing was ever run with progress."""
    done: int
    total: int
    enriched: int
    pairs: int
    error: str | None
    finished_at: datetime | None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


def _state_path(ws: Workspace) -> Path:
    return ws.root / "documents" / "enrichment" / "run.json"


def _write(ws: Workspace, **fields) -> None:
    write_json(_state_path(ws), {"updated_at": utcnow().isoformat(), **fields})


def _read(ws: Workspace) -> dict:
    path = _state_path(ws)
    try:
        return read_json(path) if path.exists() else {}
    except BrightRunError:
        return {}  # half a state is no state: the next run writes it anew


def is_running(ws: Workspace) -> bool:
    """True when a live process holds the enrichment lock."""
    return ws.lock_held("enrichment")


def run_tracked(ws: Workspace, *, force: bool = False, progress: Callable[[int, int], None] | None = None,
                workers: int | None = 1, engine: str = "local") -> EnrichResult:
    """`enrich` (or `enrich_on_ray` with engine="ray"), writing its progress where `enrichment_state` (the
    app) reads it. Refused while another process enriches this workspace."""
    if is_running(ws):
        with ws.lock("enrichment", timeout=0):  # raises LockHeld, naming the holder's command and since when
            pass
    _write(ws, state="running", done=0, total=0, pid=os.getpid())

    def step(done: int, total: int) -> None:
        _write(ws, state="running", done=done, total=total, pid=os.getpid())
        if progress:
            progress(done, total)

    try:
        if engine == "ray":
            from brightrun.enrichment.on_ray import enrich_on_ray

            result = enrich_on_ray(ws, force=force, progress=step)
        else:
            result = enrich(ws, force=force, progress=step, workers=workers)
    except Exception as exc:
        _write(ws, state="failed", done=0, total=0, error=str(exc), finished_at=utcnow().isoformat())
        raise
    total = result.enriched + result.failed
    _write(ws, state="completed", done=total, total=total, enriched=result.enriched, failed=result.failed,
           pairs=result.pairs, finished_at=utcnow().isoformat())
    return result


def launch_enrichment(ws: Workspace) -> int:
    """Run `brightrun enrich` in a detached process; returns its pid. Its output goes to `logs/enrichment.log`.
    Refused while a run is live."""
    if is_running(ws) or _starting(_read(ws)):
        raise BrightRunError("enrichment is already running in this workspace. Fix: wait for it to finish; its "
                             "progress shows here.")
    _write(ws, state="starting", done=0, total=0)
    log_dir = ws.root / "logs"
    log_dir.mkdir(exist_ok=True)
    log = open(log_dir / LOG_NAME, "ab")  # noqa: SIM115 - handed to the child process
    env = {k: v for k, v in os.environ.items() if k != "BRIGHTRUN_WORKSPACE"}
    process = subprocess.Popen(
        [sys.executable, "-m", "brightrun", "enrich", "--workspace", str(ws.root)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        cwd=str(Path(__file__).resolve().parents[2]), start_new_session=True,
    )
    log.close()
    return process.pid


def _starting(saved: dict) -> bool:
    if saved.get("state") != "starting":
        return False
    age = (utcnow() - datetime.fromisoformat(saved["updated_at"])).total_seconds()
    return age < STARTING_GRACE_S


def pending_counts(ws: Workspace) -> tuple[int, int]:
    """(pending, failed): conversations not enriched at the current version, apart from those that failed at it;
    and those that failed at it. Counted once per data version of the two tables (`Workspace.memo`): the
    Overview, Conversations and Generate pages all show it, and at a million conversations the count is a
    join of every conversation to its status."""
    return ws.memo(("pending_counts", ENRICHMENT_VERSION), lambda: _pending_counts(ws),
                   tables=["conversations", "conversation_status"])


def _pending_counts(ws: Workspace) -> tuple[int, int]:
    # The conversations table and the status table, without the `conversations` view's join of every
    # conversation's quality row, which this count does not need.
    row = ws.sql("""
        SELECT coalesce(count_if(s.status IS DISTINCT FROM 'failed' OR s.enrichment_version IS DISTINCT FROM ?), 0),
               coalesce(count_if(s.status = 'failed' AND s.enrichment_version = ?), 0)
        FROM _t_conversations c LEFT JOIN _t_conversation_status s USING (conversation_id)
        WHERE s.status IS DISTINCT FROM 'completed' OR s.enrichment_version IS DISTINCT FROM ?""",
                 [ENRICHMENT_VERSION] * 3).row(0)
    return int(row[0]), int(row[1])


def enrichment_state(ws: Workspace) -> EnrichmentState:
    saved = _read(ws)
    running = is_running(ws)
    state = saved.get("state")
    if state in ("starting", "running") and not running and not _starting(saved):
        state = "failed"  # the process ended without saying so: it died
        saved.setdefault("error", f"the enrichment process stopped unexpectedly; see logs/{LOG_NAME} in the "
                                  "workspace. Fix: start it again")
    pending, failed = pending_counts(ws)
    finished = saved.get("finished_at")
    return EnrichmentState(
        pending=pending, failed=failed, running=running or _starting(saved), state=state,
        done=int(saved.get("done") or 0), total=int(saved.get("total") or 0),
        enriched=int(saved.get("enriched") or 0), pairs=int(saved.get("pairs") or 0), error=saved.get("error"),
        finished_at=datetime.fromisoformat(finished) if finished else None,
    )
