"""Exact and near-duplicate detection on planted duplicates and paraphrases, with measured
precision and recall."""

from __future__ import annotations

import random
import re

from brightrun.quality.duplicates import (
    conversation_texts,
    exact_duplicates,
    near_duplicate_clusters,
    normalize,
    pair_texts,
)
from brightrun.workspace import Workspace

SYNONYMS = {"worry": "concern", "money": "cash", "help": "assist", "plan": "strategy", "really": "truly",
            "think": "believe", "start": "begin", "next": "following", "step": "move", "feel": "am feeling"}


def paraphrase(text: str, rng: random.Random) -> str:
    """Swap two sentences, drop one, replace synonyms, add a few typos."""
    sentences = re.split(r"(?<=[.?!])\s+", text)
    if len(sentences) > 4:
        i = rng.randrange(len(sentences) - 1)
        sentences[i], sentences[i + 1] = sentences[i + 1], sentences[i]
        del sentences[rng.randrange(len(sentences))]
    words = " ".join(sentences).split(" ")
    for j, word in enumerate(words):
        bare = word.lower().strip(".,?!")
        if bare in SYNONYMS and rng.random() < 0.7:
            words[j] = SYNONYMS[bare]
        elif rng.random() < 0.02:
            words[j] = word + "s"
    return " ".join(words)


def pairs_of(clusters) -> set[tuple[str, str]]:
    return {(a, b) for c in clusters for a in c.ids for b in c.ids if a < b}


def test_normalize_folds_case_punctuation_and_space() -> None:
    assert normalize("  Hello,   WORLD!\nIt's me. ") == "hello world it s me"


def test_exact_duplicates_ignore_case_punctuation_and_whitespace() -> None:
    texts = {"a": "I want to pay off my mortgage.", "b": "i want to pay off my  MORTGAGE", "c": "Something else."}
    assert exact_duplicates(texts) == [("a", "b")]


def test_near_duplicates_find_planted_paraphrases_and_spare_distinct_ones(demo_ws: Workspace) -> None:
    texts = conversation_texts(demo_ws)
    rng = random.Random(7)
    originals = sorted(texts)[:150]
    planted = originals[:50]
    docs = {key: texts[key] for key in originals}
    docs |= {f"{key}~para": paraphrase(texts[key], rng) for key in planted}
    truth = {(key, f"{key}~para") for key in planted}
    found = pairs_of(near_duplicate_clusters(docs))
    hits = len(found & truth)
    precision = hits / len(found) if found else 0.0
    recall = hits / len(truth)
    print(f"\nnear duplicates: {len(truth)} planted paraphrases among {len(docs)} conversations: "
          f"precision {precision:.3f}, recall {recall:.3f} ({len(found)} pairs flagged)")
    assert precision >= 0.95 and recall >= 0.8
    distinct = near_duplicate_clusters({key: texts[key] for key in originals})
    assert distinct == []  # the scripted conversations themselves are not near duplicates


def test_training_pair_texts_and_clusters_carry_similarity(demo_ws: Workspace) -> None:
    pairs = pair_texts(demo_ws)
    assert len(pairs) == demo_ws.sql("SELECT count(*) FROM training_pairs").item()
    key = sorted(pairs)[0]
    clusters = near_duplicate_clusters({key: pairs[key], "copy": pairs[key] + " Thanks!", "other": "Unrelated."})
    assert len(clusters) == 1 and clusters[0].ids == tuple(sorted([key, "copy"]))
    assert 0.6 <= clusters[0].similarity <= 1.0
