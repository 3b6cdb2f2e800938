"""The Prompts page's Effectiveness section with fewer template versions than inference needs: it says no
inference is possible yet and shows descriptives only, with no p-value anywhere (issue 16, item 1)."""

from __future__ import annotations

from pathlib import Path

from test_app_prompt_editing import KEY, open_prompts
from test_prompts import two_versions  # noqa: F401 - the fixture: a workspace with two versions of one template

from brightrun.prompts import effectiveness as eff

ROOT = Path(__file__).resolve().parent.parent


def open_effectiveness(at):
    """The Effectiveness tab (only the open tab is drawn)."""
    at.session_state["pr_tab"] = "Effectiveness (every template)"
    at.run()
    assert not at.exception, at.exception
    return at


def test_with_two_versions_the_page_shows_descriptives_and_no_p_value(two_versions, monkeypatch) -> None:  # noqa: F811
    ws, old, new = two_versions
    at = open_prompts(ws.root, monkeypatch, None)
    assert not any("Descriptives per template version" in m.value for m in at.markdown)  # on its own tab
    at = open_effectiveness(at)
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("No inference possible yet") and f"{eff.MIN_VERSIONS} are needed" in w
               for w in warnings), warnings
    assert any("Descriptives per template version" in m.value for m in at.markdown)
    versions = next(d.value for d in at.dataframe if "template_version" in d.value.columns)
    assert sorted(versions["template_version"]) == sorted([old, new]) and "mean" in versions.columns
    shown = [d.value for d in at.dataframe]
    assert not any(c.startswith("p") and ("p_" in c or c == "p") for frame in shown for c in frame.columns), \
        [list(frame.columns) for frame in shown]
    assert not [d for d in at.dataframe if {"feature", "term"} & set(d.value.columns)]  # no correlation, no fit


def test_the_first_run_draws_no_chart_code_block_or_closed_table(two_versions, monkeypatch) -> None:  # noqa: F811
    """The page budget: the effectiveness report, the forest plot, the preview's code blocks and the label
    history's table are drawn when asked for (a tab, a toggle, an expander), not on the first run."""
    from brightrun.prompts import registry

    ws, old, new = two_versions
    registry.set_label(ws, KEY, new, "production", by="Ann")
    at = open_prompts(ws.root, monkeypatch)
    assert not at.get("plotly_chart") and not at.code
    assert not [d for d in at.dataframe if "set_by" in d.value.columns]
    assert not [s for s in at.subheader if s.value == "Effectiveness"] and not at.info
    assert len(at.dataframe) == 2 and "is_current" in at.dataframe[0].value.columns  # the versions, the diff
    at.session_state["pr_label_history_open"] = True
    at.run()
    (history,) = [d.value for d in at.dataframe if "set_by" in d.value.columns]
    assert list(history["label"]) == ["production"] and list(history["set_by"]) == ["Ann"]
