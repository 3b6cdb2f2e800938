"""Translate SDK and HTTP errors into ProviderError with a type, a retry hint and no secrets."""

from __future__ import annotations

import os

from brightrun.errors import ProviderError

# error_type -> (transient, what to do)
KINDS = {
    "rate_limited": (True, "BrightRun backs off and retries; lower --concurrency if it persists"),
    "overloaded": (True, "the provider is overloaded; BrightRun backs off and retries"),
    "server_error": (True, "a provider-side error; BrightRun retries"),
    "timeout": (True, "the call took too long; BrightRun retries (raise the timeout for long outputs)"),
    "connection_error": (True, "the connection failed; check the base URL and network, BrightRun retries"),
    "malformed_response": (True, "the provider answered something that is not valid JSON; BrightRun retries"),
    "authentication": (False, "set a valid key in ANTHROPIC_API_KEY (or OPENAI_API_KEY for OpenAI-compatible)"),
    "permission": (False, "the key may not use this model or endpoint; check the account"),
    "bad_request": (False, "the request was refused; check the model name and the template's settings"),
    "not_found": (False, "check the model name and the base URL"),
}


class RateLimited(ProviderError):
    """A 429 or 529: carries the provider's retry-after, in seconds, when it gave one."""

    def __init__(self, message: str, *, error_type: str, retry_after: float | None) -> None:
        super().__init__(message, error_type=error_type, transient=True)
        self.retry_after = retry_after


def scrub(text: str, secrets: list[str | None]) -> str:
    """Remove every secret (and the usual key environment variables' values) from `text`."""
    values = [s for s in secrets if s] + [os.environ.get(v) for v in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")]
    for value in values:
        if value and len(value) >= 6:
            text = text.replace(value, "[redacted]")
    return text


def _retry_after(headers) -> float | None:
    if headers is None:
        return None
    for name in ("retry-after-ms", "retry-after"):
        value = headers.get(name)
        if value:
            try:
                seconds = float(value) / (1000 if name.endswith("ms") else 1)
                return max(0.0, min(seconds, 300.0))
            except ValueError:
                continue
    return None


def from_status(status: int, message: str, headers=None, *, provider: str, secrets: list) -> ProviderError:
    if status == 429 or status == 529:
        kind = "rate_limited" if status == 429 else "overloaded"
        return RateLimited(scrub(f"{provider}: HTTP {status}: {message}", secrets), error_type=kind,
                           retry_after=_retry_after(headers))
    kind = {401: "authentication", 403: "permission", 404: "not_found"}.get(status)
    if kind is None:
        kind = "server_error" if status >= 500 else "bad_request"
    transient, hint = KINDS[kind]
    return ProviderError(scrub(f"{provider}: HTTP {status}: {message}. Fix: {hint}.", secrets),
                         error_type=kind, transient=transient)


def error_detail(body) -> str | None:
    """The server's own error message in an SDK exception's body. The anthropic SDK keeps the whole body
    (`{"type": "error", "error": {"message": ...}}`); the openai SDK keeps only the inner error
    (`{"message": ..., "type": ...}`); some servers send `{"detail": ...}` or a bare string."""
    if isinstance(body, str):
        return body or None
    if not isinstance(body, dict):
        return None
    inner = body.get("error")
    if isinstance(inner, dict):
        return error_detail(inner)
    if isinstance(inner, str) and inner:
        return inner
    for key in ("message", "detail"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
        if value:
            return str(value)
    return None


def from_exception(exc: Exception, *, provider: str, secrets: list, timeout: float | None = None) -> ProviderError:
    """Classify an exception raised by the anthropic or openai SDK (both share these shapes). `timeout` is the
    client's setting, named in a timeout's message."""
    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    if status is not None:
        detail = error_detail(getattr(exc, "body", None))
        return from_status(int(status), detail or type(exc).__name__,
                           response.headers if response is not None else None, provider=provider, secrets=secrets)
    name = type(exc).__name__
    if "Timeout" in name:
        if timeout is not None:
            return ProviderError(scrub(
                f"{provider}: {name}: no answer within the {timeout:g} s timeout. Fix: BrightRun retries; for long "
                f"outputs or slow local models raise it with --timeout (e.g. --timeout {max(2 * timeout, 300):g}; "
                f"`brightrun jobs resume JOB --timeout ...` for a job).", secrets), error_type="timeout",
                transient=True)
        kind = "timeout"
    elif "Connection" in name:
        kind = "connection_error"
    elif "ResponseValidation" in name or isinstance(exc, ValueError | TypeError):
        kind = "malformed_response"
    else:
        kind = "connection_error"
    transient, hint = KINDS[kind]
    return ProviderError(scrub(f"{provider}: {name}: {exc}. Fix: {hint}.", secrets), error_type=kind,
                         transient=transient)
