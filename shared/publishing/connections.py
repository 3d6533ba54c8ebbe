"""A workspace's channel connections: OAuth connect and callback, API-key connect, and the credentials the
publishing engine uses (refreshed before they expire).

OAuth in a stateless function (`../shared/reference/publishing-apis.md` §9):
- `start` makes a random `state` (256 bits), stores only its SHA-256 with the workspace, the user, the
  provider and (X, PKCE S256) the sealed `code_verifier`, valid `MUSE_OAUTH_STATE_SECONDS` (10 minutes);
- `callback` consumes the state atomically (marks it used under a row lock: a replay, or a second concurrent
  callback, finds it used and is a 400; a state never issued is a 404), checks its expiry and provider,
  exchanges the code at once (X codes live 30 s), seals the tokens (`shared.security.envelope`, bound to
  workspace|connection|field) and stores them, replacing the workspace's earlier connection of that
  provider (same id) if there was one.

`credentials_for(workspace_id, provider)` hands out a connection's secrets for one call. An access token
expiring within `MUSE_TOKEN_REFRESH_MARGIN_SECONDS` is refreshed first under the connection's row lock: a
concurrent caller waits, re-reads, and finds it fresh, so N callers refresh once. A refresh the platform
refuses as revoked (`PlatformError(kind="reconnect")`) marks the connection `needs_reconnect` with the
platform's reason, and the caller gets `ChannelNotConnected`. Secrets sealed under a retired key are
re-wrapped under the active one as they are read.

Tokens and keys never leave this module except inside `Credentials` (whose repr hides them); they are not
logged, returned by a route or put in an error message.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal, cast, get_args

from shared.db import audit
from shared.db import channels as db
from shared.db.pool import Pool, as_service, create_pool
from shared.errors import Conflict, InvalidRequest, NotFound, Unprocessable, UpstreamUnavailable
from shared.publishing.ports import (
    CONNECTION_OF,
    ConnectionProvider,
    Credentials,
    OAuthProvider,
    PlatformError,
    Provider,
    TokenSet,
)
from shared.publishing.providers import OAUTH_MODULES, oauth_for
from shared.security.envelope import Binding, Keyring, SealedSecret
from shared.settings import Settings, get_settings

log = logging.getLogger("muse.publishing.connections")

ConnectionStatus = Literal["connected", "needs_reconnect", "revoked"]
CONNECTION_PROVIDERS: tuple[ConnectionProvider, ...] = get_args(ConnectionProvider)
API_KEY_PROVIDERS: tuple[ConnectionProvider, ...] = ("email", "whatsapp")
_CLIENT_SETTINGS: dict[str, tuple[str, str]] = {
    "linkedin": ("linkedin_client_id", "LINKEDIN_CLIENT_ID"), "x": ("x_client_id", "X_CLIENT_ID"),
    "meta": ("meta_app_id", "META_APP_ID"),
}


class ChannelNotConnected(Conflict):
    """The workspace has no usable connection of the provider: never connected, disconnected, or waiting for a
    reconnect (`details.status`, and `details.reason` as the platform gave it). Publishing waits on it."""

    code = "channel_not_connected"

    def __init__(self, message: str, *, provider: str, status: str | None, reason: str | None = None,
                 connection_id: str | None = None) -> None:
        super().__init__(message, details={"provider": provider, "status": status, "reason": reason,
                                           "connection_id": connection_id})
        self.provider = provider
        self.status = status
        self.reason = reason
        self.connection_id = connection_id


@dataclass(frozen=True)
class ApiKeyConnection:
    """What an API-key connect stores: the key (sealed), the account posts go out as, and plain settings."""

    api_key: str
    account_id: str
    account_name: str
    settings: dict[str, Any]

    def __repr__(self) -> str:
        return f"ApiKeyConnection(account_id={self.account_id!r}, api_key=***)"


def connection_provider(provider: str) -> ConnectionProvider:
    """The connection serving `provider` (`facebook`/`instagram` → `meta`); `InvalidRequest` for an unknown one."""
    if provider in CONNECTION_PROVIDERS:
        return provider
    if provider in CONNECTION_OF:
        return CONNECTION_OF[provider]
    raise InvalidRequest(f"Unknown channel provider {provider!r}; use one of {', '.join(CONNECTION_PROVIDERS)}.",
                         details={"field": "provider", "allowed": list(CONNECTION_PROVIDERS)})


def _hash_state(state: str) -> bytes:
    return hashlib.sha256(state.encode("utf-8")).digest()


def pkce_pair() -> tuple[str, str]:
    """A PKCE `code_verifier` (86 URL-safe characters) and its S256 `code_challenge`."""
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass
class Connections:
    """The connection flows and credentials of every workspace, over one pool."""

    pool: Pool
    settings: Settings
    keyring: Keyring
    oauth: Callable[[ConnectionProvider], OAuthProvider] | None = None
    """The OAuth flow of a provider; None: the provider's adapter (`shared.publishing.providers.oauth_for`)."""
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def redirect_uri(self, provider: ConnectionProvider) -> str:
        """The callback URL registered with the platform."""
        return f"{self.settings.public_url.rstrip('/')}/api/v1/channels/{provider}/callback"

    def _flow(self, provider: ConnectionProvider) -> OAuthProvider:
        if provider not in OAUTH_MODULES:
            raise InvalidRequest(f"{provider!r} is connected with an API key, not OAuth: POST its key and settings to "
                                 f"/api/v1/channels/{provider}/connect.", details={"field": "provider"})
        if self.oauth is not None:
            return self.oauth(provider)
        attribute, variable = _CLIENT_SETTINGS[provider]
        if not getattr(self.settings, attribute, None):
            raise Unprocessable(f"Connecting {provider} is not available on this deployment: {variable} is not "
                                "configured.", details={"provider": provider, "setting": variable})
        try:
            return oauth_for(provider, self.settings)
        except ImportError as exc:
            raise Unprocessable(f"Connecting {provider} is not available in this build.",
                                details={"provider": provider}) from exc

    def start(self, *, workspace_id: str, user_id: str, provider: ConnectionProvider) -> str:
        """The authorization URL for the marketer's browser; the state it carries is stored, single use."""
        flow = self._flow(provider)
        state = secrets.token_urlsafe(32)
        state_hash = _hash_state(state)
        verifier, challenge = pkce_pair() if flow.uses_pkce else (None, None)
        with as_service(self.pool) as conn:
            sealed = None if verifier is None else self.keyring.seal(
                verifier, Binding(workspace_id, state_hash.hex(), "code_verifier"))
            db.put_state(conn, state_hash=state_hash, workspace_id=workspace_id, user_id=user_id, provider=provider,
                         code_verifier=sealed, ttl_seconds=self.settings.oauth_state_seconds)
        return flow.authorization_url(state=state, redirect_uri=self.redirect_uri(provider), code_challenge=challenge)

    def callback(self, *, provider: ConnectionProvider, state: str, code: str | None,
                 error: str | None = None) -> db.ConnectionRow:
        """Consume `state`, exchange `code` and store the connection. A used, expired or foreign state, or a denial
        at the platform, is a 400 naming it (the state is spent either way); a state never issued a 404."""
        if provider not in OAUTH_MODULES:
            raise InvalidRequest(f"{provider!r} has no OAuth callback; it is connected with an API key.",
                                 details={"field": "provider"})
        state_hash = _hash_state(state)
        with as_service(self.pool) as conn:
            found = db.consume_state(conn, state_hash)
            replayed = found is None and db.state_was_used(conn, state_hash)
        if replayed:
            raise InvalidRequest("`state` was already used (each connection attempt is single use): start again "
                                 f"from POST /api/v1/channels/{provider}/connect.", details={"field": "state"})
        if found is None:
            raise NotFound("No connection attempt has this `state` (it was never issued, or is over a day old): "
                           f"start again from POST /api/v1/channels/{provider}/connect.", details={"field": "state"})
        if found["expired"]:
            raise InvalidRequest("`state` has expired (a connection must be approved within "
                                 f"{self.settings.oauth_state_seconds} s): start again.", details={"field": "state"})
        if found["provider"] != provider:
            raise InvalidRequest(f"`state` was issued for {found['provider']}, not {provider}: start again.",
                                 details={"field": "state"})
        if error is not None:
            raise InvalidRequest(f"{provider} did not grant access ({error}); start again to retry.",
                                 details={"field": "error", "value": error[:100]})
        if not code:
            raise InvalidRequest("The callback has no `code`.", details={"field": "code"})
        workspace_id = found["workspace_id"]
        verifier = None if found["code_verifier"] is None else self.keyring.open(
            found["code_verifier"], Binding(workspace_id, state_hash.hex(), "code_verifier"))
        flow = self._flow(provider)
        try:
            tokens = flow.exchange_code(code=code, redirect_uri=self.redirect_uri(provider), code_verifier=verifier)
        except PlatformError as exc:
            if exc.kind in ("retryable", "ambiguous"):
                raise UpstreamUnavailable(f"{provider} did not answer the code exchange ({exc.message}); start "
                                          "again.") from exc
            raise InvalidRequest(f"{provider} refused the authorization code: {exc.message}; start again.",
                                 details={"field": "code"}) from exc
        return self._store(workspace_id=workspace_id, user_id=found["user_id"], provider=provider, tokens=tokens)

    def connect_api_key(self, *, workspace_id: str, user_id: str, provider: ConnectionProvider,
                        connection: ApiKeyConnection) -> db.ConnectionRow:
        """Store an email or WhatsApp connection (its settings validated by the caller)."""
        if provider not in API_KEY_PROVIDERS:
            raise InvalidRequest(f"{provider!r} is connected by OAuth: POST /api/v1/channels/{provider}/connect "
                                 "without a body and follow `authorization_url`.", details={"field": "provider"})
        tokens = TokenSet(access_token=connection.api_key, refresh_token=None, expires_at=None,
                          account_id=connection.account_id, account_name=connection.account_name,
                          settings=connection.settings)
        return self._store(workspace_id=workspace_id, user_id=user_id, provider=provider, tokens=tokens)

    def _store(self, *, workspace_id: str, user_id: str, provider: ConnectionProvider,
               tokens: TokenSet) -> db.ConnectionRow:
        with as_service(self.pool) as conn:
            existing = db.lock_provider(conn, workspace_id, provider)
            connection_id = existing or str(uuid.uuid4())
            row = db.save_connection(
                conn, connection_id=connection_id, replace=existing is not None, workspace_id=workspace_id,
                provider=provider, account_id=tokens.account_id, account_name=tokens.account_name,
                scopes=list(tokens.scopes), settings=dict(tokens.settings),
                access_token=self._seal(tokens.access_token, workspace_id, connection_id, "access_token"),
                refresh_token=None if tokens.refresh_token is None else self._seal(
                    tokens.refresh_token, workspace_id, connection_id, "refresh_token"),
                expires_at=_utc(tokens.expires_at), connected_by=user_id)
            audit.record(conn, workspace_id=workspace_id, actor=user_id, action="channel.connected",
                         target_type="channel_connection", target_id=connection_id,
                         details={"provider": provider, "account_id": tokens.account_id[:200],
                                  "reconnected": existing is not None})
        log.info("channel connected: workspace=%s provider=%s connection=%s", workspace_id, provider, connection_id)
        return row

    def _seal(self, secret: str, workspace_id: str, connection_id: str, field: str) -> SealedSecret:
        return self.keyring.seal(secret, Binding(workspace_id, connection_id, field))

    def _open(self, sealed: Any, row: db.SealedConnection, field: str) -> str:
        return self.keyring.open(sealed, Binding(row["workspace_id"], row["id"], field))

    def _expiring(self, row: db.SealedConnection) -> bool:
        expires = row["expires_at"]
        margin = timedelta(seconds=self.settings.token_refresh_margin_seconds)
        return expires is not None and expires - margin <= self.clock()

    def credentials_for(self, workspace_id: str, provider: Provider | ConnectionProvider) -> Credentials:
        """The workspace's credentials for `provider` (`facebook`/`instagram` use the Meta connection), refreshed
        first when the access token expires within the margin.

        Raises `ChannelNotConnected` (no live connection, or one needing a reconnect, with the platform's
        reason) and `PlatformError` (retryable) when the platform could not refresh right now.
        """
        kind = connection_provider(provider)
        with as_service(self.pool) as conn:
            row = db.live_connection(conn, workspace_id, kind)
        row = self._usable(row, kind)
        if self._expiring(row):
            row = self._refresh(row)
        elif self.keyring.needs_rewrap(row["access_token"] or {}) or (
                row["refresh_token"] is not None and self.keyring.needs_rewrap(row["refresh_token"])):
            self._rewrap(row)
        return Credentials(connection_id=row["id"], workspace_id=row["workspace_id"], provider=kind,
                           account_id=row["account_id"], access_token=self._open(row["access_token"], row,
                                                                                 "access_token"),
                           settings=dict(row["settings"]))

    @staticmethod
    def _usable(row: db.SealedConnection | None, provider: ConnectionProvider) -> db.SealedConnection:
        if row is None or row["status"] == "revoked":
            raise ChannelNotConnected(f"The workspace has no {provider} connection; connect it with POST "
                                      f"/api/v1/channels/{provider}/connect.", provider=provider, status=None)
        if row["status"] != "connected":
            raise ChannelNotConnected(f"The {provider} connection needs to be reconnected: {row['status_reason']}",
                                      provider=provider, status=row["status"], reason=row["status_reason"],
                                      connection_id=row["id"])
        return row

    def _refresh(self, stale: db.SealedConnection) -> db.SealedConnection:
        """Refresh under the row lock; a concurrent refresher's result is used when it got there first."""
        provider = cast(ConnectionProvider, stale["provider"])
        revoked: PlatformError | None = None
        with as_service(self.pool) as conn:
            row = self._usable(db.lock_connection(conn, stale["id"]), provider)
            if not self._expiring(row):
                return row
            if row["refresh_token"] is None:
                if row["expires_at"] is not None and row["expires_at"] > self.clock():
                    return row
                revoked = PlatformError("the access token expired and the platform issued no refresh token",
                                        kind="reconnect", provider=provider)
            else:
                try:
                    tokens = self._flow(provider).refresh(self._open(row["refresh_token"], row, "refresh_token"))
                except PlatformError as exc:
                    if exc.kind != "reconnect":
                        raise
                    revoked = exc
                else:
                    access = self._seal(tokens.access_token, row["workspace_id"], row["id"], "access_token")
                    refresh = row["refresh_token"] if tokens.refresh_token is None else self._seal(
                        tokens.refresh_token, row["workspace_id"], row["id"], "refresh_token")
                    db.store_tokens(conn, row["id"], access_token=access, refresh_token=refresh,
                                    expires_at=_utc(tokens.expires_at), refreshed=True)
                    log.info("channel token refreshed: connection=%s provider=%s", row["id"], provider)
                    return db.SealedConnection(**{**row, "access_token": access, "refresh_token": refresh,
                                                  "expires_at": _utc(tokens.expires_at)})
            db.set_status(conn, row["id"], status="needs_reconnect", reason=revoked.message[:500],
                          from_statuses=("connected",))
        log.warning("channel needs reconnect: connection=%s provider=%s reason=%s", stale["id"], provider,
                    revoked.message[:200])
        raise ChannelNotConnected(f"The {provider} connection needs to be reconnected: {revoked.message}",
                                  provider=provider, status="needs_reconnect", reason=revoked.message[:500],
                                  connection_id=stale["id"])

    def _rewrap(self, stale: db.SealedConnection) -> None:
        """Re-wrap the connection's data keys under the active key (the ciphertexts stay as they are)."""
        with as_service(self.pool) as conn:
            row = db.lock_connection(conn, stale["id"])
            if row is None or row["access_token"] is None:
                return
            access = self.keyring.rewrap(row["access_token"], Binding(row["workspace_id"], row["id"], "access_token"))
            refresh = None if row["refresh_token"] is None else self.keyring.rewrap(
                row["refresh_token"], Binding(row["workspace_id"], row["id"], "refresh_token"))
            db.store_tokens(conn, row["id"], access_token=access, refresh_token=refresh,
                            expires_at=row["expires_at"], refreshed=False)

    def mark_needs_reconnect(self, connection_id: str, reason: str) -> bool:
        """The platform refused the connection's token (revoked, expired without refresh): mark it
        `needs_reconnect` with the platform's `reason`; False when it was not `connected` (already marked,
        disconnected, or unknown)."""
        with as_service(self.pool) as conn:
            row = db.set_status(conn, connection_id, status="needs_reconnect", reason=reason[:500],
                                from_statuses=("connected",))
        if row is not None:
            log.warning("channel needs reconnect: connection=%s provider=%s reason=%s", connection_id,
                        row["provider"], reason[:200])
        return row is not None

    def disconnect(self, *, workspace_id: str, connection_id: str, user_id: str) -> db.ConnectionRow:
        """Revoke the connection (its tokens are erased), audited; 404 when it is not the workspace's."""
        with as_service(self.pool) as conn:
            row = db.connection(conn, connection_id)
            if row is None or row["workspace_id"] != workspace_id:
                raise NotFound(f"Channel connection {connection_id} does not exist in this workspace.")
            revoked = db.revoke(conn, connection_id, reason="disconnected by a member")
            if revoked is None:
                return row
            audit.record(conn, workspace_id=workspace_id, actor=user_id, action="channel.disconnected",
                         target_type="channel_connection", target_id=connection_id,
                         details={"provider": row["provider"], "account_id": row["account_id"][:200]})
        return revoked


@lru_cache(maxsize=1)
def connections() -> Connections:
    """This instance's connections service: its own small pool and the deployment's keyring (built on first use)."""
    settings = get_settings()
    return Connections(pool=create_pool(settings.database_url, max_size=2), settings=settings,
                       keyring=Keyring.from_settings(settings))


def credentials_for(workspace_id: str, provider: Provider | ConnectionProvider) -> Credentials:
    """`Connections.credentials_for` of this instance's service (what the publishing engine calls)."""
    return connections().credentials_for(workspace_id, provider)


def mark_needs_reconnect(connection_id: str, reason: str) -> bool:
    """`Connections.mark_needs_reconnect` of this instance's service."""
    return connections().mark_needs_reconnect(connection_id, reason)
