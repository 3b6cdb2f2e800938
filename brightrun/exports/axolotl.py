"""Axolotl `type: chat_template` (formats.md §4.1).

Line: {"messages": [{"role": "system"|"user"|"assistant", "content": str, "train": bool (optional)}]}
Per-turn weights become the per-message boolean `train` (config key message_field_training: train), written
on every message of a record that has an assistant turn with weight 0. axolotl.yaml holds the matching
`datasets` entry (train) and `test_datasets` entry (validation only: the test split is never in the config).
Rows over sequence_len (default 512) are dropped by default.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from brightrun.exports.base import Report, ValidationResult, Where
from brightrun.exports.checks import Example, Limits, check_keys
from brightrun.exports.common import prompt_of, validate_jsonl, write_jsonl_format
from brightrun.exports.messages import MessageRules, check_messages
from brightrun.exports.tokens import TokenCounter

SEQUENCE_LEN = 512
# chat_template.py:70-78 default role mapping
DEFAULT_ROLES = {"human": "user", "user": "user", "assistant": "assistant", "gpt": "assistant", "system": "system",
                 "tool": "tool"}
RULES = MessageRules("Axolotl chat_template", tuple(DEFAULT_ROLES), ("role", "content", "train", "name",
                     "tool_calls", "tool_call_id"), canonical=DEFAULT_ROLES, unknown_key="warn", flag_key="train",
                     tool_calls=True)


def axolotl_config(groups: Mapping[str, list], entry: Mapping[str, Any], comment: str) -> bytes:
    """axolotl.yaml: the train split under `datasets`, the validation split (only) under `test_datasets`,
    which Axolotl evaluates during training; the test split stays out of the config, for the user's own
    final evaluation (paths relative to the export folder; run axolotl from there or prefix them)."""
    def item(split: str) -> dict:
        return {"path": f"data/{split}.jsonl", "ds_type": "json", **({"split": "train"} if split != "train" else {}),
                **copy.deepcopy(dict(entry))}
    config: dict[str, Any] = {"datasets": [item(s) for s in groups if s == "train"]}
    if "validation" in groups:
        config["test_datasets"] = [item("validation")]
    others = [f"data/{s}.jsonl" for s in groups if s not in ("train", "validation")]
    kept = (f"# Held out and NOT listed here, so training never sees or evaluates on it: {', '.join(others)}. "
            "Use it once, for the final evaluation of the trained model.\n") if others else ""
    return (f"# {comment}\n# Paths are relative to this folder. Check the rows with "
            "`axolotl preprocess config.yaml --debug`.\n" + kept + yaml.safe_dump(config, sort_keys=False)).encode()


def _line(record: dict) -> dict:
    weighted = any(m.get("weight") == 0 for m in record["messages"] if m["role"] == "assistant")
    out = []
    for m in record["messages"]:
        msg = {"role": m["role"], "content": m["content"]}
        if weighted:
            msg["train"] = m["role"] == "assistant" and m.get("weight", 1) == 1
        out.append(msg)
    return {"messages": out}


def write_axolotl(records: Any, folder: Path | str, *, split_names: Mapping[str, str] | None = None) -> list[Path]:
    records = list(records)
    weighted = any(m.get("weight") == 0 for r in records if isinstance(r, dict)
                   for m in r.get("messages") or [] if isinstance(m, dict))
    entry = {"type": "chat_template", "field_messages": "messages",
             "message_property_mappings": {"role": "role", "content": "content"}, "roles_to_train": ["assistant"],
             **({"message_field_training": "train"} if weighted else {})}
    return write_jsonl_format(
        records, folder, "axolotl", "sft", _line, split_names=split_names,
        description="Axolotl chat_template dataset; axolotl.yaml has the datasets entries to paste into the config.",
        extras=lambda groups: {"axolotl.yaml": axolotl_config(groups, entry, "Axolotl datasets (type chat_template)")})


def _check(report: Report, where: Where, obj: dict, split: str) -> Example | None:
    check_keys(report, where, obj, ("messages", "tools"), "the row", error=False)
    messages = obj.get("messages")
    if isinstance(messages, list):  # content given as parts: [{"type": "text", "text": ..., "train"|"weight"}]
        messages = [_flatten_parts(report, where, i, m) for i, m in enumerate(messages, start=1)]
    msgs = check_messages(report, where, messages, RULES)
    return Example(where, split, [msgs], prompt_of(msgs)) if msgs else None


def _flatten_parts(report: Report, where: Where, i: int, m: object) -> object:
    if not isinstance(m, dict) or not isinstance(m.get("content"), list):
        return m
    texts = []
    for j, part in enumerate(m["content"], start=1):
        label = f"messages[{i}].content[{j}]"
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            report.error(where, "content_part", f"{label} is not a text part", 'write {"type": "text", "text": "..."}')
            continue
        if "train" in part and not isinstance(part["train"], bool):
            report.error(where, "train_flag", f"{label} train is {part['train']!r}", "write train as true or false")
        if "weight" in part and (isinstance(part["weight"], bool) or part["weight"] not in (0, 1)):
            report.error(where, "weight_value", f"{label} weight is {part['weight']!r}", "use 0 or 1")
        texts.append(part["text"])
    return {**m, "content": "".join(texts)}


def validate_axolotl(paths: Any, *, sequence_len: int | None = SEQUENCE_LEN, counter: TokenCounter | None = None,
                     near_duplicates: bool = True) -> ValidationResult:
    """Roles in the default mapping, non-empty content, boolean train flags, an assistant turn last,
    alternation (warning: Axolotl does not check it, many chat templates raise), rows over sequence_len
    (dropped by default), duplicates (dataset_exact_deduplication) and leakage."""
    limits = Limits(tokens=sequence_len, tokens_label=f"sequence_len (default {SEQUENCE_LEN})",
                    over_action="dropped (excess_length_strategy: drop)")
    return validate_jsonl(paths, "axolotl", _check, limits, counter=counter, near_duplicates=near_duplicates)
