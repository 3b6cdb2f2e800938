"""Output schemas as each API accepts them.

Every structured-output schema BrightRun sends to Claude goes through `claude_schema`: the Anthropic API
accepts only a subset of JSON Schema (no string, number or array bounds except `minItems` 0 or 1; every
object with `additionalProperties: false`; no `default`, `pattern` or unknown keywords). The SDK's public
`anthropic.transform_schema` (what its `messages.parse` uses) rewrites a schema into that subset and moves
each dropped bound into the description, where the model can still read it. The full pydantic model then
checks the answer locally, bounds included, and a bad answer gets one correction request.

`brightrun.doctor.schemas.outgoing_schemas` names every schema the package can send, so a test can prove
each is inside the subset.
"""

from __future__ import annotations

from functools import lru_cache

import orjson


def inline_refs(schema: dict) -> dict:
    """The schema with its $defs inlined, for APIs that accept only self-contained schemas."""
    defs = schema.get("$defs", {})

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(defs[node["$ref"].split("/")[-1]])
            return {k: walk(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


@lru_cache(maxsize=256)
def _claude(frozen: bytes) -> bytes:
    import anthropic  # here, not at the top: importing the SDK takes seconds, and a page that only shows a
    # schema or an estimate must not pay it

    return orjson.dumps(anthropic.transform_schema(inline_refs(orjson.loads(frozen))))


_BY_OBJECT: dict[int, tuple[dict, dict]] = {}


def claude_schema(schema: dict) -> dict:
    """`schema` in the subset the Anthropic API accepts. Memoized: a job sends the same few schema objects,
    and gets the same result object back for each (never change it)."""
    hit = _BY_OBJECT.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    result = orjson.loads(_claude(orjson.dumps(schema)))  # keys keep their order: the model answers in it
    if len(_BY_OBJECT) < 256:
        _BY_OBJECT[id(schema)] = (schema, result)  # holds `schema`, so its id is never reused meanwhile
    return result


def conversation_schema(turn_count: int | None = None) -> dict:
    """The conversation answer's schema; with `turn_count`, the turns array is fixed at exactly that many,
    so a grammar-constrained local model closes the list where the prompt asks (Claude reads the bound in
    the description)."""
    from brightrun.models import GeneratedConversation

    schema = GeneratedConversation.model_json_schema()
    if turn_count is not None:
        turns = dict(schema["properties"]["turns"])
        turns["minItems"] = turns["maxItems"] = turn_count
        schema["properties"] = {**schema["properties"], "turns": turns}
    return schema
