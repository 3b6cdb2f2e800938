"""AppTest of the Review page's controls for reviewing at volume: blind review hides what reveals an arm or
anchors the rating, the queue filters by experiment and arm, and one click gives a thumbs up to every turn of a
conversation not judged yet."""

from __future__ import annotations

import re

from test_app_review import open_page, open_turn, queue

from brightrun.enrichment import enrich
from brightrun.experiments import create_experiment, run_experiment
from brightrun.feedback import record_feedback
from brightrun.workspace import Workspace

VERSION = re.compile(r"@ [0-9a-f]{8,}")


def test_blind_review_hides_scores_and_versions(demo_copy: Workspace, monkeypatch) -> None:
    at = open_page(demo_copy.root, monkeypatch, reviewer="Ann")
    assert at.toggle(key="rv_blind").value is True
    assert not {"quality_score", "template_version"} & set(queue(at).columns)
    headers = [m.value for m in at.markdown if m.value.startswith("**Advisor** · turn")]
    caption = next(c.value for c in at.caption if "advisor turn(s)" in c.value)
    assert headers and not any("heuristic score" in h for h in headers) and not VERSION.search(caption)
    at.toggle(key="rv_blind").set_value(False).run()
    assert {"quality_score", "template_version"} <= set(queue(at).columns)
    headers = [m.value for m in at.markdown if m.value.startswith("**Advisor** · turn")]
    caption = next(c.value for c in at.caption if "advisor turn(s)" in c.value)
    assert all("heuristic score" in h for h in headers) and VERSION.search(caption)


def test_the_queue_filters_by_experiment_and_arm(demo_copy: Workspace, monkeypatch) -> None:
    from test_experiments import KEY, add_guided_version

    old, new = add_guided_version(demo_copy)
    persona, topic = next(iter(demo_copy.scaffolding.personas)), next(iter(demo_copy.scaffolding.topics))
    create_experiment(demo_copy, experiment_id="small", name="Small", template_key=KEY,
                      control={"name": "control", "template_version": old},
                      variants=[{"name": "guided", "template_version": new}], personas=[persona], topics=[topic],
                      per_arm=2)
    run_experiment(demo_copy, "small")
    enrich(demo_copy)
    arms = dict(demo_copy.sql("SELECT job_id, count(*) FROM conversations WHERE job_id LIKE '%small%' "
                              "GROUP BY 1").rows())
    assert sorted(arms.values()) == [2, 2]
    at = open_page(demo_copy.root, monkeypatch, reviewer="Ann")
    at.selectbox(key="rv_experiment").set_value("small").run()
    assert len(queue(at)) == 4
    at.multiselect(key="rv_arms_small").set_value(["guided"]).run()
    shown = set(queue(at)["conversation_id"])
    expected = set(demo_copy.sql("SELECT conversation_id FROM conversations WHERE job_id = ?",
                                 [next(j for j in arms if j.endswith("guided"))])["conversation_id"])
    assert shown == expected and len(shown) == 2


def test_thumbs_up_every_unjudged_turn_of_a_conversation(demo_copy: Workspace, monkeypatch) -> None:
    at = open_page(demo_copy.root, monkeypatch, reviewer="Ann")
    cid = at.selectbox(key="rv_open").value
    pairs = demo_copy.sql("SELECT pair_id FROM training_pairs WHERE conversation_id = ? ORDER BY turn_number",
                          [cid])["pair_id"].to_list()
    record_feedback(demo_copy, "training_pair", pairs[0], "Ann", helpful=False, rating=2)
    at.run()
    button = at.button(key=f"rv_bulk_{cid}")
    assert button.label == f"Thumbs up the {len(pairs) - 1} unjudged turn(s)"
    button.click().run()
    assert not at.exception
    rows = dict(demo_copy.sql("SELECT target_id, helpful FROM feedback_latest WHERE reviewer = 'Ann' AND "
                              "conversation_id = ?", [cid]).rows())
    assert rows == {pairs[0]: False, **{p: True for p in pairs[1:]}}  # the thumbs down stays
    assert not [b for b in at.button if b.key == f"rv_bulk_{cid}"]


def test_a_turns_history_is_drawn_when_its_expander_opens(demo_copy: Workspace, monkeypatch) -> None:
    """The page budget: no history table on the first run (a table per turn, drawn even while closed)."""
    at = open_page(demo_copy.root, monkeypatch, reviewer="Ann")
    cid = at.selectbox(key="rv_open").value
    first = demo_copy.sql("SELECT pair_id FROM training_pairs WHERE conversation_id = ? ORDER BY turn_number "
                          "LIMIT 1", [cid]).item()
    record_feedback(demo_copy, "training_pair", first, "Ann", helpful=True, comment="clear and kind")
    at.run()
    histories = [d for d in at.dataframe if "response" in d.value.columns and "version" in d.value.columns]
    assert not histories and any(e.label == "History · 1 judgement(s)" for e in at.expander)
    at.session_state[f"rv_history_{first}"] = True
    at.run()
    (history,) = [d.value for d in at.dataframe if "response" in d.value.columns and "version" in d.value.columns]
    assert list(history["version"]) == ["original", "judgement"] and history["comment"].iloc[1] == "clear and kind"


def test_only_the_turn_in_focus_draws_its_form_until_another_is_opened(demo_copy: Workspace, monkeypatch) -> None:
    """The page budget: a judgement form per advisor turn was most of the browser's work on the first run. The
    turn the keys judge opens by itself (also when the focus moves on); the others on a click, and stay open."""
    at = open_page(demo_copy.root, monkeypatch, reviewer="Ann")
    cid = at.selectbox(key="rv_open").value
    pairs = demo_copy.sql("SELECT pair_id FROM training_pairs WHERE conversation_id = ? ORDER BY turn_number",
                          [cid])["pair_id"].to_list()
    assert len(pairs) >= 3

    def forms() -> list[str]:
        return [b.key.removeprefix("rv_save_") for b in at.button if b.key and b.key.startswith("rv_save_")]

    assert forms() == [pairs[0]]
    assert [e.label for e in at.expander].count("Your judgement") == len(pairs)
    at.button(key="rv_key_u").click().run()
    at.button(key="rv_key_4").click().run()  # the first turn has both: the focus and its form move on
    assert not at.exception and forms() == pairs[:2]
    open_turn(at, pairs[-1])
    assert forms() == [pairs[0], pairs[1], pairs[-1]]
    at.session_state[f"rv_judge_{pairs[0]}"] = False  # closed by the reviewer: it stays closed
    at.run()
    assert forms() == [pairs[1], pairs[-1]]
