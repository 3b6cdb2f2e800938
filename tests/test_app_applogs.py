"""AppTest of the App logs page: import a log from a path with a mapping, see bad rows and personal data,
browse the calls (redacted unless asked), build a per-step dataset."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
from streamlit.testing.v1 import AppTest

from brightrun.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent


def open_page(workspace: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("BRIGHTRUN_WORKSPACE", str(workspace))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
    at.switch_page("pages/views/applogs.py").run()
    assert not at.exception, at.exception
    return at


def open_tab(at: AppTest, label: str) -> AppTest:
    at.session_state["log_tab"] = label
    return at.run()


def frame(at: AppTest, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    rows = [
        {"step": "frequency_flip", "who": "ann@example.com", "sid": "s1", "in": "I always run out of money.",
         "out": "You are learning to direct your money with intention.", "thumbs": "up", "stars": 5},
        {"step": "frequency_flip", "who": "bo", "sid": "s2", "in": "Call me on +1 (415) 555-0132 about it",
         "out": "Noted.", "thumbs": "down"},
        {"step": "scene_generation", "who": "bo", "sid": "s2", "in": "a calm morning", "out": "Sunlight on the desk."},
        {"step": "scene_generation", "who": "cy", "sid": "s3", "in": "", "out": "missing input row"},
        {"step": "scene_generation", "who": "cy", "sid": "s3", "in": "rated oddly", "out": "x", "stars": 9},
    ]
    path = tmp_path / "calls.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows) + b"{not json\n")
    return path


def test_import_from_a_path_with_a_mapping(ws: Workspace, log_file: Path, monkeypatch) -> None:
    placed = ws.root / "imports" / "exports" / log_file.name
    placed.parent.mkdir(parents=True)
    log_file.rename(placed)
    at = open_page(ws.root, monkeypatch)
    at.segmented_control(key="log_source").set_value("A file on this machine").run()
    assert at.selectbox(key="log_file").options == ["exports/calls.jsonl"]
    at.selectbox(key="log_file").set_value(placed).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    # Nothing guessable for these names: map them by hand.
    for field, column in {"action_type": "step", "input": "in", "output": "out", "user_id": "who",
                          "session_id": "sid", "helpful": "thumbs", "rating": "stars"}.items():
        at.selectbox(key=f"map_{field}").set_value(column)
    submit = next(b for b in at.get("form_submit_button") if b.label == "Import")
    submit.click().run()
    assert not at.exception, at.exception
    assert any("Imported 3 new call(s)" in s.value for s in at.success), [s.value for s in at.success]
    assert ws.scalar("SELECT count(*) FROM llm_calls WHERE import_id IS NOT NULL") == 3
    assert ws.scalar("SELECT count(*) FROM feedback WHERE source LIKE 'import:%'") == 2

    # Importing the same file again adds nothing.
    submit = next(b for b in at.get("form_submit_button") if b.label == "Import")
    submit.click().run()
    assert any("Nothing new" in i.value for i in at.info)
    assert ws.scalar("SELECT count(*) FROM llm_calls WHERE import_id IS NOT NULL") == 3

    open_tab(at, "Imports")  # only the open tab runs
    problems = frame(at, "reason")
    assert sorted(problems["line"].tolist()) == [4, 5, 6]  # empty input, rating 9, not JSON
    pii = frame(at, "street_address")
    assert set(pii["column"]) >= {"input", "user_id"} or set(pii["column"]) >= {"in", "who"}


def test_a_path_outside_the_imports_folder_is_refused(ws: Workspace, log_file: Path, monkeypatch) -> None:
    monkeypatch.delenv("BRIGHTRUN_IMPORT_DIRS", raising=False)
    (ws.root / "imports").mkdir()
    (ws.root / "imports" / "link.jsonl").symlink_to(log_file)
    at = open_page(ws.root, monkeypatch)
    at.segmented_control(key="log_source").set_value("A file on this machine").run()
    for typed in [str(log_file), "link.jsonl", f"../../{log_file.name}", "/etc/passwd"]:
        at.text_input(key="log_path").input(typed).run()
        assert not at.exception, at.exception
        assert any("reads logs only from" in e.value and "Fix:" in e.value for e in at.error), typed
        assert not at.get("form_submit_button")  # nothing was read: no mapping form with its columns
        assert not any("column(s)" in c.value for c in at.caption)
    assert at.selectbox(key="log_file").options == []  # the symlink leading out is not listed
    # The operator may allow the folder.
    monkeypatch.setenv("BRIGHTRUN_IMPORT_DIRS", str(log_file.parent))
    at.text_input(key="log_path").input(str(log_file)).run()
    assert not at.error and any("column(s): step, who, sid, in, out" in c.value for c in at.caption)


def test_the_first_run_draws_the_import_tab_alone(demo_copy: Workspace, monkeypatch) -> None:
    """The page budget: the Calls tab's chart and its 500 calls are not drawn until that tab is opened."""
    at = open_page(demo_copy.root, monkeypatch)
    assert at.segmented_control(key="log_source")  # the Import tab
    assert not at.get("plotly_chart") and not at.dataframe
    open_tab(at, "Calls")
    assert [c.proto.id.endswith("log_steps_chart") for c in at.get("plotly_chart")] == [True]
    assert not at.get("segmented_control")


def test_browse_redacts_unless_asked_and_builds_a_dataset(demo_copy: Workspace, monkeypatch) -> None:
    at = open_tab(open_page(demo_copy.root, monkeypatch), "Calls")
    steps = frame(at, "thumbs_up_rate")
    assert len(steps) == 7 and steps["calls"].sum() == demo_copy.scalar(
        "SELECT count(*) FROM llm_calls WHERE import_id IS NOT NULL")
    planted = demo_copy.sql("SELECT call_id, request FROM llm_calls WHERE import_id IS NOT NULL AND "
                            "regexp_matches(request, '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[a-z]{2,}')")
    assert planted.height >= 1
    call_id = planted["call_id"][0]
    at.text_input(key="log_f_text").input("@").run()
    calls = frame(at, "output")
    assert call_id in set(calls["call_id"])
    assert not any("@" in (text or "") for text in calls["user_id"])  # user ids redacted in the table too
    at.selectbox(key="log_open").set_value(call_id).run()
    assert any("[EMAIL]" in t.value for t in at.text)
    at.toggle(key="log_raw").set_value(True).run()
    assert not any("[EMAIL]" in t.value for t in at.text) and any("@" in t.value for t in at.text)

    at.text_input(key="log_f_text").input("").run()
    at.multiselect(key="log_f_steps").set_value(["scene_generation"]).run()
    assert set(frame(at, "output")["action_type"]) == {"scene_generation"}

    open_tab(at, "Per-step dataset")
    at.multiselect(key="ds_steps").set_value(["frequency_flip", "scene_generation"]).run()
    at.button(key="ds_build").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    counts = frame(at, "step")
    assert set(counts["step"]) == {"frequency_flip", "scene_generation"}
    text = b"".join(p.read_bytes() for p in (demo_copy.root / "datasets" / "app-steps").rglob("*.jsonl")).decode()
    assert text and not re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", text)  # no e-mail address survives
