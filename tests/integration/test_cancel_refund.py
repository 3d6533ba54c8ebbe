"""Cancel and refund end to end in-process: real Postgres, the step engine, the PhonePe emulator over HTTP.

PhonePe's webhooks reach the product's webhook handler (verification included) through a small merchant app;
what it queues is delivered to the step functions signed as QStash signs it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import flask
import httpx
import pytest
from psycopg_pool import ConnectionPool
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from infra.local.emulators import phonepe as phonepe_emulator
from infra.local.emulators.config import EmulatorConfig
from infra.local.serve import RunningServer, serve_in_thread
from shared.api.cancel import result_view
from shared.api.models import Decision
from shared.auth import Principal
from shared.billing.invoices import PaymentInvoicing
from shared.campaigns.cancel import Canceller
from shared.db import workspace_data as wdb
from shared.db.payments import PaymentRepository
from shared.db.pool import connect
from shared.errors import Conflict, ThreadBusy
from shared.integrations.phonepe import PhonePeClient
from shared.messages import StepMessage
from shared.payments.confirmation import PaymentConfirmer
from shared.payments.credit_notes import InvoiceCreditNotes
from shared.payments.refunds import RefundService
from shared.runtime.step import StepRuntime
from shared.runtime.sweeper import Sweeper
from shared.webhooks import receive_phonepe_webhook
from tests.integration.harness import Harness, make_settings


@dataclass
class World:
    harness: Harness
    phonepe_url: str
    canceller: Canceller


class _Merchant:
    """Muse's webhook endpoint for the emulator: the product's handler, queueing into the current harness."""

    def __init__(self) -> None:
        self.harness: Harness | None = None
        self.app = flask.Flask("merchant")
        self.app.add_url_rule("/webhooks/phonepe", "webhook", self._webhook, methods=["POST"])

    def _webhook(self) -> Any:
        assert self.harness is not None
        return receive_phonepe_webhook(flask.request.get_data(), flask.request.headers.get("Authorization"),
                                       settings=self.harness.settings, queue=self.harness.queue)


@pytest.fixture(scope="module")
def emulator(fresh_database_dsn: str) -> Iterator[tuple[str, _Merchant]]:
    merchant = _Merchant()
    merchant_server = serve_in_thread(merchant.app)
    config = EmulatorConfig(database_url=fresh_database_dsn,
                            phonepe_webhook_url=f"{merchant_server.url}/webhooks/phonepe")
    server: RunningServer = serve_in_thread(
        DispatcherMiddleware(flask.Flask("root"), {"/phonepe": phonepe_emulator.create_app(config)}))
    try:
        yield f"{server.url}/phonepe", merchant
    finally:
        server.stop()
        merchant_server.stop()


@pytest.fixture
def world(pool: ConnectionPool, migrated_dsn: str, emulator: tuple[str, _Merchant]) -> World:
    url, merchant = emulator
    settings = make_settings(migrated_dsn, PHONEPE_BASE_URL=url, PHONEPE_OAUTH_URL=url,
                             PHONEPE_CLIENT_ID="MUSE_LOCAL_CLIENT", PHONEPE_CLIENT_SECRET="local-phonepe-secret",
                             PHONEPE_WEBHOOK_USERNAME="muse_webhook", PHONEPE_WEBHOOK_PASSWORD="localpass123")
    harness = Harness(pool=pool, dsn=migrated_dsn, settings=settings,
                      phonepe=PhonePeClient(http=httpx.Client(), settings=settings))  # type: ignore[arg-type]
    refunds = RefundService(pool=pool, phonepe=harness.phonepe, outbox=harness.outbox,  # type: ignore[arg-type]
                            recheck_seconds=[20, 60], max_attempts=2,
                            credit_notes=InvoiceCreditNotes(pool, settings))
    confirmer = PaymentConfirmer(payments=PaymentRepository(pool), phonepe=harness.phonepe,  # type: ignore[arg-type]
                                 outbox=harness.outbox, recheck_seconds=settings.payment_recheck_seconds,
                                 invoices=PaymentInvoicing(settings))
    old = harness.runtimes["payments"]
    harness.runtimes["payments"] = StepRuntime(
        function="payments", settings=settings, graph=old.graph, deps=old.deps, threads=old.threads,
        outbox=harness.outbox, receiver=old.receiver, payments=confirmer, refunds=refunds)
    merchant.harness = harness
    return World(harness=harness, phonepe_url=url,
                 canceller=Canceller(pool=pool, outbox=harness.outbox, wait_seconds=1.0, poll_seconds=0.05))


def _to_strategy_decision(h: Harness) -> tuple[uuid.UUID, Principal]:
    principal = h.workspace()
    campaign_id = h.create(principal)
    h.pump()
    assert h.row(campaign_id)["status"] == "awaiting_decision"
    return campaign_id, principal


def _to_payment(h: Harness) -> tuple[uuid.UUID, Principal]:
    campaign_id, principal = _to_strategy_decision(h)
    pending = h.row(campaign_id)["pending_decision"]
    h.api.decide(principal, campaign_id, Decision(decision_id=pending["id"], action="approve"))
    h.pump()
    assert h.row(campaign_id)["status"] == "awaiting_payment"
    return campaign_id, principal


def _pay_at_phonepe(w: World, principal: Principal, campaign_id: uuid.UUID) -> str:
    """Check out, then pay on the emulator's page: its webhook lands in the queue (not yet delivered)."""
    order = w.harness.api.checkout(principal, campaign_id)
    httpx.post(order.redirect_url, json={"outcome": "success"}).raise_for_status()
    return order.merchant_order_id


def _paid_not_published(w: World) -> tuple[uuid.UUID, Principal, str]:
    """A campaign PhonePe confirmed paid, whose execution message is queued but not delivered."""
    h = w.harness
    campaign_id, principal = _to_payment(h)
    order = _pay_at_phonepe(w, principal, campaign_id)
    h.pump(limit=1)
    row = h.row(campaign_id)
    assert (row["status"], row["current_step"]) == ("running", "execute")
    return campaign_id, principal, order


def _refunds(h: Harness, campaign_id: uuid.UUID) -> list[dict[str, Any]]:
    with connect(h.dsn) as conn:
        return conn.execute("SELECT * FROM public.refunds WHERE campaign_id = %s ORDER BY attempt",
                            (campaign_id,)).fetchall()


def _credit_notes(h: Harness, merchant_order_id: str) -> list[dict[str, Any]]:
    """The credit notes against the payment's invoice: (refund id, total, note id)."""
    with connect(h.dsn) as conn:
        return conn.execute(
            "SELECT n.id::text AS id, n.refund_id, n.total_paise, n.reason FROM public.credit_notes n "
            "JOIN public.invoices i ON i.id = n.invoice_id WHERE i.payment_ref = %s ORDER BY n.issued_at",
            (merchant_order_id,)).fetchall()


def _audit(h: Harness, target_id: str) -> list[str]:
    with connect(h.dsn) as conn:
        rows = conn.execute("SELECT action FROM public.audit_log WHERE target_id = %s ORDER BY id",
                            (target_id,)).fetchall()
    return [r["action"] for r in rows]


def _settle_refund(w: World, merchant_refund_id: str, outcome: str) -> None:
    httpx.post(f"{w.phonepe_url}/_emulator/refunds/{merchant_refund_id}/settle",
               json={"outcome": outcome}).raise_for_status()


def test_cancel_before_payment_stops_the_thread(world: World) -> None:
    """At the strategy decision: `cancelled`, no pending decision, the decision taken; the delayed timeout and a
    stale continue do nothing, a late answer is a 409, and the cancel is audited once."""
    h = world.harness
    campaign_id, principal = _to_strategy_decision(h)
    pending = h.row(campaign_id)["pending_decision"]
    checkpoints = h.checkpoints(campaign_id)
    result = world.canceller.cancel(principal, campaign_id)
    assert (result.stage, result.refund, result.cancelled_now) == ("before_payment", None, True)
    row = h.row(campaign_id)
    assert (row["status"], row["pending_decision"], row["lease_owner"]) == ("cancelled", None, None)
    timeout = next(m for f, m, delay in h.queue.published if m.kind == "decision_timeout")
    assert h.deliver("planner", timeout).body["status"] == "duplicate"
    stale = StepMessage(kind="continue", campaign_id=campaign_id, expected_checkpoint_id=None)
    assert h.deliver("research", stale).body["status"] == "duplicate"
    assert h.checkpoints(campaign_id) == checkpoints
    with pytest.raises(Conflict):
        h.api.decide(principal, campaign_id, Decision(decision_id=pending["id"], action="approve"))
    again = world.canceller.cancel(principal, campaign_id)
    assert (again.stage, again.cancelled_at, again.cancelled_now) == ("before_payment", result.cancelled_at, False)
    assert _audit(h, str(campaign_id)) == ["campaign.cancelled"]
    assert h.events(campaign_id)[-1] == "campaign.cancelled"


def test_a_payment_completing_after_cancel_is_refunded_in_full(world: World) -> None:
    """Cancelled with its checkout open: the payer pays anyway, PhonePe confirms, and the whole amount goes back."""
    h = world.harness
    campaign_id, principal = _to_payment(h)
    order = h.api.checkout(principal, campaign_id)
    result = world.canceller.cancel(principal, campaign_id)
    assert result.stage == "before_payment" and result.refund is None
    httpx.post(order.redirect_url, json={"outcome": "success"}).raise_for_status()
    h.pump()
    assert h.row(campaign_id)["status"] == "cancelled"
    [refund] = _refunds(h, campaign_id)
    assert (refund["reason"], refund["amount_paise"], refund["merchant_refund_id"]) == (
        "paid_after_cancel", order.amount_paise, f"{order.merchant_order_id}-R1")
    assert refund["phonepe_state"] == "PENDING" and refund["phonepe_refund_id"].startswith("OMR")
    _settle_refund(world, refund["merchant_refund_id"], "completed")
    h.pump()
    [refund] = _refunds(h, campaign_id)
    [note] = _credit_notes(h, order.merchant_order_id)
    assert refund["state"] == "COMPLETED" and refund["credit_note_id"] == note["id"]
    assert (note["refund_id"], note["total_paise"]) == (refund["merchant_refund_id"], order.amount_paise)
    assert "after the campaign was cancelled" in note["reason"]
    assert result_view(world.canceller.cancel(principal, campaign_id)).refund.state == "COMPLETED"  # type: ignore[union-attr]


def test_cancel_after_payment_refunds_in_full_through_status_and_webhook(world: World) -> None:
    """Paid, nothing published: a full refund; execution never runs; the refund completes on PhonePe's word
    (status API, triggered by the webhook), one credit note is issued, and a replayed webhook changes nothing."""
    h = world.harness
    campaign_id, principal, order = _paid_not_published(world)
    result = world.canceller.cancel(principal, campaign_id)
    assert result.stage == "before_publication" and result.refund is not None
    refund_id = result.refund["merchant_refund_id"]
    amount = h.row(campaign_id)["amount_due_paise"]
    assert (result.refund["amount_paise"], result.refund["state"], refund_id) == (amount, "PENDING", f"{order}-R1")
    assert [r.body["status"] for r in h.pump()] == ["duplicate", "pending"]
    with connect(h.dsn) as conn:
        published = conn.execute("SELECT count(*) AS n FROM public.artifacts WHERE campaign_id = %s "
                                 "AND status = 'published'", (campaign_id,)).fetchone()["n"]
    assert published == 0
    status = httpx.get(f"{world.phonepe_url}/_emulator/refunds").json()["refunds"]
    assert [(r["amount"], r["state"]) for r in status if r["merchant_refund_id"] == refund_id] == [(amount, "PENDING")]
    _settle_refund(world, refund_id, "completed")
    [reply] = h.pump()
    [note] = _credit_notes(h, order)
    assert reply.body == {"status": "completed", "merchant_refund_id": refund_id, "credit_note_id": note["id"]}
    assert (note["refund_id"], note["total_paise"]) == (refund_id, amount)
    events, audit = h.events(campaign_id), _audit(h, refund_id)
    assert audit == ["refund.requested", "refund.completed"]
    replay = StepMessage(kind="refund_event", refund={"merchant_refund_id": refund_id,  # type: ignore[arg-type]
                                                      "event": "pg.refund.completed", "state": "COMPLETED"})
    for _ in range(2):
        assert h.deliver("payments", replay).body["status"] == "completed"
    httpx.post(f"{world.phonepe_url}/_emulator/refunds/{refund_id}/webhook").raise_for_status()
    h.pump()
    assert (h.events(campaign_id), _audit(h, refund_id)) == (events, audit)
    assert _credit_notes(h, order) == [note]
    [row] = _refunds(h, campaign_id)
    assert (row["state"], row["credit_note_id"]) == ("COMPLETED", note["id"])
    again = result_view(world.canceller.cancel(principal, campaign_id))
    assert again.refund is not None and (again.refund.merchant_refund_id, again.refund.state) == (refund_id,
                                                                                                 "COMPLETED")


def _publication(h: Harness, campaign_id: uuid.UUID, channel: str, provider: str, status: str) -> str:
    with connect(h.dsn) as conn:
        return str(conn.execute(
            "INSERT INTO public.publications (workspace_id, campaign_id, artifact_id, channel, provider, variant, "
            "status, scheduled_at, next_attempt_at, external_id) SELECT workspace_id, campaign_id, id, channel, %s, "
            "variant, %s, now(), now(), CASE WHEN %s = 'published' THEN 'post-1' END FROM public.artifacts "
            "WHERE campaign_id = %s AND channel = %s RETURNING id", (provider, status, status, campaign_id, channel),
        ).fetchone()["id"])


def test_partial_publication_refunds_the_unpublished_share(world: World) -> None:
    """The ad went out, the email is still scheduled: half the amount back, to the paisa, and the email's
    publication is cancelled (a new version) so it never fires."""
    h = world.harness
    campaign_id, principal, _ = _paid_not_published(world)
    _publication(h, campaign_id, "ad", "linkedin", "published")
    scheduled = _publication(h, campaign_id, "email", "email", "scheduled")
    amount = h.row(campaign_id)["amount_due_paise"]
    result = world.canceller.cancel(principal, campaign_id)
    assert (result.stage, result.channels_total, result.channels_unpublished) == ("partially_published", 2, 1)
    assert result.refund is not None and result.refund["amount_paise"] == amount // 2
    assert result.refund["reason"] == "cancelled_partially_published"
    with connect(h.dsn) as conn:
        row = conn.execute("SELECT status, version FROM public.publications WHERE id = %s", (scheduled,)).fetchone()
    assert (row["status"], row["version"]) == ("cancelled", 2)


def test_released_copy_waiting_for_its_slots_is_refunded_in_full(world: World) -> None:
    """Execution released the paid copy (artifacts `published`) and scheduled it, but nothing went out yet:
    cancelling at `publishing` refunds everything and no publication fires."""
    h = world.harness
    campaign_id, principal, _ = _paid_not_published(world)
    with connect(h.dsn) as conn:
        conn.execute("UPDATE public.artifacts SET status = 'published' WHERE campaign_id = %s", (campaign_id,))
    scheduled = [_publication(h, campaign_id, "email", "email", "scheduled"),
                 _publication(h, campaign_id, "ad", "linkedin", "scheduled")]
    result = world.canceller.cancel(principal, campaign_id)
    assert (result.channels_total, result.channels_unpublished) == (2, 2)
    assert result.refund is not None and result.refund["amount_paise"] == h.row(campaign_id)["amount_due_paise"]
    with connect(h.dsn) as conn:
        statuses = {r["status"] for r in conn.execute("SELECT status FROM public.publications WHERE id = ANY(%s)",
                                                      ([uuid.UUID(p) for p in scheduled],)).fetchall()}
    assert statuses == {"cancelled"}


def test_a_publication_in_flight_counts_as_published(world: World) -> None:
    """A post whose platform call is in flight may go out: its channel is not refunded."""
    h = world.harness
    campaign_id, principal, _ = _paid_not_published(world)
    _publication(h, campaign_id, "ad", "x", "sending")
    result = world.canceller.cancel(principal, campaign_id)
    assert (result.channels_total, result.channels_unpublished) == (2, 1)
    assert result.refund is not None and result.refund["amount_paise"] == h.row(campaign_id)["amount_due_paise"] // 2


def test_concurrent_cancels_make_one_refund(world: World) -> None:
    """Eight cancels at once: one cancel, one refund, the same refund in every answer."""
    h = world.harness
    campaign_id, principal, _ = _paid_not_published(world)
    answers: list[Any] = []
    errors: list[BaseException] = []

    def cancel() -> None:
        try:
            answers.append(world.canceller.cancel(principal, campaign_id))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=cancel) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({a.refund["merchant_refund_id"] for a in answers}) == 1
    assert sum(a.cancelled_now for a in answers) == 1
    assert len(_refunds(h, campaign_id)) == 1
    assert _audit(h, str(campaign_id)) == ["campaign.cancelled"]


def test_cancel_waits_for_a_running_step_then_answers_429(world: World) -> None:
    """A step holding the lease is waited for, then the cancel is a 429 with Retry-After; nothing changed."""
    h = world.harness
    campaign_id, principal = _to_strategy_decision(h)
    with connect(h.dsn) as conn:
        conn.execute("UPDATE public.campaigns SET lease_owner = 'x', lease_until = now() + interval '30 seconds' "
                     "WHERE id = %s", (campaign_id,))
    with pytest.raises(ThreadBusy) as busy:
        world.canceller.cancel(principal, campaign_id)
    assert busy.value.retry_after_seconds >= 28
    assert h.row(campaign_id)["status"] == "awaiting_decision"


@pytest.mark.parametrize("status", ["completed", "failed", "expired"])
def test_cancelling_an_ended_campaign_is_409_naming_its_status(world: World, status: str) -> None:
    """A campaign that ended otherwise cannot be cancelled; the error names its status and nothing changes."""
    h = world.harness
    campaign_id, principal = _to_strategy_decision(h)
    with connect(h.dsn) as conn:
        conn.execute("UPDATE public.campaigns SET status = %s, pending_decision = NULL WHERE id = %s",
                     (status, campaign_id))
    with pytest.raises(Conflict, match=status) as conflict:
        world.canceller.cancel(principal, campaign_id)
    assert conflict.value.details == {"status": status}
    assert h.row(campaign_id)["status"] == status and _audit(h, str(campaign_id)) == []


def test_a_failed_refund_is_sent_again_under_the_next_id(world: World) -> None:
    """PhonePe fails the refund: it is FAILED, and attempt 2 goes out with a new merchantRefundId."""
    h = world.harness
    campaign_id, principal, order = _paid_not_published(world)
    first = world.canceller.cancel(principal, campaign_id).refund
    assert first is not None
    h.pump()
    _settle_refund(world, first["merchant_refund_id"], "failed")
    h.pump()
    rows = _refunds(h, campaign_id)
    assert [(r["merchant_refund_id"], r["state"]) for r in rows] == [(f"{order}-R1", "FAILED"),
                                                                     (f"{order}-R2", "PENDING")]
    assert rows[1]["phonepe_state"] == "PENDING"
    assert _credit_notes(h, order) == []


def test_the_sweeper_rechecks_a_refund_nothing_moved(world: World) -> None:
    """A PENDING refund left alone is handed to the payments function again by the sweeper."""
    h = world.harness
    campaign_id, principal, _ = _paid_not_published(world)
    refund = world.canceller.cancel(principal, campaign_id).refund
    assert refund is not None
    runtime = h.runtimes["payments"]
    sweeper = Sweeper(threads=runtime.threads, outbox=h.outbox, receiver=runtime.receiver,
                      url="https://sweeper.functions.test/", publish_grace_seconds=60, lease_grace_seconds=1,
                      stall_seconds=0.001)
    assert sweeper.sweep().refunds_rechecked >= 1
    swept = [m for f, m, _ in h.queue.published if f == "payments" and m.kind == "refund_event"
             and m.refund.event == "sweep"]
    assert refund["merchant_refund_id"] in {m.refund.merchant_refund_id for m in swept}


def test_an_erasure_keeps_the_refund_and_it_still_completes(world: World) -> None:
    """Refunds are payment records: a workspace's erasure keeps them (without the campaign), and PhonePe's
    completion still settles the refund and issues its credit note."""
    h = world.harness
    campaign_id, principal, order = _paid_not_published(world)
    refund = world.canceller.cancel(principal, campaign_id).refund
    assert refund is not None
    h.pump()
    with connect(h.dsn) as conn, conn.transaction():
        wdb.erase(conn, str(refund["workspace_id"]))
    with connect(h.dsn) as conn:
        kept = conn.execute("SELECT campaign_id, state FROM public.refunds WHERE merchant_refund_id = %s",
                            (refund["merchant_refund_id"],)).fetchone()
    assert kept == {"campaign_id": None, "state": "PENDING"}
    _settle_refund(world, refund["merchant_refund_id"], "completed")
    h.pump()
    [note] = _credit_notes(h, order)
    with connect(h.dsn) as conn:
        row = conn.execute("SELECT state, credit_note_id FROM public.refunds WHERE merchant_refund_id = %s",
                           (refund["merchant_refund_id"],)).fetchone()
    assert row == {"state": "COMPLETED", "credit_note_id": note["id"]}
