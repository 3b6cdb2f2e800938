"""AppTest of the Review page: the reviewer's name, the filtered queue with progress, judging advisor turns
(thumbs, rating, comment, an edit kept beside the original), moving through the queue, and agreement."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from brightrun.feedback import agreement, record_feedback
from brightrun.ui import plain
from brightrun.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
PAGE = "pages/views/review.py"
REVIEWS = "source = 'review'"  # the demo also holds feedback imported from app logs
PROGRESS = re.compile(r"([\d,]+) of ([\d,]+) conversations reviewed · ([\d,]+) of ([\d,]+) turns judged")


def open_page(workspace: Path, monkeypatch, reviewer: str | None = None) -> AppTest:
    monkeypatch.setenv("BRIGHTRUN_WORKSPACE", str(workspace))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    if reviewer:
        at.query_params["reviewer"] = reviewer  # as in a bookmark or a reload of /review?reviewer=...
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def queue(at: AppTest):
    return at.dataframe(key="rv_table").value


def progress(at: AppTest) -> tuple[int, int, int, int]:
    caption = next(c.value for c in at.caption if PROGRESS.search(c.value))
    return tuple(int(g.replace(",", "")) for g in PROGRESS.search(caption).groups())


def widget(at: AppTest, kind: str, pair_id: str, suffix: str):
    """A turn's form widget: its key is rv_<pair>_<version>_<suffix> (the version changes on every save)."""
    found = [w for w in getattr(at, kind) if w.key and w.key.startswith(f"rv_{pair_id}_") and w.key.endswith(suffix)]
    assert len(found) == 1, [w.key for w in getattr(at, kind)]
    return found[0]


def open_turn(at: AppTest, pair_id: str) -> AppTest:
    """Open a turn's "Your judgement" expander (its form is drawn only while it is open), as a click does."""
    at.session_state[f"rv_judge_{pair_id}"] = True
    return at.run()


def pairs_of(ws: Workspace, conversation_id: str) -> list[dict]:
    return ws.sql("SELECT pair_id, turn_number, target_response FROM training_pairs WHERE conversation_id = ? "
                  "ORDER BY turn_number", [conversation_id]).to_dicts()


def test_a_name_is_needed_and_comes_from_the_address(demo_copy: Workspace, monkeypatch) -> None:
    at = open_page(demo_copy.root, monkeypatch)
    assert any("nothing can be saved without it" in w.value for w in at.warning)
    opened = at.selectbox(key="rv_open").value
    first = pairs_of(demo_copy, opened)[0]["pair_id"]
    assert at.button(key=f"rv_save_{first}").disabled

    at.text_input(key="reviewer").set_value("Ann").run()
    assert not at.warning and not at.button(key=f"rv_save_{first}").disabled
    assert "by you" in next(c.value for c in at.caption if PROGRESS.search(c.value))

    at = open_page(demo_copy.root, monkeypatch, reviewer="Ann")  # a reload keeps the name (?reviewer=Ann)
    assert at.text_input(key="reviewer").value == "Ann" and not at.warning


def test_filters_narrow_the_queue(demo_copy: Workspace, monkeypatch) -> None:
    at = open_page(demo_copy.root, monkeypatch, reviewer="Ann")
    assert len(queue(at)) == 160 and progress(at) == (0, 160, 0, 791)
    at.toggle(key="rv_blind").set_value(False).run()  # blind review hides the quality and version columns
    at.multiselect(key="rv_personas").set_value(["marcus_chen"]).run()
    narrowed = queue(at)
    expected = demo_copy.scalar("SELECT count(*) FROM conversations WHERE persona_key = 'marcus_chen'")
    assert 0 < len(narrowed) == expected < 160 and set(narrowed["persona"]) == {"Marcus Chen"}
    assert progress(at)[1] == expected
    assert at.selectbox(key="rv_open").value in set(narrowed["conversation_id"])  # the open one follows
    at.multiselect(key="rv_tiers").set_value(["edge_case"]).run()
    edge = queue(at)
    assert 0 < len(edge) < len(narrowed) and set(edge["tier"]) == {"edge_case"}
    at.multiselect(key="rv_personas").set_value([]).run()
    at.multiselect(key="rv_tiers").set_value([]).run()
    at.slider(key="rv_quality").set_value((7.5, 10.0)).run()
    good = demo_copy.scalar("SELECT count(*) FROM conversations WHERE quality_score >= 7.5")
    assert 0 < len(queue(at)) == good < 160 and (queue(at)["quality_score"] >= 7.5).all()
    at.slider(key="rv_quality").set_value((0.0, 10.0)).run()
    version = demo_copy.sql("SELECT template_key || ' @ ' || template_version AS v, count(*) AS n "
                            "FROM conversations GROUP BY 1 ORDER BY 1 LIMIT 1").row(0)
    at.multiselect(key="rv_template_versions").set_value([version[0]]).run()
    assert len(queue(at)) == version[1] < 160 and set(queue(at)["template_version"]) == {version[0]}
    at.multiselect(key="rv_template_versions").set_value([]).run()
    at.segmented_control(key="rv_state").set_value("yes").run()
    assert any("No conversation matches" in i.value for i in at.info)


def test_judging_a_turn_writes_one_row_beside_the_original(demo_copy: Workspace, monkeypatch) -> None:
    at = open_page(demo_copy.root, monkeypatch, reviewer="Ann")
    opened = at.selectbox(key="rv_open").value
    assert opened == queue(at)["conversation_id"][0]  # the first not-fully-reviewed one opens
    pair = pairs_of(demo_copy, opened)[0]
    pid, original = pair["pair_id"], pair["target_response"]
    assert widget(at, "text_area", pid, "_edit").value == original  # the edit starts as the original

    widget(at, "feedback", pid, "_thumbs").set_value(1)
    widget(at, "feedback", pid, "_stars").set_value(3)
    widget(at, "text_input", pid, "_comment").set_value("Too long")
    widget(at, "text_area", pid, "_edit").set_value("A shorter, kinder answer.")
    at.button(key=f"rv_save_{pid}").click().run()
    assert not at.exception and not at.error
    assert any("Saved turn" in t.value for t in at.toast)

    rows = demo_copy.sql(f"SELECT * FROM feedback WHERE {REVIEWS}").to_dicts()
    assert len(rows) == 1
    row = rows[0]
    assert (row["target_type"], row["target_id"], row["conversation_id"], row["reviewer"]) == (
        "training_pair", pid, opened, "Ann")
    assert (row["helpful"], row["rating"], row["comment"], row["edited_response"]) == (
        True, 4, "Too long", "A shorter, kinder answer.")
    assert demo_copy.scalar("SELECT target_response FROM training_pairs WHERE pair_id = ?", [pid]) == original

    # After the rerun every field shows the saved judgement, the position is kept, the progress counts it.
    assert at.selectbox(key="rv_open").value == opened
    assert widget(at, "feedback", pid, "_thumbs").value == 1
    assert widget(at, "feedback", pid, "_stars").value == 3
    assert widget(at, "text_input", pid, "_comment").value == "Too long"
    assert widget(at, "text_area", pid, "_edit").value == "A shorter, kinder answer."
    assert progress(at)[2] == 1
    at.session_state[f"rv_history_{pid}"] = True  # the history is drawn when its expander opens
    at.run()
    history = next(d.value for d in at.dataframe if "version" in d.value.columns and original in
                   set(d.value["response"]))
    assert list(history["version"]) == ["original", "edit"]
    assert set(history["response"]) == {original, "A shorter, kinder answer."}

    # Saving again without a change writes nothing; a fresh session shows the same pre-fill.
    at.button(key=f"rv_save_{pid}").click().run()
    assert demo_copy.scalar(f"SELECT count(*) FROM feedback WHERE {REVIEWS}") == 1
    assert any("nothing changed" in t.value for t in at.toast)
    again = open_page(demo_copy.root, monkeypatch, reviewer="Ann")
    assert again.selectbox(key="rv_open").value == opened  # partly reviewed: still first in the queue
    open_turn(again, pid)  # judged (thumbs and rating), it is no longer the turn that opens by itself
    assert widget(again, "feedback", pid, "_stars").value == 3
    assert widget(again, "text_area", pid, "_edit").value == "A shorter, kinder answer."

    # Another reviewer starts from the original, not from Ann's judgement.
    again.text_input(key="reviewer").set_value("Bob").run()
    assert widget(again, "feedback", pid, "_thumbs").value is None
    assert widget(again, "text_area", pid, "_edit").value == original


def test_an_empty_judgement_is_refused(demo_copy: Workspace, monkeypatch) -> None:
    at = open_page(demo_copy.root, monkeypatch, reviewer="Ann")
    pid = pairs_of(demo_copy, at.selectbox(key="rv_open").value)[0]["pair_id"]
    at.button(key=f"rv_save_{pid}").click().run()
    assert not at.exception
    assert any("Fix:" in e.value for e in at.error)
    assert demo_copy.scalar(f"SELECT count(*) FROM feedback WHERE {REVIEWS}") == 0


def test_progress_and_moving_through_the_queue(demo_copy: Workspace, monkeypatch) -> None:
    at = open_page(demo_copy.root, monkeypatch, reviewer="Ann")
    order = list(queue(at)["conversation_id"])
    first = at.selectbox(key="rv_open").value
    assert first == order[0] and at.button(key="rv_previous").disabled
    pairs = pairs_of(demo_copy, first)
    for pair in pairs:
        open_turn(at, pair["pair_id"])
        widget(at, "feedback", pair["pair_id"], "_thumbs").set_value(1)
        at.button(key=f"rv_save_{pair['pair_id']}").click().run()
    assert progress(at) == (1, 160, len(pairs), 791)
    # Fully reviewed, it stays open and in place (the queue does not reorder under the reviewer).
    assert at.selectbox(key="rv_open").value == first and list(queue(at)["conversation_id"]) == order
    assert queue(at)["state"][0] == "reviewed"

    at.button(key="rv_next").click().run()
    assert at.selectbox(key="rv_open").value == order[1]
    assert any(s.value.startswith("Conversation 2 of 160") for s in at.caption)
    at.button(key="rv_next").click().run()
    at.button(key="rv_previous").click().run()
    assert at.selectbox(key="rv_open").value == order[1]

    # Another reviewer's progress is their own; "anyone" counts Ann's.
    at.selectbox(key="rv_by").set_value("\x00anyone").run()
    assert progress(at)[:3] == (1, 160, len(pairs))
    at.text_input(key="reviewer").set_value("Bob").run()
    at.selectbox(key="rv_by").set_value("\x00me").run()
    assert progress(at)[:3] == (0, 160, 0)
    at.selectbox(key="rv_by").set_value("Ann").run()
    assert progress(at)[:3] == (1, 160, len(pairs))

    # A fresh session opens the first conversation Ann has not finished, and the finished one is last.
    again = open_page(demo_copy.root, monkeypatch, reviewer="Ann")
    assert again.selectbox(key="rv_open").value == order[1]
    assert list(queue(again)["conversation_id"])[-1] == first

    # Only the reviewed ones.
    again.segmented_control(key="rv_state").set_value("yes").run()
    assert list(queue(again)["conversation_id"]) == [first]


def test_selecting_a_row_opens_it(demo_copy: Workspace, monkeypatch) -> None:
    at = open_page(demo_copy.root, monkeypatch, reviewer="Ann")
    order = list(queue(at)["conversation_id"])
    at.selectbox(key="rv_open").set_value(order[5]).run()
    assert at.selectbox(key="rv_open").value == order[5]
    assert any(s.value.startswith("Conversation 6 of 160") for s in at.caption)
    title = demo_copy.scalar("SELECT title FROM conversations WHERE conversation_id = ?", [order[5]])
    assert plain(title) in [h.value for h in at.subheader]  # shown as text


def _two_reviewers(ws: Workspace) -> list[str]:
    pairs = ws.sql("SELECT pair_id FROM training_pairs ORDER BY conversation_id, turn_number LIMIT 4")["pair_id"]
    ann = [(True, 5), (True, 4), (False, 2), (False, 1)]
    bob = [(True, 5), (False, 3), (False, 2), (False, 4)]
    for pid, (a, b) in zip(pairs, zip(ann, bob, strict=True), strict=True):
        record_feedback(ws, "training_pair", pid, "Ann", helpful=a[0], rating=a[1])
        record_feedback(ws, "training_pair", pid, "Bob", helpful=b[0], rating=b[1])
    return list(pairs)


def open_agreement(at: AppTest) -> AppTest:
    at.session_state["rv_tab"] = "Agreement"  # only the open tab runs
    return at.run()


def test_agreement_between_two_reviewers(demo_copy: Workspace, monkeypatch) -> None:
    at = open_page(demo_copy.root, monkeypatch, reviewer="Ann")
    assert "ag_reviewers" not in [w.key for w in at.get("multiselect")]  # the queue alone at first
    at = open_agreement(at)
    assert any("at least two reviewers" in i.value for i in at.info)

    pairs = _two_reviewers(demo_copy)
    at = open_agreement(open_page(demo_copy.root, monkeypatch, reviewer="Ann"))
    assert set(at.multiselect(key="ag_reviewers").value) == {"Ann", "Bob"}
    expected = agreement(demo_copy, ["Ann", "Bob"])
    assert expected.cohen_kappa == pytest.approx(0.5)
    metrics = [(m.label, m.value) for m in at.metric]
    assert ("Cohen's κ", "0.50") in metrics
    assert ("Agreement", "75%") in metrics and ("Exact agreement", "50%") in metrics
    assert ("Turns compared", "4") in metrics
    assert ("Weighted κ (quadratic)", f"{expected.weighted_kappa:.2f}") in metrics
    assert not any(m[0] == "Fleiss' κ" for m in metrics)
    pairwise = next(d.value for d in at.dataframe if "reviewer_a" in d.value.columns)
    assert list(pairwise[["reviewer_a", "reviewer_b"]].iloc[0]) == ["Ann", "Bob"]

    found = at.dataframe(key="ag_disagreements").value
    assert set(found["pair_id"]) == {pairs[1], pairs[3]}  # thumbs up vs down; ratings 1 vs 4
    at.slider(key="ag_gap").set_value(4).run()
    assert set(at.dataframe(key="ag_disagreements").value["pair_id"]) == {pairs[1]}

    at.selectbox(key="ag_open").set_value(pairs[1]).run()
    original = demo_copy.scalar("SELECT target_response FROM training_pairs WHERE pair_id = ?", [pairs[1]])
    assert original in [t.value for t in at.text]
    conversation = demo_copy.scalar("SELECT conversation_id FROM training_pairs WHERE pair_id = ?", [pairs[1]])
    at.button(key="ag_open_in_queue").click().run()
    assert not at.exception
    assert at.selectbox(key="rv_open").value == conversation and at.session_state["rv_tab"] == "Queue"

    # A third reviewer: Fleiss' kappa instead of Cohen's.
    for pid, helpful in zip(pairs, [True, True, False, True], strict=True):
        record_feedback(demo_copy, "training_pair", pid, "Cy", helpful=helpful)
    at = open_agreement(open_page(demo_copy.root, monkeypatch, reviewer="Ann"))
    labels = [m.label for m in at.metric]
    assert "Fleiss' κ" in labels and "Cohen's κ" not in labels
    at.multiselect(key="ag_reviewers").set_value(["Ann"]).run()
    assert any("at least two reviewers to compare" in i.value for i in at.info)


def test_without_enriched_conversations_the_page_says_how_to_start(tmp_path: Path, monkeypatch) -> None:
    at = open_page(tmp_path / "empty", monkeypatch)
    assert any("brightrun demo" in i.value and "brightrun enrich" in i.value for i in at.info)
