"""A fake LLM API server for tests and benchmarks: real HTTP on loopback, official SDKs talk to it unchanged.

It speaks enough of three APIs:

* Anthropic Messages        ``POST /v1/messages``
* Anthropic Message Batches ``POST /v1/messages/batches``, ``GET /v1/messages/batches[/{id}[/results]]``,
                            ``POST /v1/messages/batches/{id}/cancel``, ``DELETE /v1/messages/batches/{id}``
* OpenAI Chat Completions   ``POST /v1/chat/completions``
* Models (both APIs)        ``GET /v1/models`` (see ``ModelsHandler``; ids from ``FakeLLMServer.models``)

Every successful answer's text is a conversation JSON ``{"title": str, "turns": [{"role", "content"}, ...]}``
(4 to 10 turns, alternating, user first), deterministic from the request's *item key*:

* Anthropic: ``metadata.user_id``; in a batch, the request's ``custom_id``;
* OpenAI: ``metadata.item``, else ``user``, else ``safety_identifier``;
* otherwise ``"body-<sha1 of the request body>"``.

The server runs tornado on its own asyncio loop in a daemon thread: latency is ``await asyncio.sleep``, so
hundreds of concurrent slow requests cost no threads. ``latency``, ``faults`` and ``batch_delay`` can be
changed while it runs, from any thread. Usage::

    with FakeLLMServer(latency=0.05, seed=1) as server:
        server.faults = FaultPlan(rate=0.2, kinds=["rate_limit", "server_error"])
        client = anthropic.Anthropic(base_url=server.base_url, api_key="test-key", max_retries=0)
        ...
        server.counts()["messages"], server.item_counts(), server.item_successes()

Fault kinds (``FaultPlan.kinds`` draws uniformly among them for a share ``rate`` of requests;
``FaultPlan.permanent`` pins one kind to an item for ever):

    rate_limit      429, header ``retry-after: <retry_after>``, error type rate_limit_error
    server_error    500, api_error
    overloaded      529, overloaded_error
    hang            waits ``hang_seconds`` before answering normally (stops early if the client goes away)
    drop            closes the connection without any response
    malformed_json  200, content-type application/json, a body that is not JSON (a response cut short)
    schema_invalid  200, a well-formed response whose text is JSON without ``turns``
    truncated       200, ``stop_reason: "max_tokens"`` / ``finish_reason: "length"``, text cut in half
    bad_request     400, invalid_request_error (not retryable)

``latency`` seconds are added to every request, errors included (a hang waits latency + hang_seconds).
The default ``kinds`` are all of ``TRANSIENT_KINDS``, "hang" (30 s) included: pass ``kinds=`` to narrow them.

The draw for the n-th request (n = 1, 2, ...) of an item at this server uses
``random.Random(f"{seed}:{item_key}:{n}")``: deterministic, and a retry gets a fresh draw. During a storm
(``server.storm(seconds)``) every API request gets a 429. Inside a batch, each request is one request of
its item; its fault becomes an ``errored`` result with the fault's error type (rate_limit_error, api_error,
overloaded_error, timeout_error for hang, invalid_request_error for bad_request), while schema_invalid and
truncated give ``succeeded`` results with bad messages.

Quality-judge requests (BrightRun's LLM judge) get a judge answer instead of a conversation: a request is
one when its output schema (Anthropic ``output_config.format.schema``; OpenAI
``response_format.json_schema.schema``) has the judge's properties (the six dimensions, ``overall`` and
``rationale``), or its system prompt says "quality judge". The answer is
``{"empathy": 1-5, "clarity": ..., "repetition": ..., "overall": 0-10, "rationale": str}``, deterministic from
the item key (``make_judgement``); schema_invalid nests the scores under ``"scores"`` without ``overall``,
truncated cuts it in half. Every other behaviour is the same for both kinds of request.

Not supported: streaming (``stream: true`` gets a 400), tools, images.

Authentication: Anthropic paths need ``x-api-key`` or ``Authorization: Bearer ...`` (the anthropic 2.x SDK
sends its api_key as a Bearer token); the OpenAI path needs ``Authorization: Bearer ...``. Otherwise 401.

Run standalone (e.g. to benchmark a client in another process)::

    python tests/llm_server.py --port 8765 --latency 0.1 --rate 0.05

``GET /_fake/stats`` returns the counters as JSON and ``POST /_fake/storm?seconds=S&retry_after=R``
starts a 429 storm, so a server in another process can be watched and driven; neither is counted.

No pytest dependency: importable from tests and from ``bench/``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

try:  # orjson is a BrightRun dependency; fall back to json so the module stands alone.
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    _loads = orjson.loads
except ImportError:  # pragma: no cover
    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    _loads = json.loads

__all__ = [
    "ALL_KINDS",
    "TRANSIENT_KINDS",
    "FakeLLMServer",
    "FaultPlan",
    "is_judge_request",
    "make_conversation",
    "make_judgement",
]

TRANSIENT_KINDS: tuple[str, ...] = (
    "rate_limit", "server_error", "overloaded", "hang", "drop", "malformed_json", "schema_invalid", "truncated",
)
ALL_KINDS: tuple[str, ...] = (*TRANSIENT_KINDS, "bad_request", "authentication")

# kind -> (HTTP status, Anthropic error type, OpenAI error type, OpenAI error code, message)
_HTTP_ERRORS: dict[str, tuple[int, str, str, str | None, str]] = {
    "rate_limit": (429, "rate_limit_error", "requests", "rate_limit_exceeded",
                   "Number of request tokens has exceeded your per-minute rate limit (fake server)."),
    "server_error": (500, "api_error", "server_error", "server_error", "Internal server error (fake server)."),
    "overloaded": (529, "overloaded_error", "server_error", "overloaded", "Overloaded (fake server)."),
    "bad_request": (400, "invalid_request_error", "invalid_request_error", "invalid_value",
                    "messages: this request is invalid and will stay invalid (fake server)."),
    "authentication": (401, "authentication_error", "invalid_request_error", "invalid_api_key",
                       "invalid x-api-key (fake server)."),
}
# kind -> error type of an "errored" result inside a message batch
_BATCH_ERROR_TYPES = {
    "rate_limit": "rate_limit_error", "server_error": "api_error", "overloaded": "overloaded_error",
    "hang": "timeout_error", "drop": "api_error", "malformed_json": "api_error",
    "bad_request": "invalid_request_error", "authentication": "authentication_error",
}
_REASONS = {529: "Overloaded"}

OPENAI_MODES = ("strict", "llama.cpp", "no_system")
"""strict: takes response_format json_schema and json_object, keeps system messages (vLLM, OpenAI).
llama.cpp: like llama-cpp-python's server: refuses json_schema (500 with its pydantic error text), takes
json_object (with an optional "schema"), and answers JSON in a code fence with a raw newline in a string.
no_system: a chat template without a system role: system messages are dropped before the model sees them."""

COUNT_KEYS = (
    "total", "messages", "chat", "batches_create", "batches_list", "batches_retrieve", "batches_results",
    "batches_cancel", "batches_delete", "batch_requests", "unauthorized", "not_found", "invalid",
)


# --------------------------------------------------------------------------------------------- fault plan


@dataclass
class FaultPlan:
    """What happens to each request. Fields may be changed while the server runs."""

    rate: float = 0.0
    """Share of item requests (0..1) that get a transient fault drawn from ``kinds``."""
    kinds: list[str] = field(default_factory=lambda: list(TRANSIENT_KINDS))
    """Transient fault kinds to draw from, uniformly (any of ``ALL_KINDS``)."""
    permanent: dict[str, str] = field(default_factory=dict)
    """item key -> fault kind that this item always gets."""
    permanent_matching: dict[str, str] = field(default_factory=dict)
    """regular expression -> fault kind that every item whose key it matches (re.search) always gets, for
    items whose keys are not known beforehand (e.g. a job id made by the app)."""
    retry_after: float = 1.0
    """Seconds in the ``retry-after`` header of a rate_limit fault."""
    hang_seconds: float = 30.0
    """How long a "hang" fault waits before answering."""
    storm_until: float = 0.0
    """``time.monotonic()`` deadline: until then every API request gets 429."""
    storm_retry_after: float = 1.0
    """Seconds in the ``retry-after`` header during a storm."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"FaultPlan.rate must be between 0 and 1, got {self.rate!r}")
        self.kinds = list(self.kinds)
        for kind in [*self.kinds, *self.permanent.values(), *self.permanent_matching.values()]:
            if kind not in ALL_KINDS:
                raise ValueError(f"unknown fault kind {kind!r}; use one of {', '.join(ALL_KINDS)}")

    def permanent_kind(self, item_key: str) -> str | None:
        """The fault this item always gets, if any."""
        kind = self.permanent.get(item_key)
        if kind is None:
            kind = next((k for pattern, k in self.permanent_matching.items() if re.search(pattern, item_key)), None)
        return kind

    def storming(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) < self.storm_until

    def draw(self, seed: int, item_key: str, attempt: int) -> str | None:
        """The transient fault (or None) for the `attempt`-th request (1-based) of `item_key`,
        ignoring storms and permanent faults."""
        kinds = self.kinds
        if self.rate <= 0.0 or not kinds:
            return None
        rng = random.Random(f"{seed}:{item_key}:{attempt}")
        if rng.random() < self.rate:
            return rng.choice(kinds)
        return None

    def decide(self, seed: int, item_key: str | None, attempt: int, now: float | None = None) -> str | None:
        """The fault for one request: "storm", a kind from ALL_KINDS, or None (answer normally)."""
        if self.storming(now):
            return "storm"
        if item_key is None:
            return None
        permanent = self.permanent_kind(item_key)
        if permanent is not None:
            return permanent
        return self.draw(seed, item_key, attempt)


# ------------------------------------------------------------------------------------- conversation text

_NAMES = ["Maya", "Daniel", "Priya", "Tom", "Lucia", "Grace", "Omar", "Hannah", "Kenji", "Sofia", "Marcus",
          "Elena", "Aisha", "Ben", "Carmen", "David"]
_TOPICS = [  # (as the client says it, as the advisor says it, title)
    ("retirement savings", "your retirement savings", "Catching up on retirement savings"),
    ("an emergency fund", "an emergency fund", "Building an emergency fund"),
    ("my credit card debt", "the credit card debt", "Paying down credit card debt"),
    ("buying a first home", "saving for a home", "Saving for a first home"),
    ("college savings for my kids", "college savings", "Planning for college costs"),
    ("an inheritance from my aunt", "the inheritance", "What to do with an inheritance"),
    ("my new employer's 401(k)", "the new 401(k)", "Choosing 401(k) contributions"),
    ("my student loans", "the student loans", "Tackling student loans"),
    ("budgeting after a pay cut", "the new budget", "Rebuilding a budget after a pay cut"),
    ("Roth versus traditional IRA contributions", "the IRA choice", "Roth or traditional IRA"),
    ("selling some company stock", "the company stock", "Diversifying out of company stock"),
    ("a possible early retirement", "early retirement", "Is early retirement realistic"),
]
_USER_OPEN = [
    "Hi, thanks for seeing me. I want to talk about {topic}. I'm {age} and I feel like I'm behind.",
    "Hello. My partner and I keep arguing about {topic}, and we have about {amount} we could put toward it.",
    "Thanks for making time. I've been losing sleep over {topic}. Where do I even start?",
    "Hi. I finally want to get serious about {topic}. I earn around {income} a year.",
]
_USER_FOLLOW = [
    "That makes sense. But what if the market drops right after I start?",
    "Okay. How much should I be setting aside each month, realistically?",
    "I hadn't thought about the tax side of it. Does that change the plan?",
    "We also have about {amount} sitting in a checking account. Is that a mistake?",
    "Honestly that sounds like a lot. Can we start smaller?",
    "What would you do first if you were in my position?",
    "Is it worth paying someone to manage this, or can I do it myself?",
]
_USER_CLOSE = [
    "Thank you. I feel a lot calmer about all of this now.",
    "Okay, I can work with that. Let's check in next month.",
    "This helped more than I expected. I'll set up the transfer this week.",
]
_ADVISOR = [
    "It's very common to feel that way about {their_topic}, {name}. Let's look at the numbers before deciding anything.",
    "A good first step is an emergency cushion of three to six months of expenses, then we can talk about {their_topic}.",
    "If your employer matches contributions, capturing the full match is usually the best return you'll get.",
    "Setting aside {monthly} a month automatically tends to work better than waiting for money left over.",
    "High-interest debt usually comes first: paying off a card at 22% is a guaranteed 22% return.",
    "A low-cost diversified index fund keeps fees down and spreads the risk across the whole market.",
    "The tax treatment matters: contributions now versus withdrawals later depends on your bracket today.",
    "Let's write down a simple plan: one goal, one monthly amount, and a date to review it together.",
]


@lru_cache(maxsize=8192)
def _conversation_bytes(item_key: str) -> bytes:
    rng = random.Random(f"conversation:{item_key}")
    name = rng.choice(_NAMES)
    topic, their_topic, title = rng.choice(_TOPICS)
    values = {"topic": topic, "their_topic": their_topic, "name": name, "age": rng.randrange(24, 64),
              "amount": f"${rng.randrange(2, 90) * 1000:,}", "income": f"${rng.randrange(35, 250) * 1000:,}",
              "monthly": f"${rng.randrange(2, 40) * 50:,}"}
    n_pairs = rng.choice((2, 3, 4, 5))  # 4 to 10 turns
    follow = rng.sample(_USER_FOLLOW, k=n_pairs - 2)
    advice = rng.sample(_ADVISOR, k=n_pairs)
    users = [rng.choice(_USER_OPEN), *follow, rng.choice(_USER_CLOSE)]
    turns: list[dict[str, str]] = []
    for user, advisor in zip(users, advice, strict=True):
        turns.append({"role": "user", "content": user.format(**values)})
        turns.append({"role": "assistant", "content": advisor.format(**values)})
    return _dumps({"title": f"{title} ({name})", "turns": turns})


def make_conversation(item_key: str) -> dict:
    """The conversation the server answers for `item_key` (what a successful answer's text parses to)."""
    return _loads(_conversation_bytes(item_key))


def _schema_invalid_text(item_key: str) -> str:
    conv = make_conversation(item_key)
    # Valid JSON, wrong shape: no "turns" (the dialogue sits under another key).
    return _dumps({"title": conv["title"], "dialogue": conv["turns"]}).decode()


# ------------------------------------------------------------------------------------------ judge answers

JUDGE_DIMENSIONS = ("empathy", "clarity", "actionable", "asks_first", "length_balance", "repetition")
_JUDGE_KEYS = frozenset((*JUDGE_DIMENSIONS, "overall", "rationale"))


@lru_cache(maxsize=8192)
def _judgement_bytes(item_key: str) -> bytes:
    rng = random.Random(f"judge:{item_key}")
    scores = {d: rng.choices((1, 2, 3, 4, 5), weights=(1, 2, 4, 5, 3))[0] for d in JUDGE_DIMENSIONS}
    mean = sum(scores.values()) / len(scores)
    overall = round(min(10.0, max(0.0, (mean - 1) / 4 * 10 + rng.uniform(-0.8, 0.8))), 1)
    best = max(JUDGE_DIMENSIONS, key=scores.get)
    worst = min(JUDGE_DIMENSIONS, key=scores.get)
    rationale = (f"The response is strongest on {best.replace('_', ' ')} and weakest on "
                 f"{worst.replace('_', ' ')}.")
    return _dumps({**scores, "overall": overall, "rationale": rationale})


def make_judgement(item_key: str) -> dict:
    """The judge answer the server gives for `item_key` (what a successful judge answer's text parses to)."""
    return _loads(_judgement_bytes(item_key))


def _system_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(b if isinstance(b, str) else str(b.get("text", "")) for b in value
                        if isinstance(b, str | dict))
    return ""


def is_judge_request(body: Any) -> bool:
    """True when a Messages or Chat Completions body asks for a quality-judge answer."""
    if not isinstance(body, dict):
        return False
    schemas: list[Any] = []
    for name in ("output_config", "output_format"):
        config = body.get(name)
        if isinstance(config, dict):
            fmt = config.get("format", config)
            if isinstance(fmt, dict):
                schemas.append(fmt.get("schema"))
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and isinstance(response_format.get("json_schema"), dict):
        schemas.append(response_format["json_schema"].get("schema"))
    for schema in schemas:
        if isinstance(schema, dict) and isinstance(schema.get("properties"), dict) \
                and _JUDGE_KEYS <= set(schema["properties"]):
            return True
    system = _system_text(body.get("system"))
    for message in body.get("messages") or ():
        if isinstance(message, dict) and message.get("role") in ("system", "developer"):
            system += " " + _system_text(message.get("content"))
    return "quality judge" in system.lower()


# ---------------------------------------------------------------------------------------------- helpers


def _text_len(value: Any) -> int:
    """Characters of text in a system prompt / message content (a string or a list of blocks)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        total = 0
        for block in value:
            if isinstance(block, str):
                total += len(block)
            elif isinstance(block, dict) and isinstance(block.get("text"), str):
                total += len(block["text"])
        return total
    return 0


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _now_rfc3339(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def _fmt_seconds(seconds: float) -> str:
    seconds = float(seconds)
    return str(int(seconds)) if seconds.is_integer() else repr(seconds)


def _anthropic_error_body(error_type: str, message: str) -> dict:
    return {"type": "error", "error": {"type": error_type, "message": message},
            "request_id": f"req_fake_{uuid.uuid4().hex[:20]}"}


def _openai_error_body(error_type: str, message: str, code: str | None) -> dict:
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def _message_obj(model: str, text: str, stop_reason: str, input_tokens: int) -> dict:
    return {
        "id": f"msg_fake_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": max(1, len(text) // 4)},
    }


def _anthropic_input_tokens(params: dict) -> int:
    chars = _text_len(params.get("system"))
    for message in params.get("messages") or ():
        if isinstance(message, dict):
            chars += _text_len(message.get("content"))
    return chars // 4


# ------------------------------------------------------------------------ Claude's structured-output subset

# What the Anthropic API documents for `output_config.format.schema` (structured outputs): the basic types,
# enum of primitives, const, anyOf, allOf, local $ref/$defs (not recursive), required, additionalProperties
# (which must be false on every object), a fixed set of string formats, and minItems 0 or 1. Numeric bounds,
# string lengths, other array bounds and any other keyword are refused with a 400 invalid_request_error.
_SCHEMA_KEYS = {"type", "description", "title", "enum", "const", "anyOf", "allOf", "$ref", "$defs",
                "definitions", "properties", "required", "additionalProperties", "items", "minItems", "format",
                "pattern"}
_STRING_FORMATS = {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
_TYPES = {"object", "array", "string", "integer", "number", "boolean", "null"}


def claude_schema_problem(schema: Any, where: str = "output_config.format.schema") -> str | None:
    """Why Anthropic's API would refuse `schema` as a structured-output schema (its 400 message), or None."""
    defs = schema.get("$defs", {}) if isinstance(schema, dict) else {}
    return _schema_node_problem(schema, where, defs, ())


def _schema_node_problem(node: Any, where: str, defs: dict, refs: tuple[str, ...]) -> str | None:
    if not isinstance(node, dict):
        return f"{where}: a schema must be a JSON object"
    if "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/$defs/") or ref.split("/")[-1] not in defs:
            return f"{where}: only local references to $defs are supported, got {ref!r}"
        if ref in refs:
            return f"{where}: recursive schemas are not supported"
        return _schema_node_problem(defs[ref.split("/")[-1]], where, defs, (*refs, ref))
    type_ = node.get("type")
    if isinstance(type_, list) or (type_ is not None and type_ not in _TYPES):
        return f"{where}: type {type_!r} is not supported"
    for key in node:
        if key not in _SCHEMA_KEYS:
            return f"{where}: For '{type_ or 'any'}' type, property '{key}' is not supported"
    if "enum" in node and not all(v is None or isinstance(v, str | int | float | bool) for v in node["enum"]):
        return f"{where}: enum values must be strings, numbers, booleans or null"
    for name in ("anyOf", "allOf"):
        for i, variant in enumerate(node.get(name) or ()):
            problem = _schema_node_problem(variant, f"{where}.{name}.{i}", defs, refs)
            if problem:
                return problem
    for name, sub in (node.get("$defs") or {}).items():
        problem = _schema_node_problem(sub, f"{where}.$defs.{name}", defs, refs)
        if problem:
            return problem
    if type_ == "object":
        if node.get("additionalProperties") is not False:
            return f"{where}: For 'object' type, 'additionalProperties' must be explicitly set to false"
        for name, sub in (node.get("properties") or {}).items():
            problem = _schema_node_problem(sub, f"{where}.{name}", defs, refs)
            if problem:
                return problem
    elif "properties" in node or "additionalProperties" in node or "required" in node:
        key = next(k for k in ("properties", "additionalProperties", "required") if k in node)
        return f"{where}: For '{type_ or 'any'}' type, property '{key}' is not supported"
    if type_ == "array":
        if node.get("minItems", 0) not in (0, 1):
            return f"{where}: For 'array' type, 'minItems' values other than 0 or 1 are not supported"
        if "items" in node:
            problem = _schema_node_problem(node["items"], f"{where}.items", defs, refs)
            if problem:
                return problem
    elif "minItems" in node or "items" in node:
        key = "minItems" if "minItems" in node else "items"
        return f"{where}: For '{type_ or 'any'}' type, property '{key}' is not supported"
    if type_ == "string":
        if "format" in node and node["format"] not in _STRING_FORMATS:
            return f"{where}: For 'string' type, format {node['format']!r} is not supported"
    elif "format" in node or "pattern" in node:
        key = "format" if "format" in node else "pattern"
        return f"{where}: For '{type_ or 'any'}' type, property '{key}' is not supported"
    return None


def _validate_message_params(params: Any) -> str | None:
    """Why `params` is not a usable Messages request, or None."""
    if not isinstance(params, dict):
        return "the request body must be a JSON object"
    if not isinstance(params.get("model"), str) or not params["model"]:
        return "model: field required"
    if not isinstance(params.get("max_tokens"), int) or params["max_tokens"] < 1:
        return "max_tokens: field required (a positive integer)"
    messages = params.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    if params.get("stream"):
        return "stream: the fake server does not stream; call without stream=True"
    config = params.get("output_config")
    if isinstance(config, dict) and isinstance(config.get("format"), dict):
        fmt = config["format"]
        if fmt.get("type") != "json_schema":
            return f"output_config.format.type: Input should be 'json_schema', got {fmt.get('type')!r}"
        return claude_schema_problem(fmt.get("schema"))
    if isinstance(params.get("output_format"), dict):
        return claude_schema_problem(params["output_format"].get("schema"), "output_format.schema")
    return None


def _message_text_for(kind: str | None, item_key: str, judge: bool = False) -> tuple[str, str]:
    """(text, stop_reason) of a 200 answer for `kind` (None, "schema_invalid" or "truncated"); a judge
    answer instead of a conversation when `judge`."""
    text = (_judgement_bytes if judge else _conversation_bytes)(item_key).decode()
    if kind == "schema_invalid" and judge:
        scores = make_judgement(item_key)
        return _dumps({"scores": {d: scores[d] for d in JUDGE_DIMENSIONS},
                       "rationale": scores["rationale"]}).decode(), "end_turn"
    if kind == "schema_invalid":
        return _schema_invalid_text(item_key), "end_turn"
    if kind == "truncated":
        return text[: len(text) // 2], "max_tokens"
    return text, "end_turn"


# ----------------------------------------------------------------------------------------------- batches


@dataclass
class _Batch:
    id: str
    created_at: datetime
    end_at: float  # monotonic
    results: list[dict]  # one MessageBatchIndividualResponse per request, decided at creation
    successes: list[str]  # item keys whose result is a valid success
    status: str = "in_progress"
    ended_at: datetime | None = None
    cancel_initiated_at: datetime | None = None
    canceled: bool = False

    def counts(self) -> dict[str, int]:
        c = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if self.status != "ended":
            c["processing"] = len(self.results)
            return c
        for line in self.results:
            c[line["result"]["type"]] += 1
        return c


# ----------------------------------------------------------------------------------------------- handlers


class _Base(tornado.web.RequestHandler):
    endpoint = "other"
    api = "anthropic"  # which error body shape to use

    def initialize(self, server: FakeLLMServer) -> None:
        self.srv = server
        self._gone = False
        self._waiter: asyncio.Future | None = None
        self._started = time.monotonic()

    def set_default_headers(self) -> None:
        self._headers.pop("Server", None)

    def compute_etag(self) -> None:
        return None

    def check_xsrf_cookie(self) -> None:
        return None

    def on_connection_close(self) -> None:
        self._gone = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def pause(self, seconds: float) -> bool:
        """Sleep `seconds` (returns early if the client goes away). True if the client has gone."""
        if seconds > 0 and not self._gone:
            loop = asyncio.get_running_loop()
            self._waiter = waiter = loop.create_future()
            timer = loop.call_later(seconds, _resolve, waiter)
            srv = self.srv
            srv.pausing += 1
            srv.most_pausing = max(srv.most_pausing, srv.pausing)
            try:
                await waiter
            finally:
                srv.pausing -= 1
                timer.cancel()
                self._waiter = None
        return self._gone

    # -- responses

    def send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self.send_raw(status, _dumps(obj), headers)

    def send_raw(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                 content_type: str = "application/json") -> None:
        self.set_status(status, _REASONS.get(status))
        self.set_header("Content-Type", content_type)
        self.set_header("request-id", f"req_fake_{uuid.uuid4().hex[:20]}")
        for name, value in (headers or {}).items():
            self.set_header(name, value)
        self.finish(body)

    def send_error_kind(self, error_type: str, status: int, message: str, code: str | None = None,
                        headers: dict[str, str] | None = None) -> None:
        if self.api == "openai":
            body = _openai_error_body(error_type if error_type != "not_found_error" else "invalid_request_error",
                                      message, code)
        else:
            body = _anthropic_error_body(error_type, message)
        self.send_json(status, body, headers)

    def send_fault(self, kind: str, retry_after: float) -> None:
        status, a_type, o_type, o_code, message = _HTTP_ERRORS[kind]
        headers = {"retry-after": _fmt_seconds(retry_after)} if status == 429 else None
        if self.api == "openai":
            self.send_json(status, _openai_error_body(o_type, message, o_code), headers)
        else:
            self.send_json(status, _anthropic_error_body(a_type, message), headers)

    def drop(self) -> None:
        self.detach().close()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = self._reason or "error"
        if "exc_info" in kwargs and status_code >= 500:
            message = f"fake server bug: {kwargs['exc_info'][1]!r}"
        error_type = {404: "not_found_error", 405: "invalid_request_error"}.get(
            status_code, "api_error" if status_code >= 500 else "invalid_request_error")
        if self.api == "openai":
            body = _openai_error_body(error_type, message, None)
        else:
            body = _anthropic_error_body(error_type, message)
        self.set_header("Content-Type", "application/json")
        self.finish(_dumps(body))

    # -- request plumbing

    def rec(self, item_key: str | None, attempt: int, outcome: str, status: int | None, **kw: Any) -> None:
        self.srv._record(self.endpoint, item_key, attempt, outcome, status, self._started, path=self.request.path,
                         **kw)

    def authorized(self) -> bool:
        auth = self.request.headers.get("Authorization", "")
        bearer = auth[:7].lower() == "bearer " and auth[7:].strip() != ""
        if self.api == "openai":
            return bearer
        return bearer or bool(self.request.headers.get("x-api-key", "").strip())

    def reject_unauthorized(self) -> None:
        self.rec(None, 0, "unauthorized", 401, count_as="unauthorized")
        if self.api == "openai":
            self.send_json(401, _openai_error_body("invalid_request_error", "Incorrect API key provided (fake "
                                                   "server needs an Authorization: Bearer header).",
                                                   "invalid_api_key"))
        else:
            self.send_json(401, _anthropic_error_body(
                "authentication_error", "invalid x-api-key (fake server needs x-api-key or Authorization: Bearer)"))

    def json_body(self) -> Any:
        try:
            return _loads(self.request.body or b"null")
        except ValueError:
            return None

    async def storm_or_latency(self) -> bool:
        """For control endpoints: apply a storm and the latency. True if the request was answered."""
        plan, latency = self.srv.faults, self.srv.latency
        if plan.storming():
            retry_after = plan.storm_retry_after
            if await self.pause(latency):
                self.rec(None, 0, "storm", None, gone=True)
                return True
            self.rec(None, 0, "storm", 429)
            self.send_fault("rate_limit", retry_after)
            return True
        await self.pause(latency)
        return False


class _ItemHandler(_Base):
    """One model call: /v1/messages or /v1/chat/completions."""

    def item_key(self, body: Any) -> str:
        raise NotImplementedError

    def refuse(self, problem: str) -> None:
        """Answer a request the API would refuse (a 400 invalid_request_error with the API's wording)."""
        self.send_error_kind("invalid_request_error", 400, problem)

    def validate(self, body: Any) -> str | None:
        raise NotImplementedError

    def success(self, body: dict, item_key: str, kind: str | None) -> bytes:
        raise NotImplementedError

    async def post(self) -> None:
        srv = self.srv
        if not self.authorized():
            self.reject_unauthorized()
            return
        body = self.json_body()
        if isinstance(body, dict):
            item_key = self.item_key(body)
        else:
            item_key = "body-" + hashlib.sha1(self.request.body).hexdigest()[:16]
        attempt = srv._next_attempt(item_key)
        plan, latency, seed = srv.faults, srv.latency, srv.seed
        kind = plan.decide(seed, item_key, attempt)
        retry_after = plan.storm_retry_after if kind == "storm" else plan.retry_after
        hang_seconds = plan.hang_seconds

        problem = self.validate(body) if kind in (None, "hang", "malformed_json", "schema_invalid",
                                                   "truncated") else None
        if kind == "hang":
            if await self.pause(latency + hang_seconds):
                self.rec(item_key, attempt, "hang", None, gone=True)
                return
            outcome_kind: str | None = None
        else:
            if await self.pause(latency):
                self.rec(item_key, attempt, kind or "ok", None, gone=True)
                return
            outcome_kind = kind
        while srv.held:  # answers wait (the client may go away meanwhile: then nothing was sent, nor paid)
            if await self.pause(0.01):
                self.rec(item_key, attempt, kind or "ok", None, gone=True)
                return

        if problem is not None:
            self.rec(item_key, attempt, "invalid", 400, count_as="invalid")
            self.refuse(problem)
            return
        if outcome_kind == "drop":
            self.rec(item_key, attempt, "drop", None)
            self.drop()
            return
        if outcome_kind == "storm":
            self.rec(item_key, attempt, "storm", 429)
            self.send_fault("rate_limit", retry_after)
            return
        if outcome_kind in _HTTP_ERRORS:
            self.rec(item_key, attempt, outcome_kind, _HTTP_ERRORS[outcome_kind][0])
            self.send_fault(outcome_kind, retry_after)
            return
        payload = self.success(body, item_key, outcome_kind if outcome_kind != "malformed_json" else None)
        if outcome_kind == "malformed_json":
            self.rec(item_key, attempt, "malformed_json", 200)
            self.send_raw(200, payload[: len(payload) // 2])
            return
        ok = outcome_kind is None
        self.rec(item_key, attempt, outcome_kind or ("hang" if kind == "hang" else "ok"), 200, success=ok)
        self.srv._paid_answer(payload, self.request.body)
        self.send_raw(200, payload)


class MessagesHandler(_ItemHandler):
    endpoint = "messages"

    def item_key(self, body: dict) -> str:
        metadata = body.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str) and metadata["user_id"]:
            return metadata["user_id"]
        return "body-" + hashlib.sha1(self.request.body).hexdigest()[:16]

    def validate(self, body: Any) -> str | None:
        return _validate_message_params(body)

    def success(self, body: dict, item_key: str, kind: str | None) -> bytes:
        if self.srv.keep_message_bodies:
            with self.srv._lock:
                self.srv.message_bodies.append(body)
        text, stop = _message_text_for(kind, item_key, is_judge_request(body))
        text, stop = _probe_text(kind) if is_probe_request(body) else (text, stop)
        return _dumps(_message_obj(body["model"], text, stop, _anthropic_input_tokens(body)))


class ChatHandler(_ItemHandler):
    endpoint = "chat"
    api = "openai"

    def item_key(self, body: dict) -> str:
        metadata = body.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("item"), str) and metadata["item"]:
            return metadata["item"]
        for name in ("user", "safety_identifier"):
            if isinstance(body.get(name), str) and body[name]:
                return body[name]
        return "body-" + hashlib.sha1(self.request.body).hexdigest()[:16]

    def validate(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return "the request body must be a JSON object"
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "you must provide a model parameter"
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return "messages: at least one message is required"
        if body.get("stream"):
            return "stream: the fake server does not stream; call without stream=True"
        response_format = body.get("response_format")
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if self.srv.openai_mode == "llama.cpp" and kind not in (None, "text", "json_object"):
            # llama-cpp-python's server validates the body with pydantic and answers 500 with its error list.
            self.refusal_status = 500
            return (f"[{{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': "
                    f"\"Input should be 'text' or 'json_object'\", 'input': {kind!r}}}]")
        return None

    def refuse(self, problem: str) -> None:
        status = getattr(self, "refusal_status", 400)
        self.send_json(status, _openai_error_body("internal_server_error" if status >= 500 else
                                                  "invalid_request_error", problem, None))

    def success(self, body: dict, item_key: str, kind: str | None) -> bytes:
        if self.srv.openai_mode == "no_system":
            # A chat template without a system role (e.g. Gemma's): system messages never reach the model.
            dropped = [m for m in body["messages"] if isinstance(m, dict) and m.get("role") == "system"]
            with self.srv._lock:
                self.srv.system_dropped += len(dropped)
            body = {**body, "messages": [m for m in body["messages"] if m not in dropped]}
        with self.srv._lock:
            self.srv.chat_bodies.append(body)
        text, stop = _message_text_for(kind, item_key, is_judge_request(body))
        text, stop = _probe_text(kind) if is_probe_request(body) else (text, stop)
        if self.srv.openai_mode == "llama.cpp" and kind is None:
            # A local grammar's habits: the JSON in a code fence, a raw newline inside a string.
            text = "```json\n" + text.replace(". ", ".\n", 1) + "\n```"
        prompt_chars = sum(_text_len(m.get("content")) for m in body["messages"] if isinstance(m, dict))
        prompt, completion = prompt_chars // 4, max(1, len(text) // 4)
        return _dumps({
            "id": f"chatcmpl-fake{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                         "logprobs": None, "finish_reason": "length" if stop == "max_tokens" else "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion},
        })


class BatchesHandler(_Base):
    """POST creates a batch; GET lists them."""

    async def post(self) -> None:
        self.endpoint = "batches_create"
        srv = self.srv
        if not self.authorized():
            self.reject_unauthorized()
            return
        if await self.storm_or_latency():
            return
        if self._gone:
            self.rec(None, 0, "ok", None, gone=True)
            return
        body = self.json_body()
        requests = body.get("requests") if isinstance(body, dict) else None
        problem = None
        if not isinstance(requests, list) or not requests:
            problem = "requests: at least one request is required"
        else:
            seen: set[str] = set()
            for i, request in enumerate(requests):
                if not isinstance(request, dict) or not isinstance(request.get("custom_id"), str) \
                        or not request["custom_id"] or not isinstance(request.get("params"), dict):
                    problem = f"requests.{i}: custom_id (string) and params (object) are required"
                    break
                if request["custom_id"] in seen:
                    problem = f"requests.{i}.custom_id: duplicate custom_id {request['custom_id']!r}"
                    break
                seen.add(request["custom_id"])
        if problem is not None:
            self.rec(None, 0, "invalid", 400, count_as="invalid")
            self.send_error_kind("invalid_request_error", 400, problem)
            return
        batch = srv._create_batch(requests)
        self.rec(None, 0, "ok", 200, batch=batch.id)
        self.send_json(200, srv._batch_obj(batch))

    async def get(self) -> None:
        self.endpoint = "batches_list"
        if not self.authorized():
            self.reject_unauthorized()
            return
        if await self.storm_or_latency():
            return
        batches = [self.srv._batch_obj(b) for b in reversed(list(self.srv._batches.values()))]
        self.rec(None, 0, "ok", 200)
        self.send_json(200, {"data": batches, "has_more": False,
                             "first_id": batches[0]["id"] if batches else None,
                             "last_id": batches[-1]["id"] if batches else None})


class BatchHandler(_Base):
    """GET retrieves, DELETE deletes, POST .../cancel cancels, GET .../results streams results."""

    async def _prologue(self, endpoint: str, batch_id: str) -> _Batch | None:
        self.endpoint = endpoint
        if not self.authorized():
            self.reject_unauthorized()
            return None
        if await self.storm_or_latency():
            return None
        batch = self.srv._batches.get(batch_id)
        if batch is None:
            self.rec(None, 0, "not_found", 404, count_as="not_found")
            self.send_error_kind("not_found_error", 404, f"message batch {batch_id!r} not found")
            return None
        self.srv._settle(batch)
        return batch

    async def get(self, batch_id: str, action: str | None = None) -> None:
        if action == "results":
            batch = await self._prologue("batches_results", batch_id)
            if batch is None:
                return
            if batch.status != "ended":
                self.rec(None, 0, "invalid", 400, count_as="invalid")
                self.send_error_kind("invalid_request_error", 400,
                                     f"message batch {batch_id} is still {batch.status}; results are not ready")
                return
            self.rec(None, 0, "ok", 200, batch=batch.id)
            self.send_raw(200, b"".join(_dumps(line) + b"\n" for line in batch.results),
                          content_type="application/x-jsonl")
            return
        if action is not None:
            raise tornado.web.HTTPError(404, reason="Not Found")
        batch = await self._prologue("batches_retrieve", batch_id)
        if batch is not None:
            self.rec(None, 0, "ok", 200, batch=batch.id)
            self.send_json(200, self.srv._batch_obj(batch))

    async def post(self, batch_id: str, action: str | None = None) -> None:
        if action != "cancel":
            raise tornado.web.HTTPError(404, reason="Not Found")
        batch = await self._prologue("batches_cancel", batch_id)
        if batch is None:
            return
        if batch.status == "in_progress":
            self.srv._cancel_batch(batch)
        self.rec(None, 0, "ok", 200, batch=batch.id)
        self.send_json(200, self.srv._batch_obj(batch))

    async def delete(self, batch_id: str, action: str | None = None) -> None:
        if action is not None:
            raise tornado.web.HTTPError(404, reason="Not Found")
        batch = await self._prologue("batches_delete", batch_id)
        if batch is None:
            return
        if batch.status != "ended":
            self.rec(None, 0, "invalid", 400, count_as="invalid")
            self.send_error_kind("invalid_request_error", 400, "a batch must end before it can be deleted")
            return
        self.srv._batches.pop(batch_id, None)
        self.rec(None, 0, "ok", 200, batch=batch_id)
        self.send_json(200, {"id": batch_id, "type": "message_batch_deleted"})


class StatsHandler(_Base):
    def get(self) -> None:
        self.send_json(200, {"counts": self.srv.counts(), "item_counts": self.srv.item_counts(),
                             "item_successes": self.srv.item_successes(), "outcomes": self.srv.outcome_counts()})


class StormHandler(_Base):
    """POST /_fake/storm?seconds=S&retry_after=R: every request gets 429 for S seconds (not counted)."""

    def post(self) -> None:
        seconds = float(self.get_argument("seconds"))
        retry_after = float(self.get_argument("retry_after", "1"))
        started = time.monotonic()
        self.srv.storm(seconds, retry_after)
        # time.monotonic() is CLOCK_MONOTONIC, shared by every process on Linux: clients may compare.
        self.send_json(200, {"started": started, "until": self.srv.faults.storm_until, "retry_after": retry_after})


class NotFoundHandler(_Base):
    def prepare(self) -> None:
        if self.request.path.startswith("/v1/chat"):
            self.api = "openai"
        self.rec(None, 0, "not_found", 404, count_as="not_found")
        self.send_error_kind("not_found_error", 404, f"{self.request.method} {self.request.path}: no such endpoint")


# ------------------------------------------------------------------------------------------------- server


class FakeLLMServer:
    """A local fake of the Anthropic and OpenAI HTTP APIs. See the module docstring."""

    def __init__(self, *, latency: float = 0.0, seed: int = 0, faults: FaultPlan | None = None,
                 batch_delay: float = 0.5, log_requests: bool = True, openai_mode: str = "strict") -> None:
        if openai_mode not in OPENAI_MODES:
            raise ValueError(f"openai_mode must be one of {', '.join(OPENAI_MODES)}, got {openai_mode!r}")
        self.openai_mode = openai_mode
        """How the Chat Completions side behaves: see OPENAI_MODES."""
        self.system_dropped = 0
        """System messages a "no_system" server dropped."""
        self.keep_message_bodies = False
        """When True, every Messages body answered 200 is kept in `message_bodies` (off: benchmarks send many)."""
        self.message_bodies: list[dict] = []
        self.chat_bodies: list[dict] = []
        """Every Chat Completions body answered 200, as the model saw it."""
        self.held = False
        """While True, answers wait before being sent (a client killed meanwhile was sent nothing)."""
        self.answered_bodies: dict[str, int] = {}
        """sha1 of each request body answered 200 -> how many times: a count above 1 is a request paid twice."""
        self.paid = {"answers": 0, "input_tokens": 0, "output_tokens": 0}
        """Billable answers delivered (every 200 with usage, bad content included; batch results when the batch
        ends uncancelled) and their tokens: what a real API would charge for."""
        self.latency = float(latency)
        self.pausing = 0
        self.most_pausing = 0
        """Requests waiting out their latency now, and the most at once (only the server's loop changes them)."""
        self.seed = seed
        self.faults = faults if faults is not None else FaultPlan()
        self.batch_delay = float(batch_delay)
        """Seconds from a batch's creation until it ends."""
        self.log_requests = log_requests
        self.models: list[str] = list(DEFAULT_MODELS)
        """Model ids that GET /v1/models lists (any model name is still answered)."""
        self.requests_log: list[dict] = []
        self.port: int | None = None
        self._lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(COUNT_KEYS, 0)
        self._outcomes: dict[str, int] = {}
        self._item_counts: dict[str, int] = {}
        self._item_successes: dict[str, int] = {}
        self._attempts: dict[str, int] = {}
        self._batches: dict[str, _Batch] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: tornado.httpserver.HTTPServer | None = None

    # -- lifecycle

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("FakeLLMServer is not started; call start() first")
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int = 0) -> FakeLLMServer:
        """Bind 127.0.0.1:`port` (0: a free port), serve in a daemon thread, return self."""
        if self._thread is not None:
            raise RuntimeError("FakeLLMServer already started")
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(ready, failure, port), name="FakeLLMServer",
                                        daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise RuntimeError("FakeLLMServer failed to start") from failure[0]
        return self

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if not loop.is_closed():
            try:
                loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._shutdown()))
            except RuntimeError:  # loop already closed
                pass
        thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> FakeLLMServer:
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _app(self) -> tornado.web.Application:
        kw = {"server": self}
        return tornado.web.Application(
            [
                (r"/v1/messages", MessagesHandler, kw),
                (r"/v1/messages/batches", BatchesHandler, kw),
                (r"/v1/messages/batches/([^/]+)", BatchHandler, kw),
                (r"/v1/messages/batches/([^/]+)/(cancel|results)", BatchHandler, kw),
                (r"/v1/chat/completions", ChatHandler, kw),
                (r"/v1/models", ModelsHandler, kw),
                (r"/_fake/stats", StatsHandler, kw),
                (r"/_fake/storm", StormHandler, kw),
            ],
            default_handler_class=NotFoundHandler,
            default_handler_args=kw,
            log_function=lambda handler: None,
            compress_response=False,
        )

    def _run(self, ready: threading.Event, failure: list[BaseException], port: int = 0) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            async def setup() -> None:
                sockets = tornado.netutil.bind_sockets(port, "127.0.0.1",
                                                       family=socket.AF_INET, backlog=2048)
                self._http = tornado.httpserver.HTTPServer(self._app(), idle_connection_timeout=300)
                self._http.add_sockets(sockets)
                self.port = sockets[0].getsockname()[1]

            loop.run_until_complete(setup())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            failure.append(exc)
            loop.close()
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def _shutdown(self) -> None:
        http = self._http
        if http is not None:
            http.stop()
            try:
                await asyncio.wait_for(http.close_all_connections(), 5)
            except (TimeoutError, Exception):  # noqa: BLE001 - best effort
                pass
        asyncio.get_running_loop().stop()

    # -- configuration helpers

    def storm(self, seconds: float, retry_after: float = 1) -> None:
        """Answer every API request with 429 (retry-after `retry_after`) for the next `seconds`."""
        plan = self.faults
        plan.storm_retry_after = retry_after
        plan.storm_until = time.monotonic() + seconds

    # -- counting (thread-safe)

    def counts(self) -> dict[str, int]:
        """HTTP requests per endpoint ("total" is all HTTP requests; "batch_requests" counts the requests
        inside created batches; "unauthorized", "not_found", "invalid" count rejections)."""
        with self._lock:
            return dict(self._counts)

    def outcome_counts(self) -> dict[str, int]:
        """Item requests (including those inside batches) per outcome: "ok", a fault kind, "storm",
        "invalid", ... HTTP requests to batch endpoints are not included."""
        with self._lock:
            return dict(self._outcomes)

    def item_counts(self) -> dict[str, int]:
        """Requests received per item key (each request inside a batch counts once for its custom_id)."""
        with self._lock:
            return dict(self._item_counts)

    def item_successes(self) -> dict[str, int]:
        """Valid successful answers delivered per item key (200 with schema-valid, complete content; for a
        batch, succeeded results with valid content, counted when the batch ends uncanceled)."""
        with self._lock:
            return dict(self._item_successes)

    def _paid_answer(self, payload: bytes, request_body: bytes | None = None) -> None:
        try:
            usage = _loads(payload).get("usage") or {}
        except ValueError:
            return
        with self._lock:
            if request_body is not None:
                digest = hashlib.sha1(request_body).hexdigest()
                self.answered_bodies[digest] = self.answered_bodies.get(digest, 0) + 1
            self.paid["answers"] += 1
            self.paid["input_tokens"] += usage.get("input_tokens", usage.get("prompt_tokens", 0))
            self.paid["output_tokens"] += usage.get("output_tokens", usage.get("completion_tokens", 0))

    def reset_counts(self) -> None:
        """Zero every counter and the request log. Item attempt numbers restart too, so fault draws
        repeat from the first attempt."""
        with self._lock:
            self._counts = dict.fromkeys(COUNT_KEYS, 0)
            self._outcomes.clear()
            self._item_counts.clear()
            self._item_successes.clear()
            self._attempts.clear()
            self.requests_log.clear()
            self.paid = {"answers": 0, "input_tokens": 0, "output_tokens": 0}
            self.answered_bodies.clear()
            self.system_dropped = 0
            self.chat_bodies.clear()

    # -- internals (IOLoop thread)

    def _next_attempt(self, item_key: str) -> int:
        with self._lock:
            n = self._attempts.get(item_key, 0) + 1
            self._attempts[item_key] = n
            self._item_counts[item_key] = self._item_counts.get(item_key, 0) + 1
            return n

    def _record(self, endpoint: str, item_key: str | None, attempt: int, outcome: str, status: int | None,
                started: float, *, path: str | None = None, success: bool = False, gone: bool = False, count_as: str | None = None,
                batch: str | None = None, http: bool = True) -> None:
        now = time.monotonic()
        with self._lock:
            if http:
                self._counts["total"] += 1
                self._counts[endpoint] = self._counts.get(endpoint, 0) + 1
            if count_as is not None:
                self._counts[count_as] = self._counts.get(count_as, 0) + 1
            if item_key is not None:
                self._outcomes[outcome] = self._outcomes.get(outcome, 0) + 1
            if success and item_key is not None:
                self._item_successes[item_key] = self._item_successes.get(item_key, 0) + 1
            if self.log_requests:
                entry = {"time": time.time(), "path": path, "endpoint": endpoint, "item": item_key,
                         "attempt": attempt,
                         "outcome": outcome, "status": status, "duration": round(now - started, 6)}
                if gone:
                    entry["client_gone"] = True
                if batch is not None:
                    entry["batch"] = batch
                self.requests_log.append(entry)

    def _create_batch(self, requests: list[dict]) -> _Batch:
        plan, seed = self.faults, self.seed
        now = time.monotonic()
        results: list[dict] = []
        successes: list[str] = []
        for request in requests:
            custom_id, params = request["custom_id"], request["params"]
            attempt = self._next_attempt(custom_id)
            # Storms apply to the create call itself (answered 429 before we get here), not inside.
            kind = plan.permanent_kind(custom_id) or plan.draw(seed, custom_id, attempt)
            problem = _validate_message_params(params)
            if problem is not None:
                kind_out, result = "invalid", {"type": "errored", "error": _anthropic_error_body(
                    "invalid_request_error", problem)}
            elif kind in _BATCH_ERROR_TYPES:
                kind_out, result = kind, {"type": "errored", "error": _anthropic_error_body(
                    _BATCH_ERROR_TYPES[kind], f"{kind} (fake server, inside a batch)")}
            else:
                text, stop = _message_text_for(kind, custom_id, is_judge_request(params))
                message = _message_obj(params["model"], text, stop, _anthropic_input_tokens(params))
                message["usage"]["service_tier"] = "batch"
                kind_out, result = kind or "ok", {"type": "succeeded", "message": message}
                if kind is None:
                    successes.append(custom_id)
            results.append({"custom_id": custom_id, "result": result})
            self._record("batch_requests", custom_id, attempt, kind_out, None, now, http=False,
                         path="/v1/messages/batches")
        with self._lock:
            self._counts["batch_requests"] += len(requests)
        batch = _Batch(id=f"msgbatch_fake_{uuid.uuid4().hex[:24]}", created_at=datetime.now(UTC),
                       end_at=now + self.batch_delay, results=results, successes=successes)
        self._batches[batch.id] = batch
        loop = asyncio.get_running_loop()
        loop.call_later(max(0.0, self.batch_delay), self._settle, batch)
        return batch

    def _settle(self, batch: _Batch) -> None:
        """End the batch if its time has come (idempotent)."""
        if batch.status == "ended" or time.monotonic() < batch.end_at:
            return
        batch.status = "ended"
        batch.ended_at = datetime.now(UTC)
        if batch.canceled:
            for line in batch.results:
                line["result"] = {"type": "canceled"}
            return
        with self._lock:
            for key in batch.successes:
                self._item_successes[key] = self._item_successes.get(key, 0) + 1
        for line in batch.results:
            if line["result"]["type"] == "succeeded":
                self._paid_answer(_dumps(line["result"]["message"]))

    def _cancel_batch(self, batch: _Batch) -> None:
        batch.canceled = True
        batch.cancel_initiated_at = datetime.now(UTC)
        batch.status = "canceling"
        batch.end_at = time.monotonic()  # it ends at the next look (or the next loop turn)
        asyncio.get_running_loop().call_soon(self._settle, batch)

    def _batch_obj(self, batch: _Batch) -> dict:
        ended = batch.status == "ended"
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": batch.status,
            "request_counts": batch.counts(),
            "created_at": _now_rfc3339(batch.created_at),
            "expires_at": _now_rfc3339(batch.created_at + timedelta(hours=24)),
            "ended_at": _now_rfc3339(batch.ended_at) if batch.ended_at else None,
            "cancel_initiated_at": _now_rfc3339(batch.cancel_initiated_at) if batch.cancel_initiated_at else None,
            "archived_at": None,
            "results_url": f"{self.base_url}/v1/messages/batches/{batch.id}/results" if ended else None,
        }


# ------------------------------------------------------------------------------- models and doctor probes

DEFAULT_MODELS: tuple[str, ...] = ("claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-4-5", "gpt-4o-mini")
_PROBE_KEYS = frozenset(("ok", "word"))


def is_probe_request(body: Any) -> bool:
    """True when a Messages or Chat Completions body is `brightrun doctor`'s probe: its output schema's
    properties are exactly ``ok`` and ``word``. The answer is then ``{"ok": true, "word": "ready"}``
    (schema_invalid: ``{"ok": "yes"}``; truncated: cut in half)."""
    if not isinstance(body, dict):
        return False
    schemas: list[Any] = []
    config = body.get("output_config")
    if isinstance(config, dict) and isinstance(config.get("format"), dict):
        schemas.append(config["format"].get("schema"))
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and isinstance(response_format.get("json_schema"), dict):
        schemas.append(response_format["json_schema"].get("schema"))
    return any(isinstance(s, dict) and isinstance(s.get("properties"), dict) and set(s["properties"]) == _PROBE_KEYS
               for s in schemas)


def _probe_text(kind: str | None) -> tuple[str, str]:
    text = '{"ok":true,"word":"ready"}'
    if kind == "schema_invalid":
        return '{"ok":"yes"}', "end_turn"
    if kind == "truncated":
        return text[: len(text) // 2], "max_tokens"
    return text, "end_turn"


class ModelsHandler(_Base):
    """GET /v1/models: ``FakeLLMServer.models``. A request with an ``anthropic-version`` header (the anthropic
    SDK sends one) gets Anthropic's page shape, honouring ``limit`` (default 20, 1 to 1000), ``after_id`` and
    ``before_id``; any other gets OpenAI's list. Same authentication rules, storms and latency as the rest."""

    endpoint = "models"

    async def get(self) -> None:
        if "anthropic-version" not in self.request.headers:
            self.api = "openai"
        if not self.authorized():
            self.reject_unauthorized()
            return
        if await self.storm_or_latency():
            return
        ids = list(self.srv.models)
        if self.api == "openai":
            self.rec(None, 0, "ok", 200)
            self.send_json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in ids]})
            return
        try:
            limit = int(self.get_argument("limit", "20"))
        except ValueError:
            limit = 0
        after, before = self.get_argument("after_id", None), self.get_argument("before_id", None)
        cursor = after if after is not None else before
        if not 1 <= limit <= 1000 or (cursor is not None and cursor not in ids):
            self.rec(None, 0, "invalid", 400, count_as="invalid")
            self.send_error_kind("invalid_request_error", 400, "limit must be 1 to 1000 and a cursor a listed id")
            return
        if after is not None:
            page = ids[ids.index(after) + 1:][:limit]
            more = ids.index(after) + 1 + limit < len(ids)
        elif before is not None:
            page = ids[:ids.index(before)][-limit:]
            more = ids.index(before) - limit > 0
        else:
            page, more = ids[:limit], limit < len(ids)
        self.rec(None, 0, "ok", 200)
        self.send_json(200, {"data": [{"type": "model", "id": m, "display_name": m.replace("-", " ").title(),
                                       "created_at": "2026-01-01T00:00:00Z", "lifecycle": "active"} for m in page],
                             "has_more": more, "first_id": page[0] if page else None,
                             "last_id": page[-1] if page else None})


# --------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted (for benchmarking a client in another process)."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.0, help="share of requests with a transient fault")
    parser.add_argument("--kinds", default=",".join(TRANSIENT_KINDS))
    parser.add_argument("--batch-delay", type=float, default=0.5)
    args = parser.parse_args(argv)
    server = FakeLLMServer(latency=args.latency, seed=args.seed, batch_delay=args.batch_delay,
                           faults=FaultPlan(rate=args.rate, kinds=[k for k in args.kinds.split(",") if k]),
                           log_requests=False)
    server.start(args.port)
    print(server.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
