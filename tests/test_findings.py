"""The quality report's duplicate groups in bounded memory (brightrun.quality.findings): the groups that
exact_groups and clusters_of give over every text in memory, from features added a chunk at a time; and the
report's conversation features read from the signature store, with stale and missing entries signed again."""

from __future__ import annotations

import random

import numpy as np
import pytest

from brightrun.errors import WorkspaceError
from brightrun.quality import signature_store
from brightrun.quality.duplicates import (
    all_features,
    clusters_of,
    conversation_texts,
    exact_groups,
    pair_texts,
    text_features,
)
from brightrun.quality.findings import Scratch
from brightrun.quality.report import build_quality_report
from brightrun.workspace import Workspace


def corpus(seed: int = 5) -> dict[str, str]:
    """Chains of near duplicates (each text a word or two from the one before), exact copies (case and
    punctuation changed) of some of them, two near-duplicate texts that each have an exact copy, and unrelated texts."""
    rng = random.Random(seed)
    base = ("we looked at the budget together and set aside a cushion for emergencies before paying down the "
            "card with the highest rate then we automated the transfer every payday").split()
    texts: dict[str, str] = {}
    for n in range(90):
        words = list(base)
        for k in range(n % 10):
            words[(3 * k + n) % len(words)] = f"w{n}_{k}"
        texts[f"t{n:03d}"] = " ".join(words)
    for n in rng.sample(range(90), 25):
        texts[f"copy{n:03d}"] = texts[f"t{n:03d}"].upper() + "!"
    other = "a completely different note about renting versus buying a first home in a small town near the coast"
    texts |= {"pa": other, "pa-copy": other + ".", "pb": other.replace("coast", "lake"), "pb-copy": other.replace(
        "coast", "lake").title()}
    texts |= {f"u{n:02d}": f"unrelated text number {n} about something else entirely {n * 7}" for n in range(40)}
    return dict(sorted(texts.items(), key=lambda kv: rng.random()))


def in_memory(texts: dict[str, str]) -> tuple[list, list]:
    ids = list(texts)
    features = all_features(list(texts.values()))
    return exact_groups(ids, features.keys), clusters_of(ids, features)


def streamed(texts: dict[str, str], chunk: int, workers: int) -> tuple[list, list]:
    ids = list(texts)
    with Scratch() as scratch:
        for k in range(0, len(ids), chunk):
            scratch.add(ids[k:k + chunk], text_features([texts[i] for i in ids[k:k + chunk]]))
        assert scratch.texts == len(ids)
        return scratch.findings(workers)


@pytest.mark.parametrize(("chunk", "workers"), [(1000, 1), (17, 1), (17, 2)])
def test_scratch_gives_the_groups_of_the_in_memory_search(chunk: int, workers: int) -> None:
    texts = corpus()
    exact, clusters = in_memory(texts)
    got_exact, got_clusters = streamed(texts, chunk, workers)
    assert got_exact == exact and len(exact) >= 20
    # The in-memory clusters less those of one distinct text (each one an exact group, listed as such).
    keys = dict(zip(texts, all_features(list(texts.values())).keys, strict=True))
    several = [c for c in clusters if len({keys[i] for i in c.ids}) > 1]
    assert got_clusters == several
    assert len(several) >= 2 and max(len(c.ids) for c in several) > 30
    # Two texts that each have an exact copy, and are near duplicates of each other: one cluster of four.
    assert any(c.ids == ("pa", "pa-copy", "pb", "pb-copy") for c in got_clusters)


def test_huge_buckets_read_a_block_at_a_time_give_the_same_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    from brightrun.quality import findings

    texts = corpus()
    expected = streamed(texts, 1000, 1)
    monkeypatch.setattr(findings, "_BLOCK", 3)  # every bucket over 3 members is "huge"; one process sees the patch
    assert streamed(texts, 1000, 1) == expected


def test_scratch_with_nothing_or_one_text_finds_nothing() -> None:
    with Scratch() as scratch:
        assert scratch.findings() == ([], [])
    with Scratch() as scratch:
        scratch.add(["a"], text_features(["just one text"]))
        assert scratch.findings() == ([], [])


def test_scratch_folder_is_removed() -> None:
    with Scratch() as scratch:
        scratch.add(["a", "b"], text_features(["one text here", "one text here!"]))
        folder = scratch.folder
        assert (folder / "sig.u32").exists()
    assert not folder.exists()


def test_report_reads_kept_conversation_features_and_signs_stale_and_missing_ones(demo_copy: Workspace) -> None:
    ws = demo_copy
    texts = conversation_texts(ws)
    ids = sorted(texts)
    # Keep the features of every conversation but the first two; for the third keep a wrong signature made from
    # other turns (a stale entry: its fingerprint is not the one of its turns).
    for path in signature_store.folder(ws).glob("*.parquet"):
        path.unlink()
    made = signature_store.fingerprints(ws)
    signature_store.write(ws, signature_store.compute(ids[2:], [texts[i] for i in ids[2:]]), made)
    stale = signature_store.compute([ids[2]], ["a different text altogether"])
    signature_store.write(ws, stale, {ids[2]: made[ids[2]] ^ 1})
    turns = signature_store.fingerprint_frame(ws)
    kept, missing = signature_store.current(ws, turns, rows=50)
    batches = list(kept)
    assert missing == ids[:3]
    assert max(len(b.ids) for b in batches) <= 50
    assert sorted(i for b in batches for i in b.ids) == ids[3:]
    report = build_quality_report(ws, workers=1)
    exact, clusters = in_memory(texts)
    assert [tuple(g.ids) for g in report.conversation_duplicates.exact] == exact
    keys = dict(zip(texts, all_features(list(texts.values())).keys, strict=True))
    assert [tuple(g.ids) for g in report.conversation_duplicates.near] == [
        c.ids for c in clusters if len({keys[i] for i in c.ids}) > 1]
    # What was missing or stale is kept now, from the current turns.
    loaded = signature_store.load(ws, ids[:3], made)
    assert loaded.ids == ids[:3]
    assert np.array_equal(loaded.signatures, signature_store.compute(ids[:3], [texts[i] for i in ids[:3]]).signatures)
    assert signature_store.current(ws, turns, rows=50)[1] == []


def test_report_pairs_stream_from_the_table(demo_ws: Workspace) -> None:
    texts = pair_texts(demo_ws)
    report = build_quality_report(demo_ws, workers=1)
    exact, _ = in_memory(texts)
    assert [tuple(g.ids) for g in report.pair_duplicates.exact] == exact and exact
    seen = [batch.num_rows for batch in demo_ws.stream("training_pairs", ["pair_id"], rows=500)]
    assert sum(seen) == len(texts) and max(seen) <= 500 and len(seen) >= len(texts) // 500


def test_stream_refuses_a_column_the_table_does_not_have(demo_ws: Workspace) -> None:
    with pytest.raises(WorkspaceError, match="has no column 'password'. Fix: use one of"):
        next(demo_ws.stream("training_pairs", ["pair_id", "password"]))


def test_cell_diversity_read_in_chunks_gives_the_figures_of_every_text_at_once(demo_ws: Workspace,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from brightrun.quality import diversity

    frame = demo_ws.sql("""
        SELECT c.persona_key, c.arc_key, c.topic_key, c.conversation_id, string_agg(t.content, '\n' ORDER BY t.turn_number) AS text,
               arg_min(t.content, t.turn_number) AS first
        FROM conversations c JOIN turns t USING (conversation_id) WHERE t.role = 'assistant' GROUP BY ALL""")
    expected = {}
    for (p, a, t), cell in frame.group_by("persona_key", "arc_key", "topic_key"):
        openings = [diversity.normalize((diversity.sentences(x) or [""])[0]) for x in cell["first"].to_list()]
        many = cell.height > 1
        expected[(p, a, t)] = (cell.height, round(diversity.distinct_n(cell["text"].to_list()), 3) if many else None,
                               round(diversity.repeated_openings(openings), 3) if many else None)
    monkeypatch.setattr(diversity, "CHUNK", 13)
    got = {(r["persona_key"], r["arc_key"], r["topic_key"]): (r["conversations"], r["distinct_2"], r["repeated_openings"])
           for r in diversity.cell_diversity(demo_ws).to_dicts()}
    assert got == expected and any(v[1] is not None for v in got.values())


def test_memory_benchmark_prints_each_step_and_fails_over_its_budget(demo_copy: Workspace) -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[1] / "bench" / "bench_quality_memory.py"
    run = subprocess.run([sys.executable, str(script), "--workspace", str(demo_copy.root), "--workers", "1"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    for step in ("finding duplicate conversations", "signing training pairs", "linking training pairs (LSH bands) 25/25",
                 "measuring diversity", "saved", "summed peak of the process tree"):
        assert step in run.stdout
    over = subprocess.run([sys.executable, str(script), "--workspace", str(demo_copy.root), "--workers", "1",
                           "--budget-mib", "1"], capture_output=True, text=True, timeout=300)
    assert over.returncode == 1 and "budget 1)" in over.stdout
