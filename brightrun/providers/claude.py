"""Claude through the official anthropic SDK: Messages with structured output, and Message Batches."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

import anthropic
import httpx2
import orjson

from brightrun.errors import ProviderError
from brightrun.providers.base import Provider, ProviderRequest, ProviderResponse
from brightrun.providers.errors import from_exception, scrub
from brightrun.providers.keys import key_may_go_to, resolve_key, untrusted_url_fix
from brightrun.providers.schema import claude_schema
from brightrun.secrets import secret

DEFAULT_MODEL = "claude-sonnet-5-5"
_NO_SAMPLING = re.compile(r"^claude-(?:(?:opus|sonnet|haiku)-(?:[5-9]|\d\d)|fable|mythos)")


# The SDK raises its own errors, and a plain ValueError (JSONDecodeError) for a body that is not JSON.
_SDK_ERRORS = (anthropic.AnthropicError, ValueError)


def _plain(params: dict) -> dict:
    """Batch request params are raw JSON: fold extra_body into them."""
    extra = params.pop("extra_body", {})
    return {**params, **extra}


def api_key_from_environment() -> str | None:
    """ANTHROPIC_API_KEY, else Streamlit secrets when running in the app."""
    return secret("ANTHROPIC_API_KEY")


def accepts_temperature(model: str) -> bool:
    """Claude 5-series models refuse non-default sampling parameters."""
    return not _NO_SAMPLING.match(model)


class ClaudeProvider(Provider):
    name = "anthropic"
    default_model = DEFAULT_MODEL
    supports_batches = True

    def __init__(self, api_key: str | None = None, base_url: str | None = None, timeout: float = 120.0,
                 concurrency: int = 16, trusted_base_url: bool = False) -> None:
        """`api_key` is a key typed with `base_url`; without it the server's key is used only where
        `resolve_key` allows (the official host, an operator's base URL, or `trusted_base_url`)."""
        self._key = resolve_key(self.name, base_url, typed_key=api_key, trusted=trusted_base_url)
        if not self._key and not key_may_go_to(self.name, base_url, trusted=trusted_base_url):
            raise ProviderError(
                f"no key for the base URL {base_url}: the server's Anthropic key goes only to the official host or "
                f"a base URL the operator set. Fix: {untrusted_url_fix(self.name)}.", error_type="authentication")
        if not self._key:
            raise ProviderError(
                "no Anthropic API key. Fix: set ANTHROPIC_API_KEY in the environment (or in "
                ".streamlit/secrets.toml for the app), or use --provider scripted.", error_type="authentication")
        self.base_url = base_url
        self.timeout = timeout
        # The SDK's own aiohttp-backed client (`anthropic.DefaultAioHttpClient`, its `aiohttp` extra) rather than
        # its default httpx one: at concurrency 64 a call costs about 1.6-1.7 ms of CPU here instead of 2.6-3.1
        # (docs/benchmarks.md, the generation benchmark), mostly httpcore's per-request work (its pool walks every
        # connection on each request and response) and anyio's cancel scopes around each socket operation.
        # Same SDK, same requests and errors (the transport maps aiohttp's errors to httpx's, which the SDK maps
        # to its own).
        limit = concurrency + 8
        self.client = anthropic.AsyncAnthropic(
            api_key=self._key, base_url=base_url, max_retries=0, timeout=timeout,
            http_client=anthropic.DefaultAioHttpClient(
                timeout=httpx2.Timeout(timeout, connect=10.0),
                limits=httpx2.Limits(max_connections=limit, max_keepalive_connections=limit)))

    def _params(self, request: ProviderRequest) -> dict:
        params: dict = {
            "model": request.model, "max_tokens": request.max_tokens, "system": request.system,
            "messages": request.messages(),
        }
        extra: dict = {}
        if accepts_temperature(request.model):
            # The 2.x SDK has no temperature argument (5-series models refuse it); older models take it raw.
            extra["temperature"] = request.temperature
        if request.output_schema:
            # Sent as `output_config` all the same (extra_body merges into the JSON body): as a typed argument
            # the SDK would walk the ~5 KB schema on every call, 0.2 to 0.4 ms of CPU here (bench_generation).
            extra["output_config"] = {"format": {"type": "json_schema", "schema": claude_schema(request.output_schema)}}
        if extra:
            params["extra_body"] = extra
        if request.tag:
            params["metadata"] = {"user_id": request.tag}
        return params

    def _response(self, message, model: str, started: float, batch: bool = False) -> ProviderResponse:
        text = "".join(getattr(block, "text", "") for block in message.content if block.type == "text")
        usage = message.usage
        return ProviderResponse(
            text=text, model=message.model or model, input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens, stop_reason=message.stop_reason or "end_turn",
            latency_ms=(time.perf_counter() - started) * 1000, batch=batch,
        )

    def _answer(self, data: dict, model: str, started: float) -> ProviderResponse:
        """What `_response` reads from a Message, read from the Messages response body itself: building the
        SDK's Message model for these five fields cost ~0.14 ms a call (bench_generation)."""
        try:
            text = "".join(block.get("text", "") for block in data["content"] if block.get("type") == "text")
            usage = data["usage"]
            return ProviderResponse(
                text=text, model=data.get("model") or model, input_tokens=usage["input_tokens"],
                output_tokens=usage["output_tokens"], stop_reason=data.get("stop_reason") or "end_turn",
                latency_ms=(time.perf_counter() - started) * 1000,
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:  # not a Messages response at all
            raise ProviderError(scrub(f"{self.name}: the answer is not a Messages response ({type(exc).__name__}: "
                                      f"{exc}). Fix: check the base URL points at the Anthropic API; BrightRun "
                                      f"retries.", [self._key]), error_type="malformed_response", transient=True,
                                raw=orjson.dumps(data).decode()[:2000] if isinstance(data, dict) else None) from None

    def _error(self, exc: Exception) -> ProviderError:
        return from_exception(exc, provider=self.name, secrets=[self._key], timeout=self.timeout)

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        started = time.perf_counter()
        try:
            # the SDK's raw response (errors are raised as with create); a body that is not JSON is a
            # ValueError, as it is in the SDK
            raw = await self.client.messages.with_raw_response.create(**self._params(request))
            data = orjson.loads(await raw.read())
        except _SDK_ERRORS as exc:
            raise self._error(exc) from None
        return self._answer(data, request.model, started)

    # -- Message Batches ------------------------------------------------------------------------

    async def submit_batch(self, requests: list[tuple[str, ProviderRequest]]) -> str:
        """Submit requests as one Message Batch; returns its id."""
        try:
            batch = await self.client.messages.batches.create(
                requests=[{"custom_id": cid, "params": _plain(self._params(r))} for cid, r in requests])
        except _SDK_ERRORS as exc:
            raise self._error(exc) from None
        return batch.id

    async def batch_ended(self, batch_id: str) -> bool:
        try:
            batch = await self.client.messages.batches.retrieve(batch_id)
        except _SDK_ERRORS as exc:
            raise self._error(exc) from None
        return batch.processing_status == "ended"

    async def batch_results(self, batch_id: str, models: dict[str, str]) -> AsyncIterator[
            tuple[str, ProviderResponse | ProviderError]]:
        """Each custom id with its response, or the error it got."""
        started = time.perf_counter()
        try:
            results = await self.client.messages.batches.results(batch_id)
            async for entry in results:
                result = entry.result
                if result.type == "succeeded":
                    yield entry.custom_id, self._response(result.message, models.get(entry.custom_id, ""),
                                                          started, batch=True)
                else:
                    detail = getattr(getattr(getattr(result, "error", None), "error", None), "message", result.type)
                    kind = getattr(getattr(getattr(result, "error", None), "error", None), "type", result.type)
                    transient = kind not in ("invalid_request_error", "authentication_error", "permission_error")
                    yield entry.custom_id, ProviderError(scrub(f"batch result {result.type}: {detail}", [self._key]),
                                                         error_type=str(kind), transient=transient)
        except _SDK_ERRORS as exc:
            raise self._error(exc) from None

    async def aclose(self) -> None:
        await self.client.close()

    async def list_models(self) -> list[str]:
        """Every model id the key may use (GET /v1/models, all pages)."""
        try:
            return [model.id async for model in self.client.models.list(limit=1000)]
        except _SDK_ERRORS as exc:
            raise self._error(exc) from None
