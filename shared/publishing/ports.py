"""The contract between the publishing engine and each platform's adapter (one adapter per provider).

The engine (`shared.publishing.engine`) owns exactly-once: it claims a publication, writes `sending`
before the call, and decides what an outcome means for the row. An adapter owns the wire: it talks to
one platform through that platform's SDK (retries of creates switched off), makes exactly one create
attempt per `publish` call, and turns every platform answer into a `PostResult` or a `PlatformError`
of one of four kinds. `reconcile` looks a post up (never creates one): the engine calls it before any
retry of a create whose outcome it does not know.

OAuth providers also implement `OAuthProvider`: the connection flow (`shared.publishing.connections`)
builds the authorization URL, exchanges the code inside the callback and refreshes tokens before expiry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from shared.errors import MuseError

Provider = Literal["linkedin", "x", "facebook", "instagram", "email", "whatsapp"]
"""A publishing target. `facebook` and `instagram` share one Meta connection (provider `meta`)."""

ConnectionProvider = Literal["linkedin", "x", "meta", "email", "whatsapp"]
"""What a workspace connects (`/api/v1/channels/{provider}/connect`): one Meta connection serves a
Facebook Page and its Instagram business account."""

CONNECTION_OF: dict[Provider, ConnectionProvider] = {
    "linkedin": "linkedin", "x": "x", "facebook": "meta", "instagram": "meta", "email": "email",
    "whatsapp": "whatsapp",
}

ErrorKind = Literal["retryable", "reconnect", "permanent", "ambiguous"]
"""How the engine treats a failed call:
- `retryable`: the platform did not perform it (429, or 5xx before any effect): try again later with backoff
  (`retry_after_seconds` when the platform said);
- `reconnect`: the token is expired or revoked (401, Meta code 190): refresh once if a refresh token exists,
  else mark the connection `needs_reconnect` with `message` as the platform's reason;
- `permanent`: a definite 4xx rejection: the publication fails with the platform's message;
- `ambiguous`: a timeout, a dropped connection or a 5xx after the body was sent: the post may exist, so the
  engine reconciles before anything else (never a blind retry)."""


class PlatformError(MuseError):
    """A platform call failed; `kind` says what the engine may do next. Never carries a token."""

    code = "platform_error"
    http_status = 502
    retryable = False

    def __init__(self, message: str, *, kind: ErrorKind, provider: Provider | ConnectionProvider,
                 status: int | None = None, retry_after_seconds: int | None = None) -> None:
        super().__init__(message, details={"kind": kind, "provider": provider, "status": status,
                                           "retry_after_seconds": retry_after_seconds})
        self.kind: ErrorKind = kind
        self.provider = provider
        self.status = status
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True)
class Credentials:
    """A connection's secrets, decrypted only for the duration of one call. Never logged, never returned."""

    connection_id: str
    workspace_id: str
    provider: ConnectionProvider
    account_id: str
    """The platform account posts go to: LinkedIn organization URN, X user id, Facebook Page id, the ESP's
    sender address, WhatsApp phone-number id."""
    access_token: str
    """OAuth access token, or the API key for email / WhatsApp."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Non-secret connection settings: `instagram_account_id` (Meta), `recipients` (email addresses or
    opted-in WhatsApp numbers), `template` / `template_language` (WhatsApp), `from_name`, `reply_to`."""

    def __repr__(self) -> str:
        return f"Credentials(connection_id={self.connection_id!r}, provider={self.provider!r}, access_token=***)"


@dataclass(frozen=True)
class TokenSet:
    """What a code exchange or a refresh returns."""

    access_token: str
    refresh_token: str | None
    expires_at: datetime | None
    account_id: str
    """The account the token acts for (resolved during the exchange: organization, user, page)."""
    account_name: str = ""
    scopes: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    """Non-secret details found during the exchange (e.g. the Page's `instagram_account_id`)."""

    def __repr__(self) -> str:
        return f"TokenSet(account_id={self.account_id!r}, expires_at={self.expires_at!r}, access_token=***)"


@dataclass(frozen=True)
class Media:
    """An image attached to a post: bytes from the workspace's asset library and a public URL for platforms
    that fetch media themselves (Instagram, Facebook)."""

    asset_id: str
    content_type: str
    data: bytes
    url: str
    alt_text: str = ""


@dataclass(frozen=True)
class PostRequest:
    """One publication's content, as the adapter sends it."""

    publication_id: str
    """Also the idempotency key where the platform takes one (Resend `Idempotency-Key`) and the tag where
    it takes one (WhatsApp `biz_opaque_callback_data`, SES `EmailTags`)."""
    provider: Provider
    channel: str
    """The artifact's channel (`linkedin_post`, `x_thread`, `instagram_caption`, `email`)."""
    content: dict[str, Any]
    """The artifact's copy, shaped by `shared.channels.CHANNEL_SCHEMAS[channel]`."""
    content_hash: str
    """sha256 of the normalised text and media ids, stored on the row before the call; `reconcile` matches it."""
    media: tuple[Media, ...] = ()
    posted_parts: tuple[str, ...] = ()
    """Ids of the parts of a multi-part post (an X thread) that earlier attempts published, in order: `publish`
    resumes after the last of them instead of posting them again."""
    on_part: Callable[[tuple[str, ...]], None] | None = field(default=None, compare=False, repr=False)
    """Called with the ids of every part published so far after each part is accepted and before the next is
    sent (and by `reconcile` with the parts it found of an unfinished thread), so the engine can save them
    and a later attempt resumes with them as `posted_parts`."""


@dataclass(frozen=True)
class PostResult:
    """A post the platform accepted (or that `reconcile` found)."""

    external_id: str
    url: str
    published_at: datetime
    parts: tuple[str, ...] = ()
    """Ids of every part when one publication is several posts (an X thread), in order."""


class PublishingAdapter(Protocol):
    """One platform's wire: a single create attempt per call, and a lookup that never creates."""

    provider: Provider

    def publish(self, credentials: Credentials, post: PostRequest) -> PostResult:
        """Create the post once. Raises `PlatformError` with the kind of failure."""
        ...

    def reconcile(self, credentials: Credentials, post: PostRequest, since: datetime) -> PostResult | None:
        """The post this publication created, if any, looked up among the account's posts since `since`
        (by `post.content_hash` or the platform's tag); None when there is none. Raises `PlatformError`."""
        ...


class OAuthProvider(Protocol):
    """A platform connected by OAuth 2.0 (authorization code; PKCE where the platform supports it)."""

    provider: ConnectionProvider
    uses_pkce: bool

    def authorization_url(self, *, state: str, redirect_uri: str, code_challenge: str | None) -> str:
        """Where the marketer's browser goes to approve the connection."""
        ...

    def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str | None) -> TokenSet:
        """Trade the callback's code for tokens and resolve the account they act for."""
        ...

    def refresh(self, refresh_token: str) -> TokenSet:
        """New tokens before the old ones expire. Raises `PlatformError(kind="reconnect")` when revoked."""
        ...
