"""`brightrun doctor`'s probe: the tiny structured request a live check sends, its answer's model, and
what it costs at most."""

from __future__ import annotations

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from brightrun.providers.base import ProviderRequest, ProviderResponse
from brightrun.providers.pricing import price_table

PROBE_SCHEMA: dict = {
    "type": "object", "additionalProperties": False, "required": ["ok", "word"],
    "properties": {"ok": {"type": "boolean", "description": "always true"},
                   "word": {"type": "string", "description": "one short word: ready"}}}
"""The probe's output schema: already inside Claude's structured-output subset (`claude_schema` keeps it)."""
PROBE_SYSTEM = "You answer BrightRun's connection check with only the JSON object asked for."
PROBE_PROMPT = 'Connection check. Reply with exactly {"ok": true, "word": "ready"}.'
PROBE_MAX_TOKENS = 64
PROBE_ACTION = "doctor_probe"
SCHEMA_ALLOWANCE = 400
"""Input tokens allowed for what an API adds to describe a structured-output schema (the estimate is a bound)."""


class ProbeAnswer(BaseModel):
    """The probe's answer, validated: PROBE_SCHEMA plus the length bound Claude's subset cannot carry."""

    model_config = ConfigDict(extra="forbid", strict=True)  # "yes" is not a boolean here
    ok: bool
    word: str = Field(min_length=1, max_length=40)


class ProbeEstimate(BaseModel):
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float | None = Field(default=None, description="None: the model is not in the price table")

    @property
    def summary(self) -> str:
        tokens = f"about {self.input_tokens} input and at most {self.output_tokens} output tokens"
        if self.cost_usd is None:
            return f"unknown price: {self.model} is not in the price table ({tokens})"
        return f"at most ${self.cost_usd:.4f} ({tokens} at {self.model}'s price)"


def probe_request(model: str) -> ProviderRequest:
    return ProviderRequest(action_type=PROBE_ACTION, system=PROBE_SYSTEM, prompt=PROBE_PROMPT, model=model,
                           temperature=0.0, max_tokens=PROBE_MAX_TOKENS, output_schema=PROBE_SCHEMA,
                           tag="brightrun-doctor")


def parse_probe(response: ProviderResponse) -> ProbeAnswer:
    """The validated answer, or ValueError saying what is wrong with it."""
    if response.stop_reason == "max_tokens":
        raise ValueError(f"the answer was cut off at {PROBE_MAX_TOKENS} tokens")
    text = response.text.strip()
    text = text[text.find("{"):text.rfind("}") + 1] if "{" in text else text  # drop fences or prose around it
    try:
        return ProbeAnswer.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "(answer)"
        raise ValueError(f"it does not match the probe schema at {where}: {first['msg']}") from None


def default_model(provider: str) -> str:
    if provider == "scripted":
        return "scripted-1"
    if provider == "anthropic":
        from brightrun.providers.claude import DEFAULT_MODEL

        return DEFAULT_MODEL
    from brightrun.providers.openai_compat import OpenAICompatibleProvider

    return OpenAICompatibleProvider.default_model


def estimate_probe(provider: str, model: str | None = None, ws=None) -> ProbeEstimate:
    """What one probe costs at most: its text at four characters a token plus a schema allowance in, the
    max tokens out, at the price table's (and the workspace's prices.yaml) price."""
    chosen = model or default_model(provider)
    if provider == "scripted":
        return ProbeEstimate(model=chosen, input_tokens=0, output_tokens=0, cost_usd=0.0)
    chars = len(PROBE_SYSTEM) + len(PROBE_PROMPT) + len(orjson.dumps(PROBE_SCHEMA))
    tokens_in, tokens_out = -(-chars // 4) + SCHEMA_ALLOWANCE, PROBE_MAX_TOKENS
    table = price_table(ws.root if ws is not None else None)
    cost = round(table.cost(chosen, tokens_in, tokens_out), 6) if table.knows(chosen) else None
    return ProbeEstimate(model=chosen, input_tokens=tokens_in, output_tokens=tokens_out, cost_usd=cost)
