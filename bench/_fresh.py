"""Stages of bench_training_export.py timed in fresh processes, as a user runs them (`brightrun training-file
build`, `export`, `add`: each command a new process).

The benchmark's own stages run one after another in one process, and a process that has made two adds and a
build carries their memory with it: the same export took 95 s there and 70 s in a new process (2026-12-04).
Here each stage runs in a new Python process pinned like the benchmark (BRIGHTRUN_BENCH_CPU), which opens the
workspace and times only the call (not the interpreter's start or the imports), and prints one JSON line.

Run by the benchmark (fresh_rounds); by hand:
    python bench/_fresh.py build|export|add WORKSPACE NAME [OUT] [--ids FILE --first N]
"""

from __future__ import annotations

import os

_CPU = os.environ.get("BRIGHTRUN_BENCH_CPU", "0")
if _CPU != "all":
    os.sched_setaffinity(0, {int(_CPU)})

import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FORMAT = "openai_sft"


def _peak_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _stage(kind: str, root: str, name: str, out: str, ids_file: str | None, first: int) -> dict[str, Any]:
    from brightrun.training_files import add_conversations, build_version, create_training_file, get_version
    from brightrun.training_files.core import folder_of
    from brightrun.training_files.export import export_version
    from brightrun.workspace import Workspace

    ws = Workspace.open(root, threads=1)
    try:
        if kind == "add":
            ids = Path(ids_file).read_text().split() if ids_file else []
            create_training_file(ws, name, description="bench_training_export (fresh process)")
            add_conversations(ws, name, ids[:first], workers=None)
            todo = ids[first:]
        elif kind == "build":
            shutil.rmtree(folder_of(ws, name) / f"v{get_version(ws, name).version}", ignore_errors=True)
        else:
            shutil.rmtree(out, ignore_errors=True)
        start, cpu = time.perf_counter(), time.process_time()
        if kind == "add":
            version = add_conversations(ws, name, todo, workers=None)  # as the CLI
            done = {"members": len(version.member_ids), "added": len(todo)}
        elif kind == "build":
            built = build_version(ws, name)
            done = {"content_hash": built.content_hash, "pairs": built.training_pairs}
        else:
            exported = export_version(ws, name, FORMAT, Path(out), force_reason="benchmark (fresh process)")
            done = {"valid": exported.validation.ok}
        return {"stage": kind, "seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
                "peak_rss_kib": _peak_kib()} | done
    finally:
        ws.close()


def run(kind: str, root: Path, name: str, out: Path | None = None, ids: list[str] | None = None,
        first: int = 0, scratch: Path | None = None) -> dict[str, Any]:
    """One stage in a new process; its JSON line as a dict."""
    command = [sys.executable, __file__, kind, str(root), name, str(out or "")]
    if ids is not None:
        assert scratch is not None
        ids_file = scratch / "fresh-ids.txt"
        ids_file.write_text("\n".join(ids))
        command += ["--ids", str(ids_file), "--first", str(first)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the fresh {kind} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def fresh_rounds(root: Path, name: str, out: Path, rounds: int, say) -> dict[str, Any]:
    """`rounds` of (build, export) of training file `name`, each in a new process, alternating; medians."""
    builds, exports = [], []
    for k in range(rounds):
        builds.append(run("build", root, name))
        exports.append(run("export", root, name, out))
        say(f"  fresh round {k + 1}: build {builds[-1]['seconds']:,.2f} s, export {exports[-1]['seconds']:,.2f} s "
            f"(peak RSS {exports[-1]['peak_rss_kib'] / 1024:,.0f} MiB)")
    build = statistics.median(b["seconds"] for b in builds)
    export = statistics.median(e["seconds"] for e in exports)
    return {"builds": builds, "exports": exports, "build_median": build, "export_median": export,
            "ratio": export / build, "export_peak_kib": max(e["peak_rss_kib"] for e in exports)}


def main(argv: list[str]) -> int:
    kind, root, name, out = argv[:4]
    ids_file = argv[argv.index("--ids") + 1] if "--ids" in argv else None
    first = int(argv[argv.index("--first") + 1]) if "--first" in argv else 0
    print(json.dumps(_stage(kind, root, name, out, ids_file, first)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
