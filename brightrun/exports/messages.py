"""The checks of a list of chat messages, parametrized by the consumer's rules (formats.md §7 checks 3-8):
allowed keys, role vocabulary, non-empty text content, system placement, role order, an assistant turn
(last, for SFT), and per-turn training flags (OpenAI `weight` 0/1, Axolotl `train` boolean)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from brightrun.exports.base import Report, Where
from brightrun.exports.checks import check_alternation, text_problem

Severity = Literal["error", "warn"] | None


@dataclass(frozen=True)
class MessageRules:
    consumer: str
    roles: tuple[str, ...]
    keys: tuple[str, ...]
    role_key: str = "role"
    content_key: str = "content"
    canonical: dict[str, str] = field(default_factory=dict)
    """Consumer role -> system / user / assistant / tool (for statistics, duplicates and leakage)."""
    unknown_key: Severity = "error"
    flag_key: str | None = None
    """'weight' (0 or 1, assistant only, OpenAI) or 'train' (boolean, Axolotl message_field_training)."""
    tool_calls: bool = False
    """Assistant turns may carry tool_calls instead of content."""
    system_placement: Severity = "warn"
    alternation: Severity = "warn"
    require_assistant: bool = True
    last_assistant: bool = True
    min_messages: int = 1

    def role_of(self, role: str) -> str:
        return self.canonical.get(role, role)


def check_messages(report: Report, where: Where, messages: object, rules: MessageRules,
                   what: str = "messages") -> list[dict] | None:
    """Check one conversation; return it as [{"role": canonical, "content": str}] or None when it is not a
    list of message objects at all."""
    if not isinstance(messages, list) or not messages:
        report.error(where, "missing_messages_list", f"{what} is missing, empty or not a list",
                     f"give {what} as a non-empty list of messages")
        return None
    out, roles, flags = [], [], []
    allowed, role_key, content_key = frozenset(rules.keys), rules.role_key, rules.content_key
    for i, m in enumerate(messages, start=1):
        if not isinstance(m, dict):
            label = f"{what}[{i}]"
            report.error(where, "message_type", f"{label} is not an object", f"make {label} an object with "
                         f"{role_key} and {content_key}")
            continue
        role = m.get(role_key)
        if role_key not in m or content_key not in m:
            missing = [k for k in (role_key, content_key) if k not in m
                       and not (k == content_key and rules.tool_calls and m.get("tool_calls"))]
            if missing:
                report.error(where, "message_missing_key", f"{what}[{i}] lacks {', '.join(missing)}",
                             f"add {', '.join(missing)}")
        if rules.unknown_key and not m.keys() <= allowed:
            extra = sorted(set(m) - allowed)
            add = report.error if rules.unknown_key == "error" else report.warn
            add(where, "message_unrecognized_key", f"{what}[{i}] has key(s) {', '.join(extra)} that "
                f"{rules.consumer} does not accept (allowed: {', '.join(rules.keys)})", f"remove {', '.join(extra)}")
        if role not in rules.roles:
            report.error(where, "unrecognized_role", f"{what}[{i}] has {role_key} {role!r}; {rules.consumer} "
                         f"accepts {', '.join(rules.roles)}", f"map it to one of {', '.join(rules.roles)}")
        canonical = rules.role_of(role) if isinstance(role, str) else str(role)
        content = m.get(content_key)
        if not (rules.tool_calls and canonical == "assistant" and m.get("tool_calls") and content in (None, "")):
            problem = text_problem(content)
            if problem and content_key in m:
                report.error(where, "missing_content", f"{what}[{i}] {content_key} {problem}",
                             f"give {what}[{i}] non-empty text or drop the turn")
        if rules.flag_key and rules.flag_key in m:
            flags.append(_check_flag(report, where, f"{what}[{i}]", m[rules.flag_key], canonical, rules.flag_key))
        elif canonical == "assistant":
            flags.append(True)
        roles.append(canonical)
        out.append({"role": canonical, "content": content if isinstance(content, str) else ""})
    _check_structure(report, where, roles, flags, rules, what)
    return out


def _check_flag(report: Report, where: Where, label: str, value: object, role: str, key: str) -> bool:
    if key == "weight":
        if role != "assistant":
            report.error(where, "weight_role", f"{label} is a {role} turn with a weight; only assistant turns "
                         "may carry one", "remove the weight from that turn")
        if isinstance(value, bool) or value not in (0, 1):
            report.error(where, "weight_value", f"{label} weight is {value!r}; it must be 0 or 1",
                         "use 0 (not trained) or 1 (trained)")
        return value == 1 and role == "assistant" and not isinstance(value, bool)
    if not isinstance(value, bool):
        report.error(where, "train_flag", f"{label} {key} is {value!r}, not true or false",
                     f"write {key} as a JSON boolean")
    return value is True and role == "assistant"


def _check_structure(report: Report, where: Where, roles: list[str], flags: list[bool], rules: MessageRules,
                     what: str) -> None:
    if len(roles) < rules.min_messages:
        report.error(where, "too_few_messages", f"{what} has {len(roles)} message(s); {rules.consumer} needs at "
                     f"least {rules.min_messages}", "add the missing turns")
    if not rules.require_assistant:
        pass
    elif "assistant" not in roles:
        report.error(where, "example_missing_assistant_message", f"{what} has no assistant turn",
                     "add the assistant answer the model should learn")
    elif rules.last_assistant and roles[-1] != "assistant":
        report.error(where, "last_not_assistant", f"the last turn is {roles[-1]!r}, not an assistant turn",
                     "end the example with the assistant answer (drop trailing turns)")
    elif flags and not any(flags):
        report.error(where, "no_trained_turn", "every assistant turn is marked not to be trained",
                     "mark at least one assistant turn as trained (weight 1 / train true)")
    if rules.system_placement and "system" in roles[1:]:
        add = report.error if rules.system_placement == "error" else report.warn
        add(where, "system_placement", f"a system turn appears at position {roles.index('system', 1) + 1}, "
            "not first", "put one system message first, or fold it into the first system prompt")
    if rules.alternation and "tool" not in roles:  # tool exchanges put assistant turns back to back
        check_alternation(report, where, roles, error=rules.alternation == "error")
