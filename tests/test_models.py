"""The domain model and its JSON schemas."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from brightrun.models import ENTITIES, GeneratedConversation, json_schemas


def test_every_entity_has_a_json_schema() -> None:
    schemas = json_schemas()
    assert set(schemas) == set(ENTITIES)
    for name, schema in schemas.items():
        assert schema["type"] == "object" and schema["properties"], name
    assert set(schemas["training_pair"]["properties"]) >= {
        "id", "conversation_id", "turn_number", "conversation_metadata", "system_prompt",
        "conversation_history", "current_user_input", "emotional_context", "target_response", "training_metadata"}
    assert schemas["batch_job"]["properties"]["status"]["enum"] == [
        "queued", "processing", "completed", "failed", "cancelled"]


@pytest.mark.parametrize("turns, message", [
    ([{"role": "assistant", "content": "hi"}, {"role": "user", "content": "x"}], "first turn"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "must alternate"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": " "}], "empty"),
    ([{"role": "user", "content": "a"}], "at least 2"),
])
def test_generated_conversation_schema_rejects_bad_output(turns, message) -> None:
    with pytest.raises(ValidationError, match=message):
        GeneratedConversation.model_validate({"title": "t", "turns": turns})


def test_default_model_is_current_in_the_sdk_and_not_deprecated() -> None:
    import typing

    from anthropic.resources.messages.messages import DEPRECATED_MODELS
    from anthropic.types import Model

    from brightrun.models import ModelSettings
    from brightrun.scaffolding.library import default_library, load_scaffolding

    known = set(typing.get_args(typing.get_args(Model)[0]))
    models = {ModelSettings().model} | {t.model_settings.model for t in load_scaffolding(default_library()).templates.values()}
    for model in models:
        assert model in known, model
        assert model not in DEPRECATED_MODELS, model
