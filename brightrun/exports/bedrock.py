"""Anthropic Claude 3 Haiku fine-tuning on Amazon Bedrock (formats.md §2).

Line: {"system": str (optional, top level), "messages": [{"role": "user"|"assistant", "content": str}, ...]}
Rules: no keys beyond system, messages, role, content; at least two messages; user first, assistant last,
strictly alternating. Record-count quotas and any per-record token limit are unconfirmed (formats.md §2),
so they are only checked when given (min_examples=, max_tokens=). Per-turn weights cannot be expressed:
every assistant turn is trained.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from brightrun.exports.base import Report, ValidationResult, Where
from brightrun.exports.checks import Example, Limits, check_keys, check_text
from brightrun.exports.common import leading_system, plain, prompt_of, validate_jsonl, write_jsonl_format
from brightrun.exports.messages import MessageRules, check_messages
from brightrun.exports.tokens import TokenCounter

MODEL = "anthropic.claude-3-haiku-20240307-v1:0:200k"
RULES = MessageRules("Bedrock (Claude 3 Haiku)", ("user", "assistant"), ("role", "content"),
                     system_placement=None, alternation="error", min_messages=2)


def _line(record: dict) -> dict:
    system, turns = leading_system(record)
    return {**({"system": system} if system else {}), "messages": plain(turns)}


def write_bedrock(records: Any, folder: Path | str, *, split_names: Mapping[str, str] | None = None) -> list[Path]:
    """System prompt as the top-level `system`, the turns in `messages` (weights dropped)."""
    return write_jsonl_format(records, folder, "bedrock", "sft", _line, split_names=split_names,
                              description="Claude 3 Haiku fine-tuning on Amazon Bedrock: upload data/train.jsonl "
                              "(and data/validation.jsonl) to S3 and name them in trainingDataConfig / "
                              "validationDataConfig.")


def _check(report: Report, where: Where, obj: dict, split: str) -> Example | None:
    check_keys(report, where, obj, ("system", "messages"), "the record")
    head = []
    if "system" in obj and check_text(report, where, obj["system"], "system", rule="system_type"):
        head = [{"role": "system", "content": obj["system"]}]
    raw = obj.get("messages")
    if isinstance(raw, list):
        for i, m in enumerate(raw, start=1):
            if isinstance(m, dict) and m.get("role") == "system":
                report.error(where, "system_in_messages", f"messages[{i}] is a system message",
                             "move the system prompt to the top-level system key")
    messages = check_messages(report, where, raw, RULES)
    if messages is None:
        return None
    conversation = [*head, *messages]
    return Example(where, split, [conversation], prompt_of(conversation))


def validate_bedrock(paths: Any, *, max_tokens: int | None = None, min_examples: int | None = None,
                     counter: TokenCounter | None = None, near_duplicates: bool = True) -> ValidationResult:
    limits = Limits(tokens=max_tokens, tokens_label="the given Bedrock limit", over_action="rejected or cut",
                    min_train=min_examples)
    return validate_jsonl(paths, "bedrock", _check, limits, counter=counter, near_duplicates=near_duplicates)
