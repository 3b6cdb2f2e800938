"""Benchmark: what publishing the Delta copies (brightrun.workspace.publish) adds to `ws.compact()`.

On the demo workspace (600 scripted conversations, `brightrun demo`), two copies in the same state are
compacted, one with `publish=False` and one as shipped; the difference is what publishing costs. Two
states are measured, each `--repeat` times (median printed, with every run):

  first     no Delta copy yet: every one of the 25 tables is written once (a one-off per workspace)
  steady    a Delta copy exists; then, as after a review session and a re-enrichment of a few
            conversations: 3 parts of feedback, 3 of training_pairs and 3 of conversation_status are
            appended, and `ws.compact()` compacts (and publishes) every table

Run:  .venv/bin/python bench/bench_publish.py [--conversations 600] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from brightrun.demo import build_demo
from brightrun.workspace import Workspace


def touch(ws: Workspace, n: int) -> None:
    """Append 3 small parts to each of feedback, training_pairs and conversation_status."""
    for i in range(3):
        feedback = ws.read("feedback", lambda r: r.head(n)).to_dicts()
        ws.append("feedback", [{**f, "feedback_id": f"{f['feedback_id']}-b{i}", "comment": f"bench {i}"}
                               for f in feedback])
        pairs = ws.read("training_pairs", lambda r: r.head(n)).to_dicts()
        ws.append("training_pairs", [{**p, "target_response": p["target_response"] + f" ({i})"} for p in pairs])
        status = ws.read("conversation_status", lambda r: r.head(n)).to_dicts()
        ws.append("conversation_status", status)


def timed_compact(root: Path, publish: bool) -> float:
    ws = Workspace.open(root)
    start = time.perf_counter()
    ws.compact(publish=publish)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as tmp:
        demo = Path(tmp) / "demo"
        build_demo(Workspace.open(demo), args.conversations, seed=42)
        Workspace.open(demo).compact()
        results: dict[str, dict[str, list[float]]] = {}
        for state in ("first", "steady"):
            runs: dict[str, list[float]] = {"compact only": [], "compact + publish": []}
            for _ in range(args.repeat):
                for label, publish in (("compact only", False), ("compact + publish", True)):
                    copy = Path(tmp) / "copy"
                    shutil.rmtree(copy, ignore_errors=True)
                    shutil.copytree(demo, copy, ignore=shutil.ignore_patterns("locks"))
                    if state == "first":
                        shutil.rmtree(copy / "delta")
                    else:
                        touch(Workspace.open(copy), 20)
                    runs[label].append(timed_compact(copy, publish))
            results[state] = runs
        print(f"demo workspace: {args.conversations} conversations; load average {os.getloadavg()}")
        for state, runs in results.items():
            only, both = (statistics.median(runs[k]) for k in ("compact only", "compact + publish"))
            print(f"{state:7s} compact only {only * 1000:7.0f} ms   compact + publish {both * 1000:7.0f} ms   "
                  f"publishing adds {(both - only) * 1000:6.0f} ms (median of {args.repeat})")
            for label, values in runs.items():
                print(f"        {label}: " + ", ".join(f"{v * 1000:.0f}" for v in values) + " ms")


if __name__ == "__main__":
    main()
