"""bench_pages' figures: one page's (or the review save's) times and CPU figures, their medians, its ratio to the
baseline and its budget, as a printed row and a JSON summary."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figure:
    name: str
    seconds: list[float]
    run_end_seconds: list[float]
    budget: float | None
    errors: int = 0
    """Exceptions the page showed (an error page is fast, and wrong)."""
    server_cpu_seconds: list[float] = field(default_factory=list)
    """CPU time of the Streamlit server process per first run (empty for the saves)."""
    browser_cpu_seconds: list[float] = field(default_factory=list)
    browser_thread_seconds: list[float] = field(default_factory=list)
    """CPU time of the browser page's main thread per first run (busy time less the waits for a core)."""
    """Main-thread busy time of the browser page per first run (empty for the saves)."""

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def run_end_median(self) -> float:
        return statistics.median(self.run_end_seconds)

    @property
    def server_cpu_median(self) -> float | None:
        return statistics.median(self.server_cpu_seconds) if self.server_cpu_seconds else None

    @property
    def browser_cpu_median(self) -> float | None:
        return statistics.median(self.browser_cpu_seconds) if self.browser_cpu_seconds else None

    @property
    def browser_thread_median(self) -> float | None:
        return statistics.median(self.browser_thread_seconds) if self.browser_thread_seconds else None

    def ratio(self, baseline: Figure | None) -> float | None:
        return self.median / baseline.median if baseline and baseline.median > 0 else None

    def within(self) -> bool | None:
        return None if self.budget is None else self.median < self.budget

    def row(self, baseline: Figure | None) -> str:
        ratio = self.ratio(baseline)
        within = self.within()
        verdict = "" if within is None else ("under" if within else "OVER") + f" {self.budget:g} s"
        return (f"{self.name:16s} {self.median * 1000:7.0f} {min(self.seconds) * 1000:7.0f} "
                f"{max(self.seconds) * 1000:7.0f} {self.run_end_median * 1000:7.0f} "
                f"{_ms(self.server_cpu_median):>7s} {_ms(self.browser_cpu_median):>7s} "
                f"{_ms(self.browser_thread_median):>7s} "
                f"{'' if ratio is None else f'{ratio:.1f}x':>6s}  {verdict}"
                + (f"  ({self.errors} exception(s) shown!)" if self.errors else ""))

    def summary(self, baseline: Figure | None) -> dict[str, Any]:
        return {"name": self.name, "median_s": self.median, "min_s": min(self.seconds), "max_s": max(self.seconds),
                "run_end_median_s": self.run_end_median, "runs_s": self.seconds, "run_end_runs_s": self.run_end_seconds,
                "server_cpu_median_s": self.server_cpu_median, "browser_cpu_median_s": self.browser_cpu_median,
                "server_cpu_runs_s": self.server_cpu_seconds, "browser_cpu_runs_s": self.browser_cpu_seconds,
                "browser_thread_median_s": self.browser_thread_median,
                "browser_thread_runs_s": self.browser_thread_seconds,
                "ratio_to_baseline": self.ratio(baseline), "budget_s": self.budget, "within_budget": self.within(),
                "exceptions_shown": self.errors}


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.0f}"


HEADER = (f"{'':16s} {'median':>7s} {'min':>7s} {'max':>7s} {'run end':>7s} {'srv CPU':>7s} {'brw CPU':>7s} "
          f"{'brw thr':>7s} {'ratio':>6s}  (ms; run end and CPU: medians)")
