"""Configuration shared by the wire-compatible emulators of the local stack.

The emulators stand in for cloud-only services (QStash, Upstash Redis REST, Gemini, Tavily,
PhonePe, Supabase Auth, LangSmith). Product code reaches them through the official SDKs at a
configurable base URL, so nothing here is imported by `shared/` or `functions/`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEV_QSTASH_TOKEN = "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0="
"""The public user-1 token of the official QStash dev server, so one `.env` fits both."""
DEV_QSTASH_CURRENT_SIGNING_KEY = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
DEV_QSTASH_NEXT_SIGNING_KEY = "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"

REALISTIC_GEMINI_LATENCY_SECONDS: Mapping[str, float] = {"flash": 0.8, "pro": 2.5}
"""Assumed time to answer one `generateContent` call, by model family (a substring of the model name):
a short structured answer from Gemini Flash ~0.8 s, from Gemini Pro ~2.5 s. Used by `infra/bench_cache.py`
so that caching shows up in timings; tests keep the default of no latency."""
REALISTIC_TAVILY_LATENCY_SECONDS = 1.2
"""Assumed time of one Tavily basic search (~1.2 s)."""


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything the emulators need; one instance is shared by all of them."""

    database_url: str
    """Postgres DSN; the QStash emulator keeps its messages here so a restart loses none."""
    redis_url: str = ""
    """`redis://` or `unix://` URL of the real Redis behind the Upstash REST emulator."""
    qstash_token: str = DEV_QSTASH_TOKEN
    qstash_current_signing_key: str = DEV_QSTASH_CURRENT_SIGNING_KEY
    qstash_next_signing_key: str = DEV_QSTASH_NEXT_SIGNING_KEY
    qstash_backoff_scale: float = 1.0
    """Multiplies QStash's retry backoff (`min(86400, e**(2.5 n))` s); tests use e.g. 0.01."""
    qstash_poll_interval: float = 0.05
    """Seconds between scans of the message table by the delivery worker."""
    qstash_cron_seconds: float = 60.0
    """Real seconds that make one cron minute for QStash schedules; tests use e.g. 1 to fire `* * * * *` each second."""
    upstash_redis_token: str = "local-upstash-redis-token"
    gemini_api_key: str = "local-gemini-key"
    tavily_api_key: str = "tvly-local-key"
    phonepe_client_id: str = "MUSE_LOCAL_CLIENT"
    phonepe_client_secret: str = "local-phonepe-secret"
    phonepe_client_version: str = "1"
    phonepe_merchant_id: str = "MUSELOCALMERCHANT"
    phonepe_webhook_url: str = ""
    """Where the PhonePe emulator POSTs its S2S webhook after the pay page is submitted."""
    phonepe_webhook_username: str = "muse_webhook"
    phonepe_webhook_password: str = "localpass123"
    phonepe_refund_settle_seconds: float | None = None
    """A refund still in progress this long after it was made completes when its status is next asked for (and
    its `pg.refund.completed` webhook is sent); None: only `/_emulator/refunds/{id}/settle` moves a refund."""
    public_base_url: str = "http://127.0.0.1:8080"
    """Origin under which the emulators are mounted (used for redirect URLs of the pay page)."""
    supabase_jwks: dict = field(default_factory=dict)
    """The JWKS document served at `/auth/v1/.well-known/jwks.json`."""
    langsmith_api_key: str = "local-langsmith-key"
    gemini_latency_seconds: Mapping[str, float] = field(default_factory=dict)
    """Seconds each `generateContent` call waits before answering, by model: the first key that is a
    substring of the model name wins (e.g. `REALISTIC_GEMINI_LATENCY_SECONDS`); none by default."""
    tavily_latency_seconds: float = 0.0
    """Seconds each Tavily `/search` call waits before answering (`REALISTIC_TAVILY_LATENCY_SECONDS`)."""
    # Publishing emulators (LinkedIn, X): the OAuth apps they accept.
    linkedin_client_id: str = "muse-local-linkedin"
    linkedin_client_secret: str = "local-linkedin-secret"
    x_client_id: str = "muse-local-x"
    x_client_secret: str = "local-x-secret"


def model_latency(latencies: Mapping[str, float], model: str) -> float:
    """The configured latency of `model`: that of the first family whose name occurs in it, else 0."""
    return next((seconds for family, seconds in latencies.items() if family in model), 0.0)
