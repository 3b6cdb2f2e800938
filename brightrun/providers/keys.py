"""Which API key may go to which base URL.

The server's key (`ANTHROPIC_API_KEY`, `OPENAI_API_KEY`, from the environment or Streamlit's secrets) goes only
to the provider's official host or to a base URL the operator set: `BRIGHTRUN_ANTHROPIC_BASE_URL` or
`ANTHROPIC_BASE_URL`, `BRIGHTRUN_OPENAI_BASE_URL` or `OPENAI_BASE_URL`, any URL listed (comma-separated) in
`BRIGHTRUN_TRUSTED_BASE_URLS`, or a `--base-url` typed on the command line (`trusted=True`: the person at the
shell already holds the key). A base URL typed in a browser gets a key typed in the same form, or a key the
operator configured for that exact host (scheme, host and port), and nothing else; a key is never stored with
a job.

Keys for other hosts (a team's gateway, a local server that wants a token) are configured by the operator,
never in a browser: in the environment as `BRIGHTRUN_HOST_KEYS`, a JSON object from base URL to key
(`{"http://10.0.0.5:8000": "token"}`), or in `.streamlit/secrets.toml` as a `[host_keys]` table with the same
entries. Only the scheme, host and port of each URL count; a lookalike host, another port or http instead of
https gets no key.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import orjson

from brightrun.errors import ProviderError
from brightrun.secrets import secret, secret_table

KEY_VARIABLES = {"anthropic": "ANTHROPIC_API_KEY", "openai-compatible": "OPENAI_API_KEY"}
BASE_URL_VARIABLES = {"anthropic": ("BRIGHTRUN_ANTHROPIC_BASE_URL", "ANTHROPIC_BASE_URL"),
                      "openai-compatible": ("BRIGHTRUN_OPENAI_BASE_URL", "OPENAI_BASE_URL")}
OFFICIAL_HOSTS = {"anthropic": "https://api.anthropic.com", "openai-compatible": "https://api.openai.com"}
TRUSTED_VARIABLE = "BRIGHTRUN_TRUSTED_BASE_URLS"
HOST_KEYS_VARIABLE = "BRIGHTRUN_HOST_KEYS"
HOST_KEYS_SECRET = "host_keys"


def _origin_and_path(url: str) -> tuple[str, str, str]:
    """(scheme, host:port, path) lower-cased where case does not matter, default ports and trailing / dropped."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    port = parts.port if parts.port not in ({"https": 443, "http": 80}.get(scheme), None) else None
    netloc = (parts.hostname or "") + (f":{port}" if port else "")
    return scheme, netloc, parts.path.rstrip("/")


def operator_base_urls(provider: str) -> list[str]:
    """The base URLs the operator set in the environment for `provider` (never one from a browser)."""
    urls = [os.environ.get(name, "") for name in BASE_URL_VARIABLES.get(provider, ())]
    urls += os.environ.get(TRUSTED_VARIABLE, "").split(",")
    return [url.strip() for url in urls if url.strip()]


def key_may_go_to(provider: str, base_url: str | None, *, trusted: bool = False) -> bool:
    """Whether the server's own key may be sent to `base_url` (None: the provider's default, which the operator
    alone chooses)."""
    if not base_url or trusted:
        return True
    target = _origin_and_path(base_url)
    official = _origin_and_path(OFFICIAL_HOSTS[provider])
    if target[:2] == official[:2]:
        return True
    return any(_origin_and_path(url) == target for url in operator_base_urls(provider))


def host_keys() -> dict[tuple[str, str], str]:
    """The keys the operator configured for exact hosts: {(scheme, host:port): key}."""
    configured = dict(secret_table(HOST_KEYS_SECRET))
    raw = os.environ.get(HOST_KEYS_VARIABLE, "").strip()
    if raw:
        try:
            table = orjson.loads(raw)
            if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
                raise ValueError("not an object of strings")
        except ValueError:
            raise ProviderError(
                f"{HOST_KEYS_VARIABLE} is not a JSON object from base URL to key. Fix: set it like "
                f"'{{\"http://10.0.0.5:8000\": \"token\"}}', or unset it.", error_type="configuration") from None
        configured.update(table)
    keys = {}
    for url, key in configured.items():
        scheme, netloc, _ = _origin_and_path(url)
        if scheme and netloc and key.strip():
            keys[(scheme, netloc)] = key.strip()
    return keys


def resolve_key(provider: str, base_url: str | None, *, typed_key: str | None = None,
                trusted: bool = False) -> str | None:
    """The key to send to `base_url`: the one typed with it, else a key the operator configured for its exact
    host (`host_keys`), else the server's key when `key_may_go_to`, else None."""
    if typed_key and typed_key.strip():
        return typed_key.strip()
    if base_url:
        configured = host_keys().get(_origin_and_path(base_url)[:2])
        if configured:
            return configured
    if key_may_go_to(provider, base_url, trusted=trusted):
        return secret(KEY_VARIABLES[provider])
    return None


def untrusted_url_fix(provider: str) -> str:
    """What to do when the server's key may not go to a base URL."""
    first, second = BASE_URL_VARIABLES[provider]
    return (f"type that host's key in the form, or have the operator configure a key for this host "
            f"({HOST_KEYS_VARIABLE}, or [{HOST_KEYS_SECRET}] in .streamlit/secrets.toml), or set {first} (or "
            f"{second}, or {TRUSTED_VARIABLE}) to this base URL in the environment that runs BrightRun")
