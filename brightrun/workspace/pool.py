"""A process pool over chunks, for the stages that use every core (enrichment, the quality report, the
training-file build).

Workers compute pure functions on what the parent sends them and return rows; only the parent writes the
workspace (the build's workers read table files to shape their chunk, and write nothing). The pool uses the "forkserver" start method (never fork: a
forked child of a process that runs DuckDB's or polars' threads can deadlock on a lock a thread held), so a
worker imports what it needs afresh. With one worker nothing is started: the function runs in this process.

`map_ordered` keeps at most `workers + 1` chunks in flight, so the parent reads the next chunk while the
workers compute, memory stays bounded, and results come back in the order of the chunks: a run with N
workers commits the same rows in the same order as a run with one.

A worker never runs the parent's main script. multiprocessing re-runs it in each new worker (as `__mp_main__`)
unless told otherwise, and a Streamlit page is a main script with no `if __name__ == "__main__":` guard: each
worker would have run the whole page. So workers start while `__main__` is a blank module, and the mapped
function must live in an importable module (all of them are in the `brightrun` package).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import types
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, nullcontext
from multiprocessing import forkserver
from typing import Any, TypeVar

from brightrun.errors import BrightRunError

T = TypeVar("T")
R = TypeVar("R")

START_METHOD = "forkserver"


def default_workers() -> int:
    """The cores this process may run on (the `--workers` default)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def check_workers(workers: int | None) -> int:
    """`workers`, or the core count for None; a value under 1 is refused with its fix."""
    if workers is None:
        return default_workers()
    if workers < 1:
        raise BrightRunError(f"--workers {workers} is not a number of processes. Fix: give 1 or more (the default "
                             f"is the core count, {default_workers()}).")
    return workers


def workers_for(workers: int, chunks: int) -> int:
    """No more workers than chunks: a pool for one chunk would only add its start-up time."""
    return max(1, min(workers, chunks))


_POOLS: dict[int, ProcessPoolExecutor] = {}
_MAIN_LOCK = threading.Lock()


@contextmanager
def _workers_skip_main() -> Iterator[None]:
    """Within the block, processes started from this one do not re-run its main script: multiprocessing finds
    the script to re-run in sys.modules["__main__"] when it starts a process, and here finds a blank module.
    The real one is put back unless another thread (a Streamlit script run) set a new one meanwhile."""
    blank = types.ModuleType("__main__")
    with _MAIN_LOCK:
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = blank
        try:
            yield
        finally:
            if sys.modules.get("__main__") is blank:
                if main is None:
                    del sys.modules["__main__"]
                else:
                    sys.modules["__main__"] = main


def _new_pool(workers: int, preload: list[str]) -> ProcessPoolExecutor:
    """A forkserver pool whose workers compute on one thread each. The forkserver imports `preload` once (it has
    no threads yet) and each worker forks from it already loaded. It is started here with POLARS_MAX_THREADS=1
    (polars sizes its thread pool when imported): N workers that each ran a thread per core oversubscribed the
    cores, and 2 of them were no faster than one process (docs/benchmarks.md)."""
    context = multiprocessing.get_context(START_METHOD)
    context.set_forkserver_preload(preload)
    saved = os.environ.get("POLARS_MAX_THREADS")
    os.environ["POLARS_MAX_THREADS"] = "1"
    try:
        forkserver.ensure_running()  # once per process: later pools fork from the same server
    finally:
        if saved is None:
            del os.environ["POLARS_MAX_THREADS"]
        else:
            os.environ["POLARS_MAX_THREADS"] = saved
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)


@contextmanager
def pool_kept(workers: int, preload: list[str]) -> Iterator[None]:
    """Within the block, map_ordered calls with this many workers share one pool (a stage that maps several
    times pays for starting the workers once)."""
    if workers <= 1 or workers in _POOLS:
        yield
        return
    _POOLS[workers] = pool = _new_pool(workers, preload)
    try:
        yield
    finally:
        del _POOLS[workers]
        pool.shutdown(cancel_futures=True)


def map_ordered(fn: Callable[..., R], chunks: Iterable[T], workers: int, *,
                shared: tuple[Any, ...] = (), beside: bool = False) -> Iterator[tuple[T, R]]:
    """(chunk, fn(chunk, *shared)) for each chunk, in order. `fn` must be a module-level function of an
    importable module (not the main script) and its arguments and result picklable; with workers > 1 (or
    `beside`: work that runs beside the caller's own, even one worker is a process) it runs in a forkserver
    pool of that many processes (the one pool_kept holds, else a new one), with at most workers + 1 chunks
    submitted ahead of the one being returned."""
    if workers <= 1 and not (beside and workers == 1):
        for chunk in chunks:
            yield chunk, fn(chunk, *shared)
        return
    try:
        yield from _map_in_pool(fn, chunks, workers, shared)
    except BrokenProcessPool as exc:
        raise BrightRunError(
            f"a worker process died before it finished its chunk ({exc}); what was committed before stays, and "
            f"the rest is taken up by the next run. Fix: run again, with fewer --workers if the machine ran out "
            f"of memory (each worker holds a chunk and what it makes of it).") from exc


def _map_in_pool(fn: Callable[..., R], chunks: Iterable[T], workers: int,
                 shared: tuple[Any, ...]) -> Iterator[tuple[T, R]]:
    kept = _POOLS.get(workers)
    pending: deque[tuple[T, Future]] = deque()
    with nullcontext(kept) if kept else _new_pool(workers, [fn.__module__]) as pool:
        try:
            for chunk in chunks:
                with _workers_skip_main():  # a submit may start a worker
                    future = pool.submit(fn, chunk, *shared)
                pending.append((chunk, future))
                if len(pending) > workers:
                    done, future = pending.popleft()
                    yield done, future.result()
            while pending:
                done, future = pending.popleft()
                yield done, future.result()
        finally:
            for _, future in pending:
                future.cancel()
