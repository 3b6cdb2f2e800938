"""Helpers shared by the benchmarks: memory and disk measurement, and building a scripted workspace.

Import this module only after the benchmark has pinned itself to one core (it imports nothing heavy
itself; `build_scripted_workspace` imports the generation package when it is called).
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SEED = 42
MEMORY_BUDGET_KIB = 4 * 1024 * 1024  # 4 GiB


def peak_rss_kib() -> int:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def rss_now_kib() -> int:
    """Resident set size of this process now (from /proc, without psutil)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def hwm_kib() -> int:
    """Peak resident set size of this process's own memory (VmHWM). Unlike ru_maxrss it does not
    inherit the peak of the parent that started the process, and `reset_hwm` can restart it."""
    return _status_kib("VmHWM")


def reset_hwm() -> bool:
    """Restart the VmHWM peak from the current RSS (Linux >= 4.0); False when not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def disk_bytes(root: Path) -> int:
    total = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                pass
    return total


def parquet_files(root: Path) -> int:
    return sum(1 for _ in (root / "tables").rglob("*.parquet"))


def mib(kib_or_bytes: float, *, from_bytes: bool = False) -> float:
    return kib_or_bytes / (1024 * 1024) if from_bytes else kib_or_bytes / 1024


@dataclass
class Build:
    job_id: str
    job_seed: int
    create_seconds: float
    run_seconds: float
    done: int
    failed: int
    status: str
    cells: int
    cells_used: int

    @property
    def seconds(self) -> float:
        return self.create_seconds + self.run_seconds


def create_scripted_job(ws: Any, n: int, *, seed: int = SEED, job_id: str = "bench", note: str = "bench") -> Any:
    """`plan_spread` over the whole scaffold grid and `create_job` for `n` scripted conversations."""
    from brightrun.generation import create_job, plan_spread
    from brightrun.providers import ScriptedProvider

    scaffolding = ws.scaffolding
    plan = plan_spread(scaffolding.cells(), n, seed, scaffolding)
    job = create_job(ws, plan, provider="scripted", model=ScriptedProvider.default_model, seed=seed,
                     job_id=job_id, note=note)
    return job, plan


def run_scripted_job(ws: Any, job_id: str) -> Any:
    """`run_job` with the scripted provider, as the workspace benchmark runs it."""
    from brightrun.generation import run_job
    from brightrun.providers import ScriptedProvider

    return run_job(ws, job_id, ScriptedProvider(), concurrency=8, flush_items=1000)


def build_scripted_workspace(ws: Any, n: int, *, seed: int = SEED, job_id: str = "bench",
                             note: str = "bench") -> Build:
    """A workspace of `n` scripted conversations: plan, create the job, run it (timed separately)."""
    start = time.perf_counter()
    job, plan = create_scripted_job(ws, n, seed=seed, job_id=job_id, note=note)
    create_seconds = time.perf_counter() - start
    start = time.perf_counter()
    done = run_scripted_job(ws, job.job_id)
    run_seconds = time.perf_counter() - start
    return Build(job.job_id, job.seed, create_seconds, run_seconds, done.done, done.failed, done.status,
                 len(ws.scaffolding.cells()), len(plan))
