"""What `brightrun doctor` says: the key check, and a provider error explained with its fix."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from urllib.parse import urlparse

from brightrun.errors import ProviderError
from brightrun.providers.keys import untrusted_url_fix

KEY_VARIABLES = {"anthropic": "ANTHROPIC_API_KEY", "openai-compatible": "OPENAI_API_KEY"}
DEFAULT_URLS = {"anthropic": "https://api.anthropic.com", "openai-compatible": "https://api.openai.com/v1"}
BASE_URL_VARIABLES = {"anthropic": "ANTHROPIC_BASE_URL", "openai-compatible": "OPENAI_BASE_URL"}


def resolved_base_url(provider: str, base_url: str | None) -> str:
    """The URL the provider's SDK will call: the option, else the environment variable, else the default."""
    return base_url or os.environ.get(BASE_URL_VARIABLES[provider]) or DEFAULT_URLS[provider]


def is_local(url: str) -> bool:
    """True for a server on this machine or a private network (those usually take any key)."""
    host = urlparse(url).hostname or ""
    if host == "localhost" or host.endswith(".local"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_unspecified


def key_check(provider: str, key: str | None, url: str, *, withheld: bool = False) -> tuple[str, str, bool]:
    """(status, message, whether to go on and ask the API) for the provider's key. `withheld`: the server has a
    key but may not send it to `url` (a base URL the operator did not set, see brightrun.providers.keys)."""
    var = KEY_VARIABLES[provider]
    if key:
        return "ok", f"{var} is set (its value is never shown).", True
    if withheld and (provider == "anthropic" or not is_local(url)):
        return ("failed", f"the server's {var} is never sent to {url}, a base URL the operator did not set. "
                          f"Fix: {untrusted_url_fix(provider)}.", False)
    if withheld:
        return ("ok", f"the server's {var} is never sent to {url} (a base URL the operator did not set); the "
                      f"local server gets a placeholder key.", True)
    if provider == "anthropic":
        return ("failed", f"{var} is not set (nor in .streamlit/secrets.toml for the app). Fix: export {var}=<your "
                          f"key> (Anthropic Console > API keys), or use the scripted provider.", False)
    if is_local(url):
        return "ok", f"{var} is not set: not needed for the local server at {url} (a placeholder is sent).", True
    if urlparse(url).hostname == "api.openai.com":
        return ("failed", f"{var} is not set and {url} needs one. Fix: export {var}=<your key>, or point "
                          f"--base-url (or OPENAI_BASE_URL) at a local server.", False)
    return ("not_checked", f"{var} is not set: a placeholder key is sent, which servers without authentication "
                           f"accept; if {url} needs a key the next check fails with HTTP 401. Fix: export {var} "
                           f"if it does.", True)


def is_alias_of(model: str, listed: str) -> bool:
    """True when `listed` is a dated or tagged id of `model`: claude-haiku-4-5-20251001, gpt-4o-2024-08-06,
    llama3:latest (but gpt-4o-mini is not gpt-4o)."""
    return re.fullmatch(re.escape(model) + r"(-\d{8}|-\d{4}-\d{2}-\d{2}|:latest)", listed) is not None


def preview(ids: list[str], shown: int = 8) -> str:
    if not ids:
        return "(none)"
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(ids[:shown]) + more


def root_cause(exc: BaseException) -> OSError | None:
    """The operating system's error behind a provider error (refused, unresolvable host, ...), if any."""
    seen, cause, found = set(), exc.__context__, None
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and (cause.errno is not None or isinstance(cause, socket.gaierror)):
            found = cause
        cause = cause.__cause__ or cause.__context__
    return found


def _detail(exc: ProviderError) -> str:
    """The error without the generic retry hint BrightRun's runner adds (the doctor gives its own fix)."""
    return str(exc).split(". Fix:")[0].rstrip(".")


def explain(exc: ProviderError, step: str, provider: str, url: str | None, model: str) -> str:
    """What `exc` means at `step` ("models" or "probe"), and the fix. The caller scrubs the result."""
    kind, detail, var = exc.error_type, _detail(exc), KEY_VARIABLES.get(provider, "the key variable")
    if kind == "connection_error":
        cause = root_cause(exc)
        if isinstance(cause, ConnectionRefusedError):
            why = f"nothing is listening at {url} (connection refused)"
        elif isinstance(cause, socket.gaierror):
            why = f"the host of {url} could not be resolved ({cause.strerror}): no network, or a misspelt URL"
        else:
            why = f"could not connect to {url}" + (f" ({cause})" if cause else "")
        return (f"{why} [{detail}]. Fix: check the base URL, that the server is running, and the network "
                f"(proxy, firewall, offline).")
    if kind == "authentication":
        return f"the key was refused [{detail}]. Fix: set a valid key in {var}."
    if kind == "permission":
        return (f"the key may not do this [{detail}]. Fix: check the key's workspace and model access in the "
                f"provider's console.")
    if kind == "not_found" and step == "models":
        shape = ("the Anthropic base URL is the host alone, without /v1" if provider == "anthropic"
                 else "OpenAI-compatible servers usually want it to end in /v1")
        return (f"{url} has no models endpoint [{detail}]: this server does not list models, or the base URL is "
                f"wrong. Fix: check the base URL ({shape}).")
    if kind == "not_found":
        return (f"model {model!r} (or the endpoint) was not found [{detail}]. Fix: pass --model with a model the "
                f"key can use, and check the base URL.")
    if kind == "timeout":
        return f"no answer in time [{detail}]. Fix: check the network; a busy server may need a later try."
    if kind in ("rate_limited", "overloaded"):
        return (f"the provider is busy [{detail}]: the key got through but the request was not served. Fix: try "
                f"again in a minute.")
    if kind == "bad_request":
        return (f"the request was refused [{detail}]: the model may not support structured output with this "
                f"schema, or one of the parameters (max_tokens, temperature). Fix: try another --model, and "
                f"read the provider's message above.")
    if kind == "server_error":
        return f"the provider failed [{detail}]. Fix: try again later; check the provider's status page."
    if kind == "malformed_response":
        return (f"the answer is not valid JSON [{detail}]. Fix: check that the base URL points at the API, not a "
                f"web page or a proxy's login page.")
    return f"{detail}. Fix: read the message; run again with --json for the full report."
