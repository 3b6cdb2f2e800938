"""Heavy stages on Ray: `enrich` and the quality report with engine="ray", in Ray's local mode over the published
Delta tables of the demo workspace, give exactly the rows and the report of a single-process run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_parallel import assert_same_rows, copy_of, enriched_rows, report_without_times

from brightrun.enrichment import enrich, run_tracked
from brightrun.workspace import Workspace

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]' (CI installs it)")
pytest.importorskip("ray.data", reason="Ray Data is missing: pip install -e '.[ray]' (CI installs it)")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module: starting it takes seconds, and on a loaded machine much longer."""
    from brightrun.workspace.ray_engine import start_ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield start_ray()
    if started:
        ray.shutdown()


def test_enrich_on_ray_writes_the_rows_of_a_local_run(local_ray, demo_ws_path: Path, tmp_path: Path) -> None:
    local, on_ray = copy_of(demo_ws_path, tmp_path / "local"), copy_of(demo_ws_path, tmp_path / "ray")
    seen: list[tuple[int, int]] = []
    a = enrich(local, force=True, chunk_size=40, workers=1)
    b = run_tracked(on_ray, force=True, engine="ray", progress=lambda done, total: seen.append((done, total)))
    assert (a.enriched, a.failed, a.pairs) == (b.enriched, b.failed, b.pairs) == (161, 2, a.pairs)
    assert seen[-1] == (163, 163)
    assert_same_rows(enriched_rows(local), enriched_rows(on_ray))


def test_quality_report_on_ray_is_the_local_report(local_ray, demo_ws_path: Path, tmp_path: Path) -> None:
    target = tmp_path / "ws"
    shutil.copytree(demo_ws_path, target, ignore=shutil.ignore_patterns("locks"))
    ws = Workspace.open(target)
    local = report_without_times(ws, workers=1)
    assert local["pair_duplicates"]["exact"] or local["pair_duplicates"]["near"]
    assert report_without_times(ws, engine="ray") == local
