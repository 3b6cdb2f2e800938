"""Hugging Face TRL datasets (formats.md §3): conversational SFT, DPO (explicit prompt) and KTO.

SFT (SFTTrainer, language modeling):  {"messages": [{"role", "content"}, ...]}
    or with style="prompt_completion": {"prompt": [messages], "completion": [{"role": "assistant", ...}]}
DPO (DPOTrainer, explicit prompt):    {"prompt": [messages], "chosen": [assistant message], "rejected": [...]}
KTO (KTOTrainer, unpaired):           {"prompt": [messages], "completion": [assistant message], "label": bool}

TRL has no per-turn weights: with `assistant_only_loss=True` every assistant turn is trained; to train only
the last turn use style="prompt_completion" (completion-only loss is the default for that type).
SFTConfig.max_length and DPOConfig.max_length default to 1024 tokens; longer rows are truncated
(keep_start). KTOConfig's default is not in the reference; 1024 is assumed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from brightrun.exports.base import Report, ValidationResult, Where
from brightrun.exports.checks import Example, Limits, check_keys, check_text
from brightrun.exports.common import plain, prompt_of, validate_jsonl, write_jsonl_format
from brightrun.exports.messages import MessageRules, check_messages
from brightrun.exports.tokens import TokenCounter

MAX_LENGTH = 1024
ROLES = ("system", "user", "assistant", "tool")
KEYS = ("role", "content", "name", "tool_calls", "tool_call_id")
CONVERSATION = MessageRules("TRL (chat template)", ROLES, KEYS, unknown_key="warn", tool_calls=True)
PROMPT = MessageRules("TRL (chat template)", ROLES, KEYS, unknown_key="warn", tool_calls=True,
                      require_assistant=False, last_assistant=False)
ANSWER = MessageRules("TRL", ("assistant",), KEYS, unknown_key="warn", system_placement=None, alternation=None)
_TYPES = {"messages": "language modeling", "prompt_completion": "prompt-completion", "text": "language modeling"}


def _sft_line(style: str):
    def convert(record: dict) -> dict:
        messages = plain(record["messages"])
        if style == "messages":
            return {"messages": messages}
        return {"prompt": messages[:-1], "completion": messages[-1:]}
    return convert


def write_trl_sft(records: Any, folder: Path | str, *, split_names: Mapping[str, str] | None = None,
                  style: Literal["messages", "prompt_completion"] = "messages") -> list[Path]:
    return write_jsonl_format(records, folder, "trl_sft", "sft", _sft_line(style), split_names=split_names,
                              description="TRL SFTTrainer dataset (conversational "
                              f"{_TYPES[style]}). Train with assistant_only_loss=True to learn only the "
                              "assistant turns.")


def write_trl_dpo(records: Any, folder: Path | str, *, split_names: Mapping[str, str] | None = None) -> list[Path]:
    return write_jsonl_format(
        records, folder, "trl_dpo", "preference",
        lambda r: {"prompt": plain(r["prompt"]), "chosen": [{"role": "assistant", "content": r["chosen"]}],
                   "rejected": [{"role": "assistant", "content": r["rejected"]}]},
        split_names=split_names, description="TRL DPOTrainer dataset (conversational preference, explicit prompt).")


def write_trl_kto(records: Any, folder: Path | str, *, split_names: Mapping[str, str] | None = None) -> list[Path]:
    """KTO records (see records.kto_records_from_preference / kto_records_from_thumbs)."""
    return write_jsonl_format(
        records, folder, "trl_kto", "kto",
        lambda r: {"prompt": plain(r["prompt"]), "completion": [{"role": "assistant", "content": r["completion"]}],
                   "label": r["label"]},
        split_names=split_names, description="TRL KTOTrainer dataset (conversational unpaired preference).")


# -- validation ---------------------------------------------------------------------------------------


class _Types:
    """One dataset type per split file: datasets cannot load rows of different shapes together."""

    def __init__(self) -> None:
        self.first: dict[str, tuple[str, Where]] = {}

    def check(self, report: Report, where: Where, kind: str) -> None:
        seen = self.first.setdefault(where.file, (kind, where))
        if seen[0] != kind:
            report.error(where, "mixed_types", f"this row is {kind} but line {seen[1].line} is {seen[0]}",
                         "write one dataset type per file")


def _answer(report: Report, where: Where, value: object, key: str) -> dict | None:
    if isinstance(value, str):
        return {"role": "assistant", "content": value} if check_text(report, where, value, key) else None
    msgs = check_messages(report, where, value, ANSWER, key)
    return msgs[-1] if msgs else None


def _prompt(report: Report, where: Where, value: object) -> list[dict] | None:
    if isinstance(value, str):
        return [{"role": "user", "content": value}] if check_text(report, where, value, "prompt") else None
    msgs = check_messages(report, where, value, PROMPT, "prompt")
    if msgs and msgs[-1]["role"] != "user":
        report.warn(where, "prompt_not_user_last", f"the prompt ends with {msgs[-1]['role']!r}",
                    "end the prompt with the user turn that the completion answers")
    return msgs


def _sft_checker():
    types = _Types()

    def check(report: Report, where: Where, obj: dict, split: str) -> Example | None:
        if "messages" in obj:
            types.check(report, where, "messages")
            check_keys(report, where, obj, ("messages", "tools"), "the row", error=False)
            msgs = check_messages(report, where, obj["messages"], CONVERSATION)
            return Example(where, split, [msgs], prompt_of(msgs)) if msgs else None
        if "prompt" in obj or "completion" in obj:
            types.check(report, where, "prompt-completion")
            check_keys(report, where, obj, ("prompt", "completion", "tools"), "the row", error=False)
            prompt, answer = _prompt(report, where, obj.get("prompt")), _answer(report, where, obj.get("completion"),
                                                                                 "completion")
            return Example(where, split, [[*prompt, answer]], prompt) if prompt and answer else None
        if "text" in obj:
            types.check(report, where, "text")
            if check_text(report, where, obj["text"], "text"):
                return Example(where, split, [[{"role": "assistant", "content": obj["text"]}]])
            return None
        report.error(where, "missing_key", "the row has none of messages, prompt/completion or text",
                     "write a messages column (or prompt and completion)")
        return None
    return check


def _limits(max_length: int | None, config: str) -> Limits:
    return Limits(tokens=max_length, tokens_label=f"{config}.max_length (default {MAX_LENGTH})",
                  over_action="truncated (truncation_mode keep_start)")


def validate_trl_sft(paths: Any, *, max_length: int | None = MAX_LENGTH, counter: TokenCounter | None = None,
                     near_duplicates: bool = True) -> ValidationResult:
    return validate_jsonl(paths, "trl_sft", _sft_checker(), _limits(max_length, "SFTConfig"), counter=counter,
                          near_duplicates=near_duplicates)


def _pair_checker():
    types = _Types()

    def check(report: Report, where: Where, obj: dict, split: str) -> Example | None:
        missing = [k for k in ("chosen", "rejected") if k not in obj]
        if missing:
            report.error(where, "missing_key", f"missing {', '.join(missing)}", "give chosen and rejected")
            return None
        explicit = "prompt" in obj
        types.check(report, where, "explicit prompt" if explicit else "implicit prompt")
        check_keys(report, where, obj, ("prompt", "chosen", "rejected"), "the row", error=False)
        if explicit:
            prompt = _prompt(report, where, obj["prompt"])
            chosen, rejected = (_answer(report, where, obj[k], k) for k in ("chosen", "rejected"))
            if not (prompt and chosen and rejected):
                return None
            sides = [[*prompt, chosen], [*prompt, rejected]]
        else:
            sides = [check_messages(report, where, obj[k], CONVERSATION, k) for k in ("chosen", "rejected")]
            if not all(sides):
                return None
            prompt = prompt_of(sides[0])
        if sides[0][-1]["content"].strip() == sides[1][-1]["content"].strip():
            report.error(where, "identical_outputs", "chosen and rejected are the same",
                         "drop the pair: there is nothing to prefer")
        return Example(where, split, sides, prompt)
    return check


def validate_trl_dpo(paths: Any, *, max_length: int | None = MAX_LENGTH, counter: TokenCounter | None = None,
                     near_duplicates: bool = True) -> ValidationResult:
    return validate_jsonl(paths, "trl_dpo", _pair_checker(), _limits(max_length, "DPOConfig"), counter=counter,
                          near_duplicates=near_duplicates)


def _kto_check(report: Report, where: Where, obj: dict, split: str) -> Example | None:
    missing = [k for k in ("prompt", "completion", "label") if k not in obj]
    if missing:
        report.error(where, "missing_key", f"missing {', '.join(missing)}", "give prompt, completion and label")
        return None
    check_keys(report, where, obj, ("prompt", "completion", "label"), "the row", error=False)
    if not isinstance(obj["label"], bool):
        report.error(where, "label_type", f"label is {obj['label']!r}, not a boolean",
                     "write label as true (desirable) or false (undesirable)")
    prompt, answer = _prompt(report, where, obj["prompt"]), _answer(report, where, obj["completion"], "completion")
    if not (prompt and answer):
        return None
    example = Example(where, split, [[*prompt, answer]], prompt)
    example.label = obj["label"]  # type: ignore[attr-defined]
    return example


def _labels(report: Report, examples: list[Example]) -> None:
    labels = Counter(getattr(ex, "label", None) for ex in examples if ex.split == "train")
    if examples and (not labels[True] or not labels[False]):
        report.warn(Where(examples[0].where.file, None), "single_label", f"the training split has {labels[True]} "
                    f"desirable and {labels[False]} undesirable examples", "KTO learns from both: add the other kind")


def validate_trl_kto(paths: Any, *, max_length: int | None = MAX_LENGTH, counter: TokenCounter | None = None,
                     near_duplicates: bool = True) -> ValidationResult:
    return validate_jsonl(paths, "trl_kto", _kto_check, _limits(max_length, "KTOConfig"), counter=counter,
                          near_duplicates=near_duplicates, after=_labels)
