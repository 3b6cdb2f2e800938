"""Every request BrightRun sends is one the real APIs accept: Claude's structured-output schema subset, and
OpenAI-compatible servers as users run them (llama.cpp-like servers that refuse json_schema, chat templates
without a system role). The local server enforces the APIs' documented rules; these tests prove we keep them."""

from __future__ import annotations

import pytest
from llm_server import claude_schema_problem

from brightrun.generation.requests import OUTPUT_SCHEMA
from brightrun.providers.schema import claude_schema, conversation_schema, inline_refs, outgoing_schemas


def test_every_schema_the_package_sends_is_inside_claudes_subset() -> None:
    schemas = outgoing_schemas()
    assert {"conversation", "quality_judge"} <= set(schemas)
    for name, schema in schemas.items():
        assert claude_schema_problem(claude_schema(schema)) is None, name


def test_the_rules_bite_on_the_untransformed_conversation_schema() -> None:
    # The schema as pydantic writes it is what the API refused: title bounds and minItems 2.
    assert claude_schema_problem(inline_refs(OUTPUT_SCHEMA)) == (
        "output_config.format.schema.title: For 'string' type, property 'maxLength' is not supported")


def test_dropped_bounds_move_into_descriptions() -> None:
    sent = claude_schema(conversation_schema(8))
    assert "maxLength: 200" in sent["properties"]["title"]["description"]
    assert "minItems: 8" in sent["properties"]["turns"]["description"]
    assert "maxItems: 8" in sent["properties"]["turns"]["description"]
    assert sent["additionalProperties"] is False and sent["properties"]["turns"]["items"]["additionalProperties"] is False


@pytest.mark.parametrize("turns", [2, 6, 12])
def test_the_conversation_schema_fixes_the_turn_count(turns: int) -> None:
    schema = conversation_schema(turns)
    assert schema["properties"]["turns"]["minItems"] == schema["properties"]["turns"]["maxItems"] == turns
    assert conversation_schema()["properties"]["turns"]["minItems"] == 2
