"""AI-spend caps and the reserve-then-settle ledger (`budgets`, `spend_periods`, `campaign_spend`).

`reserve` and `settle` call the SQL functions of migration 20261201190100: one round trip each, atomic
in Postgres (row locks on the workspace's month, then the campaign), so concurrent callers never pass a
cap together. Every amount is integer micro-USD.
"""

from __future__ import annotations

from datetime import date
from typing import Any, TypedDict, cast
from uuid import UUID

from shared.db.pool import Conn, one
from shared.ports import Usage

_RESERVE = "SELECT ok, scope, cap, spent, reserved FROM public.reserve_spend(%s, %s, %s, %s, %s, %s, %s)"
_SETTLE = "SELECT public.settle_spend(%s, %s) AS settled"
_TOOL_USAGE = """
INSERT INTO public.tool_usage (reservation_id, campaign_id, workspace_id, node, tool, vendor, credits, cached,
    cost_micro_usd)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (reservation_id) DO NOTHING
"""
_MODEL_USAGE = """
INSERT INTO public.model_usage (reservation_id, campaign_id, workspace_id, node, model, prompt_tokens, cached_tokens,
    output_tokens, thinking_tokens, cost_micro_usd)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (reservation_id) DO NOTHING
"""
_STALE = """
SELECT id FROM public.spend_reservations
WHERE settled_at IS NULL AND created_at < now() - make_interval(secs => %s)
ORDER BY created_at LIMIT %s
"""
_CAPS = """
SELECT monthly_cap_micro_usd, campaign_cap_micro_usd, updated_at FROM public.budgets WHERE workspace_id = %s
"""
_SET_CAPS = """
INSERT INTO public.budgets (workspace_id, monthly_cap_micro_usd, campaign_cap_micro_usd)
VALUES (%(workspace)s, %(monthly)s, %(campaign)s)
ON CONFLICT (workspace_id) DO UPDATE SET
    monthly_cap_micro_usd = CASE WHEN %(set_monthly)s THEN excluded.monthly_cap_micro_usd
                                 ELSE budgets.monthly_cap_micro_usd END,
    campaign_cap_micro_usd = CASE WHEN %(set_campaign)s THEN excluded.campaign_cap_micro_usd
                                  ELSE budgets.campaign_cap_micro_usd END,
    updated_at = now()
RETURNING monthly_cap_micro_usd, campaign_cap_micro_usd, updated_at
"""
_SET_CAMPAIGN_CAP = """
INSERT INTO public.campaign_spend (campaign_id, workspace_id, cap_micro_usd)
SELECT id, workspace_id, %(cap)s FROM public.campaigns WHERE id = %(campaign)s AND workspace_id = %(workspace)s
ON CONFLICT (campaign_id) DO UPDATE SET cap_micro_usd = excluded.cap_micro_usd
RETURNING cap_micro_usd
"""
_PERIOD = """
SELECT coalesce(sum(spent_micro_usd), 0)::bigint AS spent, coalesce(sum(reserved_micro_usd), 0)::bigint AS reserved
FROM public.spend_periods WHERE workspace_id = %s AND period = %s
"""
_CAMPAIGN = """
SELECT cap_micro_usd, spent_micro_usd AS spent, reserved_micro_usd AS reserved
FROM public.campaign_spend WHERE campaign_id = %s
"""


class Reserved(TypedDict):
    """The answer of `reserve_spend`: ok, or which cap refused and how far its spend had got."""

    ok: bool
    scope: str | None
    cap: int | None
    spent: int | None
    reserved: int | None


class Caps(TypedDict):
    """A workspace's stored caps (None: the deployment's default)."""

    monthly_cap_micro_usd: int | None
    campaign_cap_micro_usd: int | None


class Spend(TypedDict):
    """Settled and reserved micro-USD of a period or a campaign."""

    spent: int
    reserved: int


class CampaignSpend(Spend):
    """A campaign's spend and its own cap (None: the workspace's campaign cap)."""

    cap_micro_usd: int | None


def month_of(day: date) -> date:
    """The period (first day of the UTC month) a day's spend counts against."""
    return day.replace(day=1)


def reserve(conn: Conn, *, reservation_id: UUID, workspace_id: str, campaign_id: str | None, period: date,
            amount: int, default_monthly: int | None, default_campaign: int | None) -> Reserved:
    """Hold `amount` against the workspace's month and the campaign, or refuse naming the cap; idempotent by id."""
    return cast(Reserved, one(conn.execute(_RESERVE, (reservation_id, workspace_id, campaign_id, period, amount,
                                                      default_monthly, default_campaign))))


def settle(conn: Conn, reservation_id: UUID, actual: int | None) -> bool:
    """Turn a reservation into spend at `actual` (None: the reserved amount); False if it was already settled."""
    return bool(one(conn.execute(_SETTLE, (reservation_id, actual)))["settled"])


def record_tool_usage(conn: Conn, *, reservation_id: UUID, workspace_id: str, campaign_id: str | None, node: str,
                      tool: str, vendor: str, credits: float, cached: bool, cost_micro_usd: int | None) -> None:
    """One paid tool call's usage and cost, keyed by its reservation (recorded once)."""
    conn.execute(_TOOL_USAGE, (reservation_id, campaign_id, workspace_id, node, tool, vendor, credits, cached,
                               cost_micro_usd))


def record_model_usage(conn: Conn, *, reservation_id: UUID, workspace_id: str, campaign_id: str | None, node: str,
                       usage: Usage, cost_micro_usd: int | None) -> None:
    """One model call's usage and cost, keyed by its reservation (recorded once)."""
    conn.execute(_MODEL_USAGE, (reservation_id, campaign_id, workspace_id, node, usage.model, usage.prompt_tokens,
                                usage.cached_tokens, usage.output_tokens, usage.thinking_tokens, cost_micro_usd))


STALE_RESERVATION_SECONDS = 900.0
"""A reservation open this long belongs to a process that died mid-call (a call's whole cascade is shorter)."""


def settle_stale(conn: Conn, *, older_than_seconds: float = STALE_RESERVATION_SECONDS, limit: int = 100) -> int:
    """Settle reservations a dead process left open at their reserved amount (the call may have been billed),
    so they stop holding the caps; returns how many (the sweeper runs it every pass)."""
    stale = [row["id"] for row in conn.execute(_STALE, (older_than_seconds, limit))]
    return sum(settle(conn, reservation, None) for reservation in stale)


def caps(conn: Conn, workspace_id: str) -> Caps:
    """The workspace's stored caps (both None when it never set any)."""
    row = conn.execute(_CAPS, (workspace_id,)).fetchone()
    if row is None:
        return {"monthly_cap_micro_usd": None, "campaign_cap_micro_usd": None}
    return _caps(row)


def _caps(row: dict[str, Any]) -> Caps:
    return {"monthly_cap_micro_usd": row["monthly_cap_micro_usd"],
            "campaign_cap_micro_usd": row["campaign_cap_micro_usd"]}


def set_caps(conn: Conn, workspace_id: str, *, monthly: int | None, campaign: int | None, set_monthly: bool,
             set_campaign: bool) -> Caps:
    """Store the caps named by `set_*` (None stored: back to the default); the others keep their value."""
    row = one(conn.execute(_SET_CAPS, {"workspace": workspace_id, "monthly": monthly, "campaign": campaign,
                                       "set_monthly": set_monthly, "set_campaign": set_campaign}))
    return _caps(row)


def set_campaign_cap(conn: Conn, *, workspace_id: str, campaign_id: str, cap: int | None) -> bool:
    """Give one campaign of the workspace its own cap (None: the workspace's); False for an unknown campaign."""
    return conn.execute(_SET_CAMPAIGN_CAP, {"cap": cap, "campaign": campaign_id,
                                            "workspace": workspace_id}).fetchone() is not None


def period_spend(conn: Conn, workspace_id: str, period: date) -> Spend:
    """The workspace's settled and reserved spend in the month starting `period`."""
    row = one(conn.execute(_PERIOD, (workspace_id, period)))
    return {"spent": int(row["spent"]), "reserved": int(row["reserved"])}


def campaign_spend(conn: Conn, campaign_id: str) -> CampaignSpend:
    """A campaign's settled and reserved spend and its own cap (zeros before its first call)."""
    row = conn.execute(_CAMPAIGN, (campaign_id,)).fetchone()
    if row is None:
        return {"cap_micro_usd": None, "spent": 0, "reserved": 0}
    return {"cap_micro_usd": row["cap_micro_usd"], "spent": int(row["spent"]), "reserved": int(row["reserved"])}
