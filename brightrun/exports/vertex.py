"""Google Vertex AI Gemini supervised tuning (formats.md §6).

Line: {"systemInstruction": {"role": "system", "parts": [{"text": ...}]} (optional),
       "contents": [{"role": "user", "parts": [{"text": ...}]}, {"role": "model", "parts": [{"text": ...}]}, ...]}
Limits for Gemini 2.5 Flash: 131,072 training tokens per example (input + output), at most 5,000 validation
examples, 1 GB per JSONL file, 1M text-only examples; about 100 examples to start with. Gemini 1.5
(older page): 32,000 tokens and 256 validation examples (model="gemini-1.5-..."). Per-turn weights cannot
be expressed: every model turn is trained.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from brightrun.exports.base import Report, ValidationResult, Where
from brightrun.exports.checks import Example, Limits, check_alternation, check_keys, text_problem
from brightrun.exports.common import leading_system, prompt_of, validate_jsonl, write_jsonl_format
from brightrun.exports.tokens import TokenCounter

MODEL = "gemini-2.5-flash"
LIMITS = {"gemini-2.5": (131_072, 5_000, 1_000_000), "gemini-1.5": (32_000, 256, None)}
ROLE = {"user": "user", "assistant": "model"}


def _line(record: dict) -> dict:
    system, turns = leading_system(record)
    head = {"systemInstruction": {"role": "system", "parts": [{"text": system}]}} if system else {}
    return {**head, "contents": [{"role": ROLE[m["role"]], "parts": [{"text": m["content"]}]} for m in turns]}


def write_vertex(records: Any, folder: Path | str, *, split_names: Mapping[str, str] | None = None) -> list[Path]:
    return write_jsonl_format(records, folder, "vertex", "sft", _line, split_names=split_names,
                              description="Vertex AI Gemini supervised tuning JSONL: copy data/train.jsonl and "
                              "data/validation.jsonl to Cloud Storage and pass them to the tuning job.")


def _parts(report: Report, where: Where, parts: object, label: str) -> str | None:
    """Check parts (each exactly one of text or fileData{mimeType, fileUri}); return their text."""
    if not isinstance(parts, list) or not parts:
        report.error(where, "missing_parts", f"{label}.parts is missing or empty", f"give {label} a parts list")
        return None
    texts = []
    for j, part in enumerate(parts, start=1):
        plabel = f"{label}.parts[{j}]"
        kinds = [k for k in ("text", "fileData") if isinstance(part, dict) and k in part]
        if len(kinds) != 1:
            report.error(where, "part_shape", f"{plabel} must hold exactly one of text or fileData",
                         'write {"text": "..."} or {"fileData": {"mimeType": ..., "fileUri": ...}}')
            continue
        if kinds[0] == "text":
            problem = text_problem(part["text"])
            if problem:
                report.error(where, "missing_content", f"{plabel}.text {problem}", "give the part non-empty text")
            else:
                texts.append(part["text"])
        elif not (isinstance(part["fileData"], dict) and all(part["fileData"].get(k) for k in ("mimeType", "fileUri"))):
            report.error(where, "file_data", f"{plabel}.fileData lacks mimeType or fileUri", "give both")
    return "".join(texts)


def _check(report: Report, where: Where, obj: dict, split: str) -> Example | None:
    check_keys(report, where, obj, ("systemInstruction", "contents", "tools"), "the record", error=False)
    head = []
    if "systemInstruction" in obj:
        si = obj["systemInstruction"]
        text = _parts(report, where, si.get("parts") if isinstance(si, dict) else None, "systemInstruction")
        if text:
            head = [{"role": "system", "content": text}]
    contents = obj.get("contents")
    if not isinstance(contents, list) or not contents:
        report.error(where, "missing_contents", "contents is missing, empty or not a list",
                     "give contents as a list of {role, parts}")
        return None
    messages, roles = [], []
    for i, c in enumerate(contents, start=1):
        label = f"contents[{i}]"
        if not isinstance(c, dict):
            report.error(where, "message_type", f"{label} is not an object", "write {role, parts}")
            continue
        check_keys(report, where, c, ("role", "parts"), label, rule="message_unrecognized_key", error=False)
        if c.get("role") not in ("user", "model"):
            report.error(where, "unrecognized_role", f"{label} has role {c.get('role')!r}; Vertex accepts user "
                         "and model", "use user, or model for the assistant (system goes in systemInstruction)")
        roles.append(c.get("role"))
        text = _parts(report, where, c.get("parts"), label)
        messages.append({"role": "assistant" if c.get("role") == "model" else "user", "content": text or ""})
    if "model" not in roles:
        report.error(where, "example_missing_assistant_message", "contents has no model turn",
                     "add the model answer to learn")
    elif roles[-1] != "model":
        report.error(where, "last_not_assistant", f"the last turn is {roles[-1]!r}, not model",
                     "end the example with the model turn")
    check_alternation(report, where, [r if r != "model" else "assistant" for r in roles], error=False)
    conversation = [*head, *messages]
    return Example(where, split, [conversation], prompt_of(conversation))


def validate_vertex(paths: Any, *, model: str = MODEL, max_tokens: int | None = None,
                    counter: TokenCounter | None = None, near_duplicates: bool = True) -> ValidationResult:
    tokens, held, total = next((v for k, v in LIMITS.items() if model.startswith(k)), LIMITS["gemini-2.5"])
    limits = Limits(tokens=max_tokens or tokens, tokens_label=f"{model} training tokens per example",
                    over_action="rejected or cut (Vertex does not say which)", suggest_train=100,
                    suggest_label="Vertex suggests starting with about 100", max_held_out=held, max_examples=total,
                    max_file_bytes=1024 ** 3, file_label="Vertex (1 GB per JSONL file)")
    return validate_jsonl(paths, "vertex", _check, limits, counter=counter, near_duplicates=near_duplicates)
