"""Web search through the official `tavily-python` SDK, cached in Upstash Redis."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, partial
from typing import TYPE_CHECKING

from shared.errors import ConfigurationError, UpstreamUnavailable
from shared.integrations.cache import UpstashCache
from shared.lazy import lazy_module
from shared.ports import Finding
from shared.settings import Settings

if TYPE_CHECKING:
    import tavily
    from tavily import errors as tavily_errors
else:
    tavily = lazy_module("tavily")
    tavily_errors = lazy_module("tavily.errors")

CACHE_TTL_SECONDS = 6 * 3600


@dataclass
class TavilyWebSearch:
    """`WebSearch` over Tavily; identical queries within the TTL are served from the cache."""

    connect: Callable[[], tavily.TavilyClient]
    """Creates the SDK client; called once, on the first search (see `shared.lazy`)."""
    cache: UpstashCache | None = None

    @cached_property
    def client(self) -> tavily.TavilyClient:
        """The SDK client, created on first use."""
        return self.connect()

    def search(self, query: str, *, max_results: int = 5) -> list[Finding]:
        key = "tavily:" + hashlib.sha256(f"{max_results}|{query}".encode()).hexdigest()
        cached = self.cache.get_json(key) if self.cache else None
        if cached is None:
            try:
                response = self.client.search(query, max_results=max_results, search_depth="basic")
            except tavily_errors.InvalidAPIKeyError as exc:
                raise ConfigurationError("Tavily rejected the API key; check TAVILY_API_KEY.") from exc
            except (tavily_errors.UsageLimitExceededError, tavily_errors.TimeoutError, OSError) as exc:
                raise UpstreamUnavailable(f"Tavily search for {query!r} failed: {exc}") from exc
            cached = response.get("results", [])
            if self.cache:
                self.cache.set_json(key, cached, ttl_seconds=CACHE_TTL_SECONDS)
        return [
            Finding(source_id="web:" + hashlib.sha256(r["url"].encode()).hexdigest()[:10], title=r.get("title", ""),
                    content=r.get("content", ""), url=r["url"], score=float(r.get("score") or 0.0))
            for r in cached
        ]


def tavily_search(settings: Settings, cache: UpstashCache | None) -> TavilyWebSearch:
    """Tavily at `TAVILY_BASE_URL` (the SDK has no base-URL variable of its own)."""
    return TavilyWebSearch(connect=partial(tavily_client, settings), cache=cache)


def tavily_client(settings: Settings) -> tavily.TavilyClient:
    """An SDK client for `TAVILY_BASE_URL` (the SDK has no base-URL variable of its own)."""
    return tavily.TavilyClient(api_key=settings.tavily_api_key.get_secret_value(),
                               api_base_url=settings.tavily_base_url)
