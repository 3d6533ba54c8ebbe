"""Payments: PhonePe orders per campaign, created idempotently and confirmed by Order Status."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from shared.db import audit
from shared.db.pool import Conn, Pool, one

_BY_ORDER = """
SELECT merchant_order_id, campaign_id, workspace_id, amount_paise, state, phonepe_order_id
FROM public.payments WHERE merchant_order_id = %s
"""
_MARK = """
UPDATE public.payments SET state = %s, phonepe_order_id = coalesce(%s, phonepe_order_id), updated_at = now()
WHERE merchant_order_id = %s AND state <> 'completed'
RETURNING merchant_order_id
"""
_EVENT = "INSERT INTO public.campaign_events (campaign_id, workspace_id, type, data) VALUES (%s, %s, %s, %s)"
_OPEN = """
SELECT merchant_order_id, attempt, amount_paise, state, redirect_url, phonepe_order_id
FROM public.payments WHERE campaign_id = %s AND state IN ('creating', 'pending', 'completed')
FOR UPDATE
"""
_LAST_ATTEMPT = "SELECT coalesce(max(attempt), 0) AS n FROM public.payments WHERE campaign_id = %s"
_INSERT = """
INSERT INTO public.payments (merchant_order_id, campaign_id, workspace_id, attempt, amount_paise, state)
VALUES (%s, %s, %s, %s, %s, 'creating')
"""
_CREATED = """
UPDATE public.payments SET state = 'pending', phonepe_order_id = %s, redirect_url = %s, updated_at = now()
WHERE merchant_order_id = %s
"""
_ABANDON = "UPDATE public.payments SET state = 'failed', updated_at = now() WHERE merchant_order_id = %s"


@dataclass(frozen=True)
class Payment:
    """A PhonePe order that funds one campaign."""

    merchant_order_id: str
    campaign_id: UUID | None
    """None once the campaign's data was erased (the payment is kept as the law requires)."""
    workspace_id: UUID
    amount_paise: int
    state: str
    phonepe_order_id: str | None


class PaymentRepository:
    """Service-side payment SQL (the webhook path has no user)."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def by_merchant_order(self, merchant_order_id: str) -> Payment | None:
        """The payment for a PhonePe merchantOrderId."""
        with self.pool.connection() as conn:
            row = conn.execute(_BY_ORDER, (merchant_order_id,)).fetchone()
        return Payment(**row) if row else None

    def mark(self, payment: Payment, state: str, *, phonepe_order_id: str | None, event: str,
             data: dict[str, Any], on_change: Callable[[Conn], object] | None = None) -> bool:
        """Move a payment to `state` (never out of 'completed') and record an event; False if unchanged.

        `on_change` runs in the same transaction when the state changes (the tax invoice of a completed
        payment), so the change and what it entails commit together or not at all.
        """
        with self.pool.connection() as conn, conn.transaction():
            changed = conn.execute(_MARK, (state, phonepe_order_id, payment.merchant_order_id)).fetchone()
            if changed and on_change is not None:
                on_change(conn)
            if changed:
                conn.execute(_EVENT, (payment.campaign_id, payment.workspace_id, event, Jsonb(data)))
                audit.record(conn, workspace_id=str(payment.workspace_id), actor=audit.function_actor("payments"),
                             action="payment.completed" if state == "completed" else "payment.failed",
                             target_type="payment", target_id=payment.merchant_order_id,
                             details={"campaign_id": str(payment.campaign_id), "amount_paise": payment.amount_paise,
                                      "state": state},
                             key=f"payment:{payment.merchant_order_id}:{state}")
        return changed is not None

    def event(self, payment: Payment, event: str, data: dict[str, Any]) -> None:
        """Record a payment event on the campaign's stream."""
        with self.pool.connection() as conn:
            conn.execute(_EVENT, (payment.campaign_id, payment.workspace_id, event, Jsonb(data)))


def open_payment(conn: Conn, campaign_id: UUID) -> dict[str, Any] | None:
    """The campaign's open payment, locked for this transaction."""
    return conn.execute(_OPEN, (campaign_id,)).fetchone()


def new_payment(conn: Conn, *, campaign_id: UUID, workspace_id: UUID, amount_paise: int) -> tuple[str, int]:
    """Insert the next payment attempt in state 'creating'; returns (merchantOrderId, attempt)."""
    attempt: int = one(conn.execute(_LAST_ATTEMPT, (campaign_id,)))["n"] + 1
    merchant_order_id = f"MUSE-{campaign_id.hex[:24]}-{attempt}"
    conn.execute(_INSERT, (merchant_order_id, campaign_id, workspace_id, attempt, amount_paise))
    return merchant_order_id, attempt


def payment_created(conn: Conn, merchant_order_id: str, *, phonepe_order_id: str, redirect_url: str) -> None:
    """Store what PhonePe returned for a new order."""
    conn.execute(_CREATED, (phonepe_order_id, redirect_url, merchant_order_id))


def abandon_payment(conn: Conn, merchant_order_id: str) -> None:
    """Give up on an attempt whose redirect URL was lost (the next checkout starts a new attempt)."""
    conn.execute(_ABANDON, (merchant_order_id,))
