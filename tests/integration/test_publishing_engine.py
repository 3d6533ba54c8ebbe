"""The publishing engine over real Postgres with fakes at its seam: exactly once, on schedule, and what waits.

Each test schedules a paid campaign's released copy the way execution does, then delivers the `publish`
messages the engine wrote to its outbox (read back from the recording queue), moving the engine's clock.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from infra.local.emulators.config import DEV_QSTASH_CURRENT_SIGNING_KEY
from infra.local.emulators.qstash import sign
from shared.api.publications import PublicationsApi
from shared.api.service import Api
from shared.db import outbox as outbox_db
from shared.db.pool import connect
from shared.errors import Conflict, InvalidRequest, NotFound, UpstreamUnavailable
from shared.knowledge.models import IngestMessage
from shared.outbox import Outbox
from shared.publishing.function import PublishFunction
from shared.publishing.messages import PublishMessage
from shared.publishing.ports import Credentials, PlatformError, PostRequest, PostResult
from shared.queue import qstash_receiver
from shared.testing.fakes import RecordingQueue
from tests.integration.harness import make_settings
from tests.integration.publishing_world import Crash, World, make_world

IST = ZoneInfo("Asia/Kolkata")


def _world(pool: ConnectionPool, dsn: str, channels: list[str], *connected: str) -> World:
    world = make_world(pool, dsn, channels)
    for provider in connected:
        settings = {"instagram_account_id": "ig-1"} if provider == "meta" else {}
        world.connections.connect(world.workspace_id, provider, settings=settings)  # type: ignore[arg-type]
    return world


def _due(world: World, provider: str) -> PublishMessage:
    """Move the clock to the provider's time and return the message that fires it."""
    row = world.row(provider)
    world.clock.now = max(world.clock.now, row["next_attempt_at"])
    return [m for m, _ in world.messages() if m.publication_id == row["id"] and m.purpose == "fire"][-1]


def test_schedule_targets_slots_assets_and_messages(pool: ConnectionPool, migrated_dsn: str) -> None:
    world = _world(pool, migrated_dsn, ["linkedin_post", "x_thread", "instagram_caption", "email", "ad"],
                   "linkedin", "x", "meta")
    summary = world.schedule(["linkedin_post", "x_thread", "instagram_caption", "email", "ad"])
    rows = {r["provider"]: r for r in world.rows()}
    assert sorted(rows) == ["email", "facebook", "instagram", "linkedin", "x"]
    assert summary["pending"] == 4
    # 2026-12-01 12:00 UTC is Tuesday 17:30 IST: LinkedIn's next slot is Wednesday 09:30, X's Wednesday 12:00.
    assert rows["linkedin"]["scheduled_at"].astimezone(IST) == datetime(2026, 12, 2, 9, 30, tzinfo=IST)
    assert rows["x"]["scheduled_at"].astimezone(IST) == datetime(2026, 12, 2, 12, 0, tzinfo=IST)
    assert rows["instagram"]["scheduled_at"].astimezone(IST) == datetime(2026, 12, 1, 19, 0, tzinfo=IST)
    assert (rows["instagram"]["asset_id"], rows["facebook"]["asset_id"]) == ("asset-diwali-1", "asset-diwali-1")
    assert (rows["email"]["status"], rows["email"]["waiting_reason"]) == ("waiting", "not_connected")
    assert "connect it with POST /api/v1/channels/email/connect" in rows["email"]["error"]
    sent = world.messages()
    assert len(sent) == 4
    assert {m.publication_id: at for m, at in sent} == {r["id"]: r["scheduled_at"] for r in rows.values()
                                                        if r["status"] == "scheduled"}
    assert world.schedule(["linkedin_post", "x_thread", "instagram_caption", "email", "ad"])["pending"] == 4
    assert len(world.messages()) == 4 and len(world.rows()) == 5


def test_a_start_date_in_the_brief_sets_the_day(pool: ConnectionPool, migrated_dsn: str) -> None:
    world = _world(pool, migrated_dsn, ["linkedin_post"], "linkedin")
    world.schedule(["linkedin_post"], start_date="2026-12-10")
    assert world.row("linkedin")["scheduled_at"].astimezone(IST) == datetime(2026, 12, 10, 9, 30, tzinfo=IST)


def test_fires_at_its_time_once_and_completes_the_campaign(pool: ConnectionPool, migrated_dsn: str) -> None:
    world = _world(pool, migrated_dsn, ["linkedin_post", "x_thread"], "linkedin", "x")
    world.schedule(["linkedin_post", "x_thread"])
    message = [m for m, _ in world.messages() if m.publication_id == world.row("linkedin")["id"]][0]
    assert world.publisher.fire(message)["status"] == "early"
    assert world.platforms["linkedin"].posts == []
    message = _due(world, "linkedin")
    result = world.publisher.fire(message)
    assert result["status"] == "published" and result["campaign_completed"] is False
    assert world.publisher.fire(message)["status"] == "duplicate"
    assert len(world.platforms["linkedin"].posts) == 1
    row = world.row("linkedin")
    assert (row["status"], row["external_id"], row["url"]) == ("published", "linkedin-1",
                                                               "https://linkedin.test/p/linkedin-1")
    assert world.campaign()["status"] == "running"
    assert world.publisher.fire(_due(world, "x"))["campaign_completed"] is True
    assert world.campaign() == {"status": "completed", "current_step": None}
    assert world.events()[-1] == "campaign.completed"


def test_duplicate_qstash_deliveries_make_one_post(pool: ConnectionPool, migrated_dsn: str) -> None:
    world = _world(pool, migrated_dsn, ["linkedin_post"], "linkedin")
    world.schedule(["linkedin_post"])
    settings = make_settings(migrated_dsn)
    function = PublishFunction(publisher=world.publisher, receiver=qstash_receiver(settings),
                               url=settings.function_url("publish"), tracer=None, project="muse-test",
                               trace_flush_seconds=1.0)
    body = json.dumps(_due(world, "linkedin").model_dump(mode="json")).encode()
    signature = sign(body, settings.function_url("publish"), DEV_QSTASH_CURRENT_SIGNING_KEY)
    replies: list[dict[str, object]] = []
    threads = [threading.Thread(target=lambda: replies.append(function.handle(body, signature).body))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(world.platforms["linkedin"].posts) == 1
    assert sorted(r["status"] for r in replies).count("published") == 1
    assert world.row("linkedin")["attempts"] == 1
    with pytest.raises(Exception, match="signature"):
        function.handle(body, sign(body, "https://elsewhere.test/", DEV_QSTASH_CURRENT_SIGNING_KEY))


def test_crash_after_sending_is_reconciled_without_a_second_post(pool: ConnectionPool, migrated_dsn: str) -> None:
    world = _world(pool, migrated_dsn, ["linkedin_post"], "linkedin")
    world.schedule(["linkedin_post"])
    world.platforms["linkedin"].script = ["crash_after_create"]
    with pytest.raises(Crash):
        world.publisher.fire(_due(world, "linkedin"))
    row = world.row("linkedin")
    assert row["status"] == "sending" and row["content_hash"] and row["attempt_started_at"] == world.clock.now
    watch = world.last("watch")
    assert world.publisher.fire(watch)["status"] == "in_flight"
    world.clock.advance(121)
    assert world.publisher.fire(watch)["status"] == "published"
    assert world.publisher.fire(watch)["status"] == "duplicate"
    assert len(world.platforms["linkedin"].posts) == 1
    assert world.row("linkedin")["external_id"] == "linkedin-1"
    assert world.campaign()["status"] == "completed"


def test_ambiguous_outcome_reconciles_then_creates_once_then_unconfirmed(pool: ConnectionPool,
                                                                          migrated_dsn: str) -> None:
    world = _world(pool, migrated_dsn, ["linkedin_post", "x_thread"], "linkedin", "x")
    world.schedule(["linkedin_post", "x_thread"])
    world.platforms["linkedin"].script = ["ambiguous_after_create"]
    assert world.publisher.fire(_due(world, "linkedin"))["status"] == "reconciling"
    world.clock.advance(10)
    assert world.publisher.fire(world.last("watch"))["status"] == "published"
    assert len(world.platforms["linkedin"].posts) == 1

    world.platforms["x"].script = ["ambiguous_before_create", "ambiguous_before_create"]
    assert world.publisher.fire(_due(world, "x"))["status"] == "reconciling"
    world.clock.advance(10)
    assert world.publisher.fire(world.last("watch"))["status"] == "reconciling"
    assert world.platforms["x"].calls == 2 and world.row("x")["recreates"] == 1
    world.clock.advance(10)
    result = world.publisher.fire(world.last("watch"))
    assert result["status"] == "unconfirmed" and "check the account" in result["error"]
    assert world.platforms["x"].posts == [] and world.platforms["x"].calls == 2
    assert world.campaign()["status"] == "completed"


def test_429_is_retried_later_by_a_second_delayed_message(pool: ConnectionPool, migrated_dsn: str) -> None:
    world = _world(pool, migrated_dsn, ["x_thread"], "x")
    world.schedule(["x_thread"])
    world.platforms["x"].script = [PlatformError("Too Many Requests", kind="retryable", provider="x", status=429,
                                                 retry_after_seconds=900)]
    first = _due(world, "x")
    fired_at = world.clock.now
    assert world.publisher.fire(first)["status"] == "retrying"
    row = world.row("x")
    assert (row["status"], row["attempts"], row["error"]) == ("scheduled", 1, "Too Many Requests")
    second = world.last("fire")
    assert second.attempt == 1 and second != first
    assert world.not_before[second.dedup_id()] == fired_at + timedelta(seconds=900)
    assert world.publisher.fire(first)["status"] == "duplicate"
    world.clock.advance(900)
    assert world.publisher.fire(second)["status"] == "published"
    assert len(world.platforms["x"].posts) == 1 and world.platforms["x"].calls == 2


def test_retryable_failures_give_up_after_max_attempts(pool: ConnectionPool, migrated_dsn: str) -> None:
    world = _world(pool, migrated_dsn, ["x_thread"], "x")
    world.schedule(["x_thread"])
    world.platforms["x"].script = [PlatformError("503 Service Unavailable", kind="retryable", provider="x",
                                                 status=503) for _ in range(3)]
    for _ in range(3):
        world.clock.now = max(world.clock.now, world.row("x")["next_attempt_at"])
        result = world.publisher.fire(world.last("fire"))
    assert result["status"] == "failed" and "Gave up after 3 attempts" in result["error"]
    assert world.row("x")["status"] == "failed"


def test_expired_token_is_refreshed_once_and_the_post_goes_out(pool: ConnectionPool, migrated_dsn: str) -> None:
    world = _world(pool, migrated_dsn, ["linkedin_post"], "linkedin")
    world.schedule(["linkedin_post"])
    world.platforms["linkedin"].tokens.clear()
    assert world.publisher.fire(_due(world, "linkedin"))["status"] == "published"
    assert world.connections.refreshes == 1 and len(world.platforms["linkedin"].posts) == 1


def test_revoked_token_waits_visibly_and_a_reconnect_requeues(pool: ConnectionPool, migrated_dsn: str) -> None:
    world = _world(pool, migrated_dsn, ["linkedin_post"], "linkedin")
    world.schedule(["linkedin_post"])
    world.platforms["linkedin"].tokens.clear()
    world.connections.revoked.add("linkedin")
    result = world.publisher.fire(_due(world, "linkedin"))
    assert result["status"] == "waiting" and result["reason"] == "needs_reconnect"
    assert world.connections.marked == [("conn-linkedin", "The access token expired (401)")]
    row = world.row("linkedin")
    assert (row["status"], row["error"]) == ("waiting", "linkedin needs reconnect: The access token expired (401)")
    assert world.campaign() == {"status": "running", "current_step": "publishing"}
    view = Api(settings=make_settings(migrated_dsn), pool=pool, queue=world.queue,
               phonepe_factory=lambda: None).get_campaign(world.principal, world.campaign_id)  # type: ignore[arg-type]
    assert view.waiting_for == ["waiting: linkedin needs reconnect: The access token expired (401)"]
    assert [(p.provider, p.status) for p in view.publications] == [("linkedin", "waiting")]

    world.connections.revoked.clear()
    world.connections.connect(world.workspace_id, "linkedin", token="token-new")
    sealed = Jsonb({"v": 1, "kid": "k1", "ct": "x"})
    with connect(migrated_dsn) as conn:
        connection_id = conn.execute(
            "INSERT INTO public.channel_connections (workspace_id, provider, status, status_reason, account_id, "
            "access_token) VALUES (%s, 'linkedin', 'needs_reconnect', 'revoked', 'org-1', %s) RETURNING id",
            (world.workspace_id, sealed)).fetchone()["id"]
        assert world.row("linkedin")["status"] == "waiting"
        conn.execute("UPDATE public.channel_connections SET status = 'connected', status_reason = NULL "
                     "WHERE id = %s", (connection_id,))
    row = world.row("linkedin")
    assert (row["status"], row["version"], row["error"]) == ("scheduled", 2, None)
    world.publisher.outbox.publish(outbox_db.unpublished_for(pool, world.campaign_id))
    message = world.last("fire")
    assert message.version == 2
    world.clock.now = row["next_attempt_at"]
    assert world.publisher.fire(message)["status"] == "published"
    assert world.campaign()["status"] == "completed"


def test_reschedule_moves_the_time_and_the_old_message_does_nothing(pool: ConnectionPool, migrated_dsn: str) -> None:
    world = _world(pool, migrated_dsn, ["linkedin_post", "x_thread"], "linkedin", "x")
    world.schedule(["linkedin_post", "x_thread"])
    api = PublicationsApi(publisher=world.publisher)
    old = _due(world, "linkedin")
    later = world.clock.now + timedelta(hours=2)
    view = api.reschedule(world.principal, world.row("linkedin")["id"], later)
    assert (view.status, view.scheduled_at) == ("scheduled", later)
    assert world.publisher.fire(old)["status"] == "stale"
    new = world.last("fire")
    assert new.version == 2 and world.not_before[new.dedup_id()] == later
    world.clock.now = later
    assert world.publisher.fire(new)["status"] == "published"
    with pytest.raises(Conflict, match="is published"):
        api.reschedule(world.principal, world.row("linkedin")["id"], later + timedelta(hours=1))
    with pytest.raises(InvalidRequest, match="scheduled_at"):
        api.reschedule(world.principal, world.row("x")["id"], world.clock.now - timedelta(minutes=1))

    x_message = _due(world, "x")
    cancelled = api.cancel(world.principal, world.row("x")["id"])
    assert cancelled.status == "cancelled"
    assert world.publisher.fire(x_message)["status"] == "stale"
    assert world.platforms["x"].calls == 0
    assert world.campaign()["status"] == "completed"
    with pytest.raises(Conflict):
        api.cancel(world.principal, world.row("x")["id"])
    with connect(migrated_dsn) as conn:
        logged = conn.execute("SELECT action, target_id, actor FROM public.audit_log WHERE workspace_id = %s "
                              "ORDER BY id", (world.workspace_id,)).fetchall()
    assert [(r["action"], r["target_id"]) for r in logged] == [
        ("publication.rescheduled", str(world.row("linkedin")["id"])),
        ("publication.cancelled", str(world.row("x")["id"]))]
    assert {r["actor"] for r in logged} == {str(world.principal.user_id)}


def test_another_workspace_cannot_touch_a_publication(pool: ConnectionPool, migrated_dsn: str) -> None:
    world = _world(pool, migrated_dsn, ["linkedin_post"], "linkedin")
    other = _world(pool, migrated_dsn, ["linkedin_post"], "linkedin")
    world.schedule(["linkedin_post"])
    api = PublicationsApi(publisher=other.publisher)
    with pytest.raises(NotFound):
        api.cancel(other.principal, world.row("linkedin")["id"])
    assert world.row("linkedin")["status"] == "scheduled"


def test_a_campaign_with_nothing_connected_waits_for_nothing(pool: ConnectionPool, migrated_dsn: str) -> None:
    world = _world(pool, migrated_dsn, ["linkedin_post", "email"])
    assert world.schedule(["linkedin_post", "email"])["pending"] == 0
    assert {(r["provider"], r["status"]) for r in world.rows()} == {("linkedin", "waiting"), ("email", "waiting")}
    assert world.messages() == []
    assert datetime.now(UTC) > world.clock.now



@dataclass
class ThreadPlatform:
    """X as the engine sees it for a thread: one post per part, each reported through `on_part`."""

    provider: str = "x"
    posted: list[str] = field(default_factory=list)
    fail_at_part: int | None = None

    def publish(self, credentials: Credentials, post: PostRequest) -> PostResult:
        parts = list(post.posted_parts)
        for text in post.content["posts"][len(parts):]:
            if self.fail_at_part == len(parts):
                self.fail_at_part = None
                raise PlatformError("Too Many Requests", kind="retryable", provider="x", status=429,
                                    retry_after_seconds=60)
            self.posted.append(text)
            parts.append(f"tw-{len(self.posted)}")
            assert post.on_part is not None
            post.on_part(tuple(parts))
        return PostResult(external_id=parts[0], url=f"https://x.test/i/{parts[0]}",
                          published_at=datetime(2026, 12, 2, tzinfo=UTC), parts=tuple(parts))

    def reconcile(self, credentials: Credentials, post: PostRequest, since: datetime) -> PostResult | None:
        return None


def test_a_thread_resumes_after_the_parts_it_posted(pool: ConnectionPool, migrated_dsn: str) -> None:
    thread = ThreadPlatform(fail_at_part=1)
    world = make_world(pool, migrated_dsn, ["x_thread"], adapters=lambda provider: thread)
    world.connections.connect(world.workspace_id, "x")
    world.schedule(["x_thread"])
    assert world.publisher.fire(_due(world, "x"))["status"] == "retrying"
    assert world.row("x")["parts"] == ["tw-1"]
    world.clock.advance(60)
    assert world.publisher.fire(world.last("fire"))["status"] == "published"
    assert thread.posted == ["Diwali gift boxes are here.", "Order by Friday."]
    assert (world.row("x")["parts"], world.row("x")["external_id"]) == (["tw-1", "tw-2"], "tw-1")


def test_a_publication_that_settles_before_execution_commits_still_completes_the_campaign(
        pool: ConnectionPool, migrated_dsn: str) -> None:
    world = _world(pool, migrated_dsn, ["linkedin_post"], "linkedin")
    with connect(migrated_dsn) as conn:
        conn.execute("UPDATE public.campaigns SET current_step = 'execute' WHERE id = %s", (world.campaign_id,))
    world.schedule(["linkedin_post"])
    assert world.publisher.fire(_due(world, "linkedin"))["campaign_completed"] is False
    with connect(migrated_dsn) as conn:
        conn.execute("UPDATE public.campaigns SET current_step = 'publishing' WHERE id = %s", (world.campaign_id,))
    world.clock.advance(120)
    result = world.publisher.fire(world.last("watch"))
    assert (result["status"], result["campaign_completed"]) == ("duplicate", True)
    assert world.campaign() == {"status": "completed", "current_step": None}
    assert world.publisher.fire(world.last("watch"))["campaign_completed"] is False


def test_only_released_copy_is_scheduled(pool: ConnectionPool, migrated_dsn: str) -> None:
    world = _world(pool, migrated_dsn, ["linkedin_post"], "linkedin")
    with connect(migrated_dsn) as conn:
        conn.execute("UPDATE public.artifacts SET status = 'draft' WHERE campaign_id = %s", (world.campaign_id,))
    assert world.schedule(["linkedin_post"])["pending"] == 0
    assert world.rows() == [] and world.messages() == []


def test_the_sweeper_reads_publish_messages_back_from_the_outbox(pool: ConnectionPool, migrated_dsn: str) -> None:
    """QStash unreachable while execution schedules: the rows wait in the outbox, and the sweeper's outbox (built
    as `shared.runtime.sweeper.build_sweeper` builds it) sends them as publish messages."""
    world = _world(pool, migrated_dsn, ["linkedin_post"], "linkedin")
    crashed = make_world(pool, migrated_dsn, ["x_thread"], queue=RecordingQueue())
    crashed.connections.connect(crashed.workspace_id, "x")
    failing = dataclasses.replace(crashed.publisher, queue=Unreachable())
    failing.schedule(campaign_id=str(crashed.campaign_id), workspace_id=crashed.workspace_id,
                     draft_keys=["x_thread"], brief={"title": "Diwali"}, workspace_settings={})
    left = outbox_db.unpublished_for(pool, crashed.campaign_id)
    assert [row["function"] for row in left] == ["publish"]
    sweeper_outbox = Outbox(pool=pool, queue=world.queue, parsers={"ingest": IngestMessage.model_validate})
    assert sweeper_outbox.publish(left) == 1
    assert outbox_db.unpublished_for(pool, crashed.campaign_id) == []
    [(function, message, _)] = [p for p in world.queue.published if p[1].dedup_id() == left[0]["dedup_id"]]
    assert function == "publish" and isinstance(message, PublishMessage)
    assert message.publication_id == crashed.row("x")["id"]


class Unreachable:
    """A QStash that cannot be reached: the outbox keeps the rows for the sweeper."""

    def publish(self, function: str, message: object, *, dedup_id: str | None = None,
                not_before: datetime | None = None) -> str:
        raise UpstreamUnavailable("QStash is unreachable")
