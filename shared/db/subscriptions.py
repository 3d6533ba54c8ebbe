"""SQL of UPI Autopay plans: a workspace's mandates (`subscriptions`) and the cycles that collect them.

Every change is a conditional update that says whether it happened, so a redelivered message or webhook
finds the change made and does nothing twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, TypedDict, cast

from shared.db.pool import Conn

SubscriptionState = Literal["pending", "active", "grace", "cancelled", "lapsed", "ended", "failed"]
CycleState = Literal["notifying", "notified", "redeeming", "completed", "failed"]
LIVE_STATES: tuple[SubscriptionState, ...] = ("pending", "active", "grace")


class SubscriptionRow(TypedDict):
    """One mandate."""

    id: str
    workspace_id: str
    seq: int
    merchant_subscription_id: str
    setup_order_id: str
    tier: str
    amount_paise: int
    state: SubscriptionState
    phonepe_subscription_id: str | None
    intent_url: str | None
    created_at: datetime
    activated_at: datetime | None
    paid_through: datetime | None
    grace_until: datetime | None
    cancelled_at: datetime | None
    downgrade_at: datetime | None
    ended_at: datetime | None
    reason: str | None


class CycleRow(TypedDict):
    """One attempt to collect one period."""

    subscription_id: str
    workspace_id: str
    cycle: int
    attempt: int
    merchant_order_id: str
    amount_paise: int
    period_start: datetime
    period_end: datetime
    state: CycleState
    phonepe_order_id: str | None
    redeem_after: datetime | None
    notified_at: datetime | None
    redeemed_at: datetime | None
    completed_at: datetime | None
    failed_at: datetime | None
    error_code: str | None
    invoice_id: str | None


_COLUMNS = """id::text AS id, workspace_id::text AS workspace_id, seq, merchant_subscription_id, setup_order_id, tier,
amount_paise, state, phonepe_subscription_id, intent_url, created_at, activated_at, paid_through, grace_until,
cancelled_at, downgrade_at, ended_at, reason"""
_CYCLE_COLUMNS = """subscription_id::text AS subscription_id, workspace_id::text AS workspace_id, cycle, attempt,
merchant_order_id, amount_paise, period_start, period_end, state, phonepe_order_id, redeem_after, notified_at,
redeemed_at, completed_at, failed_at, error_code, invoice_id"""

_LOCK_WORKSPACE = "SELECT id FROM public.workspaces WHERE id = %s FOR UPDATE"
_NEXT_SEQ = "SELECT coalesce(max(seq), 0) + 1 AS n FROM public.subscriptions WHERE workspace_id = %s"
_INSERT = f"""
INSERT INTO public.subscriptions (workspace_id, seq, merchant_subscription_id, setup_order_id, tier, amount_paise,
                                  state, created_by)
VALUES (%(workspace_id)s, %(seq)s, %(merchant_subscription_id)s, %(setup_order_id)s, %(tier)s, %(amount_paise)s,
        'pending', %(created_by)s)
RETURNING {_COLUMNS}
"""
_LIVE = f"SELECT {_COLUMNS} FROM public.subscriptions WHERE workspace_id = %s AND state IN ('pending', 'active', " \
        "'grace')"
_LATEST = f"SELECT {_COLUMNS} FROM public.subscriptions WHERE workspace_id = %s ORDER BY seq DESC LIMIT 1"
_BY_MERCHANT_ID = f"SELECT {_COLUMNS} FROM public.subscriptions WHERE merchant_subscription_id = %s"
_SET_INTENT = "UPDATE public.subscriptions SET intent_url = %s, updated_at = now() WHERE id = %s"
_ACTIVATE = f"""
UPDATE public.subscriptions SET state = 'active', activated_at = now(), phonepe_subscription_id = %s, updated_at = now()
WHERE id = %s AND state = 'pending' RETURNING {_COLUMNS}
"""
_FAIL_SETUP = """
UPDATE public.subscriptions SET state = 'failed', reason = %s, ended_at = now(), updated_at = now()
WHERE id = %s AND state = 'pending'
"""
_CANCEL = f"""
UPDATE public.subscriptions SET state = 'cancelled', cancelled_at = %(now)s, reason = %(reason)s,
    downgrade_at = greatest(%(now)s, coalesce(paid_through, %(now)s)), updated_at = now()
WHERE id = %(id)s AND state IN ('active', 'grace') RETURNING {_COLUMNS}
"""
_GRACE = f"""
UPDATE public.subscriptions SET state = 'grace', grace_until = coalesce(grace_until, %s), updated_at = now()
WHERE id = %s AND state IN ('active', 'grace') RETURNING {_COLUMNS}
"""
_PAID = f"""
UPDATE public.subscriptions
SET paid_through = greatest(coalesce(paid_through, %(through)s), %(through)s), grace_until = NULL,
    state = CASE WHEN state = 'grace' THEN 'active' ELSE state END, updated_at = now()
WHERE id = %(id)s RETURNING {_COLUMNS}
"""
_END = """
UPDATE public.subscriptions SET state = %(to)s, ended_at = now(), reason = coalesce(%(reason)s, reason),
    updated_at = now()
WHERE id = %(id)s AND state = ANY(%(from)s)
"""
_OTHER_LIVE = "SELECT 1 FROM public.subscriptions WHERE workspace_id = %s AND id <> %s AND state IN ('pending', " \
              "'active', 'grace') LIMIT 1"

_ADD_CYCLE = """
INSERT INTO public.subscription_cycles (subscription_id, workspace_id, cycle, attempt, merchant_order_id, amount_paise,
                                        period_start, period_end, state)
VALUES (%(subscription_id)s, %(workspace_id)s, %(cycle)s, %(attempt)s, %(merchant_order_id)s, %(amount_paise)s,
        %(period_start)s, %(period_end)s, 'notifying')
ON CONFLICT (subscription_id, cycle, attempt) DO NOTHING
"""
_CYCLE = f"SELECT {_CYCLE_COLUMNS} FROM public.subscription_cycles WHERE merchant_order_id = %s"
_CYCLES = f"SELECT {_CYCLE_COLUMNS} FROM public.subscription_cycles WHERE subscription_id = %s ORDER BY cycle, attempt"
_PAID_CYCLE = "SELECT 1 FROM public.subscription_cycles WHERE subscription_id = %s AND cycle = %s AND state = " \
              "'completed'"
_NOTIFIED = """
UPDATE public.subscription_cycles SET state = 'notified', notified_at = now(), redeem_after = %s
WHERE merchant_order_id = %s AND state = 'notifying'
"""
_REDEEMING = """
UPDATE public.subscription_cycles SET state = 'redeeming', redeemed_at = now()
WHERE merchant_order_id = %s AND state = 'notified'
"""
_COMPLETE = f"""
UPDATE public.subscription_cycles SET state = 'completed', completed_at = now(), phonepe_order_id = %s
WHERE merchant_order_id = %s AND state IN ('notifying', 'notified', 'redeeming') RETURNING {_CYCLE_COLUMNS}
"""
_FAIL = f"""
UPDATE public.subscription_cycles SET state = 'failed', failed_at = now(), phonepe_order_id = %s, error_code = %s
WHERE merchant_order_id = %s AND state IN ('notifying', 'notified', 'redeeming') RETURNING {_CYCLE_COLUMNS}
"""
_SET_INVOICE = "UPDATE public.subscription_cycles SET invoice_id = %s WHERE merchant_order_id = %s"


def lock_workspace(conn: Conn, workspace_id: str) -> bool:
    """Lock the workspace row (one mandate change at a time); False if there is no such workspace."""
    return conn.execute(_LOCK_WORKSPACE, (workspace_id,)).fetchone() is not None


def next_seq(conn: Conn, workspace_id: str) -> int:
    """The number of the workspace's next mandate (1 for its first); call with the workspace locked."""
    return int(conn.execute(_NEXT_SEQ, (workspace_id,)).fetchone()["n"])  # type: ignore[index]


def create(conn: Conn, *, workspace_id: str, seq: int, merchant_subscription_id: str, setup_order_id: str, tier: str,
           amount_paise: int, created_by: str | None) -> SubscriptionRow:
    """A new `pending` mandate."""
    row = conn.execute(_INSERT, {"workspace_id": workspace_id, "seq": seq,
                                 "merchant_subscription_id": merchant_subscription_id,
                                 "setup_order_id": setup_order_id, "tier": tier, "amount_paise": amount_paise,
                                 "created_by": created_by}).fetchone()
    return cast(SubscriptionRow, row)


def live(conn: Conn, workspace_id: str) -> SubscriptionRow | None:
    """The workspace's live mandate (pending, active or in grace), if any."""
    return cast(SubscriptionRow | None, conn.execute(_LIVE, (workspace_id,)).fetchone())


def latest(conn: Conn, workspace_id: str) -> SubscriptionRow | None:
    """The workspace's newest mandate, whatever its state."""
    return cast(SubscriptionRow | None, conn.execute(_LATEST, (workspace_id,)).fetchone())


def by_merchant_id(conn: Conn, merchant_subscription_id: str) -> SubscriptionRow | None:
    return cast(SubscriptionRow | None, conn.execute(_BY_MERCHANT_ID, (merchant_subscription_id,)).fetchone())


def set_intent(conn: Conn, subscription_id: str, intent_url: str) -> None:
    conn.execute(_SET_INTENT, (intent_url, subscription_id))


def activate(conn: Conn, subscription_id: str, phonepe_subscription_id: str) -> SubscriptionRow | None:
    """pending → active; the row once, None when it was not pending."""
    return cast(SubscriptionRow | None, conn.execute(_ACTIVATE, (phonepe_subscription_id, subscription_id)).fetchone())


def fail_setup(conn: Conn, subscription_id: str, reason: str) -> bool:
    """pending → failed; whether it happened."""
    return conn.execute(_FAIL_SETUP, (reason[:500], subscription_id)).rowcount == 1


def cancel(conn: Conn, subscription_id: str, reason: str, now: datetime) -> SubscriptionRow | None:
    """active/grace → cancelled, downgrading at the end of the paid period (or `now`); the row once."""
    return cast(SubscriptionRow | None, conn.execute(_CANCEL, {"id": subscription_id, "reason": reason[:500],
                                                               "now": now}).fetchone())


def enter_grace(conn: Conn, subscription_id: str, grace_until: datetime) -> SubscriptionRow | None:
    """active → grace until `grace_until` (a mandate already in grace keeps its end); None if it is neither."""
    return cast(SubscriptionRow | None, conn.execute(_GRACE, (grace_until, subscription_id)).fetchone())


def mark_paid(conn: Conn, subscription_id: str, through: datetime) -> SubscriptionRow:
    """The mandate is paid through `through` (never moved back); a mandate in grace is active again."""
    return cast(SubscriptionRow, conn.execute(_PAID, {"id": subscription_id, "through": through}).fetchone())


def end(conn: Conn, subscription_id: str, *, to: Literal["lapsed", "ended", "failed"],
        from_states: tuple[SubscriptionState, ...], reason: str | None = None) -> bool:
    """Move the mandate to a final state from one of `from_states`; whether it happened."""
    return conn.execute(_END, {"id": subscription_id, "to": to, "from": list(from_states),
                               "reason": reason[:500] if reason else None}).rowcount == 1


def other_live(conn: Conn, workspace_id: str, subscription_id: str) -> bool:
    """Whether the workspace has a live mandate other than this one (a newer plan it set up meanwhile)."""
    return conn.execute(_OTHER_LIVE, (workspace_id, subscription_id)).fetchone() is not None


def add_cycle(conn: Conn, *, subscription: SubscriptionRow, cycle: int, attempt: int, merchant_order_id: str,
              period_start: datetime, period_end: datetime) -> None:
    """Record a collection attempt (nothing when it exists: its id is derived from cycle and attempt)."""
    conn.execute(_ADD_CYCLE, {"subscription_id": subscription["id"], "workspace_id": subscription["workspace_id"],
                              "cycle": cycle, "attempt": attempt, "merchant_order_id": merchant_order_id,
                              "amount_paise": subscription["amount_paise"], "period_start": period_start,
                              "period_end": period_end})


def cycle(conn: Conn, merchant_order_id: str) -> CycleRow | None:
    return cast(CycleRow | None, conn.execute(_CYCLE, (merchant_order_id,)).fetchone())


def cycles(conn: Conn, subscription_id: str) -> list[CycleRow]:
    """Every attempt of the mandate, oldest first."""
    return cast(list[CycleRow], conn.execute(_CYCLES, (subscription_id,)).fetchall())


def cycle_paid(conn: Conn, subscription_id: str, cycle_number: int) -> bool:
    return conn.execute(_PAID_CYCLE, (subscription_id, cycle_number)).fetchone() is not None


def mark_notified(conn: Conn, merchant_order_id: str, redeem_after: datetime) -> bool:
    return conn.execute(_NOTIFIED, (redeem_after, merchant_order_id)).rowcount == 1


def mark_redeeming(conn: Conn, merchant_order_id: str) -> bool:
    return conn.execute(_REDEEMING, (merchant_order_id,)).rowcount == 1


def complete_cycle(conn: Conn, merchant_order_id: str, phonepe_order_id: str) -> CycleRow | None:
    """The attempt is paid; the row once, None when it was already settled."""
    return cast(CycleRow | None, conn.execute(_COMPLETE, (phonepe_order_id, merchant_order_id)).fetchone())


def fail_cycle(conn: Conn, merchant_order_id: str, phonepe_order_id: str, error_code: str | None) -> CycleRow | None:
    """The attempt failed; the row once, None when it was already settled."""
    return cast(CycleRow | None, conn.execute(_FAIL, (phonepe_order_id, (error_code or "")[:100] or None,
                                                      merchant_order_id)).fetchone())


def set_invoice(conn: Conn, merchant_order_id: str, invoice_id: str) -> None:
    conn.execute(_SET_INVOICE, (invoice_id, merchant_order_id))
