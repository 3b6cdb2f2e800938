"""Browser tests: the app as a real Streamlit server, driven in headless Chromium with Playwright.

Chromium is the system one (`chromium` on PATH, else /usr/bin/chromium); `playwright install` is never
needed. Without Chromium (or Playwright) the browser tests are skipped, except when $CI is set (CI=true):
CI installs Chromium, so a skip there would hide a broken setup, and the tests fail instead.

Synchronisation never relies on sleeps. Streamlit 1.67 exposes the script state on the app root:
`[data-testid="stApp"][data-test-script-state]` is "initial" before the first run, then "running" /
"rerunRequested" / "stopRequested" while the script runs and "notRunning" (or "compilationError") when it
is done. That attribute alone can miss a quick rerun (React may batch both states into one render), so
pages from the `browser` fixture also count the runs the server reports finished on the app's websocket
(RunTracker). `wait_idle` waits for a finished run and an idle page; `rerun_after` does an action and
waits for the rerun it causes.

Helpers for test modules (import them with `from conftest import ...`): AppServer, wait_idle, rerun_after,
choose, open_deep_link.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
STARTUP_TIMEOUT_S = 60.0
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
IDLE_STATES = ("notRunning", "compilationError")


# ---------------------------------------------------------------------------------------------- marking

def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test in this folder drives a browser: mark it, so `-m "not browser"` leaves it out."""
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> None:
    """Skip locally; fail under CI, where the browser setup is supposed to be complete."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def find_chromium() -> str | None:
    for candidate in (shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


# ------------------------------------------------------------------------------------------- the server

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "<no log>"
    return "\n".join(text.splitlines()[-lines:]) or "<empty>"


class AppServer:
    """The app served as `make run` serves it (`python -m brightrun.ui.serve`, that is `streamlit run app.py`)
    from the repo root (or `streamlit run app.py` in `app_dir`) over `workspace`, on a free port of 127.0.0.1.

    The constructor returns once /_stcore/health answers ok (bounded by `timeout`); stderr goes to
    `log_path`, stdout next to it. Call `stop()` when done (terminate, then kill if it does not stop).
    """

    def __init__(self, workspace: Path, log_path: Path, *, env: Mapping[str, str] | None = None,
                 timeout: float = STARTUP_TIMEOUT_S, app_dir: Path = ROOT) -> None:
        self.workspace = Path(workspace)
        self.app_dir = Path(app_dir)
        """The folder holding the `app.py` to serve (the repo root; a benchmark's baseline app elsewhere)."""
        self.stderr_path = Path(log_path)
        self.stdout_path = self.stderr_path.with_name(self.stderr_path.stem + ".stdout.log")
        self.stderr_path.parent.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ, **(env or {}), BRIGHTRUN_WORKSPACE=str(self.workspace),
                        PYTHONUNBUFFERED="1")
        self.process: subprocess.Popen | None = None
        self.url = ""
        # Another process may take the free port between probing and binding: retry with a new one.
        for attempt in range(3):
            try:
                self._start(timeout)
                return
            except _ExitedEarly:
                if attempt == 2:
                    raise RuntimeError(f"Streamlit exited with code {self.process.returncode} before it was "
                                       f"healthy.\n{self.logs()}") from None

    def _start(self, timeout: float) -> None:
        port = _free_port()
        # BrightRun's app is served as `make run` serves it (brightrun.ui.serve); another app with streamlit
        launch = ["brightrun.ui.serve"] if self.app_dir == ROOT else ["streamlit", "run", "app.py"]
        command = [sys.executable, "-m", *launch,
                   "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
                   "--browser.gatherUsageStats", "false",
                   # Sources may be edited while the tests run: do not watch them.
                   "--server.fileWatcherType", "none"]
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(command, cwd=self.app_dir, env=self.env, stdout=out, stderr=err,
                                            stdin=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise _ExitedEarly
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.status == 200 and response.read().strip() == b"ok":
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Streamlit was not healthy at {self.url} within {timeout:.0f} s.\n"
                                   f"{self.logs()}")
            time.sleep(0.2)

    def logs(self) -> str:
        return (f"--- streamlit stderr ({self.stderr_path}), tail ---\n{_tail(self.stderr_path)}\n"
                f"--- streamlit stdout ({self.stdout_path}), tail ---\n{_tail(self.stdout_path)}")

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class _ExitedEarly(Exception):
    pass


@contextlib.contextmanager
def serve(workspace: Path, log_path: Path) -> Iterator[AppServer]:
    """The app served over `workspace` for the duration of the block (a start failure fails the test)."""
    try:
        server = AppServer(workspace, log_path)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def demo_app(demo_ws_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """The app served over the session's demo workspace (read-only use)."""
    with serve(demo_ws_path, tmp_path_factory.mktemp("streamlit") / "streamlit.log") as server:
        yield server


# ------------------------------------------------------------------------------------------ the browser

@pytest.fixture(scope="module")
def browser(demo_ws_path: Path) -> Iterator[TrackedBrowser]:
    """Headless system Chromium (skipped when absent, failed when absent under CI). Pages made from it
    (`new_page`, or pages of `new_context()`) count the script runs the app finishes, see RunTracker.

    Playwright's sync API keeps an asyncio loop marked as running on the main thread while it is open, so
    `asyncio.run` (used by job runs, hence by `build_demo`) fails in this process until it is closed. Hence
    module scope, and the demo workspace is built (once per session) before Chromium starts.
    """
    executable = find_chromium()
    if executable is None:
        unavailable("Chromium not found (looked for `chromium` on PATH and /usr/bin/chromium); install it "
                    "(Debian: apt-get install chromium) to run the browser tests")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield TrackedBrowser(browser)
        finally:
            browser.close()


@pytest.fixture
def demo_page(browser: TrackedBrowser, demo_app: AppServer) -> Iterator[Any]:
    """A fresh page (own context, so its own Streamlit session) on the demo app, after its first run."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(demo_app.url)
        wait_idle(page, timeout=60_000)
        yield page
    finally:
        context.close()


# ------------------------------------------------------------------------------------- synchronisation

class RunTracker:
    """Counts the script runs the server reports finished to one page, from the app's websocket.

    Streamlit ends every run with a `script_finished` ForwardMsg. Reading it from the wire (with
    Streamlit's own protobuf classes) sees every run, however short; the DOM state attribute does not:
    React may batch "running" and "notRunning" into one render, and a quick rerun then leaves no trace.
    """

    def __init__(self, page: Any) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        self._msg = ForwardMsg
        self._ends = {ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR,
                      ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY}
        self.finished = 0
        self.finished_at: list[float] = []
        """`time.perf_counter()` when each finished run's message arrived (for timing, e.g. bench/bench_pages.py)."""
        self.fragment_runs = 0
        """Of the finished runs, those of a fragment alone (st.fragment), not of the whole page."""
        page.on("websocket", self._on_websocket)

    def _on_websocket(self, ws: Any) -> None:
        if "/_stcore/stream" in ws.url:
            ws.on("framereceived", self._on_frame)

    def _on_frame(self, payload: str | bytes) -> None:
        if isinstance(payload, str):
            return
        msg = self._msg()
        try:
            msg.ParseFromString(payload)
        except Exception:  # noqa: BLE001 - not a ForwardMsg: not ours to count
            return
        if msg.WhichOneof("type") == "script_finished" and msg.script_finished in self._ends:
            self.finished += 1
            self.finished_at.append(time.perf_counter())
            self.fragment_runs += msg.script_finished == self._msg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY


_TRACKERS: weakref.WeakKeyDictionary[Any, RunTracker] = weakref.WeakKeyDictionary()


def track(page: Any) -> RunTracker:
    """The page's RunTracker; attach it before the page opens the app, or it misses the websocket."""
    if page not in _TRACKERS:
        _TRACKERS[page] = RunTracker(page)
    return _TRACKERS[page]


class TrackedBrowser:
    """A Playwright Browser whose new pages get a RunTracker before they navigate anywhere."""

    def __init__(self, browser: Any) -> None:
        self._browser = browser

    def new_page(self, **kwargs: Any) -> Any:
        page = self._browser.new_page(**kwargs)
        track(page)
        return page

    def new_context(self, **kwargs: Any) -> Any:
        context = self._browser.new_context(**kwargs)
        context.on("page", track)
        return context

    def __getattr__(self, name: str) -> Any:
        return getattr(self._browser, name)


_IDLE_JS = """states => {
    const app = document.querySelector('[data-testid="stApp"]');
    return !!app && app.getAttribute('data-test-connection-state') === 'CONNECTED'
        && states.includes(app.getAttribute('data-test-script-state'));
}"""
_TWO_FRAMES_JS = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"


def _wait_runs(page: Any, tracker: RunTracker, at_least: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout / 1000
    while tracker.finished < at_least:
        if time.monotonic() > deadline:
            raise AssertionError(f"Streamlit did not finish a script run within {timeout / 1000:.0f} s "
                                 f"(runs finished so far: {tracker.finished}, page {page.url})")
        page.wait_for_timeout(25)  # lets Playwright deliver websocket events; the wait is on the event


def wait_idle(page: Any, timeout: float = 30_000) -> None:
    """Wait until the app has finished at least one script run, is connected, and is not running."""
    tracker = _TRACKERS.get(page)
    if tracker is not None:
        _wait_runs(page, tracker, 1, timeout)
    page.locator('[data-testid="stApp"]').wait_for(state="attached", timeout=timeout)
    page.wait_for_function(_IDLE_JS, arg=list(IDLE_STATES), timeout=timeout)
    page.evaluate(_TWO_FRAMES_JS)


def rerun_after(page: Any, action: Callable[[], object], timeout: float = 30_000) -> None:
    """Do `action`, which must make Streamlit rerun the script, and wait until that rerun has finished
    and the page is idle again. The page must come from the `browser` fixture (it tracks runs)."""
    tracker = _TRACKERS.get(page)
    if tracker is None:
        raise RuntimeError("rerun_after needs a page made by the `browser` fixture (new_page/new_context)")
    wait_idle(page, timeout)
    before = tracker.finished
    action()
    _wait_runs(page, tracker, before + 1, timeout)
    wait_idle(page, timeout)


def open_deep_link(page: Any, url: str, heading: str, timeout: float = 60_000) -> None:
    """Open `url` (a page's own address) and wait for its `heading` and an idle app, with no "Page not found"
    dialog over it (plain `streamlit run app.py` shows one to the first session after a start, see
    brightrun.ui.serve)."""
    page.goto(url)
    page.get_by_role("heading", name=heading).wait_for(timeout=timeout)
    wait_idle(page, timeout)
    assert not page.get_by_role("dialog").filter(has_text="Page not found").count(), f"{url}: Page not found"


def choose(page: Any, label: str, option: str | None = None, timeout: float = 30_000) -> None:
    """Pick `option` (its exact text; None: the first one) in the selectbox or multiselect labelled `label`,
    close the list, and wait for the rerun it causes. Choosing what is already chosen causes no rerun."""
    box = page.get_by_role("combobox", name=label, exact=True)
    listbox = page.get_by_role("listbox")
    box.wait_for(timeout=timeout)
    if option is not None and box.input_value() == option:
        return  # already chosen (a selectbox shows its value): no rerun would come

    def open_list() -> None:
        from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

        # The list now and then does not open on the first click (seen once in CI: 30 s with no list after a
        # click on a multiselect right after a form's st.rerun()): a click that opened nothing is tried again.
        for attempt in range(3):
            box.click(timeout=timeout)
            try:
                listbox.first.wait_for(state="visible", timeout=min(timeout, 8_000))
                return
            except PlaywrightTimeoutError:
                if attempt == 2:
                    raise

    def pick() -> None:
        open_list()
        item = listbox.get_by_role("option").first if option is None else \
            listbox.get_by_role("option", name=option, exact=True)
        item.click(timeout=timeout)
        if listbox.count():  # a multiselect keeps its list open
            page.keyboard.press("Escape")

    tracker = _TRACKERS[page]
    wait_idle(page, timeout)
    before = tracker.finished
    pick()
    for _ in range(2):
        try:
            _wait_runs(page, tracker, before + 1, 10_000)
            break
        except AssertionError:
            # Now and then (about one pick in ten in a multiselect right after another one's rerun) the click on
            # the option is not taken: the list closes, the box still says "All", and no rerun comes. A chosen
            # option leaves a multiselect's list; one still offered was not chosen: pick it again.
            if option is None:
                raise
            box.click(timeout=timeout)
            listbox.first.wait_for(state="visible", timeout=timeout)
            offered = listbox.get_by_role("option", name=option, exact=True).count()
            page.keyboard.press("Escape")
            if offered:
                pick()
    _wait_runs(page, tracker, before + 1, timeout)
    wait_idle(page, timeout)
