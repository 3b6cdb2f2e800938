"""The quality report's time and memory, step by step, on an existing workspace (issue 18: under 4 GiB at
1,000,000 conversations).

    .venv/bin/python bench/bench_quality_memory.py --workspace /tmp/ws1m --workers 2

Runs what `brightrun quality report --workers N` runs (build_quality_report, then save_quality_report), printing
each step and, every 5 s of a long step, its counts, with the seconds since the start, this process's resident
memory and its peak. A thread samples the resident memory of this process and of every process it started (the
pool's workers and forkserver) once a second; the peak of that sum is printed at the end, beside `ru_maxrss`
(this process alone). There is no baseline to run beside it: the in-memory report it replaced held
every text at once and passed 14 GiB at this size (docs/benchmarks.md). Exit status 1 when the summed peak
reaches --budget-mib.
"""

from __future__ import annotations

import argparse
import resource
import sys
import threading
import time

import psutil


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--workers", type=int, default=None, help="default: the core count")
    parser.add_argument("--budget-mib", type=float, default=4096)
    args = parser.parse_args()

    from brightrun.quality.report import build_quality_report, save_quality_report
    from brightrun.workspace import Workspace

    me = psutil.Process()
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            peak[0] = max(peak[0], total)
            done.wait(1.0)

    threading.Thread(target=sample, daemon=True).start()
    started, last = time.perf_counter(), [0.0]

    def say(message: str) -> None:
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{time.perf_counter() - started:8.1f} s  rss {me.memory_info().rss / 2**20:6.0f} MiB  peak {own:6.0f} MiB"
              f"  {message}", flush=True)

    def counts(what: str, n: int, total: int) -> None:
        if time.perf_counter() - last[0] >= 5 or n == total:
            last[0] = time.perf_counter()
            say(f"{what} {n:,}/{total:,}")

    ws = Workspace.open(args.workspace)
    report = build_quality_report(ws, progress=say, counts=counts, workers=args.workers)
    say("built")
    save_quality_report(ws, report)
    say("saved")
    done.set()
    total = peak[0] / 2**20
    print(f"summed peak of the process tree {total:,.0f} MiB (budget {args.budget_mib:,.0f}); this process "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB; {time.perf_counter() - started:.1f} s")
    return 0 if total < args.budget_mib else 1


if __name__ == "__main__":
    sys.exit(main())
