"""AppTest of the app shell and both pages on a demo workspace."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from brightrun.ui import plain

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def app(demo_ws_path: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("BRIGHTRUN_WORKSPACE", str(demo_ws_path))
    monkeypatch.chdir(ROOT)
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)


def heatmap_axes(at: AppTest) -> dict:
    chart = next(c for c in at.get("plotly_chart") if c.proto.id.endswith("coverage_heatmap"))
    trace = json.loads(chart.proto.spec)["data"][0]
    return {"x": trace["x"], "y": trace["y"], "z": plotly_array(trace["z"])}


def plotly_array(values: list | dict) -> list:
    if isinstance(values, dict):  # plotly encodes arrays as base64 typed arrays
        shape = [int(n) for n in str(values.get("shape", -1)).split(",")]
        values = np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).reshape(shape).tolist()
    return values


def caption_count(at: AppTest) -> int:
    text = next(c.value for c in at.caption if "match" in c.value)
    return int(text.split()[0].replace(",", ""))


def test_overview_shows_counts_heatmap_and_jobs(app: AppTest, demo_ws_path: Path, demo_ws) -> None:
    at = app.run()
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Conversations"] == "160" and metrics["Enriched"] == "100%"
    assert int(metrics["Training pairs"].replace(",", "")) > 160
    # Scripted generation costs nothing; the imported app log carries the app's own costs: shown apart.
    from brightrun.ui.common import fmt_int, fmt_usd

    imported = demo_ws.scalar("SELECT sum(cost_usd) FROM llm_calls WHERE import_id IS NOT NULL")
    assert imported > 0 and demo_ws.scalar("SELECT sum(cost_usd) FROM llm_calls WHERE import_id IS NULL") == 0
    assert metrics["Generation cost"] == "$0.00" and metrics["Imported cost"] == fmt_usd(imported)
    calls = dict(demo_ws.sql("SELECT import_id IS NULL, count(*) FROM llm_calls GROUP BY 1").rows())
    assert metrics["Generation calls"] == fmt_int(calls[True]) and metrics["Imported app-log calls"] == \
        fmt_int(calls[False])
    tokens = dict(demo_ws.sql("SELECT import_id IS NULL, sum(input_tokens + output_tokens) FROM llm_calls "
                              "GROUP BY 1").rows())
    assert metrics["Generation tokens"] == fmt_int(tokens[True]) and metrics["Imported tokens"] == \
        fmt_int(tokens[False])
    # The first run: coverage as a table, no chart (the page budget: Plotly costs about 1 s in the browser).
    assert not at.get("plotly_chart")
    table = at.dataframe(key="coverage_table").value
    assert "David Chen" in list(table["persona"]) and "Confusion -> Clarity" in table.columns
    assert table.drop(columns="persona").to_numpy().sum() == 160
    jobs = next(d.value for d in at.dataframe if "job_id" in d.value.columns)
    assert set(jobs["job_id"]) == {"demo-template", "demo-edge-case"}
    assert at.sidebar.text[0].value == str(demo_ws_path.resolve())  # the workspace indicator
    assert not at.sidebar.code  # a code block loads its highlighter on every page: plain text instead
    at.session_state["ov_coverage_tab"] = "Heatmap"
    at.run()
    heatmap = heatmap_axes(at)
    assert "David Chen" in heatmap["y"] and "Confusion -> Clarity" in heatmap["x"]
    assert sum(sum(row) for row in heatmap["z"]) == 160
    assert heatmap["y"] == list(table["persona"]) and heatmap["x"] == list(table.columns[1:])  # the same cells
    at.segmented_control(key="coverage_view").set_value("Arc × Topic").run()
    heatmap = heatmap_axes(at)
    assert "Accelerated Mortgage Payoff" in heatmap["x"] and "Grief -> Planning" in heatmap["y"]


def test_overview_by_dimension_bars_count_every_conversation(app: AppTest, demo_ws) -> None:
    at = app.run()
    at.segmented_control(key="dimension").set_value("tier").run()
    table = next(d.value for d in at.dataframe if "mean_turns" in d.value.columns)  # the first run: the table
    assert list(table.columns[:2]) == ["tier", "conversations"] and table["conversations"].sum() == 160
    at.session_state["ov_dimension_tab"] = "Bars"
    at.run()
    chart = next(c for c in at.get("plotly_chart") if c.proto.id.endswith("by_dimension_chart"))
    (trace,) = json.loads(chart.proto.spec)["data"]
    bars = dict(zip(trace["x"], plotly_array(trace["y"]), strict=True))
    counts = demo_ws.sql("SELECT tier, count(*) AS n FROM conversations GROUP BY 1 ORDER BY 1")["n"].to_list()
    assert len(bars) == 2 and sorted(bars.values()) == sorted(counts) and sum(counts) == 160
    assert bars["edge case"] == demo_ws.scalar("SELECT count(*) FROM conversations WHERE tier = 'edge_case'")
    assert "mean turns" in trace["hovertemplate"] and "tokens" in trace["hovertemplate"]


def test_overview_on_an_empty_workspace_says_how_to_start(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BRIGHTRUN_WORKSPACE", str(tmp_path / "empty"))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert any("brightrun demo" in i.value for i in at.info)


def test_conversation_filters_change_the_table(app: AppTest) -> None:
    at = app.run()
    at.switch_page("pages/views/conversations.py").run()
    assert not at.exception
    table = at.dataframe(key="conversation_table").value
    assert len(table) == caption_count(at) == 160
    at.multiselect(key="f_personas").set_value(["david_chen"]).run()
    narrowed = at.dataframe(key="conversation_table").value
    assert 0 < len(narrowed) < 160 and set(narrowed["persona"]) == {"David Chen - The Pragmatic Optimist"}
    at.multiselect(key="f_tiers").set_value(["edge_case"]).run()
    edge = at.dataframe(key="conversation_table").value
    assert 0 < len(edge) < len(narrowed) and set(edge["tier"]) == {"edge_case"}
    at.text_input(key="f_text").set_value("zzz-not-anywhere").run()
    assert len(at.dataframe(key="conversation_table").value) == 0 and caption_count(at) == 0


def test_selecting_a_conversation_shows_it_as_a_chat(app: AppTest, demo_ws) -> None:
    at = app.run()
    at.switch_page("pages/views/conversations.py").run()
    at.multiselect(key="f_arcs").set_value(["grief_to_planning"]).run()
    options = at.selectbox(key="open_conversation").options
    assert options
    cid = at.dataframe(key="conversation_table").value["conversation_id"].iloc[0]
    at.selectbox(key="open_conversation").set_value(cid).run()
    assert not at.exception
    turns = demo_ws.sql("SELECT role, content FROM turns WHERE conversation_id = ? ORDER BY turn_number", [cid])
    assert len(at.chat_message) == turns.height
    assert at.chat_message[0].name == "user" and at.chat_message[1].name == "assistant"
    shown = [el.value for msg in at.chat_message for el in msg.children.values() if el.type == "text"]
    assert shown == turns["content"].to_list()
    markdown = " ".join(m.value for m in at.markdown)
    assert plain("Grief -> Planning") in markdown and "Persona" in markdown  # stored names shown as text
    version = demo_ws.sql("SELECT template_version FROM conversations WHERE conversation_id = ?", [cid]).item()
    assert version in markdown
    assert not at.code  # the call's code blocks are drawn when its expander opens (the page budget)
    at.session_state["cv_call"] = True
    at.run()
    code = [c.value for c in at.code]
    assert any("Elena Marquez" in c or "advisor" in c.lower() for c in code)  # the call's prompt is shown


def test_the_match_count_is_the_true_count_beyond_the_table_limit(app: AppTest, monkeypatch) -> None:
    import brightrun.explore as browse

    original = browse.ConversationFilter

    def capped(**kw):  # a table limit below the demo's size, to see the count go past it
        return original(**{**kw, "limit": 50})

    monkeypatch.setattr(browse, "ConversationFilter", capped)
    at = app.run()
    at.switch_page("pages/views/conversations.py").run()
    assert not at.exception
    assert len(at.dataframe(key="conversation_table").value) == 50
    caption = next(c.value for c in at.caption if "match" in c.value)
    assert caption.startswith("160 conversation(s) match") and "showing the newest 50" in caption
