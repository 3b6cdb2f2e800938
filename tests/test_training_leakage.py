"""The leakage report of a training-file version is computed once and read from the workspace afterwards."""

from __future__ import annotations

import threading
import time

import pytest

import brightrun.training_files as tf
from brightrun.training_files import leakage as leakage_module
from brightrun.training_files import splits as splits_module
from brightrun.workspace import Workspace


@pytest.fixture
def leaky(demo_copy: Workspace, monkeypatch: pytest.MonkeyPatch) -> tuple[Workspace, list[int]]:
    """Training file 'f' whose latest version's splits leak 12 planted near duplicates; and a list counting
    the leakage computations."""
    ws = demo_copy
    ids = ws.sql("SELECT conversation_id FROM conversations ORDER BY 1 LIMIT 40")["conversation_id"].to_list()
    texts = splits_module.member_texts(ws, ids)
    planted = {cid: texts[ids[0]] + f" extra words {n}" for n, cid in enumerate(ids[:12])}
    tf.create_training_file(ws, "f")
    monkeypatch.setattr(splits_module, "member_texts", lambda w, wanted: {c: texts[c] for c in wanted})
    tf.add_conversations(ws, "f", ids)
    tf.assign_splits(ws, "f", (34, 33, 33), salt="leak")  # made without the duplicates in view
    monkeypatch.setattr(splits_module, "member_texts", lambda w, wanted: {c: planted.get(c, texts[c]) for c in wanted})
    calls = []
    real = leakage_module.leakage_pairs

    def counted(*args, **kwargs):
        calls.append(1)
        time.sleep(0.3)  # long enough for a concurrent caller to arrive while this one computes
        return real(*args, **kwargs)

    monkeypatch.setattr(leakage_module, "leakage_pairs", counted)
    return ws, calls


def test_the_leakage_report_is_computed_once_per_version_and_then_read(leaky) -> None:
    ws, calls = leaky
    first = tf.stored_leakage_report(ws, "f")
    assert len(calls) == 1 and first.height > 0
    assert first.equals(tf.leakage_report(ws, "f"))
    calls.clear()
    assert tf.stored_leakage_report(ws, "f").equals(first) and calls == []
    # another process (a fresh workspace object) reads the same stored report
    assert tf.stored_leakage_report(Workspace.open(ws.root), "f").equals(first) and calls == []
    stored = list((ws.root / "training_files" / "f" / "leakage").glob("*.parquet"))
    latest = tf.get_version(ws, "f").version
    assert [p.name.split("-")[0] for p in stored] == [f"v{latest}"]
    # a different threshold, or another version, is its own report
    assert tf.stored_leakage_report(ws, "f", threshold=0.9).height <= first.height and len(calls) == 1
    assert tf.stored_leakage_report(ws, "f", latest - 1).equals(tf.leakage_report(ws, "f", latest - 1))
    assert len(calls) == 3  # computed once for the stored report, once by leakage_report itself
    tf.stored_leakage_report(ws, "f", latest - 1)
    assert len(calls) == 3


def test_a_caller_arriving_while_the_report_is_computed_waits_for_it(leaky) -> None:
    ws, calls = leaky
    results = []
    threads = [threading.Thread(target=lambda: results.append(tf.stored_leakage_report(Workspace.open(ws.root), "f")))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(calls) == 1 and len(results) == 3
    assert all(r.equals(results[0]) for r in results) and results[0].height > 0
