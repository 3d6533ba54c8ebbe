"""Settings for the publishing adapter tests, without importing the step harness (seconds of imports)."""

from __future__ import annotations

from shared.settings import Settings

_REQUIRED = {
    "DATABASE_URL": "postgresql://unused", "QSTASH_TOKEN": "t", "QSTASH_CURRENT_SIGNING_KEY": "sig_current_unused_0000",
    "QSTASH_NEXT_SIGNING_KEY": "sig_next_unused_0000", "UPSTASH_REDIS_REST_URL": "http://127.0.0.1:9/redis",
    "UPSTASH_REDIS_REST_TOKEN": "t", "GEMINI_API_KEY": "k", "TAVILY_API_KEY": "k", "PHONEPE_CLIENT_ID": "c",
    "PHONEPE_CLIENT_SECRET": "s", "PHONEPE_WEBHOOK_USERNAME": "u", "PHONEPE_WEBHOOK_PASSWORD": "p",
}


def publishing_settings(**overrides: str) -> Settings:
    """Settings whose platform URLs and timeouts are `overrides`; nothing else is ever reached."""
    return Settings(**{**_REQUIRED, "MUSE_PUBLISH_TIMEOUT_SECONDS": "1", **overrides})  # type: ignore[arg-type]
