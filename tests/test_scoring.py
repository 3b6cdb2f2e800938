"""Heuristic quality dimensions on crafted responses, arc adherence, and scores through enrichment."""

from __future__ import annotations

import pytest
from test_enrichment import plant

from brightrun.enrichment.pipeline import enrich, enriched_conversation
from brightrun.quality import scoring
from brightrun.workspace import Workspace

GOOD = ("It makes complete sense to feel anxious about this, and thank you for telling me. Before I suggest "
        "anything, what does a good outcome look like for you? Here is how I would think about it: keep three "
        "months of expenses in a high-yield savings account. As a next step, let's write down your monthly "
        "costs together, then set up an automatic transfer on payday.")
POOR = ("There are a lot of options to consider. Everyone's situation is different. There are a lot of "
        "options to consider. Everyone's situation is different.")


def test_each_dimension_on_crafted_text() -> None:
    assert scoring.empathy(GOOD) == 1.0
    assert scoring.empathy("I understand. Here are the numbers.") == 0.5
    assert scoring.empathy(POOR) == 0.0
    assert scoring.clarity(GOOD) == 1.0
    assert scoring.clarity("Yes. No. Ok.") == 0.0
    assert scoring.clarity(" ".join(["word"] * 60) + ".") == 0.0
    assert scoring.actionable(GOOD) == 1.0 and scoring.actionable(POOR) == 0.0
    assert scoring.actionable("Let's review it.") == 1.0 and scoring.actionable("Let's see.") == 0.5
    assert scoring.asks_first(GOOD, is_last=False) == 1.0 and scoring.asks_first(POOR, is_last=False) == 0.0
    assert scoring.asks_first(POOR, is_last=True) == 1.0
    assert scoring.length_balance(" ".join(["w"] * 20)) == 0.5
    assert scoring.length_balance(" ".join(["w"] * 100)) == 1.0
    assert scoring.length_balance(" ".join(["w"] * 270)) == pytest.approx(0.5)
    assert scoring.repetition(POOR) == 0.5 and scoring.repetition(GOOD) == 1.0


def test_overall_is_ten_times_the_weighted_mean() -> None:
    assert sum(scoring.WEIGHTS.values()) == pytest.approx(1.0)
    good, poor = scoring.score_response(GOOD, is_last=False), scoring.score_response(POOR, is_last=False)
    assert good["quality_score"] == 10.0
    expected = 10 * sum(scoring.WEIGHTS[k] * poor[k] for k in scoring.DIMENSIONS)
    assert poor["quality_score"] == pytest.approx(expected, abs=0.01) and poor["quality_score"] < 5


def test_arc_adherence() -> None:
    intended = [-0.6, 0.0, 0.6]
    assert scoring.arc_adherence([-0.6, 0.0, 0.6], intended) == 1.0
    assert scoring.arc_adherence([0.6, 0.0, -0.6], intended) == pytest.approx(1 - (1.2 + 0 + 1.2) / 3 / 2)
    assert scoring.arc_adherence([None, 0.0, None], intended) == 1.0  # only turns with a detection count
    assert scoring.arc_adherence([None, None, None], intended) is None


def test_enrichment_scores_pairs_and_conversations(ws: Workspace) -> None:
    # Four client turns, one per stage of confusion_to_clarity: confused, curious, engaged, clear.
    client = ["I'm confused about my savings.", "I'm curious what you suggest.",
              "This is helpful, I'm following you.", "That's clear now."]

    def conversation(lines: list[str], answer: str) -> list[tuple[str, str]]:
        return [turn for line in lines for turn in (("user", line), ("assistant", answer))]

    good, poor = conversation(client, GOOD), conversation(client, POOR)
    reversed_arc = conversation(client[::-1], GOOD)
    plant(ws, "good", good)
    plant(ws, "poor", poor)
    plant(ws, "reversed", reversed_arc)
    assert enrich(ws).enriched == 3
    quality = {r["conversation_id"]: r for r in ws.sql("SELECT * FROM conversation_quality").iter_rows(named=True)}
    assert quality["good"]["quality_score"] == 10.0 and quality["poor"]["quality_score"] < 5
    assert quality["good"]["arc_adherence"] == 1.0 and quality["good"]["emotion_match_rate"] == 1.0
    # Gaps 1.2, 0.4, 0.4, 1.2: adherence 1 - 0.8 / 2; no client turn is in its intended stage.
    assert quality["reversed"]["arc_adherence"] == 0.6 and quality["reversed"]["emotion_match_rate"] == 0.0
    view = dict(ws.sql("SELECT conversation_id, quality_score FROM conversations").iter_rows())
    assert view["good"] == 10.0 and view["poor"] < 5  # the conversations view carries the score
    doc = enriched_conversation(ws, "poor")
    meta = doc["training_pairs"][0]["training_metadata"]
    assert set(meta["quality_scores"]) == set(scoring.DIMENSIONS) and meta["quality_score"] < 5


def test_scores_vary_on_the_demo(demo_ws: Workspace) -> None:
    spread = demo_ws.sql("SELECT min(quality_score), max(quality_score), count(*) FROM conversation_quality").row(0)
    assert spread[0] < 7 < spread[1] and spread[2] == 160
