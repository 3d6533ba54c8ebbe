"""Per-workspace rate limits of a tier through the official `upstash-ratelimit` SDK (sliding windows).

Two limits: API requests per minute (counted at the API edge) and campaign starts per day (counted
when a campaign is created, by the API or a chat turn). Each workspace has its own window per limit,
sized by its tier, keyed `muse:rl:<limit>:ws:<workspace>` (plus the SDK's window suffix).

A rate-limiter outage never takes the API down: a call that fails or takes longer than
`MUSE_RATE_LIMIT_TIMEOUT_SECONDS` lets the request through (logged as a warning), and for
`MUSE_RATE_LIMIT_COOLDOWN_SECONDS` after a failure requests pass without asking Redis, so an outage
costs one timeout per cool-down, not one per request. Limits fail open; money does not depend on them
(credits are checked against Postgres, not Redis).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import httpx
from upstash_ratelimit import Ratelimit, SlidingWindow
from upstash_redis import Redis

from shared.errors import QuotaExceeded
from shared.plans.tiers import Tier
from shared.settings import Settings

log = logging.getLogger("muse.plans.limits")

RateLimitName = Literal["api_requests_per_minute", "campaign_starts_per_day"]
"""The limits counted in Redis."""

KEY_PREFIX = "muse:rl"
_WINDOWS: dict[RateLimitName, tuple[int, Literal["m", "d"], str]] = {
    "api_requests_per_minute": (1, "m", "API requests per minute"),
    "campaign_starts_per_day": (1, "d", "campaign starts per day"),
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the limiter said about one request."""

    allowed: bool
    limit: int
    remaining: int
    retry_after_seconds: int
    checked: bool = True
    """False when the limiter was unreachable (or resting after a failure) and the request passed unchecked."""


@dataclass
class RateLimiter:
    """The tier limits of workspaces, counted in Upstash Redis; fails open."""

    redis: Redis
    cooldown_seconds: float = 10.0
    clock: Callable[[], float] = time.monotonic
    _resting_until: float = field(default=0.0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def check(self, limit: RateLimitName, workspace_id: str, tier: Tier) -> Verdict:
        """Count one unit of `limit` for the workspace; the verdict (allowed unchecked on an outage)."""
        maximum = getattr(tier, limit)
        if self.clock() < self._resting_until:
            return Verdict(allowed=True, limit=maximum, remaining=maximum, retry_after_seconds=0, checked=False)
        window, unit, _ = _WINDOWS[limit]
        limiter = Ratelimit(redis=self.redis, limiter=SlidingWindow(max_requests=maximum, window=window, unit=unit),
                            prefix=f"{KEY_PREFIX}:{limit}")
        try:
            response = limiter.limit(f"ws:{workspace_id}")
        except Exception as exc:  # any failure of the limiter (network, timeout, a Redis error) fails open
            with self._lock:
                self._resting_until = self.clock() + self.cooldown_seconds
            log.warning("rate limiter unavailable, %s not enforced for %.0f s: %s: %s", limit,
                        self.cooldown_seconds, type(exc).__name__, exc)
            return Verdict(allowed=True, limit=maximum, remaining=maximum, retry_after_seconds=0, checked=False)
        retry_after = max(1, math.ceil(response.reset - time.time())) if not response.allowed else 0
        return Verdict(allowed=response.allowed, limit=response.limit, remaining=response.remaining,
                       retry_after_seconds=retry_after)

    def enforce(self, limit: RateLimitName, workspace_id: str, tier: Tier) -> Verdict:
        """`check`, raising `QuotaExceeded` (429, `Retry-After`) naming the limit when it is used up."""
        verdict = self.check(limit, workspace_id, tier)
        if not verdict.allowed:
            raise QuotaExceeded(
                f"The {tier.name} plan allows {verdict.limit} {_WINDOWS[limit][2]}; this workspace has used them. "
                f"Retry after {verdict.retry_after_seconds} s, or move to a larger plan (GET /api/v1/plan).",
                retry_after_seconds=verdict.retry_after_seconds,
                details={"limit": limit, "tier": tier.name, "allowed": verdict.limit})
        return verdict


def rate_limiter(settings: Settings) -> RateLimiter:
    """The limiter of this deployment: Upstash (or its REST emulator), short timeout, no SDK retry."""
    redis = Redis(url=settings.upstash_redis_rest_url, token=settings.upstash_redis_rest_token.get_secret_value(),
                  rest_retries=0, allow_telemetry=False)
    redis._http._client.timeout = httpx.Timeout(settings.rate_limit_timeout_seconds)
    return RateLimiter(redis=redis, cooldown_seconds=settings.rate_limit_cooldown_seconds)
