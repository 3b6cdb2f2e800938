"""Reading a model's JSON answer: strictly first, then leniently the way local models need.

Grammar-constrained local models (llama.cpp and friends) often wrap the JSON in a Markdown code fence, put
prose around it, or leave raw control characters (a newline, a tab) inside strings, which strict JSON
forbids. The answer is parsed strictly first (the fast path for every well-behaved API); only when that
fails is the outermost `{...}` taken and parsed with control characters allowed in strings. Either way the
result is then validated by the full pydantic model, every bound included.
"""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
CORRECTION_ECHO_CHARS = 2000
"""How much of a rejected answer a correction request quotes back: a long cut-off answer resent whole would
overflow a small model's context, and the model needs only its beginning to see what went wrong."""


def lenient_json(text: str) -> object:
    """The JSON value in `text`, tolerating fences, surrounding prose and raw control characters in strings;
    ValueError if there is none."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise ValueError("no JSON object in the answer")
    return json.loads(text[start:end + 1], strict=False)


def validate_answer(model: type[M], text: str) -> M:
    """`text` as `model`; strict JSON first, then lenient. Raises the strict attempt's ValidationError when
    the lenient reading does not help, so the message names the real problem."""
    try:
        return model.model_validate_json(text)
    except ValidationError as strict:
        try:
            value = lenient_json(text)
        except ValueError:
            raise strict from None
        return model.model_validate(value)


def problem_of(exc: ValidationError, schema_name: str) -> str:
    """One line naming the first thing wrong with an answer, for the record and the correction request."""
    first = exc.errors()[0]
    where = ".".join(str(x) for x in first["loc"]) or "(answer)"
    return f"the answer does not match the {schema_name} schema at {where}: {first['msg'].removeprefix('Value error, ')}"


def echo(text: str) -> str:
    """A rejected answer as quoted back in a correction request: whole if short, else its beginning."""
    if len(text) <= CORRECTION_ECHO_CHARS:
        return text or "(empty)"
    return f"{text[:CORRECTION_ECHO_CHARS]}\n[... {len(text) - CORRECTION_ECHO_CHARS:,} more characters not repeated]"
