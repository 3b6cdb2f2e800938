"""The Experiments page in a real browser: open a generated and reviewed experiment, see that its scripted
arms are named as simulated data with no decision (the statistics alone would name a winner) and the
forest plot drawn by plotly, then size an experiment on the Calculator tab.

The workspace is prepared in Python before Chromium starts: generating the arms runs asyncio.run, which
Playwright's sync API blocks in this process while a browser is open (see conftest.browser). Hence the
module-scoped `experiment_ws` is requested before `browser` in the test's arguments."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import AppServer, choose, rerun_after, serve, wait_idle
from playwright.sync_api import expect

from brightrun.enrichment.pipeline import enrich
from brightrun.experiments import create_experiment, experiment_report, run_experiment
from brightrun.stats.power import sample_size_rates
from brightrun.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

SCREENSHOT = "/tmp/brightrun_browser_experiments.png"


@pytest.fixture(scope="module")
def experiment_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with two versions of KEY, the experiment `guided` generated and reviewed (the guided
    version truly better), and a newer draft, so that the page opens the draft first."""
    from test_experiments import KEY, add_guided_version, simulate_reviews

    ws = Workspace.open(tmp_path_factory.mktemp("experiments") / "ws")
    old, new = add_guided_version(ws)
    create_experiment(ws, experiment_id="guided", name="Guided prompt", template_key=KEY,
                      hypothesis="Mirroring and one concrete action raise the thumbs-up rate",
                      control={"name": "control", "template_version": old},
                      variants=[{"name": "guided", "template_version": new}], guardrails=["failed"],
                      per_arm=5, seed=3)
    run_experiment(ws, "guided")
    enrich(ws)
    simulate_reviews(ws, seed=2)
    assert experiment_report(ws, "guided", allow_simulated=True, fixed_sample=True).decision.winner == "guided"
    assert experiment_report(ws, "guided").decision.winner is None  # scripted arms: simulated data
    create_experiment(ws, experiment_id="later", name="A later draft", template_key=KEY,
                      control={"name": "control", "template_version": old},
                      variants=[{"name": "warm", "template_version": old, "temperature": 0.3}])
    return ws.root


@pytest.fixture
def experiment_app(experiment_ws: Path, tmp_path: Path) -> Iterator[AppServer]:
    with serve(experiment_ws, tmp_path / "streamlit.log") as server:
        yield server


def test_open_an_experiment_see_simulated_data_named_and_the_forest_plot_then_size_one(
        experiment_ws: Path, browser, experiment_app: AppServer) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(experiment_app.url)
        wait_idle(page, timeout=60_000)
        link = page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="Experiments")
        rerun_after(page, link.click)
        expect(page).to_have_url(re.compile(r"/experiments"))
        expect(page.get_by_role("heading", name="A later draft")).to_be_visible()  # the newest opens first
        expect(page.get_by_text("No arm has been generated yet")).to_be_visible()

        choose(page, "Open experiment", "Guided prompt · guided")
        expect(page).to_have_url(re.compile(r"experiment=guided"))
        expect(page.get_by_role("heading", name="Guided prompt")).to_be_visible()
        banner = page.locator('[data-testid="stAlertContentError"]').filter(has_text="Simulated data: no decision.")
        banner.scroll_into_view_if_needed()
        expect(banner).to_be_visible()
        expect(page.locator('[data-testid="stAlertContentSuccess"]').filter(has_text="Winner")).to_have_count(0)
        expect(page.locator('[data-testid="stAlertContentWarning"]').filter(
            has_text="control 100%, guided 100%")).to_be_visible()

        # The forest plot, drawn by plotly: one marker per variant x metric (thumbs_up, failed).
        chart = page.locator(".st-key-ex_forest")
        chart.scroll_into_view_if_needed()
        plot = chart.locator(".js-plotly-plot")
        expect(plot).to_be_visible()
        expect(plot.locator(".scatterlayer .trace .points path.point")).to_have_count(2)
        expect(plot.locator(".scatterlayer .trace .errorbar")).to_have_count(2)
        expect(plot.locator(".gtitle, .annotation-text").filter(has_text="thumbs_up (success metric)")).to_have_count(1)
        expect(page.get_by_text(re.compile(r"No sample ratio mismatch"))).to_be_attached()

        # The calculator: 0.50 -> 0.55 at alpha 0.05 and power 0.8.
        page.get_by_role("tab", name="Calculator").click()
        for label, value in (("Baseline rate (control)", "0.500"), ("Expected rate (variant)", "0.550")):
            box = page.get_by_role("spinbutton", name=label)
            box.scroll_into_view_if_needed()
            box.fill(value)
            rerun_after(page, lambda box=box: box.press("Enter"))
        expected = sample_size_rates(0.50, 0.55, alpha=0.05, power=0.8).n_control
        metric = page.locator('[data-testid="stMetric"]').filter(has_text="Conversations per arm (rates)")
        expect(metric.locator('[data-testid="stMetricValue"]')).to_have_text(f"{expected:,}")
        expect(page.get_by_text(re.compile(r"50\.0% → 55\.0%: Cohen's h"))).to_be_visible()
        page.screenshot(path=SCREENSHOT, full_page=True)
    except Exception:
        page.screenshot(path=SCREENSHOT, full_page=True)
        raise
    finally:
        context.close()
