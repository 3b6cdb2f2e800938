"""Which column of an app's log holds which field of an imported LLM call.

A log exported from a production app names its columns its own way ("prompt" or "request",
"thumbs" or "helpful", "ts" or "created_at"). `guess_mapping` finds the usual names; a user corrects
or completes the guess with `--map field=column` (CLI) or the upload form (app).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from brightrun.errors import BrightRunError

REQUIRED = ("action_type", "input", "output")
TEXT_FIELDS = ("input", "output", "feedback_text")
"""The free-text fields."""
PII_FIELDS = ("user_id", "session_id", "category", "input", "output", "feedback_text")
"""The fields scanned for personal data (apps often use an e-mail address as the user id)."""

# Common names per field, best first. Names are compared in lower case with every run of
# non-alphanumeric characters read as "_" ("Prompt Tokens" == "prompt_tokens").
CANDIDATES: dict[str, tuple[str, ...]] = {
    "call_id": ("call_id", "request_id", "event_id", "log_id", "record_id", "message_id", "id"),
    "action_type": ("action_type", "action", "step", "step_name", "event_type", "call_type", "task", "operation",
                    "type", "kind", "event"),
    "user_id": ("user_id", "user", "userid", "uid", "customer_id", "member_id", "client_id"),
    "session_id": ("session_id", "session", "sessionid", "conversation_id", "thread_id", "conversation", "thread"),
    "category": ("category", "life_area", "area", "topic", "domain", "section"),
    "input": ("input", "prompt", "request", "user_input", "input_text", "prompt_text", "question", "query",
              "user_message", "message"),
    "output": ("output", "response", "completion", "output_text", "response_text", "answer", "reply", "result",
               "assistant_message", "generation"),
    "model": ("model", "model_name", "model_id", "llm", "engine"),
    "input_tokens": ("input_tokens", "prompt_tokens", "tokens_in", "in_tokens", "tokens_input", "usage_input_tokens"),
    "output_tokens": ("output_tokens", "completion_tokens", "tokens_out", "out_tokens", "tokens_output",
                      "usage_output_tokens"),
    "latency_ms": ("latency_ms", "latency", "duration_ms", "elapsed_ms", "response_time_ms", "response_ms"),
    "helpful": ("helpful", "thumbs", "thumbs_up", "thumb", "is_helpful", "liked", "upvote", "vote"),
    "rating": ("rating", "stars", "user_rating", "score"),
    "feedback_text": ("feedback_text", "feedback", "comment", "comments", "feedback_comment", "user_comment"),
    "created_at": ("created_at", "timestamp", "ts", "time", "datetime", "created", "event_time", "logged_at", "date"),
    "feedback_at": ("feedback_at", "feedback_time", "feedback_timestamp", "rated_at"),
}


def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


class ColumnMapping(BaseModel):
    """Field -> the source column that holds it. action_type, input and output are required; a field
    left None is not in the log (tokens 0, model "unknown", no feedback...)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    action_type: str = Field(description="the app's step, e.g. frequency_flip or blueprint_generation")
    input: str = Field(description="the prompt, or the user's input, sent to the model")
    output: str = Field(description="the model's answer")
    call_id: str | None = Field(default=None, description="the app's own id of the call, if any")
    user_id: str | None = None
    session_id: str | None = None
    category: str | None = None
    model: str | None = None
    input_tokens: str | None = None
    output_tokens: str | None = None
    latency_ms: str | None = Field(default=None, description="milliseconds")
    helpful: str | None = Field(default=None, description="thumbs: true/false, 1/0, yes/no, up/down, 👍/👎")
    rating: str | None = Field(default=None, description="1 to 5")
    feedback_text: str | None = None
    created_at: str | None = Field(default=None, description="when the call was made")
    feedback_at: str | None = Field(default=None, description="when the feedback was given (else created_at)")

    def fields(self) -> dict[str, str]:
        """The mapped fields only: {field: column}."""
        return {k: v for k, v in self.model_dump().items() if v is not None}

    def columns(self) -> list[str]:
        """The distinct source columns read, in field order."""
        return list(dict.fromkeys(self.fields().values()))

    def check(self, available: Sequence[str], where: str = "the file") -> ColumnMapping:
        """Raise a BrightRunError naming every mapped column `available` lacks; return self."""
        check_columns(self.fields(), available, where)
        return self

    def with_overrides(self, overrides: dict[str, str | None]) -> ColumnMapping:
        """A copy with some fields mapped elsewhere (a None or "" column unmaps an optional field)."""
        unknown = [f for f in overrides if f not in ColumnMapping.model_fields]
        if unknown:
            raise BrightRunError(f"unknown field {unknown[0]!r}. "
                                 f"Fix: use one of {', '.join(ColumnMapping.model_fields)}.")
        data = self.model_dump()
        data.update({f: (c or None) for f, c in overrides.items()})
        return mapping_from_dict(data)


def check_columns(fields: dict[str, str], available: Sequence[str], where: str = "the file") -> None:
    missing = {f: c for f, c in fields.items() if c not in available}
    if missing:
        listed = ", ".join(f"{f} -> {c!r}" for f, c in missing.items())
        raise BrightRunError(
            f"{where} has no column {' or '.join(repr(c) for c in dict.fromkeys(missing.values()))} "
            f"(mapped: {listed}). Its columns are: {', '.join(available) or 'none'}. "
            f"Fix: map each field to one of those, e.g. --map {next(iter(missing))}=<column>.")


def mapping_from_dict(data: dict[str, str | None]) -> ColumnMapping:
    """A ColumnMapping from {field: column}, with a clear error when a required field is unmapped."""
    missing = [f for f in REQUIRED if not data.get(f)]
    if missing:
        raise BrightRunError(
            f"no column is mapped to {', '.join(missing)}. Fix: map it, e.g. --map {missing[0]}=<column> "
            f"(the required fields are {', '.join(REQUIRED)}).")
    unknown = [f for f in data if f not in ColumnMapping.model_fields]
    if unknown:
        raise BrightRunError(f"unknown field {unknown[0]!r}. Fix: use one of {', '.join(ColumnMapping.model_fields)}.")
    return ColumnMapping(**{k: v for k, v in data.items() if v})


def guess_fields(columns: Iterable[str]) -> dict[str, str]:
    """{field: column} for every field whose usual name is among `columns` (each column used once)."""
    columns = list(columns)
    by_norm: dict[str, str] = {}
    for column in columns:
        by_norm.setdefault(_norm(column), column)
    taken: set[str] = set()
    found: dict[str, str] = {}
    # Specific names first: a column called "feedback" is feedback_text, not a thumbs.
    for field in ("call_id", "input_tokens", "output_tokens", "latency_ms", "feedback_at", "feedback_text",
                  "action_type", "user_id", "session_id", "category", "input", "output", "model", "helpful",
                  "rating", "created_at"):
        for name in CANDIDATES[field]:
            column = by_norm.get(name)
            if column is not None and column not in taken:
                found[field] = column
                taken.add(column)
                break
    return found


def guess_mapping(columns: Iterable[str], overrides: dict[str, str | None] | None = None) -> ColumnMapping:
    """The mapping guessed from column names, with `overrides` applied; a BrightRunError naming the
    columns when a required field (action_type, input, output) has no column."""
    columns = list(columns)
    data: dict[str, str | None] = dict(guess_fields(columns))
    if overrides:
        unknown = [f for f in overrides if f not in ColumnMapping.model_fields]
        if unknown:
            raise BrightRunError(
                f"unknown field {unknown[0]!r}. Fix: use one of {', '.join(ColumnMapping.model_fields)}.")
        # A column given explicitly is no longer guessed for another field.
        explicit = {c for c in overrides.values() if c}
        data = {f: c for f, c in data.items() if c not in explicit}
        data.update({f: (c or None) for f, c in overrides.items()})
        check_columns({f: c for f, c in overrides.items() if c}, columns)
    missing = [f for f in REQUIRED if not data.get(f)]
    if missing:
        raise BrightRunError(
            f"cannot tell which column holds {', '.join(missing)}; the columns are: {', '.join(columns) or 'none'}. "
            f"Fix: map it, e.g. --map {missing[0]}=<column>.")
    return ColumnMapping(**{k: v for k, v in data.items() if v}).check(columns)


def parse_map_options(options: Iterable[str]) -> dict[str, str | None]:
    """{field: column} from CLI options like "input=prompt" ("field=" unmaps an optional field)."""
    result: dict[str, str | None] = {}
    for option in options:
        field, sep, column = option.partition("=")
        field = field.strip()
        if not sep or not field:
            raise BrightRunError(f"--map {option!r} is not field=column. Fix: write e.g. --map input=prompt.")
        if field not in ColumnMapping.model_fields:
            raise BrightRunError(f"--map {option!r}: unknown field {field!r}. "
                                 f"Fix: use one of {', '.join(ColumnMapping.model_fields)}.")
        result[field] = column.strip() or None
    return result
