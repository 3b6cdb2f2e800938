"""Amazon Bedrock fine-tuning (docs/formats.md, "Amazon Bedrock"): two record shapes.

`bedrock` (the default): the Converse format that current Bedrock fine-tuning takes,
    {"schemaVersion": "bedrock-conversation-2024", "system": [{"text": str}] (optional),
     "messages": [{"role": "user"|"assistant", "content": [{"text": str}, ...]}, ...]}
`bedrock_haiku` (the Claude 3 Haiku shape, a named variant):
    {"system": str (optional, top level), "messages": [{"role": "user"|"assistant", "content": str}, ...]}
Rules of both: no keys beyond these; at least two messages; user first, assistant last, strictly
alternating; non-empty text. Converse also: schemaVersion exactly "bedrock-conversation-2024", system and
content as non-empty lists of text blocks (this export has no images, documents or tools). Record-count
quotas and any per-record token limit are unconfirmed, so they are only checked when given
(min_examples=, max_tokens=). Per-turn weights cannot be expressed: every assistant turn is trained.
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
SCHEMA_VERSION = "bedrock-conversation-2024"
RULES = MessageRules("Bedrock (Claude 3 Haiku)", ("user", "assistant"), ("role", "content"),
                     system_placement=None, alternation="error", min_messages=2)
CONVERSE_RULES = MessageRules("Bedrock (Converse)", ("user", "assistant"), ("role", "content"),
                              system_placement=None, alternation="error", min_messages=2)


def _blocks(text: str) -> list[dict]:
    return [{"text": text}]


def _converse_line(record: dict) -> dict:
    system, turns = leading_system(record)
    return {"schemaVersion": SCHEMA_VERSION, **({"system": _blocks(system)} if system else {}),
            "messages": [{"role": m["role"], "content": _blocks(m["content"])} for m in turns]}


def write_bedrock(records: Any, folder: Path | str, *, split_names: Mapping[str, str] | None = None) -> list[Path]:
    """The Converse format: schemaVersion, the system prompt and every turn's content as text blocks."""
    return write_jsonl_format(records, folder, "bedrock", "sft", _converse_line, split_names=split_names,
                              description="Amazon Bedrock fine-tuning in the Converse format (schemaVersion "
                              f"{SCHEMA_VERSION}): upload data/train.jsonl (and data/validation.jsonl) to S3 and "
                              "name them in trainingDataConfig / validationDataConfig.")


def _text_of_blocks(report: Report, where: Where, value: object, what: str) -> str | None:
    """The text of a list of {"text": ...} blocks, each checked; None when it is not such a list."""
    if not isinstance(value, list) or not value:
        report.error(where, "content_blocks", f"{what} is not a non-empty list of text blocks",
                     f'write {what} as [{{"text": "..."}}]')
        return None
    texts = []
    for j, block in enumerate(value, start=1):
        label = f"{what}[{j}]"
        if not isinstance(block, dict) or "text" not in block:
            report.error(where, "content_blocks", f"{label} is not a text block", f'write {label} as {{"text": "..."}}')
            continue
        check_keys(report, where, block, ("text",), label)
        if check_text(report, where, block["text"], f"{label} text"):
            texts.append(block["text"])
    return "\n".join(texts) if texts else None


def _check_converse(report: Report, where: Where, obj: dict, split: str) -> Example | None:
    check_keys(report, where, obj, ("schemaVersion", "system", "messages"), "the record")
    if obj.get("schemaVersion") != SCHEMA_VERSION:
        report.error(where, "schema_version", f"schemaVersion is {obj.get('schemaVersion')!r}",
                     f'write "schemaVersion": "{SCHEMA_VERSION}"')
    head = []
    if "system" in obj:
        system = _text_of_blocks(report, where, obj["system"], "system")
        head = [{"role": "system", "content": system}] if system else []
    raw = obj.get("messages")
    if isinstance(raw, list):
        flat = []
        for i, m in enumerate(raw, start=1):
            if isinstance(m, dict) and m.get("role") == "system":
                report.error(where, "system_in_messages", f"messages[{i}] is a system message",
                             "move the system prompt to the top-level system blocks")
            if isinstance(m, dict) and "content" in m:
                text = _text_of_blocks(report, where, m["content"], f"messages[{i}].content")
                m = {**m, "content": text if text is not None else "x"}  # its problem is reported once
            flat.append(m)
        raw = flat
    return _example(report, where, split, head, raw, CONVERSE_RULES)


def _example(report: Report, where: Where, split: str, head: list[dict], raw: object,
             rules: MessageRules) -> Example | None:
    messages = check_messages(report, where, raw, rules)
    if messages is None:
        return None
    conversation = [*head, *messages]
    return Example(where, split, [conversation], prompt_of(conversation))


def _validate(fmt: str, check: Any, paths: Any, max_tokens: int | None, min_examples: int | None,
              counter: TokenCounter | None, near_duplicates: bool) -> ValidationResult:
    limits = Limits(tokens=max_tokens, tokens_label="the given Bedrock limit", over_action="rejected or cut",
                    min_train=min_examples)
    return validate_jsonl(paths, fmt, check, limits, counter=counter, near_duplicates=near_duplicates)


def validate_bedrock(paths: Any, *, max_tokens: int | None = None, min_examples: int | None = None,
                     counter: TokenCounter | None = None, near_duplicates: bool = True) -> ValidationResult:
    """The Converse format by Bedrock's rules (module docstring)."""
    return _validate("bedrock", _check_converse, paths, max_tokens, min_examples, counter, near_duplicates)


# -- the Claude 3 Haiku shape ---------------------------------------------------------------------------


def _line(record: dict) -> dict:
    system, turns = leading_system(record)
    return {**({"system": system} if system else {}), "messages": plain(turns)}


def write_bedrock_haiku(records: Any, folder: Path | str, *,
                        split_names: Mapping[str, str] | None = None) -> list[Path]:
    """System prompt as the top-level `system`, the turns in `messages` (weights dropped)."""
    return write_jsonl_format(records, folder, "bedrock_haiku", "sft", _line, split_names=split_names,
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
    return _example(report, where, split, head, raw, RULES)


def validate_bedrock_haiku(paths: Any, *, max_tokens: int | None = None, min_examples: int | None = None,
                           counter: TokenCounter | None = None, near_duplicates: bool = True) -> ValidationResult:
    return _validate("bedrock_haiku", _check, paths, max_tokens, min_examples, counter, near_duplicates)
