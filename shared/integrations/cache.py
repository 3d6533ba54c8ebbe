"""A small JSON cache on Upstash Redis (REST), used to avoid repeating identical tool calls.

Keys that hold a workspace's data live under `workspace_key(workspace_id, ...)` (`muse:ws:<id>:...`), so
erasing a workspace (`erase_workspace`) finds them all with one SCAN pattern.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from shared.lazy import lazy_module
from shared.settings import Settings

if TYPE_CHECKING:
    import upstash_redis
else:
    upstash_redis = lazy_module("upstash_redis")


@dataclass
class UpstashCache:
    """Get/set JSON values with a TTL through the official `upstash-redis` SDK."""

    redis: upstash_redis.Redis
    prefix: str = "muse:"

    def get_json(self, key: str) -> Any | None:
        """The cached value, or None."""
        raw = self.redis.get(self.prefix + key)
        return None if raw is None else json.loads(raw)

    def set_json(self, key: str, value: Any, *, ttl_seconds: int) -> None:
        """Cache `value` for `ttl_seconds`."""
        self.redis.set(self.prefix + key, json.dumps(value), ex=ttl_seconds)

    def delete(self, key: str) -> None:
        """Forget `key` (nothing happens when it is absent)."""
        self.redis.delete(self.prefix + key)

    def erase_workspace(self, workspace_id: str) -> int:
        """Delete every key of the workspace; how many were deleted. Idempotent (a second run deletes 0)."""
        pattern = f"{self.prefix}{workspace_key(workspace_id, '*')}"
        removed, cursor = 0, 0
        while True:
            cursor, keys = self.redis.scan(cursor, match=pattern, count=500)
            if keys:
                removed += int(self.redis.delete(*keys))
            if int(cursor) == 0:
                return removed


def workspace_key(workspace_id: str, key: str) -> str:
    """The cache key of `key` for one workspace's data (what `erase_workspace` removes)."""
    return f"ws:{workspace_id}:{key}"


def upstash_cache(settings: Settings, *, timeout_seconds: float | None = None, retries: int = 1) -> UpstashCache:
    """The cache of this deployment (cloud Upstash or the local REST emulator).

    `timeout_seconds` bounds each REST call and `retries=0` stops the SDK's retry (it sleeps 3 s before
    one), for callers that treat an unreachable cache as a miss. The SDK takes no timeout, so it is set
    on the `httpx.Client` the SDK created (the only setting changed there).
    """
    redis = upstash_redis.Redis(
        url=settings.upstash_redis_rest_url,
        token=settings.upstash_redis_rest_token.get_secret_value(),
        rest_retries=retries,
        allow_telemetry=False,
    )
    if timeout_seconds is not None:
        redis._http._client.timeout = httpx.Timeout(timeout_seconds)
    return UpstashCache(redis=redis)
