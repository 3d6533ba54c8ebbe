"""A campaign publishes to email, LinkedIn, X and Instagram through the platforms' SDKs against the emulators.

The channels are connected as a marketer connects them (LinkedIn, X and Meta by OAuth: the emulator's
authorize page approves when followed and the code is exchanged in the callback; email by its Resend key),
their tokens sealed in Postgres. The engine is the production publisher (`shared.publishing.wiring`): real
adapters, real connections; only the asset library and the clock are the test's (the library is another
part's, and the image is served on loopback for Meta to fetch). Each publication fires by its own delayed
message, a duplicate delivery of each changes nothing, and the campaign completes with the last one.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import flask
import httpx
import pytest
from psycopg_pool import ConnectionPool
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from infra.local.emulators import linkedin, meta, resend, x
from infra.local.emulators.config import EmulatorConfig
from infra.local.serve import RunningServer, serve_in_thread
from shared.db import outbox as outbox_db
from shared.db.pool import connect
from shared.publishing.connections import ApiKeyConnection, Connections
from shared.publishing.ports import Media
from shared.publishing.wiring import build_publisher
from shared.security.envelope import Keyring
from shared.settings import Settings
from shared.testing.fakes import RecordingQueue
from tests.integration.channel_fakes import key_spec
from tests.integration.harness import make_settings
from tests.integration.publishing_world import Clock, make_world

PUBLIC = "https://muse.example.in"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + bytes(range(256)) * 4 + b"\xff\xd9"
CHANNELS = ["email", "linkedin_post", "x_thread", "instagram_caption"]


@pytest.fixture(scope="module")
def platforms(migrated_dsn: str) -> Iterator[tuple[str, EmulatorConfig]]:
    """The four platforms' emulators under their local-stack prefixes, and an image for Meta to fetch."""
    config = EmulatorConfig(database_url=migrated_dsn)
    images = flask.Flask("images")

    @images.get("/<name>")
    def image(name: str) -> flask.Response:
        return flask.Response(JPEG, mimetype="image/jpeg")

    server: RunningServer = serve_in_thread(DispatcherMiddleware(flask.Flask("root"), {
        "/linkedin": linkedin.create_app(config), "/x": x.create_app(config), "/meta": meta.create_app(config),
        "/resend": resend.create_app(config), "/images": images}))
    try:
        yield server.url, config
    finally:
        server.stop()


@dataclasses.dataclass
class LoopbackImages:
    """The asset library's answer for a visual post: one JPEG, served on loopback."""

    base: str

    def pick(self, workspace_id: str, *, channel: str, text: str) -> str:
        return "asset-diwali-jpeg"

    def media(self, workspace_id: str, asset_id: str) -> Media:
        return Media(asset_id=asset_id, content_type="image/jpeg", data=JPEG, url=f"{self.base}/images/{asset_id}",
                     alt_text="A Diwali gift box")


def _settings(dsn: str, url: str, config: EmulatorConfig) -> Settings:
    return make_settings(
        dsn, MUSE_ENCRYPTION_KEYS=key_spec(k1=os.urandom(32)), MUSE_PUBLIC_URL=PUBLIC,
        LINKEDIN_API_URL=f"{url}/linkedin", LINKEDIN_OAUTH_URL=f"{url}/linkedin/oauth/v2",
        LINKEDIN_CLIENT_ID=config.linkedin_client_id, LINKEDIN_CLIENT_SECRET=config.linkedin_client_secret,
        X_API_URL=f"{url}/x", X_AUTHORIZE_URL=f"{url}/x/i/oauth2/authorize", X_CLIENT_ID=config.x_client_id,
        X_CLIENT_SECRET=config.x_client_secret, META_GRAPH_URL=f"{url}/meta", META_DIALOG_URL=f"{url}/meta",
        META_APP_ID=meta.LOCAL_APP_ID, META_APP_SECRET=meta.LOCAL_APP_SECRET, RESEND_API_URL=f"{url}/resend")


def _connect_oauth(connections: Connections, workspace_id: str, user_id: str, provider: str) -> None:
    """The marketer approves at the platform; its redirect lands on the callback with `state` and `code`."""
    url = connections.start(workspace_id=workspace_id, user_id=user_id, provider=provider)  # type: ignore[arg-type]
    approved = httpx.get(url, follow_redirects=False, timeout=10)
    assert approved.status_code in (302, 303), approved.text
    query = dict(httpx.URL(approved.headers["location"].split("#")[0]).params)
    connections.callback(provider=provider, state=query["state"], code=query.get("code"))  # type: ignore[arg-type]


def _posted(url: str, prefix: str) -> list[dict[str, object]]:
    return list(httpx.get(f"{url}/{prefix}/__emu/posts").json()["posts"])


def test_a_campaign_publishes_to_email_linkedin_x_and_instagram(
        pool: ConnectionPool, migrated_dsn: str, platforms: tuple[str, EmulatorConfig]) -> None:
    url, config = platforms
    settings = _settings(migrated_dsn, url, config)
    clock = Clock(now=datetime.now(UTC))
    queue = RecordingQueue()
    world = make_world(pool, migrated_dsn, CHANNELS, queue=queue, clock=clock, tag=uuid.uuid4().hex[:8])
    publisher = dataclasses.replace(build_publisher(settings, pool, queue=queue), clock=clock,
                                    assets=LoopbackImages(url))
    connections = Connections(pool=pool, settings=settings, keyring=Keyring.from_settings(settings))
    user_id = str(uuid.uuid4())
    for provider in ("linkedin", "x", "meta"):
        _connect_oauth(connections, world.workspace_id, user_id, provider)
    tag = uuid.uuid4().hex[:8]
    connections.connect_api_key(workspace_id=world.workspace_id, user_id=user_id, provider="email",
                                connection=ApiKeyConnection(api_key=f"re_test_{tag}", account_id="news@acme.in",
                                                            account_name="Acme", settings={
                                                                "recipients": [f"asha+{tag}@example.in"]}))
    before = {p: len(_posted(url, p)) for p in ("linkedin", "x", "meta", "resend")}

    summary = publisher.schedule(campaign_id=str(world.campaign_id), workspace_id=world.workspace_id,
                                 draft_keys=CHANNELS, brief={"title": "Diwali"}, workspace_settings={})
    assert summary["pending"] == 5, summary
    rows = {r["provider"]: r for r in world.rows()}
    assert sorted(rows) == ["email", "facebook", "instagram", "linkedin", "x"]
    for provider in ("email", "linkedin", "x", "instagram", "facebook"):
        [message] = [m for f, m, _ in queue.published if f == "publish" and m.publication_id == rows[provider]["id"]]
        clock.now = max(clock.now, rows[provider]["scheduled_at"])
        fired = publisher.fire(message)
        assert fired["status"] == "published", (provider, fired)
        assert publisher.fire(message)["status"] == "duplicate"

    published = {r["provider"]: r for r in world.rows()}
    assert {p: r["status"] for p, r in published.items()} == dict.fromkeys(published, "published")
    assert all(r["external_id"] and r["url"] for r in published.values())
    assert len(published["x"]["parts"]) == 2
    after = {p: len(_posted(url, p)) for p in ("linkedin", "x", "meta", "resend")}
    assert {p: after[p] - before[p] for p in after} == {"linkedin": 1, "x": 2, "meta": 2, "resend": 1}
    assert world.campaign() == {"status": "completed", "current_step": None}
    for provider, row in sorted(published.items()):
        print(f"{provider}: {row['url']}")


def _fault(url: str, prefix: str, **fault: object) -> None:
    httpx.post(f"{url}/{prefix}/__emu/faults", json=fault, timeout=10).raise_for_status()


def test_platform_faults_through_the_real_adapters(
        pool: ConnectionPool, migrated_dsn: str, platforms: tuple[str, EmulatorConfig]) -> None:
    """At the emulators: a LinkedIn create that times out after posting is reconciled (one post); X's 429 is
    retried by a later message; an expired X token is refreshed and the post goes out; a revoked LinkedIn
    token makes the channel `needs_reconnect` and the campaign wait for it, until connecting LinkedIn again
    re-queues the publication, which then goes out."""
    url, config = platforms
    settings = _settings(migrated_dsn, url, config).model_copy(update={"publish_timeout_seconds": 1.0})
    clock = Clock(now=datetime.now(UTC))
    queue = RecordingQueue()
    world = make_world(pool, migrated_dsn, ["linkedin_post", "x_thread"], queue=queue, clock=clock,
                       tag=uuid.uuid4().hex[:8])
    publisher = dataclasses.replace(build_publisher(settings, pool, queue=queue), clock=clock,
                                    assets=LoopbackImages(url))
    connections = Connections(pool=pool, settings=settings, keyring=Keyring.from_settings(settings))
    user_id = str(uuid.uuid4())
    for provider in ("linkedin", "x"):
        _connect_oauth(connections, world.workspace_id, user_id, provider)
    accounts = {"x": connections.credentials_for(world.workspace_id, "x").account_id}
    publisher.schedule(campaign_id=str(world.campaign_id), workspace_id=world.workspace_id,
                       draft_keys=["linkedin_post", "x_thread"], brief={"title": "Diwali"}, workspace_settings={})

    def fire(provider: str, purpose: str = "fire") -> dict[str, object]:
        row = world.row(provider)
        clock.now = max(clock.now, row["next_attempt_at"])
        message = [m for f, m, _ in queue.published if f == "publish" and m.publication_id == row["id"]
                   and m.purpose == purpose][-1]
        return publisher.fire(message)

    try:
        linkedin_before = len(_posted(url, "linkedin"))
        _fault(url, "linkedin", route="POST /rest/posts", mode="timeout_after_create", times=1, hold_seconds=2)
        assert fire("linkedin")["status"] == "reconciling"
        assert fire("linkedin", "watch")["status"] == "published"
        assert len(_posted(url, "linkedin")) == linkedin_before + 1

        _fault(url, "x", route="POST /2/tweets", mode="429", times=1, retry_after_seconds=60)
        assert fire("x")["status"] == "retrying"
        _fault(url, "x", mode="token_expired", account_id=accounts["x"])
        assert fire("x")["status"] == "published"
        assert world.row("x")["attempts"] == 2 and len(world.row("x")["parts"]) == 2
        assert world.campaign()["status"] == "completed"

        again = make_world(pool, migrated_dsn, ["linkedin_post"], queue=queue, clock=clock, tag=uuid.uuid4().hex[:8])
        with pool.connection() as conn:
            conn.execute("UPDATE public.campaigns SET workspace_id = %s WHERE id = %s",
                         (world.workspace_id, again.campaign_id))
            conn.execute("UPDATE public.artifacts SET workspace_id = %s WHERE campaign_id = %s",
                         (world.workspace_id, again.campaign_id))
        again.workspace_id = world.workspace_id
        publisher.schedule(campaign_id=str(again.campaign_id), workspace_id=world.workspace_id,
                           draft_keys=["linkedin_post"], brief={"title": "Diwali"}, workspace_settings={})
        _fault(url, "linkedin", mode="token_revoked")
        row = again.row("linkedin")
        clock.now = max(clock.now, row["next_attempt_at"])
        [message] = [m for f, m, _ in queue.published if f == "publish" and m.publication_id == row["id"]]
        result = publisher.fire(message)
        assert (result["status"], result.get("reason")) == ("waiting", "needs_reconnect"), result
        [channel] = [c for c in connections_list(migrated_dsn, world.workspace_id) if c["provider"] == "linkedin"]
        assert channel["status"] == "needs_reconnect"
        assert again.campaign() == {"status": "running", "current_step": "publishing"}
        assert again.row("linkedin")["error"].startswith("linkedin needs reconnect: ")

        _connect_oauth(connections, world.workspace_id, user_id, "linkedin")
        requeued = again.row("linkedin")
        assert (requeued["status"], requeued["version"]) == ("scheduled", 2)
        publisher.outbox.publish(outbox_db.unpublished_for(pool, again.campaign_id))
        clock.now = max(clock.now, requeued["next_attempt_at"])
        [message] = [m for f, m, _ in queue.published if f == "publish" and m.publication_id == requeued["id"]
                     and m.version == 2]
        assert publisher.fire(message)["status"] == "published"
        assert again.campaign() == {"status": "completed", "current_step": None}
    finally:
        for prefix in ("linkedin", "x"):
            httpx.delete(f"{url}/{prefix}/__emu/faults", timeout=10)


def connections_list(dsn: str, workspace_id: str) -> list[dict[str, object]]:
    """The workspace's channel connections (status and reason), as the channels listing reads them."""
    with connect(dsn) as conn:
        return conn.execute("SELECT provider, status, status_reason FROM public.channel_connections "
                            "WHERE workspace_id = %s", (workspace_id,)).fetchall()
