"""Feedback into training data: the conversion rules, the splits, and built datasets traceable to their source."""

from __future__ import annotations

from collections import Counter

import pytest

from brightrun.datasets import (
    DatasetSpec,
    build_dataset,
    judgement_score,
    list_datasets,
    qualifies,
    read_examples,
    sft_decision,
    split_of,
)
from brightrun.datasets.rules import preference_pairs
from brightrun.errors import DatasetError
from brightrun.feedback import record_feedback
from brightrun.workspace import Workspace


@pytest.mark.parametrize(("helpful", "rating", "score"), [
    (True, None, 7.0),    # a bare thumbs up
    (True, 5, 10.0), (True, 4, 8.0), (None, 4, 8.0), (None, 5, 10.0),
    (False, 5, None),     # a thumbs down rated 5: excluded (the source SQL's precedence bug admitted it)
    (False, 4, None), (False, None, None),
    (True, 3, None), (None, 3, None), (True, 1, None), (None, None, None),
])
def test_sft_rule_on_crafted_feedback(helpful, rating, score) -> None:
    assert judgement_score(helpful, rating) == score
    assert qualifies(helpful, rating) is (score is not None)


def test_a_target_needs_one_qualifying_judgement_and_no_thumbs_down() -> None:
    assert sft_decision([(True, None), (None, 5)]) == (8.5, "ok")
    assert sft_decision([(True, None), (None, 3)]) == (7.0, "ok")  # a lukewarm rating does not veto
    assert sft_decision([(True, 5), (False, None)])[0] is None
    assert "thumbs down" in sft_decision([(False, 5)])[1]
    assert sft_decision([(None, 2)]) == (None, "no judgement is a thumbs up or a rating of 4 or 5")


def test_splits_are_80_10_10_within_two_points_and_stable() -> None:
    groups = [f"conv-{i:06d}" for i in range(10_000)]
    counts = Counter(split_of(g) for g in groups)
    assert abs(counts["train"] / 100 - 80) <= 2
    assert abs(counts["validation"] / 100 - 10) <= 2 and abs(counts["test"] / 100 - 10) <= 2
    assert [split_of(g) for g in groups] == [split_of(g) for g in groups]  # same run
    # Same answer on any machine: sha256 of the group id, pinned here.
    # Same answer on any machine: the first 8 bytes of sha256("conv-000000") are 8a2326a72eb10763, i.e.
    # 0.54 of 2^64, so it is "train"; the rest are pinned the same way.
    assert [split_of(f"conv-{i:06d}") for i in range(20)] == (
        ["train"] * 11 + ["test", "train", "validation"] + ["train"] * 5 + ["validation"])
    assert Counter(split_of(g, (50, 25, 25)) for g in groups)["train"] == pytest.approx(5000, abs=200)
    assert split_of("x", (0, 0, 1)) == "test"
    with pytest.raises(ValueError):
        split_of("x", (80, 20))


def test_preference_pairs_order_answers_by_rating() -> None:
    answers = [("good", 4.5), ("bad", 2.0), ("also bad", 2.0), ("good", 1.0)]
    assert preference_pairs(answers) == [(0, 1), (0, 2), (1, 3), (2, 3)]  # identical texts never pair
    assert preference_pairs([("a", 3.0), ("b", 3.0)]) == []


def _pairs(ws: Workspace, n: int) -> list[tuple[str, str]]:
    return ws.sql("SELECT pair_id, conversation_id FROM training_pairs ORDER BY pair_id LIMIT ?", [n]).rows()


def test_sft_and_preference_datasets_from_reviews(demo_copy: Workspace) -> None:
    pairs = _pairs(demo_copy, 6)
    ids = [p for p, _ in pairs]
    record_feedback(demo_copy, "training_pair", ids[0], "ana", helpful=True)                # 7.0
    record_feedback(demo_copy, "training_pair", ids[1], "ana", helpful=False, rating=5)     # excluded
    record_feedback(demo_copy, "training_pair", ids[2], "ana", rating=4)                    # 8.0
    record_feedback(demo_copy, "training_pair", ids[2], "ben", helpful=True, rating=5)      # 10.0 -> mean 9.0
    record_feedback(demo_copy, "training_pair", ids[3], "ana", rating=2, edited_response="A kinder answer.")
    record_feedback(demo_copy, "training_pair", ids[4], "ana", rating=5)
    record_feedback(demo_copy, "training_pair", ids[4], "ana", rating=3)                    # latest wins: out

    result = build_dataset(demo_copy, DatasetSpec(name="reviewed", kind="sft", source="review"))
    examples = {e["source"]["id"]: e for e in read_examples(demo_copy, "reviewed")}
    assert set(examples) == {ids[0], ids[2]}
    assert examples[ids[0]]["quality_score"] == 7.0 and examples[ids[2]]["quality_score"] == 9.0
    assert examples[ids[2]]["source"]["reviewers"] == ["ana", "ben"]
    assert len(examples[ids[2]]["source"]["feedback_ids"]) == 2
    target = demo_copy.sql("SELECT target_response, current_user_input FROM training_pairs WHERE pair_id = ?",
                           [ids[2]]).row(0)
    messages = examples[ids[2]]["messages"]
    assert messages[0]["role"] == "system" and messages[-1] == {"role": "assistant", "content": target[0]}
    assert messages[-2] == {"role": "user", "content": target[1]}
    assert result.excluded == {"a reviewer gave it a thumbs down": 1,
                               "no judgement is a thumbs up or a rating of 4 or 5": 2}
    assert sum(result.counts["all"].values()) == 2 == result.examples
    assert examples[ids[0]]["split"] == split_of(pairs[0][1])  # grouped by conversation

    pref = build_dataset(demo_copy, DatasetSpec(name="edits", kind="preference", source="review"))
    (edit,) = read_examples(demo_copy, "edits")
    original = demo_copy.sql("SELECT target_response FROM training_pairs WHERE pair_id = ?", [ids[3]]).item()
    assert (edit["chosen"], edit["rejected"]) == ("A kinder answer.", original)
    assert edit["source"]["kind"] == "edit" and pref.examples == 1
    assert {d.spec.name for d in list_datasets(demo_copy)} == {"reviewed", "edits"}
    manifest = (demo_copy.root / "datasets" / "edits" / "manifest.json").read_text()
    assert '"redact_pii": true' in manifest


def test_no_group_straddles_two_splits_and_rebuilds_are_identical(demo_copy: Workspace) -> None:
    for pair, _ in _pairs(demo_copy, 200):
        record_feedback(demo_copy, "training_pair", pair, "ana", helpful=True)
    first = build_dataset(demo_copy, DatasetSpec(name="all-up", kind="sft", source="review"))
    examples = read_examples(demo_copy, "all-up")
    by_group: dict[str, set[str]] = {}
    for e in examples:
        by_group.setdefault(e["group"], set()).add(e["split"])
    assert all(len(s) == 1 for s in by_group.values()) and len(by_group) > 10
    again = build_dataset(demo_copy, DatasetSpec(name="all-up", kind="sft", source="review"))
    assert again.files == first.files  # same bytes, same hashes


def test_an_empty_dataset_is_refused_with_a_fix(demo_copy: Workspace) -> None:
    with pytest.raises(DatasetError, match="Review page"):
        build_dataset(demo_copy, DatasetSpec(name="nothing", kind="sft", source="review"))
    assert not (demo_copy.root / "datasets" / "nothing").exists()


def test_cli_builds_lists_and_exports(demo_copy: Workspace, tmp_path) -> None:
    import orjson
    from typer.testing import CliRunner

    from brightrun.cli.main import app

    runner = CliRunner()
    path = str(demo_copy.root)
    (pair, _), (other, _) = _pairs(demo_copy, 2)
    record_feedback(demo_copy, "training_pair", pair, "ana", helpful=True, rating=5, edited_response="Edited.")
    record_feedback(demo_copy, "training_pair", other, "ana", helpful=False, rating=5)
    built = runner.invoke(app, ["datasets", "build", "cli-sft", "-w", path, "--source", "review", "--json"])
    assert built.exit_code == 0, built.output
    data = orjson.loads(built.stdout)
    assert data["examples"] == 1 and data["excluded"] == {"a reviewer gave it a thumbs down": 1}
    text = runner.invoke(app, ["datasets", "build", "cli-pref", "-w", path, "--kind", "preference",
                               "--source", "review", "--split", "0", "0", "1"])
    assert text.exit_code == 0, text.output
    assert "test 1" in text.stdout
    listed = runner.invoke(app, ["datasets", "list", "-w", path])
    assert "cli-sft: sft, 1 examples" in listed.stdout and "cli-pref: preference" in listed.stdout
    exported = runner.invoke(app, ["feedback", "export", str(tmp_path / "fb.jsonl"), "-w", path])
    assert exported.exit_code == 0 and len((tmp_path / "fb.jsonl").read_bytes().splitlines()) > 2
    empty = runner.invoke(app, ["datasets", "build", "none", "-w", path, "--kind", "app_steps", "--source",
                                "import", "--action-type", "no_such_step"])
    assert empty.exit_code != 0 and "would be empty" in str(empty.exception)


PII = {  # one planted value of each kind, and how it must not appear in a dataset
    "email": "jane.doe@example.com", "phone": "+1 (415) 555-0132", "card": "4111 1111 1111 1111",
    "account": "DE89 3704 0044 0532 0130 00", "ip": "192.168.1.20", "street_address": "221B Baker Street",
}


def _log_with_pii(path) -> None:
    import orjson

    rows = []
    for i, (kind, value) in enumerate(PII.items()):
        rows.append({"action_type": "ideal_state_generation", "user_id": "jane.doe@example.com",
                     "session_id": f"s-{i}", "prompt": f"My answer: reach me at {value} about my goals ({kind}).",
                     "response": f"Noted {value}. Your ideal state is calm mornings and a paid-off mortgage.",
                     "helpful": True, "rating": 5})
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))


def test_personal_data_is_found_and_absent_from_datasets_by_default(ws: Workspace, tmp_path) -> None:
    from brightrun.applogs import import_log

    log = tmp_path / "app.jsonl"
    _log_with_pii(log)
    result = import_log(ws, log)
    assert result.new_calls == 6
    for kind in PII:  # each kind found, in the prompt and in the response
        assert result.pii["prompt"][kind] >= 1 and result.pii["response"][kind] >= 1
    for kind in ("sft", "app_steps"):
        built = build_dataset(ws, DatasetSpec(name=f"{kind}-safe", kind=kind, source="import"))
        assert built.spec.redact_pii and built.examples == 6
        text = b"".join(p.read_bytes() for p in (ws.root / "datasets" / f"{kind}-safe").rglob("*.jsonl")).decode()
        for value in [*PII.values(), "jane.doe@example.com"]:
            assert value not in text, (kind, value)
        assert "[EMAIL]" in text and "[CARD]" in text and "[ADDRESS]" in text
        assert all(built.redactions.get(k, 0) >= 2 for k in PII)
    kept = build_dataset(ws, DatasetSpec(name="raw", kind="app_steps", redact_pii=False))
    text = b"".join(p.read_bytes() for p in (ws.root / "datasets" / "raw").rglob("*.jsonl")).decode()
    assert all(value in text for value in PII.values())
    assert kept.redactions == {} and '"redact_pii": false' in (ws.root / "datasets" / "raw" / "manifest.json").read_text()


def test_differently_rated_answers_to_the_same_context_make_a_preference_pair(ws: Workspace, tmp_path) -> None:
    import orjson

    from brightrun.applogs import import_log

    same = "Describe my ideal morning."
    rows = [{"action_type": "scene_generation", "session_id": "s1", "prompt": same, "response": "Coffee, sun, calm.",
             "rating": 5},
            {"action_type": "scene_generation", "session_id": "s2", "prompt": same, "response": "Wake up. Work.",
             "rating": 2},
            {"action_type": "scene_generation", "session_id": "s3", "prompt": same, "response": "A slow walk.",
             "rating": 5},  # ties with the first: no pair between them
            {"action_type": "blueprint_generation", "session_id": "s1", "prompt": same, "response": "Plan.",
             "rating": 1}]  # another step: another context
    log = tmp_path / "rated.jsonl"
    log.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    import_log(ws, log)
    build_dataset(ws, DatasetSpec(name="rated", kind="preference", source="import"))
    pairs = {(e["chosen"], e["rejected"]) for e in read_examples(ws, "rated")}
    assert pairs == {("Coffee, sun, calm.", "Wake up. Work."), ("A slow walk.", "Wake up. Work.")}
    assert all(e["source"]["kind"] == "ratings" and e["rating_gap"] == 3 for e in read_examples(ws, "rated"))
