"""The OpenAI client for fine-tuning, and the translation of its errors into FineTuningError.

The key comes from OPENAI_API_KEY (or, in the app, Streamlit secrets) and nowhere else; it is never written to
the workspace, a log or an error message (every message is scrubbed). The base URL is the `base_url` given,
else OPENAI_BASE_URL, else OpenAI's. The official SDK retries connection errors, 408/409/429 and 5xx answers
`max_retries` times with backoff (honouring retry-after); what still fails becomes a FineTuningError that
says what to do next.
"""

from __future__ import annotations

import os

import openai

from brightrun.finetuning.registry import FineTuningError
from brightrun.providers.errors import scrub
from brightrun.secrets import secret

DEFAULT_BASE_URL = "https://api.openai.com/v1"
KEY_HELP = ("set OPENAI_API_KEY in the environment that runs BrightRun (or in .streamlit/secrets.toml for the "
            "app) to a key of a project allowed to fine-tune; it is read from there only and never stored")


def api_key_from_environment() -> str | None:
    """OPENAI_API_KEY, else Streamlit secrets when running in the app."""
    return secret("OPENAI_API_KEY")


def base_url_from_environment(base_url: str | None = None) -> str:
    return base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL


def openai_client(base_url: str | None = None, api_key: str | None = None, *, timeout: float = 120.0,
                  max_retries: int = 2) -> openai.OpenAI:
    """An OpenAI client for the Files and fine-tuning APIs; refuses at once when there is no key."""
    key = api_key or api_key_from_environment()
    if not key:
        raise FineTuningError(f"no OpenAI API key: OPENAI_API_KEY is not set. Fix: {KEY_HELP}.")
    return openai.OpenAI(api_key=key, base_url=base_url_from_environment(base_url), timeout=timeout,
                         max_retries=max_retries)


def _detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error") if isinstance(body.get("error"), dict) else body
        message = error.get("message") if isinstance(error, dict) else None
        if message:
            return str(message)
    return exc.message or type(exc).__name__


def translate(exc: Exception, doing: str, *, client: openai.OpenAI | None = None, then: str = "") -> FineTuningError:
    """A FineTuningError for an SDK error raised while `doing` (e.g. "uploading the training file"); `then`
    is the step after the fix (e.g. "resume with `brightrun finetune resume ID`")."""
    key = getattr(client, "api_key", None) if client is not None else None
    where = str(client.base_url) if client is not None else base_url_from_environment()
    after = f", then {then}" if then else ""
    status = getattr(exc, "status_code", None)
    transient = False
    if isinstance(exc, openai.AuthenticationError):
        text = (f"OpenAI refused the API key while {doing} (HTTP 401: {_detail(exc)}). "
                f"Fix: {KEY_HELP}{after}.")
    elif isinstance(exc, openai.PermissionDeniedError):
        text = (f"OpenAI did not allow {doing} (HTTP 403: {_detail(exc)}). Fix: use a key of a project that may "
                f"fine-tune this model (OPENAI_API_KEY){after}.")
    elif isinstance(exc, openai.NotFoundError):
        text = (f"OpenAI found nothing while {doing} (HTTP 404: {_detail(exc)}). Fix: check the base model name "
                f"and the base URL ({where}, from OPENAI_BASE_URL){after}.")
    elif isinstance(exc, openai.RateLimitError):
        transient = True
        text = (f"OpenAI is rate-limiting {doing} (HTTP 429: {_detail(exc)}), still after the retries. "
                f"Fix: wait a minute{after or ' and try again'}.")
    elif isinstance(exc, openai.BadRequestError | openai.UnprocessableEntityError | openai.ConflictError):
        text = (f"OpenAI refused {doing} (HTTP {status}: {_detail(exc)}). Fix: check that the base model can be "
                f"fine-tuned, epochs are 1 to 50 and the suffix has at most 64 characters{after}.")
    elif isinstance(exc, openai.APIStatusError):
        transient = status is not None and status >= 500
        text = (f"OpenAI failed while {doing} (HTTP {status}: {_detail(exc)}), still after the retries. "
                f"Fix: try again later{after or ''}.")
    elif isinstance(exc, openai.APITimeoutError):
        transient = True
        text = f"OpenAI did not answer in time while {doing} ({where}). Fix: try again{after or ''}."
    elif isinstance(exc, openai.APIConnectionError):
        transient = True
        text = (f"could not reach OpenAI at {where} while {doing} ({exc}). Fix: check the network and "
                f"OPENAI_BASE_URL{after}.")
    else:
        text = f"OpenAI: {type(exc).__name__} while {doing}: {exc}. Fix: try again{after or ''}."
    return FineTuningError(scrub(text, [key]), transient=transient, status=status)
