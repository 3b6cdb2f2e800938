"""OpenAI chat SFT and preference (DPO) JSONL (formats.md §1, checks of §7 and the cookbook's §1.2).

SFT line:  {"messages": [{"role": "system"|"user"|"assistant", "content": str, "weight": 0|1 (assistant,
            written only when some assistant turn of the record is not trained)}]}
DPO line:  {"input": {"messages": [...]}, "preferred_output": [{"role": "assistant", "content": str}],
            "non_preferred_output": [{"role": "assistant", "content": str}]}
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from brightrun.exports.base import Report, ValidationResult, Where
from brightrun.exports.checks import Example, Limits, check_keys
from brightrun.exports.common import plain, prompt_of, validate_jsonl, write_jsonl_format
from brightrun.exports.cost import token_limit
from brightrun.exports.messages import MessageRules, check_messages
from brightrun.exports.tokens import TokenCounter

SFT_MODEL = "gpt-4o-mini-2024-07-18"
DPO_MODEL = "gpt-4.1-mini-2025-04-14"
SFT_KEYS = ("messages", "tools", "functions", "parallel_tool_calls")
MESSAGE_KEYS = ("role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call")
RULES = MessageRules("OpenAI fine-tuning", ("system", "user", "assistant", "tool", "function"), MESSAGE_KEYS,
                     canonical={"function": "tool"}, flag_key="weight", tool_calls=True)
PROMPT_RULES = MessageRules("OpenAI DPO", ("system", "user", "assistant"), ("role", "content", "name"),
                            require_assistant=False, last_assistant=False)
OUTPUT_RULES = MessageRules("OpenAI DPO outputs", ("assistant",), ("role", "content"), system_placement=None,
                            alternation=None)
MB = 1024 * 1024


def _sft_line(record: dict) -> dict:
    messages = record["messages"]
    if not any(m.get("weight") == 0 for m in messages):
        return {"messages": [m if len(m) == 2 else {"role": m["role"], "content": m["content"]} for m in messages]}
    return {"messages": [{"role": m["role"], "content": m["content"], "weight": m.get("weight", 1)}
                         if m["role"] == "assistant" else {"role": m["role"], "content": m["content"]}
                         for m in messages]}


def write_openai_sft(records: Any, folder: Path | str, *, split_names: Mapping[str, str] | None = None) -> list[Path]:
    """One JSONL per split; weights only where a record has assistant turns that are context only."""
    return write_jsonl_format(records, folder, "openai_sft", "sft", _sft_line, split_names=split_names,
                              description="OpenAI chat fine-tuning (SFT) JSONL: upload data/train.jsonl as the "
                              "training file and data/validation.jsonl as the validation file.")


def _dpo_line(record: dict) -> dict:
    return {"input": {"messages": plain(record["prompt"])},
            "preferred_output": [{"role": "assistant", "content": record["chosen"]}],
            "non_preferred_output": [{"role": "assistant", "content": record["rejected"]}]}


def write_openai_dpo(records: Any, folder: Path | str, *, split_names: Mapping[str, str] | None = None) -> list[Path]:
    return write_jsonl_format(records, folder, "openai_dpo", "preference", _dpo_line, split_names=split_names,
                              description="OpenAI preference fine-tuning (DPO) JSONL, one prompt with a preferred "
                              "and a non-preferred assistant answer per line.")


# -- validation ---------------------------------------------------------------------------------------


def _check_tools(report: Report, where: Where, obj: dict) -> None:
    """Check 10: arguments are JSON strings that parse, tool_call_ids answer earlier calls, called names
    are declared in tools (or functions)."""
    declared = {t.get("function", {}).get("name") for t in obj.get("tools") or [] if isinstance(t, dict)}
    declared |= {f.get("name") for f in obj.get("functions") or [] if isinstance(f, dict)}
    calls: set[str] = set()
    for i, m in enumerate(obj.get("messages") or [], start=1):
        if not isinstance(m, dict):
            continue
        invoked = [c for c in m.get("tool_calls") or [] if isinstance(c, dict)]
        if isinstance(m.get("function_call"), dict):
            invoked.append({"function": m["function_call"]})
        for call in invoked:
            fn = call.get("function") or {}
            args = fn.get("arguments")
            if not isinstance(args, str):
                report.error(where, "tool_arguments", f"messages[{i}] calls {fn.get('name')!r} with arguments "
                             f"as {type(args).__name__}", "encode arguments as a JSON string (json.dumps)")
            else:
                try:
                    orjson.loads(args)
                except orjson.JSONDecodeError:
                    report.error(where, "tool_arguments", f"messages[{i}] arguments of {fn.get('name')!r} do not "
                                 "parse as JSON", "write valid JSON in the arguments string")
            if fn.get("name") not in declared:
                report.error(where, "undeclared_tool", f"messages[{i}] calls {fn.get('name')!r}, which is not in "
                             "tools", "declare the function in the example's tools")
            if call.get("id"):
                calls.add(call["id"])
        if m.get("role") == "tool" and m.get("tool_call_id") not in calls:
            report.error(where, "orphan_tool_result", f"messages[{i}] answers tool_call_id "
                         f"{m.get('tool_call_id')!r}, which no earlier assistant turn made",
                         "give the tool result the id of the call it answers, after that call")


def _check_sft(report: Report, where: Where, obj: dict, split: str) -> Example | None:
    check_keys(report, where, obj, SFT_KEYS, "the example", error=False)
    messages = check_messages(report, where, obj.get("messages"), RULES)
    if messages is None:
        return None
    if obj.get("tools") or obj.get("functions") or any(
            isinstance(m, dict) and (m.get("tool_calls") or m.get("role") in ("tool", "function"))
            for m in obj["messages"]):
        _check_tools(report, where, obj)
    return Example(where, split, [messages], prompt_of(messages))


def _limits(model: str, max_tokens: int | None, label: str) -> Limits:
    limit = max_tokens or token_limit(model)
    return Limits(tokens=limit, tokens_label=f"{model} ({label})", over_action="truncated from the end",
                  min_train=10, suggest_train=50, suggest_label="gains usually appear at 50-100; start with 50",
                  max_file_bytes=8 * 1024 * MB, file_label="OpenAI's Uploads API (8 GB)")


def _upload_size(report: Report, examples: list[Example]) -> None:
    for path in sorted({ex.where.file for ex in examples}):
        size = Path(path).stat().st_size
        if 512 * MB < size <= 8 * 1024 * MB:
            report.warn(Where(path, None), "file_over_512mb", f"{size:,} bytes: over the Files API's 512 MB",
                        "upload it in parts with the Uploads API (up to 8 GB)")


def validate_openai_sft(paths: Any, *, model: str = SFT_MODEL, max_tokens: int | None = None,
                        counter: TokenCounter | None = None, near_duplicates: bool = True) -> ValidationResult:
    """Every check OpenAI (and its cookbook checker) applies to chat SFT files, plus duplicates, leakage,
    token limit (default: the model's, 65,536 for gpt-4o-mini) and the example minimum (10)."""
    return validate_jsonl(paths, "openai_sft", _check_sft, _limits(model, max_tokens, "max tokens per example"),
                          counter=counter, model=model, near_duplicates=near_duplicates, after=_upload_size)


def _check_dpo(report: Report, where: Where, obj: dict, split: str) -> Example | None:
    check_keys(report, where, obj, ("input", "preferred_output", "non_preferred_output"), "the example", error=False)
    missing = [k for k in ("input", "preferred_output", "non_preferred_output") if not obj.get(k)]
    if missing:
        report.error(where, "missing_key", f"missing or empty {', '.join(missing)}",
                     "give input.messages, preferred_output and non_preferred_output")
        return None
    inp = obj["input"]
    if not isinstance(inp, dict):
        report.error(where, "input_type", "input is not an object", 'write input as {"messages": [...]}')
        return None
    check_keys(report, where, inp, ("messages", "tools", "parallel_tool_calls"), "input", error=False)
    prompt = check_messages(report, where, inp.get("messages"), PROMPT_RULES, "input.messages")
    if prompt is None:
        return None
    if prompt and prompt[-1]["role"] != "user":
        report.error(where, "prompt_not_user_last", f"input.messages ends with {prompt[-1]['role']!r}",
                     "end the input with the user turn the outputs answer")
    if any(m["role"] == "assistant" for m in prompt):
        report.warn(where, "single_turn_prompt", "input.messages has earlier assistant turns; OpenAI trains one "
                    "turn per example, so they are context only", "keep only the last exchange if the history is "
                    "not needed as context")
    outputs = []
    for key in ("preferred_output", "non_preferred_output"):
        value = obj[key]
        if not isinstance(value, list) or len(value) != 1:
            report.error(where, "output_shape", f"{key} must be a list of exactly one assistant message",
                         f'write {key} as [{{"role": "assistant", "content": "..."}}]')
            return None
        msgs = check_messages(report, where, value, OUTPUT_RULES, key)
        if msgs is None:
            return None
        outputs.append(msgs[0])
    if outputs[0]["content"].strip() == outputs[1]["content"].strip():
        report.error(where, "identical_outputs", "preferred and non-preferred outputs are the same",
                     "drop the pair: there is nothing to prefer")
    return Example(where, split, [[*prompt, outputs[0]], [*prompt, outputs[1]]], prompt)


def validate_openai_dpo(paths: Any, *, model: str = DPO_MODEL, max_tokens: int | None = None,
                        counter: TokenCounter | None = None, near_duplicates: bool = True) -> ValidationResult:
    """OpenAI preference fine-tuning: shape, one assistant message per output, outputs that differ, a
    prompt ending with the user, plus the shared checks."""
    return validate_jsonl(paths, "openai_dpo", _check_dpo, _limits(model, max_tokens, "max tokens per example"),
                          counter=counter, model=model, near_duplicates=near_duplicates, after=_upload_size)
