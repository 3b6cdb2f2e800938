"""The two drivers every JSONL format uses: write canonical records through a per-record converter, and
validate files through a per-record checker followed by the shared checks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from brightrun.exports.base import ExportError, Kind, Report, ValidationResult, Where
from brightrun.exports.checks import Example, Limits, finish
from brightrun.exports.files import (
    collector_paused,
    data_files,
    dataset_card,
    group_by_split,
    iter_jsonl,
    jsonl_bytes,
    keep_rows,
    keeping_rows,
    split_of_file,
    write_export,
)
from brightrun.exports.records import check_records
from brightrun.exports.tokens import TokenCounter, counter_for

Convert = Callable[[dict], dict]
Extras = Callable[[dict[str, list[dict]]], dict[str, bytes]]
CheckRecord = Callable[[Report, Where, dict, str], Example | None]


CHUNK = 5_000


def _writer(records: list[dict], convert: Convert) -> Callable[[Path], None]:
    """Stream records to a JSONL file chunk by chunk (memory stays bounded); every record that cannot be
    converted is named in one ExportError, raised after all were tried (the staging folder is discarded)."""
    def write(path: Path) -> None:
        bad: list[str] = []
        written: list[dict] | None = [] if keeping_rows() else None
        with open(path, "wb") as f:
            for start in range(0, len(records), CHUNK):
                rows = []
                for record in records[start:start + CHUNK]:
                    try:
                        rows.append(convert(record))
                    except ExportError as exc:
                        bad.append(f"{record['id']!r}: {exc}")
                if not bad:
                    f.write(jsonl_bytes(rows))
                    if written is not None:
                        written += rows
        if written is not None and not bad:
            keep_rows(path, written)  # validated from memory inside files.rows_in_hand
        if bad:
            raise ExportError(f"{len(bad)} record(s) cannot be written in this format: " + "; ".join(bad[:20])
                              + ("" if len(bad) <= 20 else f" (and {len(bad) - 20} more)"))
    return write


def write_jsonl_format(records: Any, folder: Path | str, fmt: str, kind: Kind, convert: Convert, *,
                       description: str, split_names: Mapping[str, str] | None = None,
                       extras: Extras | None = None, card_metadata: Mapping[str, Any] | None = None) -> list[Path]:
    """data/<split>.jsonl per split + README.md dataset card (+ extras), written atomically."""
    groups = group_by_split(check_records(records, kind), split_names)
    files: dict[str, bytes | Callable[[Path], None]] = {}
    ids: dict[str, tuple[str, list[str]]] = {}
    for split, recs in groups.items():
        rel = f"data/{split}.jsonl"
        files[rel] = _writer(recs, convert)
        ids[rel] = (split, [r["id"] for r in recs])
    files["README.md"] = dataset_card(fmt, description, {s: (rel, len(ids[rel][1])) for rel, (s, _) in ids.items()},
                                      card_metadata).encode()
    if extras:
        files.update(extras(groups))
    return write_export(Path(folder), fmt, files, ids)


def validate_jsonl(paths: Any, fmt: str, check_record: CheckRecord, limits: Limits, *,
                   counter: TokenCounter | None = None, model: str | None = None,
                   near_duplicates: bool = True, after: Callable[[Report, list[Example]], None] | None = None
                   ) -> ValidationResult:
    """Run check_record on every line of every data file (*.jsonl among paths, or data/*.jsonl of an
    export folder), then the shared checks."""
    files = data_files(paths)
    report = Report(fmt)
    if not files:
        report.error(Where(str(paths), None), "no_data_files", "no .jsonl data file was given",
                     "pass the paths the writer returned, or the export folder")
        return report.result([])
    examples: list[Example] = []
    with collector_paused():  # the examples of a whole export are alive until the shared checks end
        for path in files:
            split = split_of_file(path)
            for where, obj in iter_jsonl(path, report):
                example = check_record(report, where, obj, split)
                if example is not None:
                    examples.append(example)
        if after:
            after(report, examples)
        finish(report, examples, files, limits, counter or counter_for(model), near_duplicates=near_duplicates)
    return report.result(files)


def prompt_of(messages: list[dict]) -> list[dict]:
    """The turns before the last assistant turn (what a model is asked), for leakage checks."""
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
    return messages[:last]


def plain(messages: list[dict]) -> list[dict]:
    """Canonical messages without weights."""
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def leading_system(record: dict) -> tuple[str | None, list[dict]]:
    """(system prompt, other turns) for formats that keep the system prompt apart. Leading system turns are
    joined; a system turn later in the conversation cannot be placed and raises ExportError."""
    messages = record["messages"] if "messages" in record else record["prompt"]
    k = 0
    while k < len(messages) and messages[k]["role"] == "system":
        k += 1
    if any(m["role"] == "system" for m in messages[k:]):
        raise ExportError("a system turn in the middle of the conversation has no place in this format. Fix: "
                          "move it to the start or drop it")
    system = "\n\n".join(m["content"] for m in messages[:k]) or None
    return system, messages[k:]
