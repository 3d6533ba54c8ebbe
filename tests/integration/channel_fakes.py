"""An OAuth provider fake (a real `OAuthProvider`, no network) and a connections world over real Postgres."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

from psycopg_pool import ConnectionPool

from shared.db.pool import connect
from shared.db.workspaces import ensure_workspace
from shared.publishing.connections import Connections
from shared.publishing.ports import ConnectionProvider, PlatformError, TokenSet
from shared.security.envelope import Keyring
from tests.integration.harness import make_settings


def key_spec(**keys: bytes) -> str:
    """`MUSE_ENCRYPTION_KEYS` for `keys`."""
    return ",".join(f"{kid}:{base64.b64encode(key).decode()}" for kid, key in keys.items())


@dataclass
class FakeOAuth:
    """A platform's OAuth endpoints in memory: codes it issued, refreshes it served, and a revoke switch."""

    provider: ConnectionProvider = "x"
    uses_pkce: bool = True
    lifetime: timedelta = timedelta(hours=2)
    refresh_delay_seconds: float = 0.0
    revoked_reason: str | None = None
    issued: dict[str, str | None] = field(default_factory=dict)
    """code → the PKCE challenge it was issued for."""
    exchanges: list[str | None] = field(default_factory=list)
    """The `code_verifier` each exchange was sent."""
    refreshes: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def authorization_url(self, *, state: str, redirect_uri: str, code_challenge: str | None) -> str:
        code = f"code-{uuid.uuid4().hex[:8]}"
        self.issued[code] = code_challenge
        query = {"state": state, "redirect_uri": redirect_uri, "code": code}
        if code_challenge:
            query |= {"code_challenge": code_challenge, "code_challenge_method": "S256"}
        return f"https://{self.provider}.oauth.test/authorize?{urlencode(query)}"

    def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str | None) -> TokenSet:
        self.exchanges.append(code_verifier)
        if code not in self.issued:
            raise PlatformError("invalid_grant: unknown code", kind="permanent", provider=self.provider, status=400)
        challenge = self.issued.pop(code)
        if challenge is not None:
            digest = hashlib.sha256((code_verifier or "").encode()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != challenge:
                raise PlatformError("invalid_grant: PKCE verification failed", kind="permanent",
                                    provider=self.provider, status=400)
        return self._tokens("first")

    def refresh(self, refresh_token: str) -> TokenSet:
        time.sleep(self.refresh_delay_seconds)
        with self.lock:
            self.refreshes.append(refresh_token)
            if self.revoked_reason is not None:
                raise PlatformError(self.revoked_reason, kind="reconnect", provider=self.provider, status=400)
            return self._tokens(f"r{len(self.refreshes)}")

    def _tokens(self, label: str) -> TokenSet:
        secret = os.urandom(12).hex()
        return TokenSet(access_token=f"AT-{label}-{secret}", refresh_token=f"RT-{label}-{secret}",
                        expires_at=datetime.now(UTC) + self.lifetime, account_id="acct-42", account_name="Acme",
                        scopes=("tweet.write",), settings={"handle": "@acme"})


def approve(url: str) -> tuple[str, str]:
    """What the platform sends the browser back with: (state, code)."""
    query = parse_qs(urlsplit(url).query)
    return query["state"][0], query["code"][0]


@dataclass
class ConnectionsWorld:
    """Connections over real Postgres with one fake platform per provider and a fixed key."""

    dsn: str
    pool: ConnectionPool
    key: bytes = field(default_factory=lambda: os.urandom(32))
    platforms: dict[str, FakeOAuth] = field(default_factory=dict)

    def service(self, keys: str | None = None, active: str | None = None, **settings: str) -> Connections:
        env = {"MUSE_ENCRYPTION_KEYS": keys or key_spec(k1=self.key), **settings}
        if active:
            env["MUSE_ENCRYPTION_KEY_ID"] = active
        configured = make_settings(self.dsn, **env)
        return Connections(pool=self.pool, settings=configured, keyring=Keyring.from_settings(configured),
                           oauth=self.platform)

    def platform(self, provider: ConnectionProvider) -> FakeOAuth:
        if provider not in self.platforms:
            self.platforms[provider] = FakeOAuth(provider=provider, uses_pkce=provider == "x")
        return self.platforms[provider]

    def workspace(self) -> tuple[str, str]:
        """A new workspace and its owner's user id."""
        user_id, slug = str(uuid.uuid4()), f"ch-{uuid.uuid4().hex[:10]}"
        with connect(self.dsn) as conn, conn.transaction():
            return ensure_workspace(conn, slug=slug, name=slug, user_id=user_id), user_id
