"""A publishing world over real Postgres: a paid campaign with released artifacts, and fakes at the engine's seam.

The fakes are real implementations of the engine's protocols (no mocks): a platform that keeps its posts
and can be told to answer 429, refuse a token, time out after creating, or die mid-call; a connections
store with tokens that can expire or be revoked; an asset library; a clock the test moves.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from shared.auth import Principal
from shared.db.pool import connect
from shared.db.workspaces import ensure_workspace
from shared.publishing.engine import NotConnected, Publisher, PublishPolicy
from shared.publishing.messages import PublishMessage
from shared.publishing.ports import (
    ConnectionProvider,
    Credentials,
    Media,
    PlatformError,
    PostRequest,
    PostResult,
    Provider,
)
from shared.testing.fakes import RecordingQueue

CONTENT: dict[str, dict[str, Any]] = {
    "linkedin_post": {"text": "Diwali gift boxes are here. Order by Friday."},
    "x_thread": {"posts": ["Diwali gift boxes are here.", "Order by Friday."]},
    "instagram_caption": {"caption": "Light up Diwali", "hashtags": ["#diwali", "#gifts"]},
    "email": {"subject": "Diwali boxes", "preheader": "Order by Friday", "body": "Hello!", "cta": "Order"},
    "ad": {"headline": "Diwali boxes", "description": "Order by Friday"},
}


def tagged(content: dict[str, Any], tag: str) -> dict[str, Any]:
    """`content` with `tag` at the end of its text (of each post of a thread): platforms refuse duplicates."""
    if not tag:
        return content
    key = next(k for k in ("text", "posts", "caption", "subject", "headline") if k in content)
    value = content[key]
    return content | {key: [f"{part} {tag}" for part in value] if isinstance(value, list) else f"{value} {tag}"}


class Crash(BaseException):
    """The process dies mid-call (nothing after the call runs)."""


@dataclass
class Clock:
    """The engine's clock, moved by the test."""

    now: datetime = field(default_factory=lambda: datetime(2026, 12, 1, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


Behaviour = str | PlatformError
"""What the platform does with the next create call: "ok", "ambiguous_after_create", "crash_after_create",
"ambiguous_before_create", or raises the given error without creating."""


@dataclass
class FakePlatform:
    """One platform's posts and the tokens it accepts."""

    provider: Provider
    clock: Clock
    tokens: set[str] = field(default_factory=set)
    script: list[Behaviour] = field(default_factory=list)
    posts: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0
    lookups: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, credentials: Credentials, post: PostRequest) -> PostResult:
        with self.lock:
            self.calls += 1
            if credentials.access_token not in self.tokens:
                raise PlatformError("The access token expired (401)", kind="reconnect", provider=self.provider,
                                    status=401)
            behaviour = self.script.pop(0) if self.script else "ok"
            if isinstance(behaviour, PlatformError):
                raise behaviour
            if behaviour == "ambiguous_before_create":
                raise PlatformError("read timeout", kind="ambiguous", provider=self.provider)
            made = self._create(post)
        if behaviour == "ambiguous_after_create":
            raise PlatformError("read timeout after the post was created", kind="ambiguous", provider=self.provider)
        if behaviour == "crash_after_create":
            raise Crash()
        return made

    def _create(self, post: PostRequest) -> PostResult:
        external = f"{self.provider}-{len(self.posts) + 1}"
        self.posts.append({"id": external, "hash": post.content_hash, "at": self.clock(),
                           "media": [m.asset_id for m in post.media], "publication": post.publication_id})
        return PostResult(external_id=external, url=f"https://{self.provider}.test/p/{external}",
                          published_at=self.clock())

    def reconcile(self, credentials: Credentials, post: PostRequest, since: datetime) -> PostResult | None:
        self.lookups += 1
        for made in self.posts:
            if made["hash"] == post.content_hash and made["at"] >= since:
                return PostResult(external_id=made["id"], url=f"https://{self.provider}.test/p/{made['id']}",
                                  published_at=made["at"])
        return None


@dataclass
class FakeConnections:
    """Connections of the test's workspaces: a token per provider, a refresh that may be revoked."""

    platforms: dict[Provider, FakePlatform]
    connected: dict[ConnectionProvider, Credentials] = field(default_factory=dict)
    needs_reconnect: dict[ConnectionProvider, str] = field(default_factory=dict)
    revoked: set[ConnectionProvider] = field(default_factory=set)
    """Refreshing these fails (the platform revoked the grant)."""
    marked: list[tuple[str, str]] = field(default_factory=list)
    refreshes: int = 0

    def connect(self, workspace_id: str, provider: ConnectionProvider, *, token: str = "token-1",
                settings: dict[str, Any] | None = None, account_id: str = "acct-1") -> None:
        self.connected[provider] = Credentials(connection_id=f"conn-{provider}", workspace_id=workspace_id,
                                               provider=provider, account_id=account_id, access_token=token,
                                               settings=settings or {})
        self.needs_reconnect.pop(provider, None)
        for platform in self.platforms.values():
            if _connection_of(platform.provider) == provider:
                platform.tokens.add(token)

    def credentials_for(self, workspace_id: str, provider: ConnectionProvider) -> Credentials:
        if provider in self.needs_reconnect:
            raise PlatformError(self.needs_reconnect[provider], kind="reconnect", provider=provider)
        if provider not in self.connected:
            raise NotConnected(f"The workspace has no {provider} connection; connect it with POST "
                               f"/api/v1/channels/{provider}/connect.")
        return self.connected[provider]

    def refreshed(self, credentials: Credentials) -> Credentials | None:
        self.refreshes += 1
        if credentials.provider in self.revoked:
            return None
        fresh = f"token-{self.refreshes + 1}"
        self.connect(credentials.workspace_id, credentials.provider, token=fresh, settings=credentials.settings,
                     account_id=credentials.account_id)
        return self.connected[credentials.provider]

    def mark_needs_reconnect(self, connection_id: str, reason: str) -> None:
        self.marked.append((connection_id, reason))
        provider = connection_id.removeprefix("conn-")
        self.needs_reconnect[provider] = reason  # type: ignore[index]


def _connection_of(provider: Provider) -> ConnectionProvider:
    from shared.publishing.ports import CONNECTION_OF

    return CONNECTION_OF[provider]


@dataclass
class FakeAssets:
    """An asset library that always has one fitting image."""

    picked: list[tuple[str, str]] = field(default_factory=list)

    def pick(self, workspace_id: str, *, channel: str, text: str) -> str:
        self.picked.append((channel, text))
        return "asset-diwali-1"

    def media(self, workspace_id: str, asset_id: str) -> Media:
        return Media(asset_id=asset_id, content_type="image/png", data=b"\x89PNG", url=f"https://cdn.test/{asset_id}")


@dataclass
class World:
    """A workspace, a paid campaign at step `publishing` with released artifacts, and the engine over fakes."""

    pool: ConnectionPool
    dsn: str
    clock: Clock
    queue: RecordingQueue
    platforms: dict[Provider, FakePlatform]
    connections: FakeConnections
    assets: FakeAssets
    publisher: Publisher
    workspace_id: str
    campaign_id: uuid.UUID
    principal: Principal

    def schedule(self, channels: list[str], **brief: Any) -> dict[str, Any]:
        """What execution does for these drafts."""
        return self.publisher.schedule(campaign_id=str(self.campaign_id), workspace_id=self.workspace_id,
                                       draft_keys=channels, brief={"title": "Diwali", **brief},
                                       workspace_settings={})

    def messages(self) -> list[tuple[PublishMessage, datetime | None]]:
        """Publish messages sent so far, with their `not_before`."""
        return [(m, self.not_before[m.dedup_id()] if m.dedup_id() in self.not_before else None)
                for f, m, _ in self.queue.published if f == "publish"]

    @property
    def not_before(self) -> dict[str, datetime | None]:
        with connect(self.dsn) as conn:
            rows = conn.execute("SELECT dedup_id, not_before FROM public.step_outbox WHERE function = 'publish' "
                                "AND campaign_id = %s", (self.campaign_id,)).fetchall()
        return {r["dedup_id"]: r["not_before"] for r in rows}

    def last(self, purpose: str = "fire") -> PublishMessage:
        """The latest publish message of a purpose."""
        return [m for m, _ in self.messages() if m.purpose == purpose][-1]

    def rows(self) -> list[dict[str, Any]]:
        """The campaign's publications."""
        with connect(self.dsn) as conn:
            return conn.execute("SELECT * FROM public.publications WHERE campaign_id = %s ORDER BY provider",
                                (self.campaign_id,)).fetchall()

    def row(self, provider: str) -> dict[str, Any]:
        """One provider's publication."""
        [found] = [r for r in self.rows() if r["provider"] == provider]
        return found

    def campaign(self) -> dict[str, Any]:
        """The campaign row."""
        with connect(self.dsn) as conn:
            return conn.execute("SELECT status, current_step FROM public.campaigns WHERE id = %s",
                                (self.campaign_id,)).fetchone()

    def events(self) -> list[str]:
        """The campaign's event types, in order."""
        with connect(self.dsn) as conn:
            rows = conn.execute("SELECT type FROM public.campaign_events WHERE campaign_id = %s ORDER BY id",
                                (self.campaign_id,)).fetchall()
        return [r["type"] for r in rows]


def make_world(pool: ConnectionPool, dsn: str, channels: list[str], *,
               policy: PublishPolicy | None = None, queue: RecordingQueue | None = None,
               adapters: Callable[[Provider], Any] | None = None, clock: Clock | None = None,
               tag: str = "") -> World:
    """A paid campaign with `channels` released (their copy ending with `tag`), and a publisher over fakes."""
    user_id = str(uuid.uuid4())
    campaign_id = uuid.uuid4()
    with connect(dsn) as conn, conn.transaction():
        workspace_id = ensure_workspace(conn, slug=f"pub-{uuid.uuid4().hex[:10]}", name="Pub", user_id=user_id)
        conn.execute("INSERT INTO public.campaigns (id, workspace_id, created_by, kind, brief, status, current_step, "
                     "amount_due_paise) VALUES (%s, %s, %s, 'move', %s, 'running', 'publishing', 10000)",
                     (campaign_id, workspace_id, user_id, Jsonb({"title": "Diwali", "objective": "Sell"})))
        conn.execute("INSERT INTO public.payments (merchant_order_id, campaign_id, workspace_id, attempt, "
                     "amount_paise, state) VALUES (%s, %s, %s, 1, 10000, 'completed')",
                     (f"MO-{uuid.uuid4().hex[:12]}", campaign_id, workspace_id))
        for channel in channels:
            conn.execute("INSERT INTO public.artifacts (campaign_id, workspace_id, channel, variant, content, model, "
                         "status, published_at) VALUES (%s, %s, %s, 'a', %s, 'test', 'published', now())",
                         (campaign_id, workspace_id, channel, Jsonb(tagged(CONTENT[channel], tag))))
    clock = clock or Clock()
    platforms: dict[Provider, FakePlatform] = {p: FakePlatform(p, clock) for p in
                                               ("linkedin", "x", "instagram", "facebook", "email", "whatsapp")}
    connections = FakeConnections(platforms)
    assets = FakeAssets()
    queue = queue or RecordingQueue()
    publisher = Publisher(pool=pool, adapters=adapters or platforms.__getitem__, credentials=connections,
                          assets=assets, clock=clock, queue=queue,
                          policy=policy or PublishPolicy(backoff_seconds=60, call_timeout_seconds=120,
                                                         settle_seconds=10, max_attempts=3))
    claims = {"sub": user_id, "aud": "authenticated", "role": "authenticated",
              "app_metadata": {"workspace_id": workspace_id}}
    return World(pool=pool, dsn=dsn, clock=clock, queue=queue, platforms=platforms, connections=connections,
                 assets=assets, publisher=publisher, workspace_id=workspace_id, campaign_id=campaign_id,
                 principal=Principal(user_id=uuid.UUID(user_id), claims=claims))
