"""Model providers behind one small interface.

May import: errors, models, secrets.
"""

from __future__ import annotations

from brightrun.errors import BrightRunError
from brightrun.providers.base import Provider, ProviderRequest, ProviderResponse, ScaffoldSpec
from brightrun.providers.scripted import ScriptedProvider


def _claude(**options) -> Provider:
    from brightrun.providers.claude import ClaudeProvider

    return ClaudeProvider(**options)


def _openai(**options) -> Provider:
    from brightrun.providers.openai_compat import OpenAICompatibleProvider

    return OpenAICompatibleProvider(**options)


PROVIDERS = {"scripted": ScriptedProvider, "anthropic": _claude, "openai-compatible": _openai}


def get_provider(name: str, **options) -> Provider:
    """The provider called `name`, built with `options`."""
    try:
        factory = PROVIDERS[name]
    except KeyError:
        raise BrightRunError(
            f"unknown provider {name!r}. Fix: use one of {', '.join(PROVIDERS)}."
        ) from None
    return factory(**options)


__all__ = ["PROVIDERS", "Provider", "ProviderRequest", "ProviderResponse", "ScaffoldSpec",
           "ScriptedProvider", "get_provider"]
