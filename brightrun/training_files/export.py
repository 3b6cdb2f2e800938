"""Exporting a training-file version to a fine-tuning stack's format (brightrun.exports), with the
consumer's validation, token statistics and a cost estimate. SFT formats take one record per member
conversation; preference and KTO formats take the review's preference pairs of the member conversations.
Exports are gated by the data contracts: a failing contract blocks the export unless forced, and a
forced export records why."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from brightrun.exports import FORMATS, estimate_all
from brightrun.exports.base import ValidationResult
from brightrun.exports.records import (
    kto_records_from_preference,
    preference_records_from_dataset,
    sft_records_from_enriched,
)
from brightrun.training_files.build import iter_conversations
from brightrun.training_files.core import TrainingFileError, get_version
from brightrun.workspace import Workspace, utcnow
from brightrun.workspace.files import write_json


@dataclass
class Exported:
    name: str
    version: int
    format: str
    folder: Path
    files: list[Path]
    validation: ValidationResult
    costs: list
    forced: str | None


def export_folder(ws: Workspace, name: str, version: int, fmt: str) -> Path:
    """Where the app keeps an export: `<workspace>/exports/<name>/v<N>/<format>/` (the name is checked)."""
    from brightrun.training_files.core import check_name

    check_name(name)
    if fmt not in FORMATS:
        raise TrainingFileError(f"unknown format {fmt!r}. Fix: use one of {', '.join(sorted(FORMATS))}.")
    return ws.root / "exports" / name / f"v{int(version)}" / fmt


def records_of(ws: Workspace, name: str, version: int | None = None) -> list[dict]:
    """One multi-turn SFT record per member conversation, in its training-file split."""
    v = get_version(ws, name, version)
    if not v.member_ids:
        raise TrainingFileError(f"training file {name!r} version {v.version} has no conversations. "
                                "Fix: add some with `brightrun training-file add`.")
    meta = {"dataset_name": f"{name}-v{v.version}"}
    return [sft_records_from_enriched({"training_pairs": c["training_pairs"], "dataset_metadata": meta},
                                      split=c["split"]) for c in iter_conversations(ws, v)]


def preference_records_of(ws: Workspace, name: str, version: int | None = None) -> list[dict]:
    """The review's preference pairs (brightrun.datasets.preference_examples) whose conversation is a
    member of the version, each in its conversation's split: what preference and KTO formats export."""
    from brightrun.datasets.build import preference_examples

    v = get_version(ws, name, version)
    split_of = v.split_of
    examples = [{**e, "split": split_of[e["group"]]} for e in preference_examples(ws) if e["group"] in split_of]
    if not examples:
        raise TrainingFileError(
            f"training file {name!r} version {v.version} has no preference pairs: none of its conversations has "
            "an edited answer, or two rated answers to the same context, from review. Fix: on the Review page "
            "edit or rate answers of its conversations, or export an SFT format.")
    return preference_records_from_dataset(examples)


def export_version(ws: Workspace, name: str, fmt: str, out: Path, *, version: int | None = None,
                   force_reason: str | None = None) -> Exported:
    """Write a version in `fmt` to `out`, validate it by its consumer's rules and estimate the cost.
    Refused when the last data-contract run failed (or none ran), unless `force_reason` says why."""
    out = Path(out)
    spec = FORMATS.get(fmt)
    if spec is None:
        raise TrainingFileError(f"unknown format {fmt!r}. Fix: use one of {', '.join(sorted(FORMATS))}.")
    from brightrun.validation import latest_report

    report = latest_report(ws)
    if (report is None or not report.success) and not force_reason:
        why = "no data-contract run is recorded" if report is None else "the last data-contract run failed"
        raise TrainingFileError(f"export blocked: {why}. Fix: run `brightrun validate` and fix what it lists, or "
                                "export with --force REASON to record why you export anyway.")
    v = get_version(ws, name, version)
    if spec.kind == "sft":
        records = records_of(ws, name, v.version)
    else:
        records = preference_records_of(ws, name, v.version)
        if spec.kind == "kto":
            records = kto_records_from_preference(records)
    files = spec.writer(records, out)
    validation = spec.validator(out)
    costs = estimate_all(records, kind=spec.kind)
    write_json(out / "brightrun_export.json", {
        "training_file": name, "version": v.version, "content_hash": v.content_hash, "format": fmt,
        "exported_at": utcnow().isoformat(), "contracts_passed": bool(report and report.success),
        "forced": force_reason, "valid": validation.ok, "errors": len(validation.errors)})
    return Exported(name, v.version, fmt, out, files, validation, costs, force_reason)
