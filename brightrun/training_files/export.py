"""Exporting a training-file version to a fine-tuning stack's format (brightrun.exports), with the
consumer's validation, token statistics and a cost estimate. An export holds exactly the version's records:
SFT formats take one record per member conversation from the version's built training.jsonl (built first
when needed; refused like `build` when the version can no longer be made); preference and KTO formats take
the review's preference pairs whose both sides are answers of member conversations of one split. Exports
are gated by the data contracts: a failing contract blocks the export unless forced, and a
forced export records why."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from brightrun.exports import FORMATS, estimate_all, training_prices
from brightrun.exports.base import ValidationResult
from brightrun.exports.files import collector_paused, rows_in_hand
from brightrun.exports.records import (
    kto_records_from_preference,
    preference_records_from_dataset,
    sft_records_from_enriched,
)
from brightrun.exports.tokens import TokenCounter, counter_for, counts_label
from brightrun.training_files import pairs_index
from brightrun.training_files.build import build_version
from brightrun.training_files.chunks import records_match
from brightrun.training_files.core import (
    TrainingFileError,
    Version,
    folder_of,
    get_version,
    records_changed,
)
from brightrun.training_files.pairs_file import indexed_pairs, member_pairs
from brightrun.training_files.token_pool import Counting, start_counting
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


def no_cost_note(fmt: str) -> str:
    """What an export says when no priced target model trains from its format."""
    return (f"No priced target model trains from {fmt} (a self-hosted stack, or a provider not in the training "
            "price table; a workspace training_prices.yaml may add one with its formats).")


def export_folder(ws: Workspace, name: str, version: int, fmt: str) -> Path:
    """Where the app keeps an export: `<workspace>/exports/<name>/v<N>/<format>/` (the name is checked)."""
    from brightrun.training_files.core import check_name

    check_name(name)
    if fmt not in FORMATS:
        raise TrainingFileError(f"unknown format {fmt!r}. Fix: use one of {', '.join(sorted(FORMATS))}.")
    return ws.root / "exports" / name / f"v{int(version)}" / fmt


def version_file(ws: Workspace, v: Version) -> tuple[Path, str, str]:
    """(training.jsonl, content hash, the JSONL's sha256) of version `v` as built: the build already on disk
    when its manifest is this version's, else a new build (which refuses, naming the cause, when the
    version's records can no longer be made). So an export holds exactly the version's records, even after
    the workspace changed."""
    folder = folder_of(ws, v.name) / f"v{v.version}"
    try:
        manifest = orjson.loads((folder / "manifest.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        manifest = {}
    if (manifest.get("version") == v.version and manifest.get("records_hash") == v.records_hash
            and manifest.get("content_hash") and manifest.get("training_jsonl_sha256")
            and (folder / "training.jsonl").exists()):
        return folder / "training.jsonl", manifest["content_hash"], manifest["training_jsonl_sha256"]
    built = build_version(ws, v.name, v.version)
    manifest = orjson.loads(built.manifest_path.read_bytes())
    return built.jsonl_path, built.content_hash, manifest["training_jsonl_sha256"]


def _conversations(path: Path, v: Version, jsonl_sha: str) -> Iterator[list[dict]]:
    """The training pairs of each member conversation, read from the version's built training.jsonl (one
    pair a line, members in order; of each conversation's pairs only the last is parsed whole, see
    pairs_file; with the index of its lines the build wrote, pairs_index, only the last is parsed at all); the
    file's bytes must hash to `jsonl_sha`, the sha256 its build recorded."""
    digest = hashlib.sha256()
    try:
        manifest = orjson.loads((path.parent / "manifest.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        manifest = {}
    index = pairs_index.verified(path.parent, manifest) if manifest.get("training_jsonl_sha256") == jsonl_sha \
        else None
    yield from member_pairs(path, digest) if index is None else indexed_pairs(path, pairs_index.batches(index), digest)
    if digest.hexdigest() != jsonl_sha:
        raise TrainingFileError(f"{path} is not the training.jsonl of {v.name!r} version {v.version} (its bytes "
                                f"changed on disk). Fix: build it again with `brightrun training-file build "
                                f"{v.name!r} --version {v.version}` and export again.")


def _require_members(v: Version) -> None:
    if not v.member_ids:
        raise TrainingFileError(f"training file {v.name!r} version {v.version} has no conversations. "
                                "Fix: add some with `brightrun training-file add`.")


def records_of(ws: Workspace, name: str, version: int | None = None) -> list[dict]:
    """One multi-turn SFT record per member conversation of the version, in its training-file split, made
    from the version's own records (version_file)."""
    v = get_version(ws, name, version)
    _require_members(v)
    path, _, jsonl_sha = version_file(ws, v)
    meta = {"dataset_name": f"{name}-v{v.version}"}
    return [sft_records_from_enriched({"training_pairs": pairs, "dataset_metadata": meta}, split=pairs[0]["split"])
            for pairs in _conversations(path, v, jsonl_sha)]


def preference_records_of(ws: Workspace, name: str, version: int | None = None) -> list[dict]:
    """The review's preference pairs (brightrun.datasets.preference_examples) made only of member
    conversations' answers, both sides of each pair from one split, each in that split: what preference and
    KTO formats export. Refused, like a build, when the members' records are no longer the version's."""
    from brightrun.datasets.build import preference_examples

    v = get_version(ws, name, version)
    _require_members(v)
    if not records_match(ws, v):
        raise records_changed(name, v.version)
    split_of = v.split_of
    examples = preference_examples(ws, split_of_group=split_of)
    for e in examples:  # preference_examples keeps both sides in one split; a wrong pair must never be written
        if {split_of.get(g) for g in e["groups"]} != {e["split"]}:
            raise TrainingFileError(f"preference pair {e['id']!r} mixes conversations of different splits or "
                                    "non-members. Fix: report this as a bug.")
    if not examples:
        raise TrainingFileError(
            f"training file {name!r} version {v.version} has no preference pairs: none of its conversations has "
            "an edited answer, or two rated answers to the same context in one split, from review. Fix: on the "
            "Review page edit or rate answers of its conversations, or export an SFT format.")
    return preference_records_from_dataset(examples)


def export_version(ws: Workspace, name: str, fmt: str, out: Path, *, version: int | None = None,
                   force_reason: str | None = None, models: Sequence[str] | None = None,
                   progress: Callable[[str], None] | None = None) -> Exported:
    """Write a version in `fmt` to `out`, validate it by its consumer's rules and estimate the cost for
    `models` (default: the targets priced by default for `fmt`, training_prices.yaml's `by_default`).
    Refused when the last data-contract run failed (or none ran), unless `force_reason` says why.
    `progress(step)` names each step as it starts, with its record count."""
    say = progress or (lambda _step: None)
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
    _require_members(v)
    with collector_paused():  # the version's records are alive until the validator is done
        say(f"reading the records of {name} v{v.version} ({len(v.member_ids):,} conversation(s))")
        _, content, _ = version_file(ws, v)  # refuses like `build` when the version cannot be made
        if spec.kind == "sft":
            records = records_of(ws, name, v.version)
        else:
            records = preference_records_of(ws, name, v.version)
            if spec.kind == "kto":
                records = kto_records_from_preference(records)
        prices = training_prices(ws.root)
        counters: dict[str, TokenCounter] = {}

        def counter_of(model: str | None) -> TokenCounter:  # one per tokenizer, each text counted once
            use = counter_for(model)
            return counters.setdefault(use.name, use.once())
        targets = list(models) if models is not None else prices.models_for(fmt)
        ahead: dict[str, Counting] = {}
        for model in targets or [None]:  # with several cores, every text counted in another process meanwhile
            use = counter_of(model)
            if use.name not in ahead:
                ahead[use.name] = start_counting(records, spec.kind, use, model)
        with rows_in_hand():  # the validator checks the rows the writer wrote, without reading the files back
            written = len(records)
            say(f"writing {written:,} {fmt} record(s) to {out}")
            files = spec.writer(records, out)  # (while the processes count: the writer counts no tokens)
            billed = _billed(records)
            del records  # (their metadata is most of their memory)
            # SFT records are member conversations: their near duplicates are the training file's own groups
            say(f"validating {written:,} record(s) by the consumer's rules, with exact token counts")
            validation = spec.validator(out, counter=counter_of(targets[0] if targets else None),
                                        near_duplicates=spec.kind != "sft")  # waits for the counts (settle)
            # the counts of the texts are shared by the validator and the estimate
            say(f"estimating the cost for {len(targets)} model(s)")
            costs = estimate_all(billed, targets, kind=spec.kind, prices=prices, counter_of=counter_of)
            del billed
            for counting in ahead.values():  # (each waited for already: settle)
                counting.wait()
        if spec.kind == "sft":
            say("checking the splits for near-duplicate leaks")
            validation = _with_cluster_leaks(validation, ws, v, out)
    write_json(out / "brightrun_export.json", {
        "training_file": name, "version": v.version, "content_hash": content, "format": fmt,
        "exported_at": utcnow().isoformat(), "contracts_passed": bool(report and report.success),
        "forced": force_reason, "valid": validation.ok, "errors": len(validation.errors),
        "token_counts": token_counts(validation),
        "costs": [{"model": c.model, "token_counts": c.token_counts, "charged_tokens": c.charged_tokens,
                   "cost_usd": c.cost_usd} for c in costs]})
    return Exported(name, v.version, fmt, out, files, validation, costs, force_reason)


_BILLED = ("messages", "prompt", "chosen", "rejected", "completion")
"""What the cost estimate reads of a record besides its split (records.sequences)."""


def _billed(records: list[dict]) -> list[dict]:
    """The training split's records with only what the cost estimate counts (estimate_all bills the training
    split): kept through the validation instead of the whole records."""
    return [{"split": "train"} | {key: r[key] for key in _BILLED if key in r} for r in records if r["split"] == "train"]


def _with_cluster_leaks(validation: ValidationResult, ws: Workspace, v: Version, out: Path) -> ValidationResult:
    """The validator's near-duplicate leakage check (check 14) for an SFT export, from the training file's
    near-duplicate groups (leakage.cluster_leaks) instead of clustering the written records again."""
    from brightrun.exports.base import Report, Where
    from brightrun.exports.files import manifest_entry
    from brightrun.training_files.leakage import cluster_leaks

    leaks = cluster_leaks(ws, v)
    if not leaks:
        return validation
    report = Report(validation.format)
    line_of = {rid: (path, k + 1) for path in map(Path, validation.files)
               for k, rid in enumerate(manifest_entry(path)[1] or [])}
    split_of = v.split_of
    for cid, (group, twin) in leaks.items():
        path, line = line_of.get(cid, (out, None))
        report.warn(Where(str(path), line, cid), "leakage_near_duplicate",
                    f"conversation {cid} ({split_of[cid]}) is in the near-duplicate group {group} with train "
                    f"member {twin}", "move near duplicates into one split: `brightrun training-file split` again")
    extra = report.result([])
    counts = dict(validation.counts)
    for rule, n in extra.counts.items():
        counts[rule] = counts.get(rule, 0) + n
    return validation.model_copy(update={"warnings": [*validation.warnings, *extra.warnings], "counts": counts})


def token_counts(validation: ValidationResult) -> str:
    """How an export's token statistics were counted: "exact (tiktoken o200k_base)" (an OpenAI target's
    tokenizer) or "estimated" (the calibrated estimate, brightrun.exports.tokens)."""
    stats = validation.stats or {}
    return counts_label(stats.get("token_method", ""), bool(stats.get("exact_tokens")))
