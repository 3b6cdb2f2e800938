"""ShareGPT and Alpaca (formats.md §4), the two legacy layouts read by LLaMA-Factory and Axolotl.

ShareGPT line: {"conversations": [{"from": "system", "value": ...} (optional, first),
                                  {"from": "human", "value": ...}, {"from": "gpt", "value": ...}, ...]}
    Validated by LLaMA-Factory's SharegptDatasetConverter rules (a leading system turn becomes the system
    prompt; then odd positions human/observation, even positions gpt/function_call; an even count for SFT,
    odd for ranking), which skip a bad example with only a warning; Axolotl reads it through chat_template
    with field_messages: conversations (axolotl.yaml is written beside it).
Alpaca line: {"instruction": last user turn, "input": "", "output": last assistant turn,
              "system": str (optional), "history": [[user, assistant], ...] (optional)}
    LLaMA-Factory trains on the answers inside history too (when dataset_info.json maps the system and
    history columns: llama_factory.py writes and checks it); Axolotl's alpaca type ignores history.
Neither layout has per-turn weights: every assistant turn is trained.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from brightrun.exports.axolotl import axolotl_config
from brightrun.exports.base import ExportError, Report, ValidationResult, Where
from brightrun.exports.checks import Example, Limits, check_keys, check_text, text_problem
from brightrun.exports.common import leading_system, prompt_of, validate_jsonl, write_jsonl_format
from brightrun.exports.tokens import TokenCounter

CUTOFF_LEN = 2048  # LLaMA-Factory's default cutoff_len
TAGS = {"user": "human", "assistant": "gpt", "system": "system"}
CANONICAL = {"human": "user", "gpt": "assistant", "observation": "tool", "function_call": "assistant",
             "system": "system"}
ODD, EVEN = ("human", "observation"), ("gpt", "function_call")


def sharegpt_turns(messages: list[dict]) -> list[dict]:
    return [{"from": TAGS[m["role"]], "value": m["content"]} for m in messages]


def _sharegpt_line(record: dict) -> dict:
    system, turns = leading_system(record)
    head = [{"from": "system", "value": system}] if system else []
    return {"conversations": head + sharegpt_turns(turns)}


def write_sharegpt(records: Any, folder: Path | str, *, split_names: Mapping[str, str] | None = None) -> list[Path]:
    entry = {"type": "chat_template", "field_messages": "conversations",
             "message_property_mappings": {"role": "from", "content": "value"}}
    return write_jsonl_format(
        records, folder, "sharegpt", "sft", _sharegpt_line, split_names=split_names,
        description="ShareGPT conversations (from/value, human/gpt). For Axolotl see axolotl.yaml; for "
        "LLaMA-Factory register the files with formatting: sharegpt.",
        extras=lambda groups: {"axolotl.yaml": axolotl_config(groups, entry, "Axolotl datasets for ShareGPT data "
                                                              "(sharegpt type is deprecated: chat_template mapping)")})


def check_conversation(report: Report, where: Where, conversations: object, *, ranking: bool = False,
                       system: str | None = None, what: str = "conversations") -> list[dict] | None:
    """LLaMA-Factory's SharegptDatasetConverter rules plus non-empty values; returns canonical messages."""
    if not isinstance(conversations, list) or not conversations:
        report.error(where, "missing_messages_list", f"{what} is missing, empty or not a list",
                     f"give {what} as a list of {{from, value}} turns")
        return None
    turns = list(conversations)
    head = []
    if system is not None:
        head = [{"role": "system", "content": system}]
    if turns and isinstance(turns[0], dict) and turns[0].get("from") == "system":
        if check_text(report, where, turns[0].get("value"), f"{what}[1] value"):
            head = [{"role": "system", "content": turns[0]["value"]}]
        turns = turns[1:]
    out = []
    for i, turn in enumerate(turns, start=1):
        pos = i + (len(conversations) - len(turns))
        label = f"{what}[{pos}]"
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            report.error(where, "message_missing_key", f"{label} is not an object with from and value",
                         'write {"from": "human"|"gpt", "value": "..."}')
            return None
        check_keys(report, where, turn, ("from", "value"), label, rule="message_unrecognized_key", error=False)
        wanted = ODD if i % 2 else EVEN
        if turn["from"] not in wanted:
            rule = "unrecognized_role" if turn["from"] not in CANONICAL else "role_order"
            report.error(where, rule, f"{label} is from {turn['from']!r} where LLaMA-Factory expects "
                         f"{' or '.join(wanted)} (Invalid role tag: the example is skipped)",
                         "alternate human and gpt turns after an optional leading system turn")
        problem = text_problem(turn["value"])
        if problem:
            report.error(where, "missing_content", f"{label} value {problem}", f"give {label} non-empty text")
        out.append({"role": CANONICAL.get(turn["from"], "user"),
                    "content": turn["value"] if isinstance(turn["value"], str) else ""})
    if (len(turns) % 2 == 0) == ranking:
        report.error(where, "message_count", f"{len(turns)} turns after the system prompt; LLaMA-Factory needs an "
                     f"{'odd' if ranking else 'even'} count{' (the prompt ends on a user turn)' if ranking else ''} "
                     "(Invalid message count: the example is skipped)",
                     "end on the user turn (ranking)" if ranking else "end the conversation on a gpt turn")
    return head + out


def _check_sharegpt(report: Report, where: Where, obj: dict, split: str) -> Example | None:
    check_keys(report, where, obj, ("conversations", "system", "tools"), "the record", error=False)
    msgs = check_conversation(report, where, obj.get("conversations"),
                              system=obj["system"] if isinstance(obj.get("system"), str) else None)
    return Example(where, split, [msgs], prompt_of(msgs)) if msgs else None


def validate_sharegpt(paths: Any, *, cutoff_len: int | None = CUTOFF_LEN, counter: TokenCounter | None = None,
                      near_duplicates: bool = True) -> ValidationResult:
    limits = Limits(tokens=cutoff_len, tokens_label=f"LLaMA-Factory cutoff_len (default {CUTOFF_LEN})",
                    over_action="truncated")
    return validate_jsonl(paths, "sharegpt", _check_sharegpt, limits, counter=counter, near_duplicates=near_duplicates)


# -- Alpaca -----------------------------------------------------------------------------------------


def alpaca_line(record: dict) -> dict:
    system, turns = leading_system(record)
    roles = [m["role"] for m in turns]
    if len(turns) < 2 or len(turns) % 2 or roles != ["user", "assistant"] * (len(turns) // 2):
        raise ExportError("Alpaca needs user/assistant pairs ending with the answer. Fix: export this "
                          "conversation as ShareGPT or chat messages instead")
    history = [[turns[i]["content"], turns[i + 1]["content"]] for i in range(0, len(turns) - 2, 2)]
    return {"instruction": turns[-2]["content"], "input": "", "output": turns[-1]["content"],
            **({"system": system} if system else {}), **({"history": history} if history else {})}


def check_alpaca(report: Report, where: Where, obj: dict, split: str) -> Example | None:
    check_keys(report, where, obj, ("instruction", "input", "output", "system", "history"), "the record",
               error=False)
    ok = check_text(report, where, obj.get("instruction"), "instruction")
    ok &= check_text(report, where, obj.get("output"), "output")
    if "input" in obj and not isinstance(obj["input"], str):
        report.error(where, "input_type", "input is not text", 'write input as text ("" when there is none)')
    messages = []
    if "system" in obj and check_text(report, where, obj["system"], "system", rule="system_type"):
        messages.append({"role": "system", "content": obj["system"]})
    history = obj.get("history", [])
    if not isinstance(history, list):
        report.error(where, "history_type", "history is not a list of [question, answer] pairs",
                     'write history as [["q1", "a1"], ...]')
        history = []
    for i, pair in enumerate(history, start=1):
        if not (isinstance(pair, list) and len(pair) == 2):
            report.error(where, "history_type", f"history[{i}] is not a [question, answer] pair",
                         'write each history item as ["question", "answer"]')
            continue
        for text, role in zip(pair, ("user", "assistant"), strict=True):
            check_text(report, where, text, f"history[{i}] {'question' if role == 'user' else 'answer'}")
            messages.append({"role": role, "content": text if isinstance(text, str) else ""})
    if not ok:
        return None
    extra = obj.get("input") if isinstance(obj.get("input"), str) else ""
    prompt = "\n".join(p for p in (obj["instruction"], extra) if p)
    messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": obj["output"]}]
    return Example(where, split, [messages], messages[:-1])
