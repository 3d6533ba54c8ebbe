"""Refunds of campaign payments through PhonePe, and the campaign side of a cancel (service connection).

A refund row is written before PhonePe hears of it, keyed by the merchantRefundId Muse derives from the
payment and the attempt (`merchant_refund_id`), so whoever sends it (the cancel's message, a re-check, the
sweeper) sends the same refund. It leaves PENDING once, to COMPLETED or FAILED; a FAILED one may be followed
by the next attempt (PhonePe wants a new merchantRefundId then).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal, TypedDict, cast
from uuid import UUID

from psycopg.types.json import Jsonb

from shared.db.pool import Conn

RefundState = Literal["PENDING", "COMPLETED", "FAILED"]
RefundReason = Literal["cancelled_before_publication", "cancelled_partially_published", "paid_after_cancel"]

_COLUMNS = """merchant_refund_id, merchant_order_id, campaign_id, workspace_id, attempt, amount_paise, reason,
    channels_total, channels_unpublished, state, phonepe_state, phonepe_refund_id, error_code, credit_note_id,
    created_at, updated_at, completed_at"""
_GET = f"SELECT {_COLUMNS} FROM public.refunds WHERE merchant_refund_id = %s"
_LOCK = _GET + " FOR UPDATE"
_OF_PAYMENT = f"SELECT {_COLUMNS} FROM public.refunds WHERE merchant_order_id = %s ORDER BY attempt"
_LATEST_OF_CAMPAIGN = f"""
SELECT {_COLUMNS} FROM public.refunds WHERE campaign_id = %s ORDER BY created_at DESC, attempt DESC LIMIT 1
"""
_NEXT_ATTEMPT = "SELECT coalesce(max(attempt), 0) + 1 AS n FROM public.refunds WHERE merchant_order_id = %s"
_INSERT = f"""
INSERT INTO public.refunds (merchant_refund_id, merchant_order_id, campaign_id, workspace_id, attempt, amount_paise,
    reason, channels_total, channels_unpublished)
VALUES (%(id)s, %(order)s, %(campaign)s, %(workspace)s, %(attempt)s, %(amount)s, %(reason)s, %(total)s,
    %(unpublished)s)
ON CONFLICT DO NOTHING
RETURNING {_COLUMNS}
"""
_SETTLE = f"""
UPDATE public.refunds SET state = %(state)s, phonepe_state = %(phonepe_state)s,
    phonepe_refund_id = coalesce(%(refund_id)s, phonepe_refund_id), error_code = %(error)s, updated_at = now(),
    completed_at = CASE WHEN %(state)s = 'COMPLETED' THEN now() END
WHERE merchant_refund_id = %(id)s AND state = 'PENDING'
RETURNING {_COLUMNS}
"""
_OBSERVE = """
UPDATE public.refunds SET phonepe_state = %s, phonepe_refund_id = coalesce(%s, phonepe_refund_id), updated_at = now()
WHERE merchant_refund_id = %s AND state = 'PENDING'
"""
_CREDIT_NOTE = """
UPDATE public.refunds SET credit_note_id = %s, updated_at = now()
WHERE merchant_refund_id = %s AND credit_note_id IS NULL
RETURNING merchant_refund_id
"""
_UNSETTLED = """
SELECT merchant_refund_id FROM public.refunds
WHERE (state = 'PENDING' OR (state = 'COMPLETED' AND credit_note_id IS NULL))
    AND updated_at < now() - make_interval(secs => %s)
ORDER BY updated_at LIMIT %s
"""
_TOUCH = "UPDATE public.refunds SET updated_at = now() WHERE merchant_refund_id = ANY(%s)"
_EVENT = "INSERT INTO public.campaign_events (campaign_id, workspace_id, type, data) VALUES (%s, %s, %s, %s)"

_CAMPAIGN = """
SELECT id, workspace_id, status, current_step, pending_decision, cancelled_at, cancel_settled_order, fence,
    coalesce(lease_until > now(), false) AS leased,
    greatest(coalesce(extract(epoch FROM lease_until - now()), 0), 0)::float AS lease_seconds_left
FROM public.campaigns WHERE id = %s FOR UPDATE
"""
_CANCEL = """
UPDATE public.campaigns
SET status = 'cancelled', cancelled_at = now(), cancel_settled_order = %(settled)s, pending_decision = NULL,
    failure_reason = %(reason)s,
    lease_owner = NULL, lease_until = NULL, lease_message = NULL, fence = fence + 1, updated_at = now()
WHERE id = %(id)s AND status NOT IN ('completed', 'failed', 'expired', 'cancelled')
RETURNING cancelled_at
"""
_PAID = """
SELECT merchant_order_id, amount_paise FROM public.payments
WHERE campaign_id = %s AND state = 'completed' ORDER BY attempt DESC LIMIT 1
"""
_CLOSE_OPEN_PAYMENTS = """
UPDATE public.payments SET state = 'failed', updated_at = now()
WHERE campaign_id = %s AND state IN ('creating', 'pending')
RETURNING merchant_order_id
"""
_CLOSE_DECISION = """
INSERT INTO public.decisions (id, campaign_id, workspace_id, kind, action, payload, source, decided_by)
VALUES (%s, %s, %s, %s, 'reject', %s, 'user', %s)
ON CONFLICT (id) DO NOTHING
"""
_CHANNELS = """
SELECT a.channel, bool_or(coalesce(p.status IN ('published', 'sending', 'unconfirmed'), false)) AS published
FROM public.artifacts a LEFT JOIN public.publications p ON p.artifact_id = a.id
WHERE a.campaign_id = %s GROUP BY a.channel ORDER BY a.channel
"""
"""A channel counts as published once any of its variants went out on any platform, or may have: a publication
`sending` (its call in flight) or `unconfirmed` (its outcome unknown) is not refunded. `artifacts.status =
'published'` only says execution released the paid copy (publications are then scheduled), not that it went out."""
_CANCEL_PUBLICATIONS = """
UPDATE public.publications SET status = 'cancelled', waiting_reason = NULL, version = version + 1, updated_at = now()
WHERE campaign_id = %s AND status IN ('scheduled', 'waiting')
RETURNING id
"""
_CANCEL_EVENT = """
SELECT data, created_at FROM public.campaign_events
WHERE campaign_id = %s AND type = 'campaign.cancelled' ORDER BY id LIMIT 1
"""


class RefundRow(TypedDict):
    """A row of `public.refunds`."""

    merchant_refund_id: str
    merchant_order_id: str
    campaign_id: UUID | None
    workspace_id: UUID
    attempt: int
    amount_paise: int
    reason: RefundReason
    channels_total: int | None
    channels_unpublished: int | None
    state: RefundState
    phonepe_state: str | None
    phonepe_refund_id: str | None
    error_code: str | None
    credit_note_id: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class CampaignLock(TypedDict):
    """The campaign row as a cancel sees it, locked for its transaction."""

    id: UUID
    workspace_id: UUID
    status: str
    current_step: str | None
    pending_decision: dict[str, object] | None
    cancelled_at: datetime | None
    cancel_settled_order: str | None
    fence: int
    leased: bool
    lease_seconds_left: float


class PaidOrder(TypedDict):
    """The campaign's completed payment."""

    merchant_order_id: str
    amount_paise: int


class CancelEvent(TypedDict):
    """The `campaign.cancelled` event: what the cancel found and did."""

    data: dict[str, Any]
    created_at: datetime


class ChannelPublication(TypedDict):
    """Whether a channel of the campaign was published."""

    channel: str
    published: bool


def merchant_refund_id(merchant_order_id: str, attempt: int) -> str:
    """The merchantRefundId of `attempt` at refunding a payment: `{merchantOrderId}-R{attempt}` (a digest of the
    order id when that would pass PhonePe's 63 characters). Derived, never random, so a retry is the same refund."""
    candidate = f"{merchant_order_id}-R{attempt}"
    if len(candidate) <= 63:
        return candidate
    return f"MUSER-{hashlib.sha256(merchant_order_id.encode()).hexdigest()[:40]}-{attempt}"


def get(conn: Conn, refund_id: str, *, lock: bool = False) -> RefundRow | None:
    """The refund, optionally locked for the caller's transaction."""
    return cast(RefundRow | None, conn.execute(_LOCK if lock else _GET, (refund_id,)).fetchone())


def of_payment(conn: Conn, merchant_order_id: str) -> list[RefundRow]:
    """Every refund attempt of a payment, first first."""
    return cast(list[RefundRow], conn.execute(_OF_PAYMENT, (merchant_order_id,)).fetchall())


def latest_of_campaign(conn: Conn, campaign_id: UUID) -> RefundRow | None:
    """The campaign's most recent refund attempt."""
    return cast(RefundRow | None, conn.execute(_LATEST_OF_CAMPAIGN, (campaign_id,)).fetchone())


def insert(conn: Conn, *, merchant_order_id: str, campaign_id: UUID | None, workspace_id: UUID, amount_paise: int,
           reason: RefundReason, channels_total: int | None = None,
           channels_unpublished: int | None = None) -> RefundRow | None:
    """The payment's next refund attempt, PENDING; None when one is already PENDING (the caller holds the lock
    that makes the next attempt number its own)."""
    attempt = int(conn.execute(_NEXT_ATTEMPT, (merchant_order_id,)).fetchone()["n"])  # type: ignore[index]
    return cast(RefundRow | None, conn.execute(_INSERT, {
        "id": merchant_refund_id(merchant_order_id, attempt), "order": merchant_order_id, "campaign": campaign_id,
        "workspace": workspace_id, "attempt": attempt, "amount": amount_paise, "reason": reason,
        "total": channels_total, "unpublished": channels_unpublished}).fetchone())


def settle(conn: Conn, refund_id: str, state: Literal["COMPLETED", "FAILED"], *, phonepe_state: str,
           phonepe_refund_id: str | None, error_code: str | None) -> RefundRow | None:
    """Move a PENDING refund to its final state; None if it had already left PENDING (a replay)."""
    return cast(RefundRow | None, conn.execute(_SETTLE, {
        "state": state, "phonepe_state": phonepe_state, "refund_id": phonepe_refund_id or None,
        "error": error_code, "id": refund_id}).fetchone())


def observe(conn: Conn, refund_id: str, *, phonepe_state: str, phonepe_refund_id: str | None) -> None:
    """Note what PhonePe says of a refund still in progress (PENDING or CONFIRMED)."""
    conn.execute(_OBSERVE, (phonepe_state, phonepe_refund_id or None, refund_id))


def set_credit_note(conn: Conn, refund_id: str, credit_note_id: str) -> bool:
    """Remember the credit note issued against the refund's invoice; False if it was already remembered."""
    return conn.execute(_CREDIT_NOTE, (credit_note_id, refund_id)).fetchone() is not None


def unsettled(conn: Conn, *, idle_seconds: float, limit: int = 100) -> list[str]:
    """Refunds nothing moved for `idle_seconds` that still need PhonePe or a credit note, oldest first."""
    return [str(r["merchant_refund_id"]) for r in conn.execute(_UNSETTLED, (idle_seconds, limit)).fetchall()]


def touch(conn: Conn, refund_ids: list[str]) -> None:
    """Note that these refunds were just re-checked (so the sweeper waits before the next time)."""
    conn.execute(_TOUCH, (refund_ids,))


def add_event(conn: Conn, refund: RefundRow, type_: str, data: dict[str, object]) -> None:
    """Append an event about the refund to its campaign's stream (nothing once the campaign was erased)."""
    if refund["campaign_id"] is not None:
        conn.execute(_EVENT, (refund["campaign_id"], refund["workspace_id"], type_, Jsonb(data)))


def lock_campaign(conn: Conn, campaign_id: UUID) -> CampaignLock | None:
    """The campaign, locked until the caller's transaction ends (steps take their lease on this row too)."""
    return cast(CampaignLock | None, conn.execute(_CAMPAIGN, (campaign_id,)).fetchone())


def mark_cancelled(conn: Conn, campaign_id: UUID, *, reason: str, settled_order: str | None) -> datetime | None:
    """End the campaign `cancelled`: no pending decision, no lease, a new fence (so a step still running can
    commit nothing); `settled_order` is the completed payment the cancel dealt with. None if it had ended."""
    row = conn.execute(_CANCEL, {"reason": reason, "id": campaign_id, "settled": settled_order}).fetchone()
    return None if row is None else cast(datetime, row["cancelled_at"])


def paid_order(conn: Conn, campaign_id: UUID) -> PaidOrder | None:
    """The campaign's completed payment, if any."""
    return cast(PaidOrder | None, conn.execute(_PAID, (campaign_id,)).fetchone())


def close_open_payments(conn: Conn, campaign_id: UUID) -> list[str]:
    """Close the campaign's orders still being paid; one that completes anyway is refunded on confirmation."""
    return [str(r["merchant_order_id"]) for r in conn.execute(_CLOSE_OPEN_PAYMENTS, (campaign_id,)).fetchall()]


def close_decision(conn: Conn, *, decision_id: str, campaign_id: UUID, workspace_id: UUID, kind: str,
                   payload: dict[str, object], user_id: UUID) -> None:
    """Record the pending human decision as answered by the cancel, so a late answer finds it taken."""
    conn.execute(_CLOSE_DECISION, (decision_id, campaign_id, workspace_id, kind, Jsonb(payload), user_id))


def cancel_publications(conn: Conn, campaign_id: UUID) -> int:
    """Cancel the campaign's publications that have not fired (a new version, so their queued messages do nothing);
    how many there were."""
    return len(conn.execute(_CANCEL_PUBLICATIONS, (campaign_id,)).fetchall())


def channels(conn: Conn, campaign_id: UUID) -> list[ChannelPublication]:
    """The campaign's channels and whether each was published."""
    return cast(list[ChannelPublication], conn.execute(_CHANNELS, (campaign_id,)).fetchall())


def cancel_event(conn: Conn, campaign_id: UUID) -> CancelEvent | None:
    """The campaign's `campaign.cancelled` event (the first, there is one)."""
    return cast(CancelEvent | None, conn.execute(_CANCEL_EVENT, (campaign_id,)).fetchone())
