"""AppTest of the Quality page: scores with drill-down, approved coverage, duplicates side by side, diversity,
arc adherence, contracts and the LLM judge."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from brightrun.quality.report import build_quality_report, save_quality_report
from brightrun.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
PAGE = "pages/views/quality.py"


def _array(value):
    if isinstance(value, dict) and "bdata" in value:  # plotly encodes arrays as base64 typed arrays
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return flat.reshape([int(n) for n in str(value["shape"]).split(",")]).tolist() if "shape" in value else flat.tolist()
    return value


def chart(at: AppTest, key: str) -> dict:
    element = next(c for c in at.get("plotly_chart") if c.proto.id.endswith(key))
    trace = json.loads(element.proto.spec)["data"][0]
    return {k: _array(v) for k, v in trace.items()}


def frame(at: AppTest, key: str | None = None, column: str | None = None):
    """A dataframe by its key (only selectable tables carry it) or by one of its columns."""
    return next(d.value for d in at.dataframe
                if (key and d.proto.id.endswith(key)) or (column and column in d.value.columns))


def open_page(workspace: Path, monkeypatch, tab: str | None = None) -> AppTest:
    """The Quality page; `tab` opens that tab (only the open tab's content runs)."""
    monkeypatch.setenv("BRIGHTRUN_WORKSPACE", str(workspace))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
    at.switch_page(PAGE).run()
    if tab:
        open_tab(at, tab)
    assert not at.exception, at.exception
    return at


def open_tab(at: AppTest, label: str) -> AppTest:
    at.session_state["q_tab"] = label
    return at.run()


def show(at: AppTest, view: str) -> AppTest:
    """The Scores tab's Table, Bars or Distribution."""
    return at.segmented_control(key="q_view").set_value(view).run()


@pytest.fixture
def page(demo_copy: Workspace, monkeypatch) -> AppTest:
    save_quality_report(demo_copy, build_quality_report(demo_copy))
    return open_page(demo_copy.root, monkeypatch)


def test_the_first_run_draws_the_scores_table_and_no_chart(page: AppTest, demo_copy: Workspace) -> None:
    """The page budget: no Plotly chart and no other tab's content on the first run (the tabs are lazy); the
    Scores tab shows the bars' data as a table, weakest first, and its rows select a group (browser test)."""
    at = page
    assert not at.get("plotly_chart")
    assert not at.get("text_area") and not at.toggle  # Duplicates' texts, Diversity's and Contracts' toggles
    table = frame(at, "q_group_table")
    expected = demo_copy.sql("SELECT persona_key, avg(quality_score) AS m, count(*) AS n FROM conversations "
                             "GROUP BY 1 ORDER BY m")
    assert list(table["mean"]) == pytest.approx(expected["m"].to_list())
    assert list(table["n"]) == expected["n"].to_list()
    show(at, "Distribution")
    assert [c.proto.id.endswith("q_hist") for c in at.get("plotly_chart")] == [True]
    assert sum(chart(at, "q_hist")["y"]) == 160
    show(at, "Bars")
    assert [c.proto.id.endswith("q_chart") for c in at.get("plotly_chart")] == [True]


def test_the_view_comes_from_the_address(demo_copy: Workspace, monkeypatch) -> None:
    monkeypatch.setenv("BRIGHTRUN_WORKSPACE", str(demo_copy.root))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
    at.query_params["q_view"] = "Bars"  # a reload or a shared link of the Bars view
    at.switch_page(PAGE).run()
    assert at.segmented_control(key="q_view").value == "Bars"
    assert [c.proto.id.endswith("q_chart") for c in at.get("plotly_chart")] == [True]


def test_scores_by_group_drill_down_to_a_record(page: AppTest, demo_copy: Workspace) -> None:
    at = show(page, "Bars")
    bars = chart(at, "q_chart")
    personas = demo_copy.sql("SELECT DISTINCT persona_key FROM conversations")["persona_key"].to_list()
    assert sorted(k[0] for k in bars["customdata"]) == sorted(personas)
    means = demo_copy.sql("SELECT persona_key, avg(quality_score) AS m FROM conversations GROUP BY 1")
    expected = dict(means.iter_rows())
    for (key,), y in zip(bars["customdata"], bars["y"], strict=True):
        assert y == pytest.approx(expected[key])
    assert bars["y"] == sorted(bars["y"])  # weakest first

    records = frame(at, "q_records")
    assert len(records) == 160  # every enriched conversation, weakest first
    assert list(records["quality_score"]) == sorted(records["quality_score"])

    at.selectbox(key="q_drill").set_value("marcus_chen").run()
    records = frame(at, "q_records")
    assert set(records["persona"]) == {"Marcus Chen"}
    assert len(records) == demo_copy.scalar("SELECT count(*) FROM conversations WHERE persona_key = 'marcus_chen'")

    weakest = records["conversation_id"].iloc[0]
    at.selectbox(key="q_open").set_value(weakest).run()
    assert not at.exception
    turns = demo_copy.sql("SELECT content FROM turns WHERE conversation_id = ? ORDER BY turn_number", [weakest])
    shown = [t.value for t in at.text]
    assert turns["content"][0] in shown and turns["content"][-1] in shown
    scores = frame(at, column="asks_first")
    assert len(scores) == demo_copy.scalar("SELECT count(*) FROM training_pairs WHERE conversation_id = ?", [weakest])
    assert any("score" in m.value for m in at.markdown)


def test_pair_metric_and_score_range(page: AppTest, demo_copy: Workspace) -> None:
    at = show(page, "Bars")
    at.selectbox(key="q_metric").set_value("empathy").run()
    at.segmented_control(key="q_group").set_value("tier").run()
    bars = chart(at, "q_chart")
    expected = dict(demo_copy.sql("SELECT tier, avg(empathy) FROM training_pairs GROUP BY 1").iter_rows())
    assert {k[0]: pytest.approx(y) for (k, y) in zip(bars["customdata"], bars["y"], strict=True)} == expected
    at.slider(key="q_range_empathy").set_value((0.0, 0.5)).run()
    records = frame(at, "q_records")
    assert len(records) and (records["metric"] <= 0.5).all()


def test_approved_coverage_follows_the_threshold(page: AppTest, demo_copy: Workspace) -> None:
    at = open_tab(page, "Approved coverage")
    at.slider(key="cov_quality").set_value(0.0).run()
    assert sum(map(sum, chart(at, "cov_heatmap")["z"])) == 160
    at.slider(key="cov_quality").set_value(8.0).run()
    strict = demo_copy.scalar("SELECT count(*) FROM conversations WHERE quality_score >= 8")
    assert 0 < sum(map(sum, chart(at, "cov_heatmap")["z"])) == strict < 160


def test_duplicates_side_by_side(page: AppTest, demo_copy: Workspace) -> None:
    at = open_tab(page, "Duplicates")
    at.segmented_control(key="dup_scope").set_value("training pairs").run()
    assert not at.exception
    left, right = at.selectbox(key="dup_left_0").value, at.selectbox(key="dup_right_0").value
    assert left != right
    texts = [a.value for a in at.text_area]
    pairs = dict(demo_copy.sql("SELECT pair_id, target_response FROM training_pairs WHERE pair_id IN (?, ?)",
                               [left, right]).iter_rows())
    assert pairs[left] in texts and pairs[right] in texts


def test_diversity_and_arc_adherence(page: AppTest, demo_copy: Workspace) -> None:
    at = open_tab(page, "Diversity")
    cells = frame(at, column="repeated_openings")
    assert len(cells) == demo_copy.scalar("SELECT count(DISTINCT (persona_key, arc_key, topic_key)) FROM conversations")
    assert (cells["variation_draws"] >= 1).all() and "persona_key" not in cells.columns  # every demo sample drew
    for index in (0, len(cells) - 1):  # the variation panel lists the chosen cell's draws
        at.selectbox(key="div_cell").set_value(index).run()
        draws = frame(at, column="dimension")
        per_dimension = draws.groupby("dimension")["conversations"].sum()
        assert (per_dimension == cells["conversations"].iloc[index]).all()
        assert draws.groupby("dimension")["value"].nunique().sum() == sum(
            int(part.split()[-1]) for part in cells["variation_values"].iloc[index].split(", "))
    at.toggle(key="div_low").set_value(True).run()
    assert frame(at, column="repeated_openings")["low"].all()
    open_tab(at, "Arc adherence")
    arcs = frame(at, column="mean_adherence")
    assert len(arcs) == 10 and arcs["mean_adherence"].between(0, 1).all()
    trajectory = [chart(at, "arc_trajectory")]
    assert trajectory[0]["x"]  # the weakest conversation's turns


def test_without_a_quality_report_the_page_offers_to_compute_it(demo_copy: Workspace, monkeypatch) -> None:
    at = open_page(demo_copy.root, monkeypatch, "Duplicates")
    assert any("has not been computed" in i.value for i in at.info)
    at.button(key="dup_compute").click().run()
    assert not at.exception
    assert (demo_copy.root / "reports" / "quality.json").exists()
    assert not any("has not been computed" in i.value for i in at.info)
    assert any("near cluster(s) of conversations" in c.value for c in at.caption)
    at.segmented_control(key="dup_scope").set_value("training pairs").run()
    assert len(at.selectbox(key="dup_cluster").options) > 1


def test_llm_judge_tab_empty_then_with_scores(demo_copy: Workspace, monkeypatch) -> None:
    from brightrun.providers import ScriptedProvider
    from brightrun.quality.judge import judge_pairs

    at = open_page(demo_copy.root, monkeypatch, "LLM judge")
    assert any("brightrun quality judge" in i.value for i in at.info)
    judge_pairs(demo_copy, ScriptedProvider(), limit=25)
    at = open_page(demo_copy.root, monkeypatch, "LLM judge")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Pairs judged"] == "25"
    rho = float(metrics["Spearman vs heuristic"])
    assert 0.5 < rho <= 1.0  # the scripted judge follows the heuristics with noise
    points = chart(at, "judge_scatter")
    assert len(points["x"]) == 25 and all(0 <= y <= 10 for y in points["y"])


def test_contracts_tab_runs_them_and_shows_failing_records(demo_copy: Workspace, monkeypatch) -> None:
    at = open_page(demo_copy.root, monkeypatch, "Contracts")
    assert any("brightrun validate" in i.value for i in at.info)
    at.button(key="contracts_run").click().run()
    assert not at.exception
    assert any("expectations hold across 5 tables" in s.value for s in at.success)
    assert (demo_copy.root / "reports" / "validation.json").exists()

    # A planted violation: a turn with a role outside the set, in an existing conversation.
    cid = demo_copy.sql("SELECT conversation_id FROM conversations ORDER BY conversation_id LIMIT 1").item()
    last = demo_copy.scalar("SELECT max(turn_number) FROM turns WHERE conversation_id = ?", [cid])
    demo_copy.append("turns", [{"conversation_id": cid, "turn_number": last + 1, "role": "narrator",
                                "content": "And then the meeting ended."}])
    at.button(key="contracts_run").click().run()
    assert not at.exception
    assert any("expectations fail" in e.value for e in at.error)
    assert frame(at, column="unexpected")["passes"].tolist()[0] is False  # failing ones first
    assert list(frame(at, column="unexpected").columns)[0] == "passes"  # the key column in view
    at.toggle(key="contracts_failing").set_value(True).run()
    failing = frame(at, column="unexpected")
    assert not failing["passes"].any() and "turns" in set(failing["table"])
    examples = [d.value for d in at.dataframe if "conversation_id" in d.value.columns and "role" in d.value.columns]
    assert any((ex["conversation_id"] == cid).any() and "narrator" in set(ex["role"]) for ex in examples)


def test_quality_page_on_an_empty_workspace_says_how_to_start(tmp_path: Path, monkeypatch) -> None:
    at = open_page(tmp_path / "empty", monkeypatch)
    assert any("brightrun demo" in i.value for i in at.info)
    assert not at.get("plotly_chart")


def test_duplicates_list_the_largest_clusters_and_offer_a_huge_one_in_part(demo_copy: Workspace,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A report with more clusters than the page lists, one of them larger than it offers side by side: the page
    reads what it shows from the groups file, says what it left out, and still shows two texts."""
    from brightrun.quality.report import (
        DuplicateFindings,
        DuplicateGroup,
        build_quality_report,
        save_quality_report,
    )

    ids = demo_copy.sql("SELECT conversation_id FROM conversations ORDER BY 1")["conversation_id"].to_list()
    huge = DuplicateGroup(ids=[ids[k] if k < len(ids) else f"gone-{k:05d}" for k in range(1500)],
                          similarity=0.7)
    small = [DuplicateGroup(ids=[ids[k % len(ids)], ids[(k + 1) % len(ids)]], similarity=0.8) for k in range(1001)]
    report = build_quality_report(demo_copy).model_copy(
        update={"conversation_duplicates": DuplicateFindings(exact=[], near=[*small, huge])})
    save_quality_report(demo_copy, report)
    at = open_page(demo_copy.root, monkeypatch, "Duplicates")
    captions = " ".join(c.value for c in at.caption)
    assert "1,002 near cluster(s) of conversations" in captions and "The 1,000 largest are listed." in captions
    assert len(at.selectbox(key="dup_cluster").options) == 1000
    assert at.selectbox(key="dup_cluster").options[0].startswith("1,500 records")
    assert "Its first 1,000 records are offered below." in " ".join(c.value for c in at.caption)
    assert len(at.selectbox(key="dup_left_0").options) == 1000
    assert at.selectbox(key="dup_left_0").value == ids[0] and at.selectbox(key="dup_right_0").value == ids[1]
    assert len(at.text_area) == 2 and all(a.value for a in at.text_area)
