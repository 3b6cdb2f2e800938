"""Hugging Face `datasets` Parquet with a dataset card (formats.md §5).

Files: data/<split>-0000N-of-0000M.parquet, columns id (string) and messages
(list<struct<role: string, content: string[, weight: int8]>>; weight only when some assistant turn is
context only (weight 0), as in the OpenAI export: then 0 or 1 on assistant turns, null on the others), the same schema in every split. README.md front matter has one
`default` config whose data_files name each split with the glob "data/<split>-*.parquet", so
`load_dataset("<folder>")` gives exactly those splits.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from brightrun.exports.base import Report, ValidationResult, Where
from brightrun.exports.checks import Example, Limits, finish
from brightrun.exports.common import prompt_of
from brightrun.exports.files import SPLIT_NAME, data_files, dataset_card, group_by_split, write_export
from brightrun.exports.messages import MessageRules, check_messages
from brightrun.exports.records import check_records
from brightrun.exports.tokens import TokenCounter, counter_for

ROWS_PER_FILE = 250_000
RULES = MessageRules("Hugging Face chat data", ("system", "user", "assistant", "tool"),
                     ("role", "content", "weight"), flag_key="weight", unknown_key="warn")


def _schema(weighted: bool) -> pa.Schema:
    fields = [pa.field("role", pa.string()), pa.field("content", pa.string())]
    if weighted:
        fields.append(pa.field("weight", pa.int8()))
    return pa.schema([pa.field("id", pa.string()), pa.field("messages", pa.list_(pa.struct(fields)))])


def write_hf_parquet(records: Any, folder: Path | str, *, split_names: Mapping[str, str] | None = None,
                     rows_per_file: int = ROWS_PER_FILE, card_metadata: Mapping[str, Any] | None = None) -> list[Path]:
    """Parquet shards per split and README.md whose configs name the splits (card_metadata adds license,
    language, ... to the front matter)."""
    groups = group_by_split(check_records(records, "sft"), split_names)
    # weights only where some assistant turn is context only (weight 0), as the OpenAI export writes them
    weighted = any(m.get("weight") == 0 for recs in groups.values() for r in recs for m in r["messages"])
    schema = _schema(weighted)
    files: dict[str, Any] = {}
    ids: dict[str, tuple[str, list[str]]] = {}
    card: dict[str, tuple[str, int]] = {}
    for split, recs in groups.items():
        shards = [recs[i:i + rows_per_file] for i in range(0, len(recs), rows_per_file)]
        for n, shard in enumerate(shards):
            rel = f"data/{split}-{n:05d}-of-{len(shards):05d}.parquet"
            rows = [{"id": r["id"], "messages": [
                {"role": m["role"], "content": m["content"],
                 **({"weight": m.get("weight", 1) if m["role"] == "assistant" else None} if weighted else {})}
                for m in r["messages"]]} for r in shard]
            files[rel] = (lambda path, rows=rows: pq.write_table(pa.Table.from_pylist(rows, schema=schema), path))
            ids[rel] = (split, [r["id"] for r in shard])
        card[split] = (f"data/{split}-*.parquet", len(recs))
    files["README.md"] = dataset_card("hf_parquet", "Chat conversations (messages with role and content) for "
                                      "Hugging Face datasets and TRL.", card, card_metadata).encode()
    return write_export(Path(folder), "hf_parquet", files, ids)


# -- validation ---------------------------------------------------------------------------------------


def _card(report: Report, root: Path, files: list[Path]) -> dict[Path, str]:
    """Check README.md's configs; return each data file's split as the card assigns it."""
    card = root / "README.md"
    where = Where(str(card), None)
    assigned: dict[Path, str] = {}
    try:
        text = card.read_text(encoding="utf-8")
        if not text.startswith("---"):
            raise ValueError("no YAML front matter")
        meta = yaml.safe_load(text.split("---", 2)[1]) or {}
    except (OSError, ValueError, yaml.YAMLError, IndexError) as exc:
        report.error(where, "dataset_card", f"README.md with YAML front matter is missing or unreadable ({exc})",
                     "write a dataset card whose configs name the splits")
        return assigned
    configs = meta.get("configs") if isinstance(meta, dict) else None
    if not isinstance(configs, list) or not configs:
        report.error(where, "dataset_card_configs", "the card has no configs", "add configs with data_files per split")
        return assigned
    for config in configs:
        if not isinstance(config, dict) or not config.get("config_name"):
            report.error(where, "config_name", "a config has no config_name (required even for one config)",
                         "add config_name: default")
            continue
        for item in config.get("data_files") or []:
            split, pattern = (item.get("split"), item.get("path")) if isinstance(item, dict) else (None, None)
            if not isinstance(split, str) or not SPLIT_NAME.match(split):
                report.error(where, "split_name", f"data_files entry {item!r} has no valid split name",
                             "name the split (train, validation, test)")
                continue
            patterns = pattern if isinstance(pattern, list) else [pattern]
            matched = [f for f in sorted(root.rglob("*")) if f.is_file() and any(
                isinstance(p, str) and fnmatch.fnmatch(f.relative_to(root).as_posix(), p) for p in patterns)]
            if not matched:
                report.error(where, "data_files_missing", f"split {split!r} path {pattern!r} matches no file",
                             "fix the path glob or write the files")
            for f in matched:
                assigned[f.resolve()] = split
    for f in files:
        if f.resolve() not in assigned:
            report.error(Where(str(f), None), "unlisted_file", "no config of README.md names this file",
                         "add it to a split's data_files")
    return assigned


def validate_hf_parquet(paths: Any, *, max_tokens: int | None = None, counter: TokenCounter | None = None,
                        near_duplicates: bool = True) -> ValidationResult:
    """The card (configs, config_name, split names, globs that match, every file listed), one schema across
    files, a messages column, every row's messages (roles, non-empty content, weights 0/1 on assistant
    turns, an assistant turn last), plus the shared checks (no token limit unless max_tokens is given)."""
    report = Report("hf_parquet")
    files = data_files(paths, ".parquet")
    if not files:
        report.error(Where(str(paths), None), "no_data_files", "no .parquet data file was given",
                     "pass the paths the writer returned, or the export folder")
        return report.result([])
    root = Path(paths) if isinstance(paths, (str, Path)) and Path(paths).is_dir() else files[0].parent.parent
    splits = _card(report, root, files)
    examples: list[Example] = []
    schema = None
    for path in files:
        where = Where(str(path), None)
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            report.error(where, "unreadable_file", f"not a readable Parquet file ({exc})", "write it again")
            continue
        if schema is not None and not table.schema.equals(schema):
            report.error(where, "schema_mismatch", "its schema differs from the other files'",
                         "write every split with the same columns and types")
        schema = schema or table.schema
        if "messages" not in table.column_names:
            report.error(where, "missing_messages_list", "no messages column", "write a messages column")
            continue
        ids = table.column("id").to_pylist() if "id" in table.column_names else [None] * table.num_rows
        for n, (rid, messages) in enumerate(zip(ids, table.column("messages").to_pylist(), strict=True), start=1):
            row = Where(str(path), n, rid)
            cleaned = [{k: v for k, v in m.items() if v is not None} if isinstance(m, dict) else m
                       for m in messages] if isinstance(messages, list) else messages
            msgs = check_messages(report, row, cleaned, RULES)
            if msgs:
                examples.append(Example(row, splits.get(path.resolve(), "train"), [msgs], prompt_of(msgs)))
    limits = Limits(tokens=max_tokens, tokens_label="the given limit")
    finish(report, examples, files, limits, counter or counter_for(None), near_duplicates=near_duplicates)
    return report.result(files)
