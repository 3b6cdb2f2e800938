"""LLaMA-Factory (formats.md §4.2): ShareGPT-formatted files registered in dataset_info.json.

SFT line:        {"conversations": [{"from": "human"|"gpt", "value"}...], "system": str (optional)}
Preference line: {"conversations": [... ending on a human turn], "chosen": {"from": "gpt", "value"},
                  "rejected": {"from": "gpt", "value"}, "system"}       (entry has "ranking": true)
KTO line:        {"conversations": [... ending on the gpt turn], "kto_tag": bool, "system"}
dataset_info.json registers one dataset per split, named <dataset_name>_<split>, with file_name relative to
the export folder (use it as dataset_dir), formatting sharegpt, its columns and tags. Use the train entry as
`dataset` and the others as `eval_dataset` (val_size cannot be combined with eval_dataset).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import orjson

from brightrun.exports.base import ExportError, Kind, Report, ValidationResult, Where
from brightrun.exports.checks import Example, Limits, check_keys, check_text
from brightrun.exports.common import leading_system, validate_jsonl, write_jsonl_format
from brightrun.exports.sharegpt import (
    CUTOFF_LEN,
    alpaca_line,
    check_alpaca,
    check_conversation,
    sharegpt_turns,
)
from brightrun.exports.tokens import TokenCounter

SOURCES = ("file_name", "hf_hub_url", "ms_hub_url", "script_url", "cloud_file_name")
TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
        "system_tag": "system"}
ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "system": "system",
                  "history": "history"}
"""Without system and history LLaMA-Factory's alpaca defaults drop the system prompt and every answer but
the last: the Alpaca export registers both."""
COLUMNS: dict[str, dict[str, str]] = {
    "sft": {"messages": "conversations", "system": "system"},
    "preference": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected", "system": "system"},
    "kto": {"messages": "conversations", "kto_tag": "kto_tag", "system": "system"}}
NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _line(kind: Kind):
    def convert(record: dict) -> dict:
        system, turns = leading_system(record)
        head = {"conversations": sharegpt_turns(turns)}
        if kind == "preference":
            head.update(chosen={"from": "gpt", "value": record["chosen"]},
                        rejected={"from": "gpt", "value": record["rejected"]})
        elif kind == "kto":
            head["conversations"].append({"from": "gpt", "value": record["completion"]})
            head["kto_tag"] = record["label"]
        return {**head, **({"system": system} if system else {})}
    return convert


def _info(kind: Kind | Literal["alpaca"], name: str):
    def entry(split: str) -> dict:
        if kind == "alpaca":
            return {"file_name": f"data/{split}.jsonl", "formatting": "alpaca", "columns": ALPACA_COLUMNS}
        return {"file_name": f"data/{split}.jsonl", "formatting": "sharegpt",
                **({"ranking": True} if kind == "preference" else {}), "columns": COLUMNS[kind], "tags": TAGS}

    def extras(groups: dict[str, list[dict]]) -> dict[str, bytes]:
        info = {f"{name}_{split}": entry(split) for split in groups}
        return {"dataset_info.json": orjson.dumps(info, option=orjson.OPT_INDENT_2)}
    return extras


def _write(kind: Kind, records: Any, folder: Path | str, split_names: Mapping[str, str] | None,
           dataset_name: str) -> list[Path]:
    if not NAME.match(dataset_name):
        raise ExportError(f"dataset name {dataset_name!r} is not usable. Fix: use letters, digits, '_', '-', '.'.")
    fmt = {"sft": "llama_factory", "preference": "llama_factory_preference", "kto": "llama_factory_kto"}[kind]
    return write_jsonl_format(records, folder, fmt, kind, _line(kind), split_names=split_names,
                              description=f"LLaMA-Factory {kind} dataset in sharegpt formatting, registered in "
                              "dataset_info.json (set dataset_dir to this folder).", extras=_info(kind, dataset_name))


def write_alpaca(records: Any, folder: Path | str, *, split_names: Mapping[str, str] | None = None,
                 dataset_name: str = "brightrun") -> list[Path]:
    """Alpaca records (sharegpt.alpaca_line) with a dataset_info.json that maps system and history."""
    if not NAME.match(dataset_name):
        raise ExportError(f"dataset name {dataset_name!r} is not usable. Fix: use letters, digits, '_', '-', '.'.")
    return write_jsonl_format(records, folder, "alpaca", "sft", alpaca_line, split_names=split_names,
                              description="Alpaca instruction/input/output records with system and history, "
                              "registered in dataset_info.json for LLaMA-Factory (set dataset_dir to this folder; "
                              "it trains on the answers in history too). Axolotl's alpaca type ignores history.",
                              extras=_info("alpaca", dataset_name))


def write_llama_factory(records: Any, folder: Path | str, *, split_names: Mapping[str, str] | None = None,
                        dataset_name: str = "brightrun") -> list[Path]:
    return _write("sft", records, folder, split_names, dataset_name)


def write_llama_factory_preference(records: Any, folder: Path | str, *, split_names: Mapping[str, str] | None = None,
                                   dataset_name: str = "brightrun") -> list[Path]:
    return _write("preference", records, folder, split_names, dataset_name)


def write_llama_factory_kto(records: Any, folder: Path | str, *, split_names: Mapping[str, str] | None = None,
                            dataset_name: str = "brightrun") -> list[Path]:
    return _write("kto", records, folder, split_names, dataset_name)


# -- validation ---------------------------------------------------------------------------------------


def _entries(report: Report, paths: Any, formatting: str = "sharegpt") -> tuple[list[Path], dict[str, dict]]:
    """The data files registered in dataset_info.json (found among paths or in the folder), checked."""
    given = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    info_path = next((p for p in given if p.name == "dataset_info.json"), None)
    if info_path is None:
        root = given[0] if given and given[0].is_dir() else (given[0].parent.parent if given else Path("."))
        info_path = root / "dataset_info.json"
    where = Where(str(info_path), None)
    try:
        info = orjson.loads(info_path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        report.error(where, "dataset_info", f"dataset_info.json cannot be read ({exc})",
                     "write dataset_info.json in dataset_dir registering every file")
        return [p for p in given if p.suffix == ".jsonl"], {}
    files, by_file = [], {}
    for name, entry in (info.items() if isinstance(info, dict) else []):
        if not isinstance(entry, dict):
            report.error(where, "dataset_info", f"entry {name!r} is not an object", "give each dataset an object")
            continue
        sources = [s for s in SOURCES if s in entry]
        if len(sources) != 1:
            report.error(where, "dataset_source", f"entry {name!r} has {len(sources)} sources ({', '.join(sources)})",
                         f"give exactly one of {', '.join(SOURCES)}")
        if entry.get("formatting", "alpaca") not in ("alpaca", "sharegpt"):
            report.error(where, "dataset_formatting", f"entry {name!r} formatting is {entry.get('formatting')!r}",
                         "use alpaca or sharegpt")
        elif entry.get("formatting", "alpaca") != formatting:
            report.error(where, "dataset_formatting", f"entry {name!r} is not {formatting} formatting, which "
                         "this export writes", f'set "formatting": "{formatting}"')
        if "file_name" in entry:
            path = info_path.parent / entry["file_name"]
            if not path.exists():
                report.error(where, "dataset_file_missing", f"entry {name!r} names {entry['file_name']}, which does "
                             "not exist", "fix file_name (relative to dataset_dir)")
            else:
                files.append(path)
                by_file[str(path)] = entry
    for p in given:
        if p.suffix == ".jsonl" and str(p) not in by_file:
            report.error(Where(str(p), None), "unregistered_file", "the file is not registered in dataset_info.json",
                         "add an entry with its file_name")
    return files, by_file


def _checker(kind: Kind, by_file: dict[str, dict]):
    def check(report: Report, where: Where, obj: dict, split: str) -> Example | None:
        entry = by_file.get(where.file, {})
        columns = {**{"messages": "conversations"}, **entry.get("columns", {})}
        ranking = bool(entry.get("ranking"))
        if kind == "preference" and not ranking:
            report.error(where, "ranking", "preference data but the dataset entry lacks \"ranking\": true",
                         "set ranking: true in dataset_info.json")
        allowed = tuple(columns.values())
        check_keys(report, where, obj, allowed, "the record", error=False)
        system = obj.get(columns.get("system", "system"))
        if system is not None and not check_text(report, where, system, "system", rule="system_type"):
            system = None
        msgs = check_conversation(report, where, obj.get(columns["messages"]), ranking=ranking, system=system)
        if msgs is None:
            return None
        if ranking:
            answers = []
            for key in ("chosen", "rejected"):
                value = obj.get(columns.get(key, key))
                if not (isinstance(value, dict) and value.get("from") == "gpt"):
                    report.error(where, "ranking_answer", f"{key} is not a {{\"from\": \"gpt\", \"value\"}} object",
                                 f'write {key} as {{"from": "gpt", "value": "..."}}')
                    return None
                check_text(report, where, value.get("value"), f"{key} value")
                answers.append({"role": "assistant", "content": str(value.get("value") or "")})
            return Example(where, split, [[*msgs, answers[0]], [*msgs, answers[1]]], msgs)
        if kind == "kto" and not isinstance(obj.get(columns.get("kto_tag", "kto_tag")), bool):
            report.error(where, "kto_tag", f"kto_tag is {obj.get('kto_tag')!r}, not a boolean",
                         "write kto_tag as true or false")
        return Example(where, split, [msgs], msgs[:-1])
    return check


def validate_llama_factory(paths: Any, *, kind: Kind | None = None, cutoff_len: int | None = CUTOFF_LEN,
                           counter: TokenCounter | None = None, near_duplicates: bool = True) -> ValidationResult:
    """dataset_info.json (one source per entry, sharegpt formatting, files exist and are all registered) and
    every record by SharegptDatasetConverter's rules; kind defaults to what the entries say (ranking ->
    preference, a kto_tag column -> kto, else sft)."""
    report = Report("llama_factory")
    files, by_file = _entries(report, paths)
    if kind is None:
        entries = list(by_file.values())
        kind = "preference" if any(e.get("ranking") for e in entries) else (
            "kto" if any("kto_tag" in e.get("columns", {}) for e in entries) else "sft")
    limits = Limits(tokens=cutoff_len, tokens_label=f"cutoff_len (default {CUTOFF_LEN})", over_action="truncated")
    result = validate_jsonl(files or paths, "llama_factory", _checker(kind, by_file), limits, counter=counter,
                            near_duplicates=near_duplicates)
    return _merge(report, result)


def _alpaca_checker(by_file: dict[str, dict]):
    def check(report: Report, where: Where, obj: dict, split: str) -> Example | None:
        columns = by_file.get(where.file, {}).get("columns") or {}
        for key in ("system", "history"):
            if obj.get(key) and columns.get(key) != key:
                report.error(where, "dataset_info_columns", f"the record has {key} but its dataset_info.json entry "
                             f"does not map the {key} column, so LLaMA-Factory drops it",
                             f'add "{key}": "{key}" to the entry\'s columns')
        return check_alpaca(report, where, obj, split)
    return check


def validate_alpaca(paths: Any, *, cutoff_len: int | None = CUTOFF_LEN, counter: TokenCounter | None = None,
                    near_duplicates: bool = True) -> ValidationResult:
    """Every record by LLaMA-Factory's alpaca rules, and dataset_info.json: one alpaca entry per file, with
    the system and history columns mapped when records carry them (otherwise they are silently dropped)."""
    report = Report("alpaca")
    files, by_file = _entries(report, paths, "alpaca")
    limits = Limits(tokens=cutoff_len, tokens_label=f"LLaMA-Factory cutoff_len (default {CUTOFF_LEN})",
                    over_action="truncated")
    result = validate_jsonl(files or paths, "alpaca", _alpaca_checker(by_file), limits, counter=counter,
                            near_duplicates=near_duplicates)
    return _merge(report, result)


def _merge(report: Report, result: ValidationResult) -> ValidationResult:
    """The dataset_info.json problems of `report` added to a validation result."""
    counts = {**result.counts}
    for p in report.errors:
        counts[p.rule] = counts.get(p.rule, 0) + 1
    return result.model_copy(update={"errors": report.errors + result.errors, "counts": counts})


def validate_llama_factory_preference(paths: Any, **kwargs: Any) -> ValidationResult:
    return validate_llama_factory(paths, kind="preference", **kwargs)


def validate_llama_factory_kto(paths: Any, **kwargs: Any) -> ValidationResult:
    return validate_llama_factory(paths, kind="kto", **kwargs)
