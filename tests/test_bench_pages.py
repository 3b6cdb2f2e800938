"""bench/bench_pages.py's helpers, so the page budget benchmark cannot silently rot: its page list is the
app's navigation (as Streamlit itself builds it), its figures' arithmetic, and the Review page still shows
what the benchmark waits for. No timing is asserted here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from brightrun.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_pages", ROOT / "bench" / "bench_pages.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_the_page_list_is_the_apps_navigation(bench, ws: Workspace, monkeypatch) -> None:
    """The pages app.py hands to st.navigation when it runs: same order, titles, URLs and files."""
    seen = []
    navigation = st.navigation

    def recording(pages, **kwargs):
        seen.extend(pages)
        return navigation(pages, **kwargs)

    monkeypatch.setattr(st, "navigation", recording)
    monkeypatch.setenv("BRIGHTRUN_WORKSPACE", str(ws.root))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert len(seen) == 10
    assert [(p.title, p.url_path, Path(p._page).relative_to(ROOT).as_posix()) for p in seen] == \
           [(p.title, p.url_path, p.script) for p in bench.app_pages()]
    assert [p.url_path for p in bench.app_pages()][:3] == ["", "conversations", "review"]


def test_the_page_list_reads_url_paths_titles_and_the_default(bench, tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text('import streamlit as st\n'
                   'st.navigation([st.Page("pages/home.py", title="Home", default=True),\n'
                   '               st.Page("pages/2_data_sets.py"),\n'
                   '               st.Page("pages/x.py", title="X", url_path="/custom/", icon=":material/add:")]).run()\n')
    assert bench.app_pages(app) == [bench.AppPage("Home", "pages/home.py", ""),
                                    bench.AppPage("data sets", "pages/2_data_sets.py", "data_sets"),
                                    bench.AppPage("X", "pages/x.py", "custom")]


def test_figures_median_ratio_and_budget(bench) -> None:
    baseline = bench.Figure("baseline", [0.1, 0.3, 0.2], [0.05, 0.1, 0.15], None)
    page = bench.Figure("Overview", [0.9, 0.5, 0.4, 2.0, 0.6], [0.3] * 5, 1.5)
    slow = bench.Figure("Quality", [1.6, 1.7, 1.5], [1.0] * 3, 1.5, errors=1)
    assert (page.median, page.ratio(baseline), page.within()) == (0.6, pytest.approx(3.0), True)
    assert (slow.median, slow.within(), baseline.within()) == (1.6, False, None)
    summary = page.summary(baseline)
    assert (summary["min_s"], summary["max_s"], summary["run_end_median_s"], summary["within_budget"]) == \
           (0.4, 2.0, 0.3, True)
    assert page.row(baseline).split() == ["Overview", "600", "400", "2000", "300", "–", "–", "–", "3.0x", "under",
                                          "1.5", "s"]
    measured = bench.Figure("Review", [0.5] * 3, [0.3] * 3, 1.5, server_cpu_seconds=[0.2, 0.1, 0.4],
                            browser_cpu_seconds=[0.9, 0.7, 0.8], browser_thread_seconds=[0.5, 0.3, 0.6])
    # server CPU, browser busy time and browser thread CPU, medians in ms
    assert measured.row(baseline).split()[5:8] == ["200", "800", "500"]
    assert measured.summary(baseline)["browser_thread_median_s"] == 0.5
    assert (measured.summary(baseline)["server_cpu_median_s"], measured.summary(baseline)["browser_cpu_median_s"]) == \
           (0.2, 0.8)
    assert "OVER 1.5 s" in slow.row(baseline) and "1 exception(s) shown" in slow.row(baseline)


def test_process_cpu_counts_this_process(bench) -> None:
    import os
    import time

    before = bench.process_cpu(os.getpid())
    end = time.process_time() + 0.1
    while time.process_time() < end:
        pass
    assert bench.process_cpu(os.getpid()) - before == pytest.approx(0.1, abs=0.05)


def test_the_review_page_shows_what_the_save_timing_waits_for(bench) -> None:
    """The bench finds a turn by its container's key, opens its form by the expander's label and waits for its
    saved mark: all come from review.py."""
    source = (ROOT / "pages" / "views" / "review.py").read_text()
    assert f'key=f"{bench.TURN_KEY}{{pair[\'pair_id\']}}"' in source
    assert bench.SAVED_TEXT.format("") == "judged by you: thumbs "
    assert "judged by you: {_summary(current)" in source and '{True: "thumbs up", False: "thumbs down"}' in source
    assert f'st.expander("{bench.JUDGE_LABEL}",' in source
    assert f'"{bench.TURN_KEY}' in bench.BASELINE_APP and "judged by you: thumbs " in bench.BASELINE_APP
