"""Benchmark: every page's first run and a review save, in headless Chromium, on the demo workspace.

The budget (issue 17): on the 600-conversation demo, every page finishes its first run in under 1.5 s
and a review save in under 0.5 s.

How it is measured:

  workspace  `build_demo(ws, 600, seed=42)` (what `brightrun demo` builds) in a temporary folder, or a
             copy of `--workspace DIR` (a copy: the review saves write feedback)
  servers    `streamlit run app.py` over it, and, as the baseline, a second Streamlit server running a
             one-line app (`st.write`) from a temporary folder with the same `.streamlit/config.toml`;
             both as the browser tests start them (tests/browser/conftest.py: AppServer, a free port,
             headless, no file watcher)
  browser    Playwright's sync API, headless Chromium (/usr/bin/chromium), one browser context and a
             1400x1000 viewport. Each server's root is opened once first (its cold start: Python
             imports, the workspace's first open), reported apart and not counted
  first run  for each page of the app's navigation (read from app.py's `st.Page` calls) and the
             baseline, `--repeat` times, round-robin: a new page (a new Streamlit session, hence the
             page's first run) opens the page's URL; timed from `page.goto` until the first script run
             has finished and the app is idle (`wait_idle`: the run's `script_finished` message on the
             app's websocket, then `[data-testid="stApp"]` in state notRunning, then two animation
             frames). Also "run end": until the run's `script_finished` message reached the browser
             (the rest of "idle" is the browser drawing what the run sent). And the CPU each side spent
             on it, less sensitive to the load of a shared machine than the times: "server CPU", the
             Streamlit server process's user + system time (/proc) from `page.goto` until the page has
             settled (idle, then no network request for 500 ms: the lazily loaded chart code is
             fetched and run by then), and "browser CPU", the page's main-thread busy time
             (Chrome DevTools Performance metric TaskDuration) until then, and "brw thread", that
             thread's CPU time (metric ThreadTime): busy time counts the waits for a core, CPU time does not
  save       on Review (`?reviewer=bench`, the first conversation of the queue), `--repeat` times on
             its advisor turns in order: open the turn's "Your judgement" if it is closed (not timed;
             only the turn in focus opens by itself), pick a thumbs (up, then down on the next pass over the turns,
             so every save changes something), then time from the click on the turn's Save until the
             turn shows "judged by you: thumbs up/down" (polled on every animation frame). The same
             on the baseline app: a form with one `st.feedback` and Save in an `st.fragment`. Also
             "run end": until the fragment run's `script_finished` message reached the browser (the
             saved mark is drawn before the rest of the turn: its form and history)

Median, min and max of each; ratio = median / the baseline's median. The load average
(`os.getloadavg()`) is printed before and after with the machine's cores. It does not pin itself to one
core: the bench, the Streamlit servers and Chromium all run at once, as they do for a user.

Run:  .venv/bin/python bench/bench_pages.py [--conversations 600] [--repeat 5] [--workspace DIR] [--json]
                                            [--pages "Overview,Quality"]
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _page_figures import HEADER, Figure  # noqa: E402

PAGE_BUDGET_S = 1.5
SAVE_BUDGET_S = 0.5
TIMEOUT_MS = 60_000
REVIEWER = "bench"
SAVED_TEXT = "judged by you: thumbs {}"
"""What a saved turn of the Review page shows (pages/views/review.py `_review_turn`)."""
TURN_KEY = "rv_turn_"
"""The key prefix of each advisor turn's container on the Review page (`st-key-rv_turn_<pair_id>` class)."""
JUDGE_LABEL = "Your judgement"
"""A Review turn's expander: its form (thumbs, Save) is drawn while it is open (by itself: the turn in focus)."""
BASELINE_APP = '''import streamlit as st

st.write("baseline")

if st.query_params.get("form"):
    @st.fragment
    def turn():
        with st.container(key="rv_turn_baseline"):
            thumbs = st.session_state.get("thumbs")
            if thumbs is not None:
                st.write("judged by you: thumbs " + ("up" if thumbs else "down"))
            with st.form("f"):
                st.feedback("thumbs", key="thumbs")
                st.form_submit_button("Save")

    turn()
'''
"""The baseline: an empty page (one st.write); with ?form=1, also a fragment with a thumbs form."""


def _browser_helpers() -> Any:
    """tests/browser/conftest.py (AppServer, track, wait_idle, find_chromium, ...), loaded under its own
    name so it never clashes with tests/conftest.py."""
    path = ROOT / "tests" / "browser" / "conftest.py"
    spec = importlib.util.spec_from_file_location("browser_conftest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the app's pages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppPage:
    title: str
    script: str
    url_path: str
    """"" for the default page (the app's root), else what Streamlit infers from the file name."""


def app_pages(app: Path = ROOT / "app.py") -> list[AppPage]:
    """The pages of `app`'s `st.navigation`, in order, from its `st.Page(...)` calls (read, not run)."""
    from streamlit.source_util import page_icon_and_name

    pages = []
    for node in ast.walk(ast.parse(app.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "Page"):
            continue
        script = ast.literal_eval(node.args[0])
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg in ("title", "url_path", "default")}
        inferred = page_icon_and_name(Path(script))[1]
        url_path = "" if kwargs.get("default") else kwargs.get("url_path", inferred).strip("/")
        pages.append(AppPage(kwargs.get("title") or inferred.replace("_", " "), script, url_path))
    return pages


# -- measuring ------------------------------------------------------------------------------------


@dataclass
class FirstRun:
    idle: float
    run_end: float
    errors: int
    server_cpu: float
    browser_cpu: float
    browser_thread: float


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process `pid`, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def first_run(h: Any, context: Any, url: str, server_pid: int) -> FirstRun:
    """Open `url` in a new page (a new session): seconds until idle, until the run's end reached the
    browser, the exceptions shown, and the CPU seconds the server and the page's main thread spent until
    the page settled (idle, then no request for 500 ms)."""
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    tracker = h.track(page)
    devtools = context.new_cdp_session(page)
    devtools.send("Performance.enable")
    try:
        cpu_before = process_cpu(server_pid)
        start = time.perf_counter()
        page.goto(url)
        h.wait_idle(page, timeout=TIMEOUT_MS)
        idle = time.perf_counter() - start
        run_end = tracker.finished_at[0] - start
        page.wait_for_load_state("networkidle")
        server_cpu = process_cpu(server_pid) - cpu_before
        metrics = {m["name"]: m["value"] for m in devtools.send("Performance.getMetrics")["metrics"]}
        return FirstRun(idle, run_end, page.locator('[data-testid="stException"]').count(), server_cpu,
                        metrics["TaskDuration"], metrics["ThreadTime"])
    finally:
        page.close()


_SAVED_JS = """([selector, text]) => {
    const box = document.querySelector(selector);
    return !!box && box.innerText.includes(text);
}"""


def saves(h: Any, context: Any, url: str, repeat: int) -> tuple[list[float], list[float]]:
    """`repeat` saves of a thumbs on the turns of the page at `url`: seconds until the saved state shows,
    and until the fragment run's end reached the browser."""
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    tracker = h.track(page)
    shown, run_end = [], []
    try:
        page.goto(url)
        h.wait_idle(page, timeout=TIMEOUT_MS)
        boxes = page.locator(f'[class*="st-key-{TURN_KEY}"]')
        keys = [next(c for c in (boxes.nth(i).get_attribute("class") or "").split() if c.startswith(f"st-key-{TURN_KEY}"))
                for i in range(boxes.count())]
        if not keys:
            raise RuntimeError(f"no turn to judge at {url} (no element with class st-key-{TURN_KEY}...)")
        for i in range(repeat):
            key = keys[i % len(keys)]
            up = (i // len(keys)) % 2 == 0
            box = page.locator(f".{key}").first
            box.scroll_into_view_if_needed()
            if not box.get_by_role("button", name="Save").count():  # a closed turn: open its form (not timed)
                h.rerun_after(page, box.get_by_text(JUDGE_LABEL).first.click, timeout=TIMEOUT_MS)
            box.get_by_role("radio", name="Thumbs up" if up else "Thumbs down").click()
            save = box.get_by_role("button", name="Save")
            before = tracker.finished
            start = time.perf_counter()
            save.click()
            page.wait_for_function(_SAVED_JS, arg=[f".{key}", SAVED_TEXT.format("up" if up else "down")],
                                   polling="raf", timeout=TIMEOUT_MS)
            shown.append(time.perf_counter() - start)
            h._wait_runs(page, tracker, before + 1, TIMEOUT_MS)
            run_end.append(tracker.finished_at[before] - start)
            h.wait_idle(page, timeout=TIMEOUT_MS)
    finally:
        page.close()
    return shown, run_end


def baseline_dir(tmp: Path) -> Path:
    """A folder with the baseline app and the repo's .streamlit/config.toml."""
    folder = tmp / "baseline"
    (folder / ".streamlit").mkdir(parents=True)
    (folder / "app.py").write_text(BASELINE_APP)
    shutil.copy(ROOT / ".streamlit" / "config.toml", folder / ".streamlit" / "config.toml")
    return folder


def build_workspace(tmp: Path, conversations: int, source: Path | None) -> Path:
    from brightrun.demo import build_demo
    from brightrun.workspace import Workspace

    root = tmp / "ws"
    if source is not None:
        shutil.copytree(source, root, ignore=shutil.ignore_patterns("locks"))
    else:
        build_demo(Workspace.open(root), conversations, seed=42)
    return root


def measure(args: argparse.Namespace, tmp: Path, log: Callable[[str], None]) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    h = _browser_helpers()
    chromium = h.find_chromium()
    if chromium is None:
        raise SystemExit("error: Chromium not found. Fix: apt-get install chromium (or put `chromium` on PATH).")
    start = time.perf_counter()
    root = build_workspace(tmp, args.conversations, args.workspace)
    build_s = time.perf_counter() - start
    conversations = _count(root)
    log(f"workspace: {conversations} conversations at {root} ({build_s:.1f} s)")
    pages = [pg for pg in app_pages() if not args.pages or pg.title in args.pages]
    unknown = set(args.pages or ()) - {pg.title for pg in pages}
    if unknown:
        raise SystemExit(f"error: no page titled {', '.join(sorted(unknown))}. Fix: name pages as app.py titles them: "
                         + ", ".join(pg.title for pg in app_pages()) + ".")
    load_before = os.getloadavg()
    app = h.AppServer(root, tmp / "logs" / "app.log")
    base = h.AppServer(root, tmp / "logs" / "baseline.log", app_dir=baseline_dir(tmp))
    figures: dict[str, Figure] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=h.CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            pids = {app.url: app.process.pid, base.url: base.process.pid}
            cold = {"app": first_run(h, context, app.url, app.process.pid).idle,
                    "baseline": first_run(h, context, base.url, base.process.pid).idle}
            log(f"cold start (first run after the server started, not counted): app {cold['app'] * 1000:.0f} ms, "
                f"baseline {cold['baseline'] * 1000:.0f} ms")
            targets = [("baseline", base.url, base.url, None)] + [
                (pg.title, app.url, f"{app.url}/{pg.url_path}", PAGE_BUDGET_S) for pg in pages]
            for name, _, _, budget in targets:
                figures[name] = Figure(name, [], [], budget)
            for round_ in range(args.repeat):
                for name, server, url, _ in targets:
                    run = first_run(h, context, url, pids[server])
                    figure = figures[name]
                    figure.seconds.append(run.idle)
                    figure.run_end_seconds.append(run.run_end)
                    figure.server_cpu_seconds.append(run.server_cpu)
                    figure.browser_cpu_seconds.append(run.browser_cpu)
                    figure.browser_thread_seconds.append(run.browser_thread)
                    figure.errors += run.errors
                log(f"round {round_ + 1} of {args.repeat} done")
            figures["baseline save"] = Figure("baseline save", *saves(h, context, f"{base.url}/?form=1", args.repeat),
                                              None)
            figures["Review save"] = Figure("Review save", *saves(h, context, f"{app.url}/review?reviewer={REVIEWER}",
                                                                  args.repeat), SAVE_BUDGET_S)
            browser.close()
    finally:
        app.stop()
        base.stop()
    load_after = os.getloadavg()
    baseline, baseline_save = figures.pop("baseline"), figures.pop("baseline save")
    page_figures = [f for f in figures.values() if f.name != "Review save"]
    save = figures["Review save"]
    return {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "load_before": load_before, "load_after": load_after, "conversations": conversations, "repeat": args.repeat,
        "cold_start_s": cold, "baseline": baseline.summary(None), "baseline_save": baseline_save.summary(None),
        "pages": [f.summary(baseline) for f in page_figures], "review_save": save.summary(baseline_save),
        "all_within_budget": all(f.within() for f in [*page_figures, save]) and not any(
            f.errors for f in page_figures),
        "_rows": [HEADER, baseline.row(None), *(f.row(baseline) for f in page_figures), baseline_save.row(None),
                  save.row(baseline_save)],
    }


def _count(root: Path) -> int:
    from brightrun.workspace import Workspace

    return Workspace.open(root).scalar("SELECT count(*) FROM conversations")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workspace", type=Path, default=None,
                        help="measure a copy of this workspace instead of building the demo")
    parser.add_argument("--json", action="store_true", help="also print a JSON summary")
    parser.add_argument("--pages", type=lambda text: [t.strip() for t in text.split(",")], default=None,
                        help="only these pages, by title, comma-separated (default: every page)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
        result = measure(args, Path(tmp), lambda line: print(line, flush=True))
    rows = result.pop("_rows")
    print(f"\nmachine: {result['machine']['cores']} cores; load average before {_load(result['load_before'])}, "
          f"after {_load(result['load_after'])}; {result['conversations']} conversations; median of "
          f"{result['repeat']}; ratio = median / the baseline's (the empty page; for the save, the baseline form)")
    print("\n".join(rows))
    print(f"\nbudgets (pages < {PAGE_BUDGET_S:g} s, review save < {SAVE_BUDGET_S:g} s): "
          + ("all met" if result["all_within_budget"] else "NOT all met"))
    if args.json:
        print(json.dumps(result, indent=2))


def _load(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{v:.2f}" for v in load)


if __name__ == "__main__":
    main()
