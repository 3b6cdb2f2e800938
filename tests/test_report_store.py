"""How the quality report is kept (brightrun.quality.report_store): a small summary the page reads, the groups'
members in a Parquet file beside it, read a group at a time; and a report saved before that layout still read."""

from __future__ import annotations

from brightrun.quality import report_store
from brightrun.quality.report import (
    DuplicateFindings,
    DuplicateGroup,
    build_quality_report,
    latest_quality_report,
    save_quality_report,
    summarize,
)
from brightrun.workspace import Workspace
from brightrun.workspace.files import write_json


def with_groups(report):
    """The report with planted groups of known sizes (the demo's own are few and small)."""
    conv = DuplicateFindings(exact=[DuplicateGroup(ids=["c1", "c2"], similarity=1.0)],
                             near=[DuplicateGroup(ids=[f"n{k:04d}" for k in range(1500)], similarity=0.71),
                                   DuplicateGroup(ids=["a", "b", "c"], similarity=0.65)])
    return report.model_copy(update={"conversation_duplicates": conv})


def test_saved_report_reads_back_whole_and_its_summary_holds_no_ids(demo_copy: Workspace) -> None:
    report = with_groups(build_quality_report(demo_copy))
    path = save_quality_report(demo_copy, report)
    assert latest_quality_report(demo_copy) == report
    text = path.read_text()
    assert "n0001" not in text and len(text) < 200_000
    summary = report_store.latest_summary(demo_copy)
    assert summary.duplicates["conversations"].model_dump() == {"exact": 1, "near": 2, "redundant": 1 + 1499 + 2}
    assert summary.duplicates["training_pairs"].near == len(report.pair_duplicates.near)
    assert summarize(summary) == summarize(report)
    # The page's reads: the largest groups first, a group's first members, the redundant ids.
    listed, total = report_store.groups(demo_copy, summary, "conversations", "near", limit=1)
    assert total == 2 and listed.to_dicts() == [{"group": 0, "size": 1500, "similarity": 0.71, "first_id": "n0000"}]
    assert report_store.groups(demo_copy, summary, "conversations", "near", min_size=4)[1] == 1
    assert report_store.members(demo_copy, summary, "conversations", "near", 0, limit=3) == ["n0000", "n0001", "n0002"]
    assert report_store.redundant(demo_copy, summary, "conversations") == report.conversation_duplicates.redundant()


def test_a_new_save_replaces_the_groups_file(demo_copy: Workspace) -> None:
    report = build_quality_report(demo_copy)
    save_quality_report(demo_copy, report)
    save_quality_report(demo_copy, with_groups(report))
    files = list((demo_copy.root / "reports").glob("quality-groups-*.parquet"))
    assert [f.name for f in files] == [report_store.latest_summary(demo_copy).groups_file]
    assert latest_quality_report(demo_copy) == with_groups(report)


def test_a_report_saved_with_its_groups_inside_is_still_read(demo_copy: Workspace) -> None:
    report = with_groups(build_quality_report(demo_copy))
    write_json(report_store.report_path(demo_copy), report.model_dump(mode="json"))  # the layout before
    summary = report_store.latest_summary(demo_copy)
    assert summary.groups_file is None and summary.duplicates["conversations"].near == 2
    assert latest_quality_report(demo_copy) == report
    assert report_store.members(demo_copy, summary, "conversations", "near", 1) == ["a", "b", "c"]
