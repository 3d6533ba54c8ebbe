"""UPI Autopay plans end to end in-process: the product's subscription service and PhonePe client against the
PhonePe emulator over real Postgres, its webhooks received by the product's webhook handler.

The emulator sends each webhook to a small server running `receive_phonepe_webhook` (verify, then queue a
`SubscriptionMessage`); the test delivers queued messages to the service signed as QStash signs them, in
order, once they are due by the service's clock. That clock is a fake the test moves forward by days (the
emulator's own 24 h notice is its knob `redeem_after_seconds`, set to 0), so a month's cycle takes
milliseconds. Paid months are invoiced by billing (`issue_invoice`) into the same database; the PhonePe token is
shared through the Upstash Redis emulator as in production.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import flask
import httpx
import pytest
from psycopg_pool import ConnectionPool

from infra.local.emulators import phonepe as phonepe_emulator
from infra.local.emulators.config import DEV_QSTASH_CURRENT_SIGNING_KEY, EmulatorConfig
from infra.local.emulators.qstash import sign
from infra.local.emulators.upstash_redis import served_over_embedded_redis
from infra.local.serve import RunningServer, serve_in_thread
from shared.db import outbox as outbox_db
from shared.db.pool import as_service, connect
from shared.db.workspaces import ensure_workspace
from shared.errors import Conflict
from shared.http import handle_errors, json_response
from shared.integrations.cache import upstash_cache
from shared.integrations.phonepe_subscriptions import PhonePeSubscriptionsClient
from shared.outbox import Outbox, item
from shared.plans import plan_state
from shared.queue import qstash_receiver
from shared.settings import Settings
from shared.subscriptions.lifecycle import SubscriptionService, amount_paise, subscription_outbox
from shared.subscriptions.messages import SubscriptionMessage
from shared.webhooks import receive_phonepe_webhook
from tests.integration.harness import make_settings

USERNAME, PASSWORD = "muse_webhook", "localpass123"
REDIS_TOKEN = "subscriptions-upstash-token"
DAY = timedelta(days=1)


@dataclass
class ClockedQueue:
    """A `StepQueue` keeping each message with its due time, deduplicated by id like QStash."""

    published: list[tuple[str, Any, datetime | None]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    taken: int = 0

    def publish(self, function: str, message: Any, *, dedup_id: str | None = None,
                not_before: datetime | None = None) -> str:
        key = dedup_id or message.dedup_id()
        if key not in self.seen:
            self.seen.add(key)
            self.published.append((function, message, not_before))
        return f"msg_{len(self.published)}"


@dataclass
class FakeClock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    service: SubscriptionService
    queue: ClockedQueue
    clock: FakeClock
    phonepe_url: str
    settings: Settings
    dsn: str

    def emulator(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(method, f"{self.phonepe_url}/_emulator/subscriptions{path}", **kwargs)
        response.raise_for_status()
        return response.json()

    def pump(self, limit: int = 50) -> list[dict[str, Any]]:
        """Deliver, signed, every queued subscription message that is due by the clock, oldest first."""
        replies: list[dict[str, Any]] = []
        progressed = True
        while progressed and limit:
            progressed = False
            for index, (function, message, due) in enumerate(self.queue.published):
                if index < self.queue.taken or function != "subscriptions":
                    continue
                if due is not None and due > self.clock.now:
                    continue
                self.queue.published[index] = ("done", message, due)
                body = json.dumps(message.model_dump(mode="json", exclude_none=True)).encode()
                signature = sign(body, self.settings.function_url("subscriptions"), DEV_QSTASH_CURRENT_SIGNING_KEY)
                reply = self.service.handle_delivery(body, signature)
                assert reply.status == 200, reply.body
                replies.append({"kind": message.kind, **reply.body})
                progressed, limit = True, limit - 1
                break
        return replies

    def deliver_raw(self, raw: dict[str, Any]) -> Any:
        """One signed delivery of any body (e.g. QStash's failure callback)."""
        body = json.dumps(raw).encode()
        signature = sign(body, self.settings.function_url("subscriptions"), DEV_QSTASH_CURRENT_SIGNING_KEY)
        return self.service.handle_delivery(body, signature)

    def pending(self) -> list[tuple[str, datetime | None]]:
        return [(m.kind, due) for f, m, due in self.queue.published if f == "subscriptions"]

    def workspace(self) -> str:
        slug = f"sub-{uuid.uuid4().hex[:10]}"
        with connect(self.dsn) as conn, conn.transaction():
            return ensure_workspace(conn, slug=slug, name=slug, user_id=str(uuid.uuid4()))

    def row(self, workspace_id: str) -> dict[str, Any]:
        with connect(self.dsn) as conn:
            return conn.execute("SELECT * FROM public.subscriptions WHERE workspace_id = %s ORDER BY seq DESC LIMIT 1",
                                (workspace_id,)).fetchone()

    def tier(self, workspace_id: str) -> str | None:
        with connect(self.dsn) as conn:
            row = conn.execute("SELECT tier FROM public.workspace_plans WHERE workspace_id = %s",
                               (workspace_id,)).fetchone()
        return None if row is None else row["tier"]

    def cycles(self, workspace_id: str) -> list[dict[str, Any]]:
        with connect(self.dsn) as conn:
            return conn.execute("SELECT * FROM public.subscription_cycles WHERE workspace_id = %s "
                                "ORDER BY cycle, attempt", (workspace_id,)).fetchall()

    def plan_changes(self, workspace_id: str) -> list[dict[str, Any]]:
        with connect(self.dsn) as conn:
            return conn.execute("SELECT details FROM public.audit_log WHERE workspace_id = %s AND action = "
                                "'plan.changed' ORDER BY id", (workspace_id,)).fetchall()

    def invoices(self, workspace_id: str) -> list[dict[str, Any]]:
        with connect(self.dsn) as conn:
            return conn.execute("SELECT id::text AS id, payment_ref, kind, number, taxable_paise, cgst_paise, "
                                "sgst_paise, igst_paise, total_paise FROM public.invoices WHERE workspace_id = %s "
                                "ORDER BY seq",
                                (workspace_id,)).fetchall()

    def outbox_rows(self) -> int:
        with connect(self.dsn) as conn:
            return conn.execute("SELECT count(*) AS n FROM public.step_outbox WHERE function = 'subscriptions'"
                                ).fetchone()["n"]

    def approve(self, intent_url: str, outcome: str = "success") -> dict[str, Any]:
        response = httpx.post(intent_url, json={"outcome": outcome})
        response.raise_for_status()
        return response.json()

    def active(self, tier_name: str = "pro") -> str:
        """A workspace whose mandate was approved and whose first month is notified."""
        workspace_id = self.workspace()
        row = self.service.subscribe(workspace_id=workspace_id, tier_name=tier_name, user_id=None)  # type: ignore[arg-type]
        assert row["intent_url"]
        self.approve(row["intent_url"])
        self.pump()
        return workspace_id


def _webhook_server(settings: Settings, queue: ClockedQueue) -> RunningServer:
    app = flask.Flask("webhook")

    @app.post("/webhooks/phonepe")
    @handle_errors
    def hook() -> flask.Response:
        request = flask.request
        return json_response(receive_phonepe_webhook(request.get_data(), request.headers.get("Authorization"),
                                                     settings=settings, queue=queue))

    return serve_in_thread(app)


def _serve_phonepe(dsn: str, webhook_url: str, port: int = 0) -> RunningServer:
    config = EmulatorConfig(database_url=dsn, phonepe_webhook_url=webhook_url, phonepe_webhook_username=USERNAME,
                            phonepe_webhook_password=PASSWORD)
    return serve_in_thread(phonepe_emulator.create_app(config), port=port)


@pytest.fixture(scope="module")
def servers(migrated_dsn: str) -> Iterator[tuple[ClockedQueue, RunningServer, RunningServer]]:
    queue = ClockedQueue()
    hook = _webhook_server(make_settings(migrated_dsn, PHONEPE_WEBHOOK_USERNAME=USERNAME,
                                         PHONEPE_WEBHOOK_PASSWORD=PASSWORD), queue)
    phonepe = _serve_phonepe(migrated_dsn, f"{hook.url}/webhooks/phonepe")
    try:
        yield queue, hook, phonepe
    finally:
        phonepe.stop()
        hook.stop()


@pytest.fixture(scope="module")
def redis_rest_url() -> Iterator[str]:
    """The Upstash Redis REST emulator over an embedded Redis: the client shares its PhonePe token there."""
    with served_over_embedded_redis(REDIS_TOKEN) as url:
        yield url


@pytest.fixture
def world(servers: tuple[ClockedQueue, RunningServer, RunningServer], pool: ConnectionPool,
          migrated_dsn: str, redis_rest_url: str) -> Iterator[World]:
    queue, _, phonepe = servers
    queue.taken = len(queue.published)
    settings = make_settings(
        migrated_dsn, PHONEPE_BASE_URL=phonepe.url, PHONEPE_OAUTH_URL=phonepe.url,
        UPSTASH_REDIS_REST_URL=redis_rest_url, UPSTASH_REDIS_REST_TOKEN=REDIS_TOKEN,
        PHONEPE_CLIENT_ID="MUSE_LOCAL_CLIENT", PHONEPE_CLIENT_SECRET="local-phonepe-secret",
        PHONEPE_WEBHOOK_USERNAME=USERNAME, PHONEPE_WEBHOOK_PASSWORD=PASSWORD,
        MUSE_SUBSCRIPTION_MAX_ATTEMPTS="2", MUSE_PAYMENT_RECHECK_SECONDS="30,60")
    clock = FakeClock()
    with httpx.Client() as http:
        service = SubscriptionService(settings=settings, pool=pool,
                                      phonepe=PhonePeSubscriptionsClient(http=http, settings=settings,
                                                                         cache=upstash_cache(settings)),
                                      outbox=subscription_outbox(pool, queue), receiver=qstash_receiver(settings),
                                      clock=clock)
        found = World(service=service, queue=queue, clock=clock, phonepe_url=phonepe.url,
                      settings=settings, dsn=migrated_dsn)
        found.emulator("POST", "/knobs", json={"redeem_outcome": "success", "redeem_after_seconds": 0})
        yield found


def _redeem_month(world: World, days: float = 1.01) -> list[dict[str, Any]]:
    world.clock.now += timedelta(days=days)
    return world.pump()


class TestSetup:
    def test_approved_mandate_applies_the_tier_and_notifies_the_first_month(self, world: World) -> None:
        """setup → approval page → webhook → Subscription Status ACTIVE → pro applies, month 1 notified."""
        workspace_id = world.workspace()
        row = world.service.subscribe(workspace_id=workspace_id, tier_name="pro", user_id=None)
        assert row["state"] == "pending" and row["amount_paise"] == 294_882 == amount_paise("pro", 18)
        assert world.service.subscribe(workspace_id=workspace_id, tier_name="pro", user_id=None)["id"] == row["id"]
        page = httpx.get(row["intent_url"] or "")
        assert page.status_code == 200 and "Approve the mandate" in page.text
        assert world.tier(workspace_id) is None

        approved = world.approve(row["intent_url"] or "")
        assert approved["webhook"]["status"] == 200 and approved["state"] == "COMPLETED"
        replies = world.pump()

        assert [r["kind"] for r in replies][:2] == ["event", "notify"]
        assert world.tier(workspace_id) == "pro"
        sub = world.row(workspace_id)
        assert sub["state"] == "active" and sub["phonepe_subscription_id"].startswith("OMS")
        [first] = world.cycles(workspace_id)
        assert (first["cycle"], first["attempt"], first["state"]) == (1, 1, "notified")
        assert first["redeem_after"] == world.clock.now + timedelta(seconds=86_700)
        at_phonepe = world.emulator("GET", f"/{sub['merchant_subscription_id']}")
        assert at_phonepe["state"] == "ACTIVE"
        assert [o["state"] for o in at_phonepe["orders"]] == ["COMPLETED", "NOTIFIED"]
        assert [c["details"] for c in world.plan_changes(workspace_id)] == [{"from": None, "to": "pro"}]
        with pytest.raises(Conflict):
            world.service.subscribe(workspace_id=workspace_id, tier_name="agency", user_id=None)

    def test_concurrent_requests_make_one_mandate(self, world: World) -> None:
        workspace_id = world.workspace()
        with ThreadPoolExecutor(max_workers=4) as pool:
            rows = list(pool.map(lambda _: world.service.subscribe(workspace_id=workspace_id, tier_name="pro",
                                                                   user_id=None), range(4)))
        assert len({row["id"] for row in rows}) == 1
        mandates = [s for s in world.emulator("GET", "")["subscriptions"]
                    if s["merchantSubscriptionId"].startswith("MS" + workspace_id.replace("-", ""))]
        assert len(mandates) == 1 and len(mandates[0]["orders"]) == 1

    def test_a_declined_mandate_fails_and_changes_no_tier(self, world: World) -> None:
        workspace_id = world.workspace()
        row = world.service.subscribe(workspace_id=workspace_id, tier_name="agency", user_id=None)
        world.approve(row["intent_url"] or "", outcome="failure")
        world.pump()
        assert world.row(workspace_id)["state"] == "failed"
        assert world.tier(workspace_id) is None


    def test_a_mandate_cancelled_before_approval_cannot_be_approved_after(self, world: World) -> None:
        workspace_id = world.workspace()
        row = world.service.subscribe(workspace_id=workspace_id, tier_name="pro", user_id=None)
        cancelled = world.service.cancel(workspace_id=workspace_id)
        assert cancelled["state"] == "failed"
        late = httpx.post(row["intent_url"] or "", json={"outcome": "success"})
        assert late.status_code == 409
        world.pump()
        assert world.row(workspace_id)["state"] == "failed" and world.tier(workspace_id) is None
        assert world.emulator("GET", f"/{row['merchant_subscription_id']}")["state"] == "CANCELLED"


class TestCycles:
    def test_a_paid_month_renews_the_plan_and_invoices_once(self, world: World) -> None:
        """Redeemed 24 h after the notice: paid through the month's end, tier renewed, one invoice, month 2 due."""
        workspace_id = world.active()
        early = world.pump()
        assert early == [] and world.cycles(workspace_id)[0]["state"] == "notified"

        replies = _redeem_month(world)

        first = world.cycles(workspace_id)[0]
        assert first["state"] == "completed"
        kinds = [r["kind"] for r in replies]
        assert kinds.index("redeem") < kinds.index("event")
        sub = world.row(workspace_id)
        assert sub["paid_through"] == first["period_end"]
        with connect(world.dsn) as conn:
            plan = plan_state(conn, workspace_id, default_tier="free", now=world.clock.now)
        assert (plan.tier.name, plan.tier.monthly_ai_credits, plan.remaining_credits) == ("pro", 20_000, 20_000)
        [invoice] = world.invoices(workspace_id)
        assert (invoice["payment_ref"], invoice["kind"], invoice["total_paise"]) == (
            first["merchant_order_id"], "subscription", 294_882)
        assert invoice["taxable_paise"] == 249_900 and first["invoice_id"] == invoice["id"]
        second = world.cycles(workspace_id)[1]
        assert (second["cycle"], second["state"], second["period_start"]) == (2, "notifying", first["period_end"])
        due = [d for kind, d in world.pending() if kind == "notify"][-1]
        assert due == first["period_end"] - timedelta(seconds=86_700)

    def test_replayed_and_duplicate_webhooks_change_nothing(self, world: World) -> None:
        workspace_id = world.active()
        _redeem_month(world)
        sub = world.row(workspace_id)
        paid = world.cycles(workspace_id)[0]
        before = (world.cycles(workspace_id), world.plan_changes(workspace_id), world.outbox_rows(),
                  world.invoices(workspace_id), world.row(workspace_id))
        queued = len(world.queue.published)

        replay = world.emulator("POST", "/webhook", json={"event": "subscription.redemption.order.completed",
                                                          "merchantOrderId": paid["merchant_order_id"]})
        assert replay["status"] == 200 and len(world.queue.published) == queued
        again = SubscriptionMessage(kind="event", merchant_subscription_id=sub["merchant_subscription_id"],
                                    merchant_order_id=paid["merchant_order_id"],
                                    event="subscription.redemption.order.completed", state="COMPLETED")
        assert world.service.process(again)["duplicate"] is True
        assert world.service.process(again)["duplicate"] is True
        activation = SubscriptionMessage(kind="event", merchant_subscription_id=sub["merchant_subscription_id"],
                                         event="subscription.setup.order.completed", state="COMPLETED")
        assert world.service.process(activation)["duplicate"] is True
        world.pump()

        after = (world.cycles(workspace_id), world.plan_changes(workspace_id), world.outbox_rows(),
                 world.invoices(workspace_id), world.row(workspace_id))
        assert after == before

    def test_a_webhook_that_lies_is_checked_against_order_status(self, world: World) -> None:
        """A 'completed' webhook for a notified (unpaid) month pays nothing: Order Status says NOTIFIED."""
        workspace_id = world.active()
        sub, notified = world.row(workspace_id), world.cycles(workspace_id)[0]
        lie = world.emulator("POST", "/webhook", json={"event": "subscription.redemption.order.completed",
                                                       "merchantOrderId": notified["merchant_order_id"],
                                                       "state": "COMPLETED"})
        assert lie["status"] == 200
        world.pump()
        assert world.cycles(workspace_id)[0]["state"] == "notified"
        assert world.row(workspace_id)["paid_through"] is None and world.invoices(workspace_id) == []
        assert sub["state"] == "active"

    def test_a_forged_webhook_is_refused_with_401(self, world: World) -> None:
        workspace_id = world.active()
        sub = world.row(workspace_id)
        queued = len(world.queue.published)
        forged = world.emulator("POST", "/webhook", json={"event": "subscription.cancelled",
                                                          "merchantSubscriptionId": sub["merchant_subscription_id"],
                                                          "state": "CANCELLED", "authorization": "0" * 64})
        assert forged["status"] == 401
        assert len(world.queue.published) == queued
        assert world.row(workspace_id)["state"] == "active"

    def test_failed_months_open_grace_then_downgrade_to_free(self, world: World) -> None:
        """Attempt 1 fails → grace (3 days) and a retry a day later; attempt 2 fails; grace ends → lapsed, free."""
        workspace_id = world.active("agency")
        world.emulator("POST", "/knobs", json={"redeem_outcome": "failure"})

        replies = _redeem_month(world)
        sub = world.row(workspace_id)
        assert sub["state"] == "grace" and world.tier(workspace_id) == "agency"
        assert sub["grace_until"] == world.clock.now + timedelta(days=3)
        assert any(r.get("retry") is True for r in replies)

        _redeem_month(world)
        _redeem_month(world)
        attempts = world.cycles(workspace_id)
        assert [(c["attempt"], c["state"]) for c in attempts] == [(1, "failed"), (2, "failed")]
        assert attempts[0]["error_code"] == "INSUFFICIENT_FUNDS"
        assert world.row(workspace_id)["state"] == "grace" and world.tier(workspace_id) == "agency"

        world.clock.now = sub["grace_until"] + timedelta(seconds=1)
        world.pump()
        lapsed = world.row(workspace_id)
        assert lapsed["state"] == "lapsed" and world.tier(workspace_id) == "free"
        assert world.emulator("GET", f"/{lapsed['merchant_subscription_id']}")["state"] == "CANCELLED"
        assert [c["details"]["to"] for c in world.plan_changes(workspace_id)] == ["agency", "free"]
        assert world.invoices(workspace_id) == []

    def test_a_retry_that_pays_ends_grace(self, world: World) -> None:
        workspace_id = world.active()
        world.emulator("POST", "/knobs", json={"redeem_outcome": "failure"})
        _redeem_month(world)
        world.emulator("POST", "/knobs", json={"redeem_outcome": "success"})
        _redeem_month(world)
        _redeem_month(world)
        sub = world.row(workspace_id)
        assert sub["state"] == "active" and sub["grace_until"] is None
        assert [(c["cycle"], c["attempt"], c["state"]) for c in world.cycles(workspace_id)][:2] == [
            (1, 1, "failed"), (1, 2, "completed")]
        world.clock.now = datetime.now(UTC) + timedelta(days=4)
        world.pump()
        assert world.row(workspace_id)["state"] == "active" and world.tier(workspace_id) == "pro"


class TestCancel:
    def test_cancel_keeps_the_tier_until_the_paid_month_ends(self, world: World) -> None:
        workspace_id = world.active()
        _redeem_month(world)
        paid_through = world.row(workspace_id)["paid_through"]

        cancelled = world.service.cancel(workspace_id=workspace_id)
        world.pump()

        assert cancelled["state"] == "cancelled" and cancelled["downgrade_at"] == paid_through
        assert world.emulator("GET", f"/{cancelled['merchant_subscription_id']}")["state"] == "CANCELLED"
        assert world.tier(workspace_id) == "pro"
        world.clock.now = paid_through - timedelta(seconds=86_700) + timedelta(seconds=1)
        assert all(r["status"] != "notified" for r in world.pump())
        world.clock.now = paid_through + timedelta(seconds=1)
        world.pump()
        assert world.row(workspace_id)["state"] == "ended" and world.tier(workspace_id) == "free"

    def test_the_payer_revoking_in_their_upi_app_cancels(self, world: World) -> None:
        workspace_id = world.active()
        sub = world.row(workspace_id)
        world.emulator("POST", f"/{sub['merchant_subscription_id']}/revoke")
        world.pump()
        row = world.row(workspace_id)
        assert row["state"] in ("cancelled", "ended") and "revoked" in row["reason"]
        world.clock.now += timedelta(seconds=1)
        world.pump()
        assert world.row(workspace_id)["state"] == "ended" and world.tier(workspace_id) == "free"


class TestEmulatorRestart:
    def test_mandates_survive_a_restart_of_the_emulator(self, world: World, migrated_dsn: str,
                                                        servers: tuple[ClockedQueue, RunningServer,
                                                                       RunningServer]) -> None:
        """A new emulator instance on the same database knows the mandate, its orders and webhooks."""
        workspace_id = world.active()
        reference = world.row(workspace_id)["merchant_subscription_id"]
        before = world.emulator("GET", f"/{reference}")
        _, hook, _ = servers
        second = _serve_phonepe(migrated_dsn, f"{hook.url}/webhooks/phonepe")
        try:
            after = httpx.get(f"{second.url}/_emulator/subscriptions/{reference}").json()
            with httpx.Client() as http:
                client = PhonePeSubscriptionsClient(http=http, settings=world.settings.model_copy(
                    update={"phonepe_base_url": second.url, "phonepe_oauth_url": second.url}))
                status = client.subscription_status(reference)
        finally:
            second.stop()
        assert after == before
        assert status is not None and status.state == "ACTIVE"
        assert [w["event"] for w in after["webhooks"]] == ["subscription.setup.order.completed",
                                                           "subscription.notification.completed"]


class TestGivenUp:
    def test_a_message_qstash_gave_up_on_is_sent_again_an_hour_later_unless_it_failed_for_good(
            self, world: World) -> None:
        workspace_id = world.active()
        source = SubscriptionMessage(kind="redeem", merchant_subscription_id=world.row(workspace_id)[
            "merchant_subscription_id"], cycle=1, attempt=1)
        encoded = base64.b64encode(json.dumps(source.model_dump(mode="json", exclude_none=True)).encode()).decode()
        callback = {"status": 503, "retried": 5, "sourceMessageId": "msg_1", "dlqId": "dlq_1",
                    "sourceBody": encoded, "body": base64.b64encode(b"PhonePe is unreachable").decode()}
        before = len(world.queue.published)

        assert world.deliver_raw(callback).body["status"] == "redriven"
        assert world.deliver_raw({**callback, "status": 489, "dlqId": "dlq_2"}).body["status"] == "abandoned"

        [(function, message, due)] = world.queue.published[before:]
        assert (function, message, due) == ("subscriptions", source, world.clock.now + timedelta(hours=1))


class TestSweeper:
    def test_a_subscription_message_a_crash_left_in_the_outbox_is_published_by_the_sweep(
            self, world: World, pool: ConnectionPool) -> None:
        """The sweeper's pass publishes every unpublished outbox row, ours read back as `SubscriptionMessage`s."""
        message = SubscriptionMessage(kind="setup_check", merchant_subscription_id="MS-crashed-1")
        with as_service(pool) as conn:
            outbox_db.add(conn, None, [item("subscriptions", message)])
        before = len(world.queue.published)

        Outbox(pool=pool, queue=world.queue).publish(outbox_db.unpublished(pool, older_than_seconds=0))

        assert ("subscriptions", message) in [(f, m) for f, m, _ in world.queue.published[before:]]
        assert world.pump()[-1] == {"kind": "setup_check", "status": "ignored", "reason": "no mandate MS-crashed-1"}
