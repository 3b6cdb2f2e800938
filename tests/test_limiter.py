"""The adaptive limiter: one burst of 429s cuts once, successes double the bound back."""

from __future__ import annotations

import asyncio
import time

from brightrun.generation.limiter import AdaptiveLimiter, backoff


def test_a_burst_of_rate_limits_halves_once_and_successes_recover() -> None:
    async def scenario() -> None:
        limiter = AdaptiveLimiter(64)
        epochs = [await limiter.acquire() for _ in range(64)]
        for epoch in epochs:  # all 64 calls in flight come back 429
            await limiter.release()
            await limiter.rate_limited(0.01, epoch)
        assert limiter.limit == 32 and limiter.rate_limits == 64
        epoch = await limiter.acquire()  # a call sent after the cut, refused again: cut again
        await limiter.release()
        await limiter.rate_limited(0.01, epoch)
        assert limiter.limit == 16
        await asyncio.sleep(0.02)
        for _ in range(16 + 32):
            await limiter.acquire()
            await limiter.release()
            await limiter.succeeded()
        assert limiter.limit == 64

    asyncio.run(scenario())


def test_rate_limit_pauses_every_caller_for_retry_after() -> None:
    async def scenario() -> float:
        limiter = AdaptiveLimiter(4)
        epoch = await limiter.acquire()
        await limiter.release()
        await limiter.rate_limited(0.3, epoch)
        started = time.monotonic()
        await limiter.acquire()
        return time.monotonic() - started

    assert asyncio.run(scenario()) >= 0.25


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    samples = [backoff(n, 0.5) for n in (1, 2, 3, 4) for _ in range(50)]
    first, fourth = samples[:50], samples[150:]
    assert 0.25 <= min(first) and max(first) <= 0.75
    assert 2.0 <= min(fourth) and max(fourth) <= 6.0
    assert backoff(30, 0.5, cap=30) <= 45
