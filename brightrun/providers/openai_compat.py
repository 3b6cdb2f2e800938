"""Any OpenAI-compatible chat completions endpoint (vLLM, llama.cpp, Ollama, hosted), via the openai SDK."""

from __future__ import annotations

import os
import time

import openai

from brightrun.errors import ProviderError
from brightrun.providers.base import Provider, ProviderRequest, ProviderResponse
from brightrun.providers.errors import from_exception
from brightrun.providers.schema import inline_refs


class OpenAICompatibleProvider(Provider):
    name = "openai-compatible"
    default_model = "gpt-4o-mini"

    def __init__(self, base_url: str | None = None, api_key: str | None = None, model: str | None = None,
                 timeout: float = 120.0, json_mode: str = "json_schema", concurrency: int = 16) -> None:
        if json_mode not in ("json_schema", "json_object", "none"):
            raise ProviderError("json_mode must be json_schema, json_object or none. Fix: pick one the "
                                "server supports (llama.cpp and Ollama: json_object).", error_type="bad_request")
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        # Local servers usually take any key; hosted ones need OPENAI_API_KEY.
        self._key = api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
        if model:
            self.default_model = model
        self.json_mode = json_mode
        self.client = openai.AsyncOpenAI(api_key=self._key, base_url=self.base_url, max_retries=0, timeout=timeout)

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        started = time.perf_counter()
        params: dict = {
            "model": request.model, "max_tokens": request.max_tokens, "temperature": request.temperature,
            "messages": [{"role": "system", "content": request.system}, *request.messages()],
        }
        if request.tag:
            params["user"] = request.tag
        if request.output_schema and self.json_mode == "json_schema":
            params["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "conversation", "schema": inline_refs(request.output_schema)}}
        elif request.output_schema and self.json_mode == "json_object":
            params["response_format"] = {"type": "json_object"}
        try:
            completion = await self.client.chat.completions.create(**params)
        except (openai.OpenAIError, ValueError) as exc:
            raise from_exception(exc, provider=self.name, secrets=[self._key]) from None
        choice = completion.choices[0]
        usage = completion.usage
        return ProviderResponse(
            text=choice.message.content or "", model=completion.model or request.model,
            input_tokens=usage.prompt_tokens if usage else 0, output_tokens=usage.completion_tokens if usage else 0,
            stop_reason="max_tokens" if choice.finish_reason == "length" else (choice.finish_reason or "stop"),
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    async def aclose(self) -> None:
        await self.client.close()

    async def list_models(self) -> list[str]:
        """The model ids the endpoint serves (GET {base_url}/models)."""
        try:
            return [model.id async for model in self.client.models.list()]
        except (openai.OpenAIError, ValueError) as exc:
            raise from_exception(exc, provider=self.name, secrets=[self._key]) from None
