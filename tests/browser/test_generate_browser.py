"""The Generate page in a real browser: a job against the local API server, watched to its end,
with its failures listed; and a base URL typed in the page, which never gets the server's keys."""

from __future__ import annotations

import re
import shutil
import time

import pytest
from conftest import AppServer, choose, rerun_after, wait_idle
from key_listener import KeyListener
from llm_server import FakeLLMServer, FaultPlan
from playwright.sync_api import expect


@pytest.fixture(scope="module")
def api_server():
    with FakeLLMServer(seed=3, latency=0.05) as server:
        # Half the items are refused (400, not retryable): they land in the failures table. The second half:
        # the first calls succeed, so the job does not stop early (it would, were its first 5 calls all
        # refused alike), and the failures are the same in every run.
        server.faults = FaultPlan(permanent_matching={r"-0000(0[89]|1[0-5])$": "bad_request"})
        yield server


ANTHROPIC_KEY = "sk-ant-browser-test-key"
OPENAI_KEY = "sk-proj-browser-test-key"


@pytest.fixture(scope="module")
def generate_app(demo_ws_path, tmp_path_factory, api_server):
    workspace = tmp_path_factory.mktemp("gen") / "ws"
    shutil.copytree(demo_ws_path, workspace)
    # The operator points Claude at the local API server; only there may the server's key go.
    server = AppServer(workspace, tmp_path_factory.mktemp("logs") / "streamlit.log",
                       env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "OPENAI_API_KEY": OPENAI_KEY,
                            "BRIGHTRUN_ANTHROPIC_BASE_URL": api_server.base_url})
    yield server
    server.stop()


def open_generate(page, app) -> None:
    """The Generate page on a deep link, inside app.py's frame."""
    page.goto(app.url + "/generate")
    page.get_by_role("heading", name="Generate").wait_for()
    wait_idle(page)
    # Until some session has run app.py, Streamlit's legacy pages/ router does not know the URL and
    # says so once (a dialog) before app.py routes to the page: close it.
    notice = page.get_by_role("dialog").filter(has_text="Page not found")
    if notice.count():
        page.keyboard.press("Escape")
        notice.wait_for(state="detached")


def test_launch_a_claude_job_watch_it_finish_and_see_failures(browser, generate_app, api_server, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    # A fresh server, opened on a deep link first: the page must come inside app.py's frame (its
    # navigation and workspace panel), not as a bare legacy pages/ script.
    open_generate(page, generate_app)
    links = [t.split("\n")[-1] for t in page.locator('[data-testid="stSidebarNavLink"]').all_inner_texts()]
    assert links[0] == "Overview" and {"Conversations", "Review", "Quality", "Generate"} <= set(links)
    assert page.get_by_text("Workspace", exact=True).is_visible()
    choose(page, "Provider", "Claude (Anthropic API)")
    page.get_by_text("Message Batches API").wait_for()
    url = page.get_by_label("Base URL")
    rerun_after(page, lambda: (url.fill(api_server.base_url), url.press("Enter")))
    choose(page, "Personas", "David Chen - The Pragmatic Optimist")
    choose(page, "Emotional arcs", "Fear -> Security (template)")
    number = page.get_by_label("Conversations per cell")
    number.scroll_into_view_if_needed()
    # Each edit is committed by its own rerun before the next one starts (a value typed while a rerun
    # is still drawing the form can be lost).
    rerun_after(page, lambda: (number.fill("2"), number.press("Enter")))
    expect(number).to_have_value("2")
    estimate = page.locator('[data-testid="stAlert"]').filter(has_text=re.compile(r"16 conversation\(s\)"))
    estimate.wait_for(timeout=60_000)
    assert re.search(r"estimated cost \$\d", estimate.inner_text())

    page.get_by_role("button", name="Launch job").click()
    # The live panel re-renders itself every second (a fragment), so a stale copy of it may stand
    # beside the new one for a moment: wait on the page's text, not on the first element that matches.
    page.wait_for_function(
        """() => { const t = document.body.innerText;
                   const m = t.match(/Failures \\((\\d+)\\)/g) || [];
                   return /job-[0-9a-f-]+: completed/.test(t) && m.length === 1
                          && !m[0].includes('(0)') && !t.includes('No failures.'); }""", timeout=90_000)
    text = page.locator("body").inner_text()
    failed = int(re.search(r"Failures \((\d+)\)", text).group(1))
    assert failed == 8
    # The failures table (its cells are in the grid's accessible table) names the error type.
    page.locator("td", has_text="bad_request").first.wait_for(state="attached")
    page.get_by_role("button", name="Retry failed items").wait_for()
    assert api_server.counts()["messages"] >= 16
    page.screenshot(path=str(tmp_path / "generate.png"), full_page=True)
    page.close()


def _wait_for(condition, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _settle(app) -> None:
    """Wait until no job and no enrichment runs in the app's workspace (the first test's job starts an
    enrichment in the background when it ends): their processes would compete with the app for the CPU."""
    from brightrun.enrichment import enrichment_state
    from brightrun.generation import job_is_running
    from brightrun.workspace import Workspace

    ws = Workspace.open(app.workspace, create=False)
    jobs = ws.sql("SELECT job_id FROM batch_jobs")["job_id"].to_list()
    _wait_for(lambda: not enrichment_state(ws).running and not any(job_is_running(ws, j) for j in jobs), 180.0)


def test_a_base_url_typed_in_the_page_gets_no_configured_key(browser, generate_app):
    _settle(generate_app)
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    open_generate(page, generate_app)
    logs = generate_app.workspace / "logs"
    with KeyListener() as listener:
        choose(page, "Provider", "OpenAI-compatible endpoint")
        for label, value in (("Base URL", listener.url), ("Model", "m")):
            field = page.get_by_label(label, exact=True)
            rerun_after(page, lambda f=field, v=value: (f.fill(v), f.press("Enter")))
        choose(page, "Personas", "David Chen - The Pragmatic Optimist")
        choose(page, "Emotional arcs", "Fear -> Security (template)")
        page.get_by_text("Check provider: key, models").click()
        rerun_after(page, lambda: page.get_by_role("button", name="Check provider").click())
        before = set(logs.glob("*.log")) if logs.exists() else set()
        page.get_by_role("button", name="Launch job").click()
        _wait_for(lambda: any(r["path"].endswith("/chat/completions") for r in listener.requests))
        # Claude at the same typed URL, from the page opened anew: the background job refuses to send the
        # server's key, and says why.
        open_generate(page, generate_app)
        choose(page, "Provider", "Claude (Anthropic API)")
        field = page.get_by_label("Base URL", exact=True)
        rerun_after(page, lambda: (field.fill(listener.url), field.press("Enter")))
        choose(page, "Personas", "David Chen - The Pragmatic Optimist")
        choose(page, "Emotional arcs", "Fear -> Security (template)")
        page.get_by_role("button", name="Launch job").click()
        _wait_for(lambda: any("no key for the base URL" in p.read_text() for p in set(logs.glob("*.log")) - before))
        received = listener.all_header_text()
    assert {r["path"] for r in listener.requests} <= {"/models", "/chat/completions"}
    assert "authorization: Bearer not-needed" in received
    assert ANTHROPIC_KEY not in received and OPENAI_KEY not in received
    page.close()
