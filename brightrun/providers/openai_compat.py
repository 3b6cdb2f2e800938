"""Any OpenAI-compatible chat completions endpoint (vLLM, llama.cpp, Ollama, LM Studio, hosted), via the
openai SDK.

Servers differ in what they accept, so the JSON mode is a choice:

- `json_schema`: `response_format` with the schema (OpenAI, vLLM, LM Studio, recent llama.cpp and Ollama).
- `json_object`: `response_format: {"type": "json_object", "schema": ...}` (llama.cpp and llama-cpp-python
  constrain to the schema; others take plain JSON mode).
- `none`: no `response_format`; the prompt alone asks for JSON.
- `auto` (the default): `json_schema` first; if the server refuses it, fall back once to `json_object` with
  the schema, then without it, and keep what worked for the rest of the run. Each fallback is written to
  `notes`, which the job runner copies into the job's note.

`fold_system` puts the system prompt at the top of the first user message, for chat templates without a
system role (Gemma's, for one): such servers drop system messages, so the model never sees them.
"""

from __future__ import annotations

import os
import time

import openai

from brightrun.errors import ProviderError
from brightrun.providers.base import JSON_MODES, Provider, ProviderRequest, ProviderResponse
from brightrun.providers.errors import from_exception
from brightrun.providers.keys import resolve_key
from brightrun.providers.schema import inline_refs

# After a refusal of the first, try the next: json_object with the schema, then plain json_object.
_FALLBACKS = {"json_schema": "json_object+schema", "json_object+schema": "json_object"}
_REFUSAL_WORDS = ("response_format", "json_schema", "json_object", "schema", "grammar")


def check_json_mode(json_mode: str) -> str:
    if json_mode not in JSON_MODES:
        raise ProviderError(f"json mode {json_mode!r} is not one of {', '.join(JSON_MODES)}. Fix: use auto (try "
                            f"json_schema, fall back to json_object), or name what the server supports.",
                            error_type="bad_request")
    return json_mode


def _refused_format(exc: ProviderError) -> bool:
    """Whether an error looks like the server refusing the response_format (not the key, not a fault)."""
    if exc.error_type not in ("bad_request", "server_error"):
        return False
    text = str(exc).lower()
    return any(word in text for word in _REFUSAL_WORDS)


class OpenAICompatibleProvider(Provider):
    name = "openai-compatible"
    default_model = "gpt-4o-mini"

    def __init__(self, base_url: str | None = None, api_key: str | None = None, model: str | None = None,
                 timeout: float = 120.0, json_mode: str = "auto", concurrency: int = 16,
                 fold_system: bool = False, trusted_base_url: bool = False) -> None:
        """`api_key` is a key typed with `base_url`; without it the server's OPENAI_API_KEY is used only where
        `resolve_key` allows (the official host, an operator's base URL, or `trusted_base_url`)."""
        self.requested_mode = check_json_mode(json_mode)
        self.mode = "json_schema" if json_mode == "auto" else ("json_object+schema" if json_mode == "json_object"
                                                                else json_mode)
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        # Local servers usually take any key; hosted ones need OPENAI_API_KEY (never sent to a browser's URL).
        self._key = resolve_key(self.name, base_url, typed_key=api_key, trusted=trusted_base_url) or "not-needed"
        if model:
            self.default_model = model
        self.timeout = timeout
        self.fold_system = fold_system
        self.notes: list[str] = []
        self.client = openai.AsyncOpenAI(api_key=self._key, base_url=self.base_url, max_retries=0, timeout=timeout)

    @property
    def cache_name(self) -> str:
        return f"{self.name}@{self.base_url}" + ("+fold_system" if self.fold_system else "")

    def messages(self, request: ProviderRequest) -> list[dict]:
        """The chat messages: the system prompt first, or folded into the first user message."""
        messages = request.messages()
        if not self.fold_system:
            return [{"role": "system", "content": request.system}, *messages]
        first = messages[0]
        return [{**first, "content": f"{request.system}\n\n{first['content']}"}, *messages[1:]]

    def params(self, request: ProviderRequest, mode: str) -> dict:
        params: dict = {"model": request.model, "max_tokens": request.max_tokens,
                        "temperature": request.temperature, "messages": self.messages(request)}
        if request.tag:
            params["user"] = request.tag
        if request.output_schema and mode != "none":
            schema = inline_refs(request.output_schema)
            if mode == "json_schema":
                params["response_format"] = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
            elif mode == "json_object+schema":
                params["response_format"] = {"type": "json_object", "schema": schema}
            else:
                params["response_format"] = {"type": "json_object"}
        return params

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        started = time.perf_counter()
        while True:
            mode = self.mode
            try:
                completion = await self.client.chat.completions.create(**self.params(request, mode))
                break
            except (openai.OpenAIError, ValueError) as exc:
                error = from_exception(exc, provider=self.name, secrets=[self._key], timeout=self.timeout)
            fallback = _FALLBACKS.get(mode)
            refused = bool(request.output_schema) and mode != "none" and _refused_format(error)
            if refused and not (self.requested_mode == "auto" and fallback):
                # Asking again will not change the server's mind: not worth a retry, and say what will work.
                raise ProviderError(f"{str(error).split('. Fix:')[0]}. Fix: the server refuses JSON mode "
                                    f"{mode.replace('+schema', ' with a schema')}; use --json-mode auto (falls back by "
                                    f"itself), json_object or none.", error_type="bad_request", transient=False)
            if not refused:
                raise error
            if self.mode == mode:  # another call may have moved on already
                self.mode = fallback
                self.notes.append(f"json mode: the server refused {mode.replace('+schema', ' with a schema')} "
                                  f"({str(error)[:300]}); fell back to {fallback.replace('+schema', ' with the schema')}")
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
