"""Refunds through PhonePe: sent once, confirmed by the Refund Status API, then a credit note against the invoice.

A refund is a `public.refunds` row first (`shared.db.refunds`), committed with an outbox message that asks the
`payments` function to send it, so a crash never loses one and a retry never doubles one: PhonePe keys refunds
by the merchantRefundId derived from the payment and the attempt. Every later trigger (the refund webhook, a
scheduled re-check, the sweeper) only makes the service look again: the row changes when the Refund Status API
says COMPLETED (for the row's amount) or FAILED, once, and a replayed webhook finds nothing left to change.
A FAILED refund is tried again under the next attempt's merchantRefundId, up to `max_attempts`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from shared.db import audit
from shared.db import outbox as outbox_db
from shared.db import refunds as db
from shared.db.pool import Conn, Pool, as_service
from shared.db.refunds import RefundReason, RefundRow
from shared.domain import ConfirmedPayment, OutboxItem
from shared.errors import InvalidRequest
from shared.integrations.phonepe import RefundStatus
from shared.messages import RefundEvent, StepMessage
from shared.outbox import Outbox, item

log = logging.getLogger("muse.refunds")

MIN_REFUND_PAISE = 100
"""PhonePe refunds at least ₹1."""
IN_PROGRESS = frozenset({"PENDING", "CONFIRMED"})


class RefundGateway(Protocol):
    """PhonePe's refund calls (`shared.integrations.phonepe.PhonePeClient`)."""

    def refund(self, merchant_refund_id: str, original_merchant_order_id: str, amount_paise: int) -> RefundStatus:
        ...

    def refund_status(self, merchant_refund_id: str) -> RefundStatus | None:
        ...


class CreditNotes(Protocol):
    """Issues the credit note of a completed refund against its payment's invoice (GST, shared.billing)."""

    def issue(self, refund: RefundRow, reason: str) -> str | None:
        """The credit note's id; at most one per refund however often asked. None while the payment has no
        invoice to credit (the refund is asked again later)."""
        ...


def prorata_refund_paise(amount_paise: int, channels_total: int, channels_unpublished: int) -> int:
    """The share of `amount_paise` that pays for the unpublished channels, rounded down to the paisa (a refund
    never returns more than the unpublished share). No channels at all means nothing was published: all of it."""
    if channels_total <= 0:
        return amount_paise
    if not 0 <= channels_unpublished <= channels_total:
        raise ValueError(f"{channels_unpublished} unpublished of {channels_total} channels is not a share")
    return amount_paise * channels_unpublished // channels_total


def refund_message(merchant_refund_id: str, *, event: str = "initiate", state: str = "",
                   recheck: int = 0) -> StepMessage:
    """The message that asks the `payments` function to send or re-check a refund."""
    return StepMessage(kind="refund_event", refund=RefundEvent(merchant_refund_id=merchant_refund_id, event=event,
                                                               state=state[:20], recheck=recheck))


def start_refund(conn: Conn, *, merchant_order_id: str, campaign_id: Any, workspace_id: Any, amount_paise: int,
                 reason: RefundReason, actor: str, channels_total: int | None = None,
                 channels_unpublished: int | None = None) -> tuple[RefundRow | None, list[OutboxItem]]:
    """Write a new refund of a payment in the caller's transaction (its audit entry and event included) and the
    outbox item that sends it; (None, []) when one of the payment is already in progress."""
    refund = db.insert(conn, merchant_order_id=merchant_order_id, campaign_id=campaign_id, workspace_id=workspace_id,
                       amount_paise=amount_paise, reason=reason, channels_total=channels_total,
                       channels_unpublished=channels_unpublished)
    if refund is None:
        return None, []
    details = {"merchant_order_id": merchant_order_id, "amount_paise": amount_paise, "reason": reason,
               "attempt": refund["attempt"], "campaign_id": str(campaign_id) if campaign_id else None}
    audit.record(conn, workspace_id=str(workspace_id), actor=actor, action="refund.requested", target_type="refund",
                 target_id=refund["merchant_refund_id"], details=details,
                 key=f"refund:{refund['merchant_refund_id']}:requested")
    db.add_event(conn, refund, "refund.requested", {"merchant_refund_id": refund["merchant_refund_id"], **details})
    return refund, [item("payments", refund_message(refund["merchant_refund_id"]))]


@dataclass
class RefundService:
    """Sends refunds, follows them to a final state and issues their credit notes (in the `payments` function)."""

    pool: Pool
    phonepe: RefundGateway
    outbox: Outbox
    recheck_seconds: list[int]
    max_attempts: int = 3
    credit_notes: CreditNotes | None = None
    function: str = "payments"

    def handle(self, event: RefundEvent) -> dict[str, Any]:
        """Act on one trigger about a refund; safe to repeat (every change happens once)."""
        with self.pool.connection() as conn:
            refund = db.get(conn, event.merchant_refund_id)
        if refund is None:
            log.warning("refund event %s for unknown refund %s", event.event, event.merchant_refund_id)
            return {"status": "ignored", "reason": f"refund {event.merchant_refund_id!r} is not Muse's"}
        if refund["state"] == "PENDING":
            status = self.phonepe.refund_status(refund["merchant_refund_id"])
            if status is None:
                status = self._send(refund)
            refund = self._apply(refund, status, event)
        if refund["state"] == "COMPLETED" and refund["credit_note_id"] is None:
            refund = self._credit(refund)
        return {"status": refund["state"].lower(), "merchant_refund_id": refund["merchant_refund_id"],
                "credit_note_id": refund["credit_note_id"]}

    def refund_if_cancelled(self, payment: ConfirmedPayment) -> RefundRow | None:
        """Refund in full a payment that completed for a campaign already cancelled (the cancel did not settle it).

        The step engine calls it on every COMPLETED confirmation, so a crash right after confirming is healed by
        the next webhook or re-check; the campaign row's lock orders it against a concurrent cancel.
        """
        rows = []
        with as_service(self.pool) as conn:
            campaign = db.lock_campaign(conn, payment.campaign_id)
            if campaign is None or campaign["status"] != "cancelled":
                return None
            if campaign["cancel_settled_order"] == payment.merchant_order_id:
                return None
            if db.of_payment(conn, payment.merchant_order_id):
                return None
            refund, items = start_refund(conn, merchant_order_id=payment.merchant_order_id,
                                         campaign_id=payment.campaign_id, workspace_id=campaign["workspace_id"],
                                         amount_paise=payment.amount_paise, reason="paid_after_cancel",
                                         actor=audit.function_actor(self.function))
            rows = outbox_db.add(conn, payment.campaign_id, items)
        self.outbox.publish(rows)
        return refund

    def _send(self, refund: RefundRow) -> RefundStatus | None:
        """`POST /payments/v2/refund`; None if PhonePe refused it (and has not got it from an earlier send)."""
        try:
            return self.phonepe.refund(refund["merchant_refund_id"], refund["merchant_order_id"],
                                       refund["amount_paise"])
        except InvalidRequest as exc:
            known = self.phonepe.refund_status(refund["merchant_refund_id"])
            if known is not None:
                return known
            log.warning("PhonePe refused refund %s: %s", refund["merchant_refund_id"], exc.message)
            return RefundStatus(state="FAILED", amount_paise=refund["amount_paise"], refund_id="",
                                error_code="REFUSED", raw={"message": exc.message[:300]})

    def _apply(self, refund: RefundRow, status: RefundStatus | None, event: RefundEvent) -> RefundRow:
        """Record what PhonePe says of a PENDING refund: final once, in progress → another look later."""
        assert status is not None
        seen = {"merchant_refund_id": refund["merchant_refund_id"], "state": status.state,
                "amount_paise": status.amount_paise, "expected_amount_paise": refund["amount_paise"],
                "trigger": event.event}
        rows = []
        with as_service(self.pool) as conn:
            if status.state == "COMPLETED" and status.amount_paise == refund["amount_paise"]:
                settled = db.settle(conn, refund["merchant_refund_id"], "COMPLETED", phonepe_state=status.state,
                                    phonepe_refund_id=status.refund_id, error_code=None)
                if settled is not None:
                    self._record(conn, settled, "refund.completed", seen)
                    refund = settled
            elif status.state == "FAILED":
                settled = db.settle(conn, refund["merchant_refund_id"], "FAILED", phonepe_state=status.state,
                                    phonepe_refund_id=status.refund_id, error_code=status.error_code)
                if settled is not None:
                    self._record(conn, settled, "refund.failed", seen | {"error_code": status.error_code})
                    rows = outbox_db.add(conn, settled["campaign_id"], self._retry(conn, settled))
                    refund = settled
            else:
                if status.state not in IN_PROGRESS:
                    db.add_event(conn, refund, "refund.mismatch", seen)
                db.observe(conn, refund["merchant_refund_id"], phonepe_state=status.state,
                           phonepe_refund_id=status.refund_id)
                rows = outbox_db.add(conn, refund["campaign_id"], self._recheck(conn, refund, event))
        self.outbox.publish(rows)
        return refund

    def _record(self, conn: Conn, refund: RefundRow, action: str, seen: dict[str, Any]) -> None:
        db.add_event(conn, refund, action, seen)
        audit.record(conn, workspace_id=str(refund["workspace_id"]), actor=audit.function_actor(self.function),
                     action="refund.completed" if action == "refund.completed" else "refund.failed",
                     target_type="refund", target_id=refund["merchant_refund_id"],
                     details={"merchant_order_id": refund["merchant_order_id"], "amount_paise": refund["amount_paise"],
                              "attempt": refund["attempt"], "error_code": refund["error_code"]},
                     key=f"refund:{refund['merchant_refund_id']}:{refund['state'].lower()}")

    def _retry(self, conn: Conn, failed: RefundRow) -> list[OutboxItem]:
        """The next attempt of a failed refund (a new merchantRefundId), while attempts are left."""
        if failed["attempt"] >= self.max_attempts:
            db.add_event(conn, failed, "refund.abandoned", {"merchant_refund_id": failed["merchant_refund_id"],
                                                            "attempts": failed["attempt"]})
            return []
        _, items = start_refund(conn, merchant_order_id=failed["merchant_order_id"], campaign_id=failed["campaign_id"],
                                workspace_id=failed["workspace_id"], amount_paise=failed["amount_paise"],
                                reason=failed["reason"], actor=audit.function_actor(self.function),
                                channels_total=failed["channels_total"],
                                channels_unpublished=failed["channels_unpublished"])
        return items

    def _recheck(self, conn: Conn, refund: RefundRow, event: RefundEvent) -> list[OutboxItem]:
        """Look again later (PhonePe's reconciliation rule); past the schedule, the sweeper keeps looking."""
        attempt = event.recheck
        if attempt >= len(self.recheck_seconds):
            db.add_event(conn, refund, "refund.unconfirmed", {"merchant_refund_id": refund["merchant_refund_id"],
                                                              "rechecks": attempt})
            return []
        due = datetime.now(UTC) + timedelta(seconds=self.recheck_seconds[attempt])
        message = refund_message(refund["merchant_refund_id"], event="reconcile", recheck=attempt + 1)
        return [item(self.function, message, not_before=due)]

    def _credit(self, refund: RefundRow) -> RefundRow:
        """Issue the refund's credit note (idempotent by refund id) and remember it."""
        if self.credit_notes is None:
            return refund
        reasons = {"cancelled_before_publication": "Campaign cancelled before publication: full refund",
                   "cancelled_partially_published": "Campaign cancelled after partial publication: refund of "
                                                    f"{refund['channels_unpublished']} of {refund['channels_total']} "
                                                    "channels",
                   "paid_after_cancel": "Payment received after the campaign was cancelled: full refund"}
        reason = reasons[refund["reason"]]
        note_id = self.credit_notes.issue(refund, reason)
        if note_id is None:
            return refund
        with as_service(self.pool) as conn:
            if db.set_credit_note(conn, refund["merchant_refund_id"], note_id):
                db.add_event(conn, refund, "refund.credit_note_issued",
                             {"merchant_refund_id": refund["merchant_refund_id"], "credit_note_id": note_id})
        return {**refund, "credit_note_id": note_id}
