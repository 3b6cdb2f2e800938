"""What a job run is given and what it reports: its settings (concurrency, attempts, flushing, backoff) and
its progress (counts, tokens, spend), passed to a progress callback at every flush. The runner
(runner.py) does the work; the CLI, the app and notebooks see these."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

ProgressFn = Callable[["JobProgress"], None]


@dataclass
class RunSettings:
    concurrency: int = 8
    max_attempts: int = 3
    flush_items: int = 200
    flush_seconds: float = 1.0
    backoff_base: float = 0.5
    max_rate_limit_waits: int = 200
    poll_seconds: float = 30.0
    batch_size: int = 2000


@dataclass
class JobProgress:
    job_id: str
    total: int
    done: int
    failed: int
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    requests: int = 0
    cache_hits: int = 0
    rate_limits: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def finished(self) -> int:
        return self.done + self.failed
