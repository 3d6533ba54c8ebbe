"""Web search through the official `tavily-python` SDK, cached in Upstash Redis.

Two cache layers sit in front of Tavily: the exact one (the same query and result count within the
TTL, shared by all workspaces: web results are public) and, when a workspace is known, the semantic one
(`shared.caching.semantic`: a paraphrase of one of the workspace's earlier queries). A hit costs no
Tavily credit and says so (`WebResults.cached`), so the tool run records 0 credits. Both caches are
best effort: an unreachable Redis is a miss, and the search goes to Tavily.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, Literal, Protocol

from shared.errors import ConfigurationError, PermanentStepError, UpstreamUnavailable
from shared.integrations.cache import UpstashCache
from shared.integrations.keyed import client_for_key
from shared.lazy import lazy_module
from shared.ports import Finding, WebSearch
from shared.settings import Settings

if TYPE_CHECKING:
    import tavily
    from tavily import errors as tavily_errors
else:
    tavily = lazy_module("tavily")
    tavily_errors = lazy_module("tavily.errors")

CACHE_TTL_SECONDS = 6 * 3600
CachedBy = Literal["exact", "semantic"]
log = logging.getLogger("muse.integrations.tavily")


class AnswerCache(Protocol):
    """A best-effort JSON cache (`shared.caching.best_effort.ChatCache`): failures are misses, never errors."""

    def get(self, name: Literal["web"], key: str) -> Any | None: ...

    def put(self, name: Literal["web"], key: str, value: Any, *, ttl_seconds: int) -> bool: ...


@dataclass(frozen=True)
class SemanticHit:
    """An earlier query close enough to a new one, and where its answer is cached."""

    query: str
    similarity: float
    answer_key: str


class SemanticLookup(Protocol):
    """A workspace's nearest earlier research query (`shared.caching.semantic.SemanticQueryCache`)."""

    def lookup(self, workspace_id: str, kind: str, query: str) -> SemanticHit | None: ...

    def remember(self, workspace_id: str, kind: str, query: str, answer_key: str) -> bool: ...


@dataclass
class GuardedCache:
    """A bare `UpstashCache` as an `AnswerCache`: any failure is logged and answered as a miss."""

    cache: UpstashCache

    def get(self, name: Literal["web"], key: str) -> Any | None:
        try:
            return self.cache.get_json(key)
        except Exception as exc:
            log.warning("%s cache get failed, treated as a miss: %s", name, exc)
            return None

    def put(self, name: Literal["web"], key: str, value: Any, *, ttl_seconds: int) -> bool:
        try:
            self.cache.set_json(key, value, ttl_seconds=ttl_seconds)
        except Exception as exc:
            log.warning("%s cache put failed: %s", name, exc)
            return False
        return True


@dataclass(frozen=True)
class WebResults:
    """A search's findings and, when they came from a cache, which one (then no credit was spent)."""

    findings: list[Finding]
    cached: CachedBy | None = None
    similar_to: str | None = None
    """For a semantic hit: the earlier query whose answer was served."""


def _findings(results: list[dict[str, Any]]) -> list[Finding]:
    return [
        Finding(source_id="web:" + hashlib.sha256(r["url"].encode()).hexdigest()[:10], title=r.get("title", ""),
                content=r.get("content", ""), url=r["url"], score=float(r.get("score") or 0.0))
        for r in results
    ]


@dataclass
class TavilyWebSearch:
    """`WebSearch` over Tavily; identical queries within the TTL (and, per workspace, paraphrases of
    earlier ones) are served from the cache."""

    connect: Callable[..., tavily.TavilyClient]
    """Creates the SDK client; called once, on the first search (see `shared.lazy`), and once per workspace
    key (`api_key=`)."""
    cache: AnswerCache | None = None
    semantic: SemanticLookup | None = None
    ttl_seconds: int = CACHE_TTL_SECONDS
    own_key: Callable[[], str | None] | None = None
    """The key of the workspace the running search is for, if it set one (`shared.security.keys`); used before
    the project's. None: always the project's."""
    calls: int = field(default=0, init=False)
    """Searches that reached Tavily (each one billed) since this object was made."""
    _keyed: dict[str, tavily.TavilyClient] = field(default_factory=dict, init=False, repr=False)

    @cached_property
    def project_client(self) -> tavily.TavilyClient:
        """The SDK client with the project's key, created on first use."""
        return self.connect()

    @property
    def client(self) -> tavily.TavilyClient:
        """The client of this search: the workspace's own key's when it has one, else the project's."""
        key = self.own_key() if self.own_key is not None else None
        if key is None:
            return self.project_client
        return client_for_key(self._keyed, key, lambda own: self.connect(api_key=own))

    @staticmethod
    def key(query: str, max_results: int) -> str:
        """The exact cache key of a search (public data: no workspace)."""
        return "tavily:" + hashlib.sha256(f"{max_results}|{query}".encode()).hexdigest()

    def search(self, query: str, *, max_results: int = 5) -> list[Finding]:
        return self.search_costed(query, max_results=max_results).findings

    def search_costed(self, query: str, *, max_results: int = 5, workspace_id: str | None = None) -> WebResults:
        """Search, saying which cache answered (if any); the semantic cache is used when `workspace_id` is given."""
        key = self.key(query, max_results)
        kind = f"web:{max_results}"
        cached = self.cache.get("web", key) if self.cache else None
        if isinstance(cached, list):
            return WebResults(_findings(cached), cached="exact")
        if self.semantic is not None and workspace_id is not None and self.cache is not None:
            hit = self.semantic.lookup(workspace_id, kind, query)
            if hit is not None:
                answer = self.cache.get("web", hit.answer_key)
                if isinstance(answer, list):
                    return WebResults(_findings(answer), cached="semantic", similar_to=hit.query)
        try:
            self.calls += 1
            response = self.client.search(query, max_results=max_results, search_depth="basic")
        except tavily_errors.InvalidAPIKeyError as exc:
            if self.own_key is not None and self.own_key() is not None:
                raise PermanentStepError("Tavily rejected this workspace's own API key: replace it with PUT /api/v1/"
                                         "workspace/keys/tavily, or DELETE it to use the project's key.") from exc
            raise ConfigurationError("Tavily rejected the API key; check TAVILY_API_KEY.") from exc
        except (tavily_errors.UsageLimitExceededError, tavily_errors.TimeoutError, OSError) as exc:
            raise UpstreamUnavailable(f"Tavily search for {query!r} failed: {exc}") from exc
        results = response.get("results", [])
        if self.cache is not None and self.cache.put("web", key, results, ttl_seconds=self.ttl_seconds) \
                and self.semantic is not None and workspace_id is not None:
            self.semantic.remember(workspace_id, kind, query, key)
        return WebResults(_findings(results))


def search_costed(web: WebSearch, query: str, *, max_results: int, workspace_id: str | None) -> WebResults:
    """`web.search` with what the cache says about it, for any `WebSearch` (fakes report no cache)."""
    if isinstance(web, TavilyWebSearch):
        return web.search_costed(query, max_results=max_results, workspace_id=workspace_id)
    return WebResults(web.search(query, max_results=max_results))


def tavily_search(settings: Settings, cache: UpstashCache | AnswerCache | None,
                  semantic: SemanticLookup | None = None, *,
                  own_key: Callable[[], str | None] | None = None) -> TavilyWebSearch:
    """Tavily at `TAVILY_BASE_URL`; `cache` (guarded when it is a bare `UpstashCache`) holds answers; `own_key`
    gives the current workspace's Tavily key, used before the project's."""
    best_effort = GuardedCache(cache) if isinstance(cache, UpstashCache) else cache
    return TavilyWebSearch(connect=partial(tavily_client, settings), cache=best_effort, semantic=semantic,
                           ttl_seconds=settings.web_cache_seconds, own_key=own_key)


def tavily_client(settings: Settings, api_key: str | None = None) -> tavily.TavilyClient:
    """An SDK client for `TAVILY_BASE_URL` (the SDK has no base-URL variable of its own), with the project's key
    unless `api_key` (a workspace's own) is given."""
    return tavily.TavilyClient(api_key=api_key or settings.tavily_api_key.get_secret_value(),
                               api_base_url=settings.tavily_base_url)
