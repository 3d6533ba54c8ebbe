"""A best-effort JSON cache on Upstash Redis: every failure is a miss, never an error.

Shared by every cache layer (`shared.caching.chat`, `shared.caching.responses`, `shared.caching.semantic`,
the web-search and query-embedding caches): each call is bounded by the client's short timeout (no SDK
retry), and after a failure the cache is skipped for a cool-down, so an outage costs one timeout per
cool-down, not one per call. Lookups are counted per cache and outcome (`CacheStats`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import httpx
from upstash_redis.errors import UpstashError

from shared.integrations.cache import UpstashCache, upstash_cache
from shared.settings import Settings

log = logging.getLogger("muse.caching")

CacheName = Literal["session", "canon", "knowledge", "web", "semantic", "embedding", "response"]
CACHE_NAMES: tuple[CacheName, ...] = get_args(CacheName)
Outcome = Literal["hit", "miss", "error", "skipped"]
CACHE_FAILURES: tuple[type[Exception], ...] = (httpx.HTTPError, UpstashError, OSError, ValueError, TypeError)
"""What an unreachable, slow or confused cache raises (transport, Upstash's error answers, bad JSON)."""


@dataclass
class CacheStats:
    """Counts and timings (milliseconds) of cache lookups, per cache and outcome."""

    counts: dict[str, int] = field(default_factory=dict)
    timings_ms: dict[str, list[float]] = field(default_factory=dict)

    def record(self, name: CacheName, outcome: Outcome, elapsed_ms: float) -> None:
        label = f"{name}.{outcome}"
        self.counts[label] = self.counts.get(label, 0) + 1
        self.timings_ms.setdefault(label, []).append(elapsed_ms)

    def count(self, name: CacheName, outcome: Outcome) -> int:
        return self.counts.get(f"{name}.{outcome}", 0)


@dataclass
class ChatCache:
    """Best-effort JSON cache: every failure is logged and answered as a miss, then Redis rests a while."""

    cache: UpstashCache
    cooldown_seconds: float = 10.0
    clock: Callable[[], float] = time.monotonic
    stats: CacheStats = field(default_factory=CacheStats)
    _down_until: float = field(default=0.0, init=False)

    def available(self) -> bool:
        """False during the cool-down after a failed call."""
        return self.clock() >= self._down_until

    def _failed(self, what: str, exc: Exception) -> None:
        self._down_until = self.clock() + self.cooldown_seconds
        log.warning("cache %s failed, treated as a miss for %.0f s: %s: %s", what, self.cooldown_seconds,
                    type(exc).__name__, exc)

    def get(self, name: CacheName, key: str) -> Any | None:
        """The cached value, or None (absent, unreadable, or the cache is resting)."""
        started = time.perf_counter()
        if not self.available():
            self.stats.record(name, "skipped", 0.0)
            return None
        try:
            value = self.cache.get_json(key)
        except CACHE_FAILURES as exc:
            self._failed(f"get {name}", exc)
            self.stats.record(name, "error", (time.perf_counter() - started) * 1000)
            return None
        self.stats.record(name, "miss" if value is None else "hit", (time.perf_counter() - started) * 1000)
        return value

    def put(self, name: CacheName, key: str, value: Any, *, ttl_seconds: int) -> bool:
        """Cache `value`; False when it could not be (the caller goes on without it)."""
        if not self.available():
            return False
        try:
            self.cache.set_json(key, value, ttl_seconds=ttl_seconds)
        except CACHE_FAILURES as exc:
            self._failed(f"put {name}", exc)
            return False
        return True

    def script(self, name: CacheName, source: str, key: str, args: list[Any]) -> int | None:
        """Run a Lua script on `key` (under the cache's prefix); its integer answer, or None when it failed."""
        started = time.perf_counter()
        if not self.available():
            self.stats.record(name, "skipped", 0.0)
            return None
        try:
            answer = int(self.cache.redis.eval(source, keys=[self.cache.prefix + key], args=[str(a) for a in args]))
        except CACHE_FAILURES as exc:
            self._failed(f"script {name}", exc)
            self.stats.record(name, "error", (time.perf_counter() - started) * 1000)
            return None
        self.stats.record(name, "hit" if answer > 0 else "miss", (time.perf_counter() - started) * 1000)
        return answer

    def forget(self, key: str) -> bool:
        """Delete `key`; False when the cache could not be reached or is resting (the entry then expires by its TTL)."""
        if not self.available():
            return False
        try:
            self.cache.delete(key)
        except CACHE_FAILURES as exc:
            self._failed("delete", exc)
            return False
        return True



BestEffortCache = ChatCache
"""The name the non-chat layers use for the same cache."""


def best_effort_cache(settings: Settings) -> ChatCache:
    """This deployment's Upstash Redis as a best-effort cache: short timeout (`MUSE_CHAT_CACHE_TIMEOUT_SECONDS`),
    no SDK retry, a cool-down after a failure (`MUSE_CHAT_CACHE_COOLDOWN_SECONDS`)."""
    return ChatCache(cache=upstash_cache(settings, timeout_seconds=settings.chat_cache_timeout_seconds, retries=0),
                     cooldown_seconds=settings.chat_cache_cooldown_seconds)
