"""The mandate lifecycle and its monthly cycles, driven by QStash messages to the `subscriptions` function.

1. **Setup** (`subscribe`, the API): a PhonePe setup for the tier's monthly price with GST, a mandate row
   `pending`, and a `setup_check` for when the setup would have expired.
2. **Active**: a verified webhook (or the `setup_check`) is confirmed through Subscription Status; ACTIVE →
   the tier applies (`shared.plans.set_workspace_tier`) and cycle 1 (starting now) is notified at once.
3. **A cycle**: `notify` (the RBI's pre-debit notice; the mandate must be ACTIVE), then `redeem` as a delayed
   QStash message `MUSE_SUBSCRIPTION_REDEEM_DELAY_SECONDS` later (24 h and a margin), then `order_check`s until
   Order Status is final (the redemption webhook usually settles it first). COMPLETED for the cycle's amount →
   paid through the period's end, the tier renewed for it, a tax invoice issued in the same transaction
   (`shared.billing.invoices.issue_invoice`, kind `subscription`, once per redemption), and the next
   cycle's `notify` due one redeem delay before the period ends.
4. **A failed cycle** opens a grace period (`MUSE_SUBSCRIPTION_GRACE_SECONDS`, 3 days) with new attempts
   every `MUSE_SUBSCRIPTION_RETRY_SECONDS` up to `MUSE_SUBSCRIPTION_MAX_ATTEMPTS`; at `grace_end` still unpaid,
   the mandate is cancelled at PhonePe, `lapsed`, and the workspace is on free.
5. **Cancel** (the API, or the payer revoking in their UPI app, seen through the webhook and status): the
   mandate is cancelled at PhonePe and the tier stays until the paid period ends (`period_end`), then free.

Every webhook is only a trigger: state is read from PhonePe's status APIs before anything changes. Every
change is a conditional update whose messages are outbox rows of the same transaction, and every id sent to
PhonePe is derived from the mandate, cycle and attempt, so duplicate or replayed deliveries change nothing.
Delays are delayed QStash messages (`not_before`), not a sweeper tick: the sweeper only publishes outbox rows
a crash left unpublished, as for every other function.
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import ValidationError
from qstash import Receiver

from shared.billing.invoices import issue_invoice
from shared.db import outbox as outbox_db
from shared.db import subscriptions as db
from shared.db.audit import function_actor
from shared.db.pool import Pool, as_service
from shared.db.subscriptions import CycleRow, SubscriptionRow
from shared.delivery import FailureCallback, Reply, deliver
from shared.domain import OutboxItem, OutboxRow
from shared.errors import Conflict, NotFound, PermanentStepError
from shared.integrations.phonepe import OrderAlreadyExists
from shared.integrations.phonepe_subscriptions import (
    PhonePeSubscriptionsClient,
    RedemptionNotAllowed,
    SubscriptionOrder,
    SubscriptionStatus,
)
from shared.outbox import Outbox, item
from shared.plans import TierName, set_workspace_tier, tier
from shared.settings import Settings
from shared.subscriptions.messages import SubscriptionMessage

log = logging.getLogger("muse.subscriptions")

FUNCTION = "subscriptions"
ACTOR = function_actor(FUNCTION)
SETUP_ATTEMPTS = 3
REDRIVE_SECONDS = 3600
"""After QStash gives up on a message that failed for a passing reason, it is sent again this much later."""
ENDED_AT_PHONEPE = ("CANCELLED", "REVOKED", "CANCEL_IN_PROGRESS", "REVOKE_IN_PROGRESS", "EXPIRED", "FAILED")


def amount_paise(tier_name: TierName, gst_rate_percent: Decimal) -> int:
    """What one month of the tier debits: its price (GST excluded) plus GST, in paise, rounded half up."""
    price = Decimal(tier(tier_name).price_inr_monthly * 100)
    return int((price * (100 + gst_rate_percent) / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def add_month(moment: datetime) -> datetime:
    """The same instant one calendar month later (the 31st becomes the month's last day)."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def subscription_ids(workspace_id: str, seq: int) -> tuple[str, str]:
    """(merchant subscription id, setup order id) of the workspace's `seq`-th mandate."""
    reference = f"MS{workspace_id.replace('-', '')}-{seq}"
    return reference, f"{reference}-S"


def cycle_order_id(merchant_subscription_id: str, cycle: int, attempt: int) -> str:
    """The merchant order id of one collection attempt (notify and redeem share it)."""
    return f"{merchant_subscription_id}-C{cycle}A{attempt}"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class SubscriptionService:
    """Mandates and cycles (see module docstring), independent of HTTP."""

    settings: Settings
    pool: Pool
    phonepe: PhonePeSubscriptionsClient
    outbox: Outbox
    receiver: Receiver | None = None
    clock: Callable[[], datetime] = field(default=_now)

    # ------------------------------------------------------------------------------------------ the API

    def subscribe(self, *, workspace_id: str, tier_name: TierName, user_id: str | None) -> SubscriptionRow:
        """Set up a mandate for `tier_name` (or return the pending one for it); Conflict if one is in force.

        The workspace row stays locked while PhonePe is asked, so two requests make one mandate; a setup
        order PhonePe already has (a crash after the call) moves on to the next number.
        """
        amount = amount_paise(tier_name, self.settings.gst_rate_percent)
        with as_service(self.pool) as conn:
            if not db.lock_workspace(conn, workspace_id):
                raise NotFound(f"Workspace {workspace_id} does not exist.")
            live = db.live(conn, workspace_id)
            if live is not None:
                if live["state"] == "pending" and live["tier"] == tier_name:
                    return live
                raise Conflict(f"Workspace {workspace_id} already has a {live['state']} {live['tier']} mandate "
                               f"({live['merchant_subscription_id']}); cancel it first (DELETE "
                               "/api/v1/plan/subscription).", details={"state": live["state"], "tier": live["tier"]})
            seq = db.next_seq(conn, workspace_id)
            for offset in range(SETUP_ATTEMPTS):
                reference, setup_order = subscription_ids(workspace_id, seq + offset)
                try:
                    order = self.phonepe.setup(
                        merchant_order_id=setup_order, merchant_subscription_id=reference, max_amount_paise=amount,
                        expire_after_seconds=self.settings.subscription_setup_expire_seconds,
                        meta={"udf1": workspace_id, "udf2": tier_name})
                except OrderAlreadyExists:
                    log.warning("setup order %s exists at PhonePe already; using the next number", setup_order)
                    continue
                row = db.create(conn, workspace_id=workspace_id, seq=seq + offset, merchant_subscription_id=reference,
                                setup_order_id=setup_order, tier=tier_name, amount_paise=amount, created_by=user_id)
                db.set_intent(conn, row["id"], order.intent_url)
                due = self.clock() + timedelta(seconds=self.settings.subscription_setup_expire_seconds + 60)
                rows = outbox_db.add(conn, None, [self._item("setup_check", reference, not_before=due)])
                break
            else:
                raise Conflict("PhonePe already holds the next setup orders of this workspace; retry shortly.")
        self.outbox.publish(rows)
        return {**row, "intent_url": order.intent_url}

    def cancel(self, *, workspace_id: str) -> SubscriptionRow:
        """Cancel the live mandate at PhonePe; the tier stays until the paid period ends, then free."""
        with as_service(self.pool) as conn:
            live = db.live(conn, workspace_id)
        if live is None:
            raise NotFound(f"Workspace {workspace_id} has no mandate to cancel (GET /api/v1/plan/subscription).")
        self.phonepe.cancel(live["merchant_subscription_id"])
        if live["state"] == "pending":
            with as_service(self.pool) as conn:
                db.fail_setup(conn, live["id"], "cancelled before the payer approved it")
                found = db.by_merchant_id(conn, live["merchant_subscription_id"])
            assert found is not None
            return found
        return self._cancelled(live, "cancelled by the workspace") or live

    def current(self, workspace_id: str) -> tuple[SubscriptionRow | None, list[CycleRow]]:
        """The workspace's newest mandate and its cycles."""
        with as_service(self.pool) as conn:
            latest = db.latest(conn, workspace_id)
            return latest, db.cycles(conn, latest["id"]) if latest else []

    # ---------------------------------------------------------------------------------- QStash deliveries

    def handle_delivery(self, body: bytes, signature: str | None) -> Reply:
        """One QStash delivery to the `subscriptions` function (a message, or QStash's failure callback)."""
        assert self.receiver is not None, "deliveries need the QStash receiver"
        return deliver(self.receiver, url=self.settings.function_url(FUNCTION), body=body, signature=signature,
                       on_message=self._on_message, on_failure=self._on_failure)

    def _on_message(self, raw: Any) -> Reply:
        try:
            message = SubscriptionMessage.model_validate(raw)
        except ValidationError as exc:
            raise PermanentStepError(f"Invalid subscription message: {exc.errors(include_url=False)}") from exc
        return Reply(200, self.process(message))

    def _on_failure(self, callback: FailureCallback) -> Reply:
        """QStash gave up on a message: one that failed for a passing reason (5xx: PhonePe or the database
        down) is sent again an hour later, so a month is never left half collected; a permanent one is logged."""
        try:
            source = SubscriptionMessage.model_validate_json(callback.source())
        except ValueError:
            return Reply(200, {"status": "ignored", "reason": "failure callback for an unknown message"})
        if callback.status is None or callback.status < 500:
            log.error("subscription message %s failed for good (HTTP %s): %s", source.dedup_id(), callback.status,
                      callback.answer())
            return Reply(200, {"status": "abandoned", "reason": callback.answer()})
        due = self.clock() + timedelta(seconds=REDRIVE_SECONDS)
        self.outbox.send(None, [item(FUNCTION, source, not_before=due, dedup_suffix=f"-redrive-{callback.dlqId}")])
        return Reply(200, {"status": "redriven", "not_before": due.isoformat()})

    def process(self, message: SubscriptionMessage) -> dict[str, Any]:
        """Act on one message; what it did (a duplicate or stale one does nothing and says so)."""
        with as_service(self.pool) as conn:
            sub = db.by_merchant_id(conn, message.merchant_subscription_id)
        if sub is None:
            return {"status": "ignored", "reason": f"no mandate {message.merchant_subscription_id}"}
        if message.kind == "event":
            if message.merchant_order_id and message.merchant_order_id != sub["setup_order_id"]:
                return self._settle_order(sub, message.merchant_order_id, recheck=0)
            return self._reconcile_mandate(sub, message)
        if message.kind == "setup_check":
            return self._reconcile_mandate(sub, message)
        if message.kind == "notify":
            return self._notify(sub, message)
        if message.kind == "redeem":
            return self._redeem(sub, message)
        if message.kind == "order_check":
            assert message.merchant_order_id is not None
            return self._settle_order(sub, message.merchant_order_id, recheck=message.recheck)
        if message.kind == "period_end":
            return self._period_end(sub)
        return self._grace_end(sub, message)

    # -------------------------------------------------------------------------------------- the mandate

    def _reconcile_mandate(self, sub: SubscriptionRow, message: SubscriptionMessage) -> dict[str, Any]:
        """Bring the mandate in line with what Subscription Status says (never with the webhook's body)."""
        status = self.phonepe.subscription_status(sub["merchant_subscription_id"])
        seen = status.state if status else "UNKNOWN"
        if status is not None and status.state == "ACTIVE":
            if sub["state"] == "pending":
                return self._activate(sub, status)
            if sub["state"] not in ("active", "grace"):
                self.phonepe.cancel(sub["merchant_subscription_id"])
                return {"status": sub["state"], "phonepe": seen, "cancelled_at_phonepe": True}
            return {"status": sub["state"], "phonepe": seen, "duplicate": True}
        if sub["state"] == "pending":
            if status is not None and status.state in ENDED_AT_PHONEPE:
                with as_service(self.pool) as conn:
                    db.fail_setup(conn, sub["id"], f"setup ended at PhonePe: {status.state}")
                return {"status": "failed", "phonepe": seen}
            return self._recheck_setup(sub, message, seen)
        if status is not None and status.state in ENDED_AT_PHONEPE and sub["state"] in ("active", "grace"):
            self._cancelled(sub, f"mandate {status.state.lower()} at PhonePe")
            return {"status": "cancelled", "phonepe": seen}
        return {"status": sub["state"], "phonepe": seen}

    def _recheck_setup(self, sub: SubscriptionRow, message: SubscriptionMessage, seen: str) -> dict[str, Any]:
        """A setup still in progress: check again later, and give up once the setup must have expired."""
        recheck = message.recheck + 1 if message.kind == "setup_check" else 0
        delays = self.settings.payment_recheck_seconds
        if message.kind == "setup_check" and recheck > len(delays):
            with as_service(self.pool) as conn:
                db.fail_setup(conn, sub["id"], f"setup not approved in time (PhonePe: {seen})")
            return {"status": "failed", "phonepe": seen}
        delay = delays[min(recheck, len(delays) - 1)] if delays else 60
        due = self.clock() + timedelta(seconds=delay)
        self.outbox.send(None, [self._item("setup_check", sub["merchant_subscription_id"], recheck=recheck,
                                           not_before=due)])
        return {"status": "pending", "phonepe": seen, "recheck": recheck}

    def _activate(self, sub: SubscriptionRow, status: SubscriptionStatus) -> dict[str, Any]:
        """ACTIVE at PhonePe: the tier applies and cycle 1 (starting now) is notified."""
        reference = sub["merchant_subscription_id"]
        set_workspace_tier(self.pool, workspace_id=sub["workspace_id"], tier_name=sub["tier"],  # type: ignore[arg-type]
                           actor=ACTOR, key=f"{reference}-active")
        start = self.clock()
        with as_service(self.pool) as conn:
            row = db.activate(conn, sub["id"], status.subscription_id)
            if row is None:
                return {"status": "active", "duplicate": True}
            db.add_cycle(conn, subscription=row, cycle=1, attempt=1, merchant_order_id=cycle_order_id(reference, 1, 1),
                         period_start=start, period_end=add_month(start))
            rows = outbox_db.add(conn, None, [self._item("notify", reference, cycle=1, attempt=1)])
        self.outbox.publish(rows)
        log.info("mandate %s active: %s applies to workspace %s", reference, sub["tier"], sub["workspace_id"])
        return {"status": "active", "tier": sub["tier"]}

    def _cancelled(self, sub: SubscriptionRow, reason: str) -> SubscriptionRow | None:
        """active/grace → cancelled; the tier stays until the paid period ends (`period_end` then)."""
        with as_service(self.pool) as conn:
            row = db.cancel(conn, sub["id"], reason, self.clock())
            if row is None:
                return None
            rows = outbox_db.add(conn, None, [self._item("period_end", row["merchant_subscription_id"],
                                                         not_before=row["downgrade_at"])])
        self.outbox.publish(rows)
        return row

    def _period_end(self, sub: SubscriptionRow) -> dict[str, Any]:
        """A cancelled mandate's paid period is over: the workspace goes to free (unless a newer mandate is live)."""
        if sub["state"] not in ("cancelled", "ended"):
            return {"status": "ignored", "reason": f"mandate is {sub['state']}"}
        due = sub["downgrade_at"]
        if sub["state"] == "cancelled" and due is not None and self.clock() < due:
            self.outbox.send(None, [self._item("period_end", sub["merchant_subscription_id"], not_before=due,
                                               recheck=1)])
            return {"status": "cancelled", "downgrade_at": due.isoformat()}
        downgraded = self._downgrade(sub, "ended")
        with as_service(self.pool) as conn:
            db.end(conn, sub["id"], to="ended", from_states=("cancelled",))
        return {"status": "ended", "downgraded": downgraded}

    def _downgrade(self, sub: SubscriptionRow, why: str) -> bool:
        """Put the workspace on free, keyed by the mandate (once), unless another mandate is live."""
        with as_service(self.pool) as conn:
            if db.other_live(conn, sub["workspace_id"], sub["id"]):
                return False
        set_workspace_tier(self.pool, workspace_id=sub["workspace_id"], tier_name="free", actor=ACTOR,
                           key=f"{sub['merchant_subscription_id']}-{why}")
        return True

    # ---------------------------------------------------------------------------------------- the cycles

    def _notify(self, sub: SubscriptionRow, message: SubscriptionMessage) -> dict[str, Any]:
        """Send the cycle's pre-debit notification (the mandate must be ACTIVE), then schedule its redemption."""
        reference = sub["merchant_subscription_id"]
        order_id = cycle_order_id(reference, message.cycle, message.attempt)
        with as_service(self.pool) as conn:
            attempt = db.cycle(conn, order_id)
        if attempt is None or sub["state"] not in ("active", "grace"):
            return {"status": "ignored", "reason": f"mandate is {sub['state']}" if attempt else "no such attempt"}
        if attempt["state"] != "notifying":
            return {"status": attempt["state"], "duplicate": True}
        status = self.phonepe.subscription_status(reference)
        if status is None or status.state in ENDED_AT_PHONEPE:
            return self._reconcile_mandate(sub, message)
        if status.state != "ACTIVE":
            later = self.clock() + timedelta(seconds=self.settings.subscription_retry_seconds)
            self.outbox.send(None, [self._item("notify", reference, cycle=message.cycle, attempt=message.attempt,
                                               recheck=message.recheck + 1, not_before=later)])
            return {"status": "notifying", "phonepe": status.state, "next_try": later.isoformat()}
        try:
            self.phonepe.notify(merchant_order_id=order_id, merchant_subscription_id=reference,
                                amount_paise=attempt["amount_paise"], expire_after_seconds=48 * 3600)
        except OrderAlreadyExists:
            log.info("redemption %s was notified before (a redelivery)", order_id)
        redeem_after = self.clock() + timedelta(seconds=self.settings.subscription_redeem_delay_seconds)
        with as_service(self.pool) as conn:
            if not db.mark_notified(conn, order_id, redeem_after):
                return {"status": "notified", "duplicate": True}
            rows = outbox_db.add(conn, None, [self._item("redeem", reference, cycle=message.cycle,
                                                         attempt=message.attempt, not_before=redeem_after)])
        self.outbox.publish(rows)
        return {"status": "notified", "merchant_order_id": order_id, "redeem_after": redeem_after.isoformat()}

    def _redeem(self, sub: SubscriptionRow, message: SubscriptionMessage) -> dict[str, Any]:
        """Execute a notified redemption once its notice has run (a message early for it waits again)."""
        reference = sub["merchant_subscription_id"]
        order_id = cycle_order_id(reference, message.cycle, message.attempt)
        with as_service(self.pool) as conn:
            attempt = db.cycle(conn, order_id)
        if attempt is None or attempt["state"] in ("completed", "failed", "notifying"):
            return {"status": attempt["state"] if attempt else "ignored", "duplicate": True}
        if sub["state"] not in ("active", "grace"):
            return {"status": "ignored", "reason": f"mandate is {sub['state']}"}
        due = attempt["redeem_after"]
        if due is not None and self.clock() < due:
            self.outbox.send(None, [self._item("redeem", reference, cycle=message.cycle, attempt=message.attempt,
                                               recheck=message.recheck + 1, not_before=due)])
            return {"status": "notified", "redeem_after": due.isoformat()}
        try:
            self.phonepe.redeem(order_id)
        except RedemptionNotAllowed as exc:
            if message.recheck >= len(self.settings.payment_recheck_seconds):
                return self._settle_order(sub, order_id, recheck=0) | {"refused": exc.message}
            later = self.clock() + timedelta(seconds=self.settings.payment_recheck_seconds[message.recheck])
            self.outbox.send(None, [self._item("redeem", reference, cycle=message.cycle, attempt=message.attempt,
                                               recheck=message.recheck + 1, not_before=later)])
            return {"status": "notified", "refused": exc.message}
        with as_service(self.pool) as conn:
            db.mark_redeeming(conn, order_id)
            rows = outbox_db.add(conn, None, [self._order_check(reference, order_id, 0)])
        self.outbox.publish(rows)
        return {"status": "redeeming", "merchant_order_id": order_id}

    def _order_check(self, reference: str, order_id: str, recheck: int) -> OutboxItem:
        delays = self.settings.payment_recheck_seconds
        due = self.clock() + timedelta(seconds=delays[min(recheck, len(delays) - 1)] if delays else 60)
        return self._item("order_check", reference, order_id=order_id, recheck=recheck, not_before=due)

    def _settle_order(self, sub: SubscriptionRow, order_id: str, *, recheck: int) -> dict[str, Any]:
        """Settle a redemption as Order Status says: COMPLETED for the cycle's amount, or FAILED."""
        with as_service(self.pool) as conn:
            attempt = db.cycle(conn, order_id)
        if attempt is None or attempt["subscription_id"] != sub["id"]:
            return {"status": "ignored", "reason": f"no redemption {order_id} of this mandate"}
        status = self.phonepe.subscription_order_status(order_id)
        if status is None:
            return {"status": "ignored", "reason": f"PhonePe does not know order {order_id}"}
        if status.state == "COMPLETED" and status.amount_paise == attempt["amount_paise"]:
            return self._paid(sub, attempt, status)
        if status.state == "FAILED":
            return self._failed(sub, attempt, status)
        if status.state == "COMPLETED":
            log.error("redemption %s COMPLETED for %s paise, expected %s", order_id, status.amount_paise,
                      attempt["amount_paise"])
            return {"status": "mismatch", "amount_paise": status.amount_paise}
        if attempt["state"] == "redeeming" and recheck + 1 < len(self.settings.payment_recheck_seconds):
            self.outbox.send(None, [self._order_check(sub["merchant_subscription_id"], order_id, recheck + 1)])
        return {"status": attempt["state"], "phonepe": status.state}

    def _paid(self, sub: SubscriptionRow, attempt: CycleRow, status: SubscriptionOrder) -> dict[str, Any]:
        """The cycle is paid: paid through its end, the tier renewed, the invoice issued, the next cycle due."""
        reference = sub["merchant_subscription_id"]
        order_id = attempt["merchant_order_id"]
        rows: list[OutboxRow] = []
        with as_service(self.pool) as conn:
            if attempt["state"] != "completed" and db.cycle_paid(conn, sub["id"], attempt["cycle"]):
                log.error("redemption %s paid cycle %s a second time: refund it", order_id, attempt["cycle"])
                return {"status": "duplicate_debit", "merchant_order_id": order_id}
            done = db.complete_cycle(conn, order_id, status.order_id)
            if done is not None:
                period = f"{attempt['period_start']:%d %b %Y} to {attempt['period_end']:%d %b %Y}"
                invoice = issue_invoice(conn, sub["workspace_id"], payment_ref=order_id,
                                        amount_paise=attempt["amount_paise"], kind="subscription",
                                        description=f"Muse {sub['tier']} plan, {period} (UPI Autopay)",
                                        settings=self.settings, at=self.clock())
                db.set_invoice(conn, order_id, str(invoice["id"]))
                row = db.mark_paid(conn, sub["id"], attempt["period_end"])
                if row["state"] == "active":
                    start, following = attempt["period_end"], attempt["cycle"] + 1
                    db.add_cycle(conn, subscription=row, cycle=following, attempt=1,
                                 merchant_order_id=cycle_order_id(reference, following, 1),
                                 period_start=start, period_end=add_month(start))
                    due = start - timedelta(seconds=self.settings.subscription_redeem_delay_seconds)
                    rows = outbox_db.add(conn, None, [self._item("notify", reference, cycle=following, attempt=1,
                                                                 not_before=due)])
            state = db.by_merchant_id(conn, reference)
            invoice_id = (db.cycle(conn, order_id) or attempt)["invoice_id"]
        if state is not None and state["state"] in ("active", "grace"):
            set_workspace_tier(self.pool, workspace_id=sub["workspace_id"], tier_name=sub["tier"],  # type: ignore[arg-type]
                               actor=ACTOR, key=order_id)
        self.outbox.publish(rows)
        return {"status": "completed", "merchant_order_id": order_id, "duplicate": done is None,
                "paid_through": attempt["period_end"].isoformat(), "invoice_id": invoice_id}

    def _failed(self, sub: SubscriptionRow, attempt: CycleRow, status: SubscriptionOrder) -> dict[str, Any]:
        """A failed attempt: grace (once per cycle), another attempt while grace and attempts last."""
        reference = sub["merchant_subscription_id"]
        now = self.clock()
        with as_service(self.pool) as conn:
            done = db.fail_cycle(conn, attempt["merchant_order_id"], status.order_id, status.error_code)
            if done is None or db.cycle_paid(conn, sub["id"], attempt["cycle"]):
                return {"status": "failed", "duplicate": True}
            row = db.enter_grace(conn, sub["id"], now + timedelta(seconds=self.settings.subscription_grace_seconds))
            if row is None:
                return {"status": "failed", "mandate": sub["state"]}
            grace_until = row["grace_until"]
            assert grace_until is not None
            items = [self._item("grace_end", reference, cycle=attempt["cycle"], not_before=grace_until)]
            retry_at = now + timedelta(seconds=self.settings.subscription_retry_seconds)
            retried = attempt["attempt"] < self.settings.subscription_max_attempts and retry_at < grace_until
            if retried:
                following = attempt["attempt"] + 1
                db.add_cycle(conn, subscription=row, cycle=attempt["cycle"], attempt=following,
                             merchant_order_id=cycle_order_id(reference, attempt["cycle"], following),
                             period_start=attempt["period_start"], period_end=attempt["period_end"])
                items.append(self._item("notify", reference, cycle=attempt["cycle"], attempt=following,
                                        not_before=retry_at))
            rows = outbox_db.add(conn, None, items)
        self.outbox.publish(rows)
        log.warning("redemption %s failed (%s); grace until %s", attempt["merchant_order_id"], status.error_code,
                    grace_until)
        return {"status": "failed", "grace_until": grace_until.isoformat(), "retry": retried}

    def _grace_end(self, sub: SubscriptionRow, message: SubscriptionMessage) -> dict[str, Any]:
        """Grace is over and the cycle is still unpaid: cancel the mandate at PhonePe, lapse it, go to free."""
        if sub["state"] not in ("grace", "lapsed"):
            return {"status": "ignored", "reason": f"mandate is {sub['state']}"}
        due = sub["grace_until"]
        if sub["state"] == "grace" and due is not None and self.clock() < due:
            self.outbox.send(None, [self._item("grace_end", sub["merchant_subscription_id"], cycle=message.cycle,
                                               recheck=message.recheck + 1, not_before=due)])
            return {"status": "grace", "grace_until": due.isoformat()}
        with as_service(self.pool) as conn:
            paid = db.cycle_paid(conn, sub["id"], message.cycle)
            if not paid:
                db.end(conn, sub["id"], to="lapsed", from_states=("grace",),
                       reason=f"cycle {message.cycle} unpaid at the end of grace")
        if paid:
            return {"status": "ignored", "reason": f"cycle {message.cycle} was paid"}
        self.phonepe.cancel(sub["merchant_subscription_id"])
        downgraded = self._downgrade(sub, "lapsed")
        return {"status": "lapsed", "downgraded": downgraded}

    def _item(self, kind: str, reference: str, *, cycle: int = 0, attempt: int = 0, order_id: str | None = None,
              recheck: int = 0, not_before: datetime | None = None) -> OutboxItem:
        message = SubscriptionMessage.model_validate({
            "kind": kind, "merchant_subscription_id": reference, "merchant_order_id": order_id, "cycle": cycle,
            "attempt": attempt, "recheck": recheck})
        return item(FUNCTION, message, not_before=not_before)


def subscription_outbox(pool: Pool, queue: Any) -> Outbox:
    """The outbox that sends subscription messages (read back as `SubscriptionMessage`s)."""
    return Outbox(pool=pool, queue=queue, parsers={FUNCTION: SubscriptionMessage.model_validate})
