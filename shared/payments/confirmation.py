"""Turning a PhonePe webhook (or a scheduled re-check) into a `ConfirmedPayment`, or into nothing.

A webhook body is only a trigger: the payment counts once PhonePe's Order Status API says COMPLETED
for exactly the amount the payment row expects. Inconclusive answers schedule re-checks through the
outbox (PhonePe's reconciliation rule), so a lost webhook still ends in a confirmation. The payment's GST
invoice is issued in the transaction that marks it completed (one per payment, however often the webhook
comes); its PDF is rendered after, best effort.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.billing.invoices import PaymentInvoicing
from shared.db.payments import Payment, PaymentRepository
from shared.domain import ConfirmedPayment
from shared.integrations.phonepe import PhonePeClient
from shared.messages import PaymentEvent, StepMessage
from shared.outbox import Outbox, item

log = logging.getLogger("muse.payments")


@dataclass
class PaymentConfirmer:
    """Confirms payments for the `payments` function before its engine runs."""

    payments: PaymentRepository
    phonepe: PhonePeClient
    outbox: Outbox
    recheck_seconds: list[int]
    function: str = "payments"
    invoices: PaymentInvoicing | None = None

    def confirm(self, event: PaymentEvent) -> ConfirmedPayment | None:
        """The confirmed payment behind `event`, or None (unknown, pending, failed or disagreeing)."""
        payment = self.payments.by_merchant_order(event.merchant_order_id)
        if payment is None:
            log.warning("payment event for unknown merchant order %s", event.merchant_order_id)
            return None
        if payment.campaign_id is None:
            log.warning("payment event for merchant order %s, whose campaign was erased", event.merchant_order_id)
            return None
        status = self.phonepe.order_status(payment.merchant_order_id)
        if status is None:
            self.payments.event(payment, "payment.unverified", {"merchant_order_id": payment.merchant_order_id,
                                                                 "reason": "PhonePe does not know this order"})
            return None
        seen = {"merchant_order_id": payment.merchant_order_id, "state": status.state,
                "amount_paise": status.amount_paise, "expected_amount_paise": payment.amount_paise}
        if status.state == "COMPLETED" and status.amount_paise == payment.amount_paise:
            invoices = self.invoices
            self.payments.mark(payment, "completed", phonepe_order_id=status.order_id, event="payment.completed",
                               data=seen, on_change=(lambda conn: invoices.issue(conn, payment)) if invoices else None)
            if invoices is not None:
                invoices.render(payment.merchant_order_id)
            return ConfirmedPayment(merchant_order_id=payment.merchant_order_id, campaign_id=payment.campaign_id,
                                    amount_paise=status.amount_paise, phonepe_order_id=status.order_id, seen=seen)
        if status.state == "FAILED":
            self.payments.mark(payment, "failed", phonepe_order_id=status.order_id, event="payment.failed", data=seen)
            return None
        if status.state != "PENDING" or event.state == "COMPLETED":
            self.payments.event(payment, "payment.mismatch", seen)
        self._schedule_recheck(event, payment)
        return None

    def _schedule_recheck(self, event: PaymentEvent, payment: Payment) -> None:
        """Confirm again later: PhonePe's order status may lag its webhook, and webhooks may never come."""
        attempt = event.recheck
        if attempt >= len(self.recheck_seconds):
            self.payments.event(payment, "payment.unconfirmed", {"merchant_order_id": payment.merchant_order_id,
                                                                 "rechecks": attempt})
            return
        recheck = event.model_copy(update={"recheck": attempt + 1})
        due = datetime.now(UTC) + timedelta(seconds=self.recheck_seconds[attempt])
        self.outbox.send(payment.campaign_id, [item(self.function, StepMessage(kind="payment_event", payment=recheck),
                                                    not_before=due)])


def reconcile_message(merchant_order_id: str, *, recheck: int = 1) -> StepMessage:
    """The message that asks the payments function to confirm an order through Order Status."""
    return StepMessage(kind="payment_event",
                       payment=PaymentEvent(merchant_order_id=merchant_order_id, event="reconcile", recheck=recheck))
