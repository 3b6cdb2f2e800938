"""Adaptive concurrency: halve on 429/529 and pause for retry-after; double back after successes."""

from __future__ import annotations

import asyncio
import random
import time


class AdaptiveLimiter:
    """Bounds calls in flight. On a rate limit the bound halves (to 1 at least) and every caller waits
    out the provider's retry-after (or a jittered backoff); after `limit` successes in a row the bound
    doubles again, up to the configured maximum. Like TCP, one burst cuts once: a 429 answering a
    call sent before the last cut (its epoch is old) does not cut again."""

    def __init__(self, maximum: int, *, base_backoff: float = 1.0) -> None:
        self.maximum = max(1, maximum)
        self.limit = self.maximum
        self.in_flight = 0
        self.paused_until = 0.0
        self.base_backoff = base_backoff
        self._streak = 0
        self._cond = asyncio.Condition()
        self.rate_limits = 0
        self.last_rate_limit: float | None = None
        self.epoch = 0

    async def acquire(self) -> int:
        """Wait for a slot; returns the epoch the call is sent under."""
        async with self._cond:
            while True:
                wait = self.paused_until - time.monotonic()
                if wait <= 0 and self.in_flight < self.limit:
                    self.in_flight += 1
                    return self.epoch
                try:
                    await asyncio.wait_for(self._cond.wait(), timeout=wait if wait > 0 else None)
                except TimeoutError:
                    pass

    async def release(self) -> None:
        async with self._cond:
            self.in_flight -= 1
            self._cond.notify_all()

    async def succeeded(self) -> None:
        async with self._cond:
            self._streak += 1
            if self._streak >= self.limit and self.limit < self.maximum:
                self.limit = min(self.maximum, self.limit * 2)
                self._streak = 0
                self._cond.notify_all()

    async def rate_limited(self, retry_after: float | None, epoch: int | None = None) -> None:
        async with self._cond:
            self.rate_limits += 1
            self.last_rate_limit = time.monotonic()
            self._streak = 0
            if epoch is None or epoch == self.epoch:
                self.limit = max(1, self.limit // 2)
                self.epoch += 1
            pause = retry_after if retry_after is not None else self.base_backoff * random.uniform(0.5, 1.5)
            self.paused_until = max(self.paused_until, time.monotonic() + pause)
            self._cond.notify_all()


def backoff(attempt: int, base: float, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter: between half and one and a half times base * 2^(n-1)."""
    return min(cap, base * 2 ** max(0, attempt - 1)) * random.uniform(0.5, 1.5)


class EarlyStop:
    """Watches the first `calls` outcomes of a run: when every one failed with the same non-retryable error
    (a refused schema, an unknown model), the run should stop instead of spending the rest on the same
    refusal. `note` returns the reason to stop, once, or None."""

    def __init__(self, calls: int = 5) -> None:
        self.calls = calls
        self.outcomes: list[str | None] = []

    def note(self, error: Exception | None) -> str | None:
        """Note a call's outcome: None for an answer or a retryable fault, else the non-retryable error."""
        if len(self.outcomes) >= self.calls:
            return None
        self.outcomes.append(None if error is None else f"{getattr(error, 'error_type', '')}: {error}")
        if len(self.outcomes) == self.calls and self.outcomes[0] is not None and len(set(self.outcomes)) == 1:
            return (f"the first {self.calls} calls all failed with the same error, so the run stopped early instead "
                    f"of spending the rest on it: {error}")
        return None
