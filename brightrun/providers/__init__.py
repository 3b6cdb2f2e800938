"""Model providers behind one small interface."""

from __future__ import annotations

from brightrun.errors import BrightRunError
from brightrun.providers.base import Provider, ProviderRequest, ProviderResponse, ScaffoldSpec
from brightrun.providers.scripted import ScriptedProvider

PROVIDERS = {"scripted": ScriptedProvider}


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
