"""brightrun.aio.run: async work started from a plain script and from inside a running loop (a notebook)."""

from __future__ import annotations

import asyncio
import threading

from brightrun import aio


async def _where() -> tuple[int, int]:
    await asyncio.sleep(0)
    return threading.get_ident(), 42


def test_without_a_loop_it_runs_in_this_thread() -> None:
    assert aio.run(_where()) == (threading.get_ident(), 42)


def test_inside_a_running_loop_it_runs_in_another_thread() -> None:
    async def cell() -> tuple[int, int]:  # what a Jupyter cell is: code inside a running loop
        return aio.run(_where())

    thread, value = asyncio.run(cell())
    assert value == 42 and thread != threading.get_ident()
