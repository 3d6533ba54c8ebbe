"""The credit note of a completed refund, against the GST invoice of the payment it refunds (`shared.billing`)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.billing.invoices import issue_credit_note
from shared.db import billing as billing_db
from shared.db.pool import Pool, as_service
from shared.db.refunds import RefundRow
from shared.settings import Settings


@dataclass
class InvoiceCreditNotes:
    """`shared.payments.refunds.CreditNotes` over the invoices: one note per refund, keyed by its merchantRefundId."""

    pool: Pool
    settings: Settings

    def issue(self, refund: RefundRow, reason: str) -> str | None:
        """The refund's credit note (issued on first call); None while its payment has no invoice."""
        with as_service(self.pool) as conn:
            invoice = billing_db.invoice_by_payment(conn, refund["merchant_order_id"])
            if invoice is None:
                return None
            note = issue_credit_note(conn, invoice["id"], refund["amount_paise"], reason,
                                     refund["merchant_refund_id"], settings=self.settings)
        return str(note["id"])
