"""Feedback: recording, history, the review queue, agreement (known answers) and concurrent writers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from brightrun.errors import FeedbackError
from brightrun.feedback import (
    ReviewFilter,
    agreement,
    disagreements,
    export_feedback,
    history,
    judgements_for_conversation,
    progress,
    record_feedback,
    review_queue,
)
from brightrun.feedback.agreement import cohen, fleiss, percent_agreement
from brightrun.workspace import Workspace


def pairs_of(ws: Workspace, n: int = 3) -> list[tuple[str, str]]:
    return ws.sql("SELECT pair_id, conversation_id FROM training_pairs ORDER BY conversation_id, turn_number "
                  "LIMIT ?", [n]).rows()


def test_latest_judgement_wins_and_history_keeps_all(demo_copy: Workspace) -> None:
    (pair, cid), = pairs_of(demo_copy, 1)
    original = demo_copy.sql("SELECT target_response FROM training_pairs WHERE pair_id = ?", [pair]).item()
    record_feedback(demo_copy, "training_pair", pair, "ana", helpful=True, rating=5)
    record_feedback(demo_copy, "training_pair", pair, "ana", helpful=True, rating=3, edited_response="Better.")
    record_feedback(demo_copy, "training_pair", pair, "ben", helpful=False, comment="too generic")
    current = judgements_for_conversation(demo_copy, cid, "ana")[pair]
    assert (current["helpful"], current["rating"], current["edited_response"]) == (True, 3, "Better.")
    past = history(demo_copy, pair)
    assert len(past) == 3 and past["current"].to_list().count(True) == 2
    assert demo_copy.sql("SELECT target_response FROM training_pairs WHERE pair_id = ?", [pair]).item() == original
    assert demo_copy.scalar("SELECT count(*) FROM feedback_latest WHERE source = 'review'") == 2


def test_bad_feedback_is_refused_with_a_fix(demo_copy: Workspace) -> None:
    (pair, _), = pairs_of(demo_copy, 1)
    with pytest.raises(FeedbackError, match="reviewer name"):
        record_feedback(demo_copy, "training_pair", pair, "  ", helpful=True)
    with pytest.raises(FeedbackError, match="no training pair 'nope'"):
        record_feedback(demo_copy, "training_pair", "nope", "ana", helpful=True)
    with pytest.raises(FeedbackError, match="rating from 1 to 5"):
        record_feedback(demo_copy, "training_pair", pair, "ana", rating=6)
    with pytest.raises(FeedbackError, match="Fix"):
        record_feedback(demo_copy, "training_pair", pair, "ana")  # says nothing
    assert demo_copy.scalar("SELECT count(*) FROM feedback WHERE source = 'review'") == 0


def test_queue_filters_and_progress(demo_copy: Workspace) -> None:
    everything = review_queue(demo_copy, ReviewFilter())
    assert everything.height == 160 and set(everything["state"]) == {"not reviewed"}
    cid = everything["conversation_id"][0]
    pair_ids = demo_copy.sql("SELECT pair_id FROM training_pairs WHERE conversation_id = ?", [cid])["pair_id"]
    for pair in pair_ids:
        record_feedback(demo_copy, "training_pair", pair, "ana", helpful=True)
    mine = ReviewFilter(by="ana")
    assert review_queue(demo_copy, mine.model_copy(update={"reviewed": "yes"}))["conversation_id"].to_list() == [cid]
    assert review_queue(demo_copy, mine.model_copy(update={"reviewed": "no"})).height == 159
    assert review_queue(demo_copy, ReviewFilter(by="ben", reviewed="yes")).height == 0
    queue = review_queue(demo_copy, mine)
    assert queue["conversation_id"][-1] == cid  # reviewed ones go last
    assert progress(demo_copy, mine) == {"conversations": 160, "reviewed": 1, "turns": 791,
                                         "judged_turns": len(pair_ids)}
    marcus = review_queue(demo_copy, ReviewFilter(personas=["marcus_chen"], tiers=["edge_case"], quality_min=6))
    assert set(marcus["persona"]) == {"Marcus Chen"} and set(marcus["tier"]) == {"edge_case"}
    assert (marcus["quality_score"] >= 6).all() and 0 < marcus.height < 160


def test_cohen_and_fleiss_known_answers() -> None:
    # Cohen (1960) as on Wikipedia: 50 items, yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> kappa 0.4.
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen(a, b, ["y", "n"]) == pytest.approx(0.4, abs=1e-12)
    # Fleiss (1971) worked example on Wikipedia: 10 items, 14 raters, 5 categories -> 0.210.
    m = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1], [7, 7, 0, 0, 0],
         [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss(m) == pytest.approx(0.2099, abs=1e-4)
    # Quadratic weights: the textbook formula 1 - sum(w*O)/sum(w*E) computed by hand.
    x, y = [1, 2, 3, 4, 5, 5, 4, 2], [1, 3, 3, 5, 5, 4, 4, 1]
    observed = [[0] * 5 for _ in range(5)]
    for i, j in zip(x, y, strict=True):
        observed[i - 1][j - 1] += 1
    n = len(x)
    rows, cols = [sum(r) for r in observed], [sum(c) for c in zip(*observed, strict=True)]
    w = [[(i - j) ** 2 / 16 for j in range(5)] for i in range(5)]
    num = sum(w[i][j] * observed[i][j] for i in range(5) for j in range(5))
    den = sum(w[i][j] * rows[i] * cols[j] / n for i in range(5) for j in range(5))
    assert cohen(x, y, [1, 2, 3, 4, 5], "quadratic") == pytest.approx(1 - num / den, abs=1e-12)
    assert percent_agreement([[True, True, False], [True, True, True]]) == pytest.approx((1 / 3 + 1) / 2)


def test_agreement_and_disagreements_between_reviewers(demo_copy: Workspace) -> None:
    pairs = [p for p, _ in pairs_of(demo_copy, 6)]
    thumbs = {"ana": [True, True, False, True, False, True], "ben": [True, False, False, True, False, True],
              "cy": [True, True, False, False, False, True]}
    ratings = {"ana": [5, 4, 2, 4, 1, 5], "ben": [5, 2, 2, 4, 1, 4], "cy": [4, 4, 1, 3, 2, 5]}
    for reviewer in thumbs:
        for pair, up, rating in zip(pairs, thumbs[reviewer], ratings[reviewer], strict=True):
            record_feedback(demo_copy, "training_pair", pair, reviewer, helpful=up, rating=rating)
    two = agreement(demo_copy, ["ana", "ben"])
    assert two.thumbs_items == 6 and two.thumbs_percent == pytest.approx(5 / 6)
    assert two.cohen_kappa == pytest.approx(cohen(thumbs["ana"], thumbs["ben"], [False, True]))
    assert two.weighted_kappa == pytest.approx(cohen(ratings["ana"], ratings["ben"], [1, 2, 3, 4, 5], "quadratic"))
    assert two.fleiss_kappa is None
    three = agreement(demo_copy)
    assert three.reviewers == ["ana", "ben", "cy"] and three.cohen_kappa is None
    counts = [[sum(not thumbs[r][i] for r in thumbs), sum(thumbs[r][i] for r in thumbs)] for i in range(6)]
    assert three.fleiss_kappa == pytest.approx(fleiss(counts))
    assert len(three.pairwise) == 3
    found = disagreements(demo_copy, ["ana", "ben"])
    assert found["pair_id"].to_list() == [pairs[1]]  # thumbs up vs down, ratings 4 vs 2
    assert "ana: up / 4" in found["judgements"][0] and "ben: down / 2" in found["judgements"][0]
    assert agreement(demo_copy, ["ana"]).thumbs_percent is None  # one reviewer: nothing to compare


def test_export_writes_history_with_the_original(demo_copy: Workspace, tmp_path: Path) -> None:
    (pair, _), = pairs_of(demo_copy, 1)
    record_feedback(demo_copy, "training_pair", pair, "ana", rating=2, edited_response="Shorter and kinder.")
    record_feedback(demo_copy, "training_pair", pair, "ana", rating=3, edited_response="Shorter and kinder.")
    assert export_feedback(demo_copy, tmp_path / "all.jsonl", source="review") == 2
    rows = [orjson.loads(line) for line in (tmp_path / "all.jsonl").read_bytes().splitlines()]
    assert [r["rating"] for r in rows] == [2, 3] and rows[0]["original_response"].startswith(
        demo_copy.sql("SELECT target_response FROM training_pairs WHERE pair_id = ?", [pair]).item()[:30])
    assert export_feedback(demo_copy, tmp_path / "latest.csv", latest_only=True, source="review") == 1
    with pytest.raises(FeedbackError, match="jsonl"):
        export_feedback(demo_copy, tmp_path / "x.txt")


def test_csv_export_neutralises_spreadsheet_formulas(demo_copy: Workspace, tmp_path: Path) -> None:
    import csv

    import polars as pl

    from brightrun.workspace.spreadsheet import neutralise_formulas

    (pair, _), = pairs_of(demo_copy, 1)
    hostile = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)"]
    for comment in hostile:
        record_feedback(demo_copy, "training_pair", pair, "ana", rating=3, comment=comment)
    record_feedback(demo_copy, "training_pair", pair, "ben", rating=4, comment="fine = good")
    assert export_feedback(demo_copy, tmp_path / "all.csv", source="review") == 5
    with open(tmp_path / "all.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["comment"] for r in rows] == ["'" + c for c in hostile] + ["fine = good"]
    assert {r["rating"] for r in rows} == {"3", "4"}  # numbers are left alone
    # Comments are stripped when recorded; a tab or carriage return first counts too (the OWASP list).
    frame = neutralise_formulas(pl.DataFrame({"text": ["\t=1", "\r=1", "a=1", None], "n": [-1, 2, 3, 4]}))
    assert frame.to_dict(as_series=False) == {"text": ["'\t=1", "'\r=1", "a=1", None], "n": [-1, 2, 3, 4]}


WRITER = textwrap.dedent("""
    import sys, time
    from brightrun.feedback import record_feedback
    from brightrun.workspace import Workspace
    ws = Workspace.open(sys.argv[1], create=False)
    pairs = ws.sql("SELECT pair_id FROM training_pairs ORDER BY pair_id LIMIT 50")["pair_id"].to_list()
    name, compact_every = sys.argv[2], int(sys.argv[3])
    deadline = time.monotonic() + float(sys.argv[4])
    n = 0
    while time.monotonic() < deadline:
        record = record_feedback(ws, "training_pair", pairs[n % len(pairs)], name, rating=1 + n % 5)
        print(record.feedback_id, flush=True)  # acknowledged: it is on disk
        n += 1
        if compact_every and n % compact_every == 0:
            ws.compact(tables=["feedback"])
""")


@pytest.mark.slow
def test_two_processes_writing_feedback_for_ten_seconds_lose_and_double_nothing(demo_copy: Workspace) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(demo_copy.root), name, every, "10"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for name, every in (("writer-a", "40"), ("writer-b", "0"))]
    acknowledged = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        acknowledged += out.decode().split()
    assert len(acknowledged) > 40  # both really wrote
    stored = demo_copy.sql("SELECT feedback_id FROM feedback WHERE source = 'review'")["feedback_id"].to_list()
    assert len(stored) == len(set(stored)) == len(acknowledged)
    assert set(stored) == set(acknowledged)
    demo_copy.compact()
    assert demo_copy.scalar("SELECT count(*) FROM feedback WHERE source = 'review'") == len(acknowledged)
    print(f"{len(acknowledged)} judgements written by two processes in 10 s, none lost or doubled")
