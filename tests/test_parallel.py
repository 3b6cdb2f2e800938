"""Every core: enrichment and the quality report computed by a pool of worker processes give exactly the
rows and the report of a single process (only the parent writes; workers compute pure functions)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from test_enrichment import GOOD, plant

from brightrun.enrichment import enrich
from brightrun.errors import BrightRunError
from brightrun.quality.duplicates import near_duplicate_clusters
from brightrun.quality.report import build_quality_report
from brightrun.workspace import Workspace
from brightrun.workspace.pool import check_workers, map_ordered

ENRICHED = {
    "training_pairs": "SELECT * EXCLUDE (created_at) FROM training_pairs ORDER BY pair_id",
    "conversation_quality": "SELECT * EXCLUDE (created_at) FROM conversation_quality ORDER BY conversation_id",
    "enrichment_errors": "SELECT * EXCLUDE (created_at) FROM enrichment_errors ORDER BY conversation_id",
    "conversations": "SELECT conversation_id, enrichment_status, enrichment_version, quality_score, arc_adherence "
                     "FROM conversations ORDER BY conversation_id",
}


def copy_of(source: Path, target: Path) -> Workspace:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("locks"))
    ws = Workspace.open(target)
    # two bad records among the good ones: they fail alike, and the good ones around them are kept
    plant(ws, "zz-bad-roles", [("user", "Hi"), ("system", "x")])
    plant(ws, "zz-good", GOOD)
    plant(ws, "aa-no-advisor", [("user", "Hello?")])
    return ws


def enriched_rows(ws: Workspace) -> dict[str, pl.DataFrame]:
    return {table: ws.sql(query) for table, query in ENRICHED.items()}


def assert_same_rows(one: dict[str, pl.DataFrame], other: dict[str, pl.DataFrame]) -> None:
    for table, frame in one.items():
        assert frame.height, table
        assert frame.equals(other[table]), f"{table} differs"


def test_enrichment_with_two_workers_writes_the_rows_of_one(demo_ws_path: Path, tmp_path: Path) -> None:
    single, pooled = copy_of(demo_ws_path, tmp_path / "one"), copy_of(demo_ws_path, tmp_path / "two")
    seen: list[tuple[int, int]] = []
    a = enrich(single, force=True, chunk_size=40, workers=1)
    b = enrich(pooled, force=True, chunk_size=40, workers=2, progress=lambda done, total: seen.append((done, total)))
    assert (a.enriched, a.failed, a.pairs) == (b.enriched, b.failed, b.pairs) == (161, 2, a.pairs)
    assert a.pairs > 700
    assert seen == [(40, 163), (80, 163), (120, 163), (160, 163), (163, 163)]  # progress, chunk by chunk
    assert_same_rows(enriched_rows(single), enriched_rows(pooled))
    errors = pooled.sql("SELECT conversation_id, reason FROM enrichment_errors ORDER BY 1").rows()
    assert [cid for cid, _ in errors] == ["aa-no-advisor", "zz-bad-roles"]


def report_without_times(ws: Workspace, **options) -> dict:
    return build_quality_report(ws, **options).model_dump(exclude={"computed_at", "seconds"})


def test_quality_report_with_two_workers_is_the_report_of_one(demo_ws: Workspace) -> None:
    one = report_without_times(demo_ws, workers=1)
    assert one["conversation_duplicates"]["exact"] or one["conversation_duplicates"]["near"] or \
        one["pair_duplicates"]["exact"] or one["pair_duplicates"]["near"]
    assert report_without_times(demo_ws, workers=2) == one


def test_near_duplicate_clusters_split_over_workers_are_the_clusters_of_one() -> None:
    """Each worker links the pairs of its own share of the LSH bands; the union of those links must give
    the components of one pass over every band, also when chains of near duplicates cross the shares."""
    base = ("we looked at the budget together and set aside a cushion for emergencies before paying down the "
            "card with the highest rate then we automated the transfer every payday").split()
    texts = {}
    for n in range(120):  # chains: each text drifts a word or two from the one before it
        words = list(base)
        for k in range(n % 12):
            words[(3 * k + n) % len(words)] = f"w{n}_{k}"
        texts[f"t{n:03d}"] = " ".join(words)
    texts |= {f"u{n}": f"unrelated text number {n} about something else entirely {n * 7}" for n in range(30)}
    one = near_duplicate_clusters(texts, workers=1)
    assert len(one) >= 1 and max(len(c.ids) for c in one) > 10
    assert near_duplicate_clusters(texts, workers=2) == one
    assert near_duplicate_clusters(texts, workers=3) == one


def test_workers_below_one_are_refused_with_the_fix() -> None:
    with pytest.raises(BrightRunError, match="Fix: give 1 or more"):
        check_workers(0)
    assert check_workers(None) >= 1


@pytest.mark.parametrize(("args", "expected"), [
    (["enrich", "--workers", "0"], "error: --workers 0 is not a number of processes. Fix: give 1 or more"),
    (["quality", "report", "--engine", "spark"], "error: --engine 'spark' is not an engine. Fix: give local or ray"),
])
def test_bad_workers_or_engine_exit_2_with_the_fix(args: list[str], expected: str, tmp_path: Path,
                                                    cli_env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-m", "brightrun", *args, "--workspace", str(tmp_path / "ws")],
                          capture_output=True, text=True, env=cli_env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert " ".join(done.stderr.split()).startswith(expected), done.stderr
    assert not (tmp_path / "ws").exists()  # refused before any work: no workspace made


def test_engine_ray_without_ray_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from brightrun.workspace.ray_engine import start_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(BrightRunError, match=r'Fix: install the extra with `pip install -e "\.\[ray\]"`'):
        start_ray()


def test_a_build_made_by_two_workers_is_the_bytes_of_one(demo_copy: Workspace, monkeypatch) -> None:
    import brightrun.training_files as tf
    import brightrun.training_files.build as build

    ids = demo_copy.sql("SELECT conversation_id FROM conversations WHERE enrichment_status = 'completed' "
                        "ORDER BY conversation_id")["conversation_id"].to_list()
    tf.create_training_file(demo_copy, "f", "built twice")
    tf.add_conversations(demo_copy, "f", ids)
    monkeypatch.setattr(build, "CHUNK", 30)  # several chunks of members, so the pool has work to share
    one = tf.build_version(demo_copy, "f", workers=1)
    files = {p: p.read_bytes() for p in (one.json_path, one.jsonl_path, one.manifest_path)}
    assert one.conversations == len(ids) > 4 * 30
    two = tf.build_version(demo_copy, "f", workers=2)
    assert two.content_hash == one.content_hash
    assert {p: p.read_bytes() for p in (two.json_path, two.jsonl_path, two.manifest_path)} == files
    assert tf.check_agreement(two.json_path, two.jsonl_path) == []


def _die(chunk: int) -> int:
    if chunk == 2:
        os._exit(9)  # as a worker killed for memory dies: no exception, no result
    return chunk


def test_workers_do_not_run_the_main_script(tmp_path, monkeypatch) -> None:
    """Under Streamlit (or AppTest) the main module is the page script, which has no __main__ guard: a worker
    that re-ran it would run the whole page, and this one dies on import as a page that fails would."""
    import types

    script = tmp_path / "page.py"
    marker = tmp_path / "ran"
    script.write_text(f"open({str(marker)!r}, 'w').close()\nraise SystemExit('the page ran in a worker')\n")
    page = types.ModuleType("__main__")
    page.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", page)
    assert list(map_ordered(check_workers, [1, 2, 3, 4, 5], 2)) == [(k, k) for k in range(1, 6)]
    assert not marker.exists()
    assert sys.modules["__main__"] is page


def test_a_worker_that_dies_ends_in_an_error_with_the_fix() -> None:
    with pytest.raises(BrightRunError, match=r"a worker process died .* Fix: run again, with fewer --workers"):
        list(map_ordered(_die, [1, 2, 3], 2))
