"""Which module speaks to each platform: adapters are imported only when a publication needs them.

Each adapter module `shared.publishing.adapters.<module>` exposes `adapter(settings, provider) ->
PublishingAdapter` and, for OAuth platforms, `oauth(settings) -> OAuthProvider`.
"""

from __future__ import annotations

import importlib
from typing import cast

from shared.publishing.ports import ConnectionProvider, OAuthProvider, Provider, PublishingAdapter
from shared.settings import Settings

ADAPTER_MODULES: dict[Provider, str] = {
    "linkedin": "linkedin", "x": "x", "facebook": "meta", "instagram": "meta", "email": "email",
    "whatsapp": "whatsapp",
}
OAUTH_MODULES: dict[ConnectionProvider, str] = {"linkedin": "linkedin", "x": "x", "meta": "meta"}
"""Providers connected by OAuth; `email` and `whatsapp` are connected with an API key."""


def adapter_for(provider: Provider, settings: Settings) -> PublishingAdapter:
    """The adapter that publishes to `provider`."""
    module = importlib.import_module(f"shared.publishing.adapters.{ADAPTER_MODULES[provider]}")
    return cast(PublishingAdapter, module.adapter(settings, provider))


def oauth_for(provider: ConnectionProvider, settings: Settings) -> OAuthProvider:
    """The OAuth flow of `provider` (KeyError for API-key providers)."""
    module = importlib.import_module(f"shared.publishing.adapters.{OAUTH_MODULES[provider]}")
    return cast(OAuthProvider, module.oauth(settings))
