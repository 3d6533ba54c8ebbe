"""A workspace's plan in force: its tier, the current period and the AI credits it has used.

A period is the calendar month (UTC), the period the spend ledger keeps. Credits used are read from that
ledger (`spend_periods`: every paid model and tool call is reserved there before it is sent and settled
at its price after, `shared.db.budgets`), never counted a second time; a reservation in flight counts. When the
allowance is used up, new paid work (starting a campaign or move) is refused with a 429 naming
`monthly_ai_credits` and a `Retry-After` reaching the next period; work already running is governed by
the budget caps, not by the plan. A tier change applies to the current period at once (an upgrade's
larger allowance counts what the month already used).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.db import audit, budgets
from shared.db import plans as db
from shared.db.pool import Conn, Pool, as_service
from shared.errors import NotFound, QuotaExceeded
from shared.plans.tiers import MICRO_USD_PER_CREDIT, Tier, TierName, credits_for, tier


def current_period(now: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) holding `now`: (its first instant, the next month's first instant)."""
    moment = now.astimezone(UTC)
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


@dataclass(frozen=True, slots=True)
class PlanState:
    """A workspace's plan in force now."""

    workspace_id: str
    tier: Tier
    period_start: datetime
    period_end: datetime
    spent_micro_usd: int
    """AI spend settled this period (the spend ledger's month)."""
    reserved_micro_usd: int
    """AI spend reserved by calls in flight; it counts as used until they settle."""

    @property
    def used_micro_usd(self) -> int:
        return self.spent_micro_usd + self.reserved_micro_usd

    @property
    def used_credits(self) -> int:
        return credits_for(self.used_micro_usd)

    @property
    def remaining_credits(self) -> int:
        return max(0, self.tier.monthly_ai_credits - self.used_credits)

    @property
    def exhausted(self) -> bool:
        return self.used_micro_usd >= self.tier.monthly_ai_credits * MICRO_USD_PER_CREDIT


def plan_state(conn: Conn, workspace_id: str, *, default_tier: TierName, now: datetime | None = None) -> PlanState:
    """The workspace's plan in force at `now` (default: the current time); `NotFound` for no such workspace."""
    row = db.workspace_plan(conn, workspace_id)
    if row is None:
        raise NotFound(f"Workspace {workspace_id} does not exist in your workspaces.")
    start, end = current_period(now or datetime.now(UTC))
    spend = budgets.period_spend(conn, workspace_id, budgets.month_of(start.date()))
    return PlanState(workspace_id=workspace_id, tier=tier(row["tier"] or default_tier), period_start=start,
                     period_end=end, spent_micro_usd=spend["spent"], reserved_micro_usd=spend["reserved"])


def ensure_credits(state: PlanState, *, now: datetime | None = None) -> None:
    """Refuse new paid work (429 `monthly_ai_credits`, `Retry-After` = the next period) once credits are used up."""
    if not state.exhausted:
        return
    wait = math.ceil((state.period_end - (now or datetime.now(UTC))).total_seconds())
    raise QuotaExceeded(
        f"This workspace has used the {state.tier.monthly_ai_credits} AI credits of its {state.tier.name} plan for "
        f"the month ending {state.period_end.isoformat()}; new campaigns start again then, or move to a larger "
        "plan (GET /api/v1/plan).",
        retry_after_seconds=max(1, wait),
        details={"limit": "monthly_ai_credits", "tier": state.tier.name, "allowed": state.tier.monthly_ai_credits,
                 "used": state.used_credits, "period_end": state.period_end.isoformat()})


def set_workspace_tier(pool: Pool, *, workspace_id: str, tier_name: TierName, actor: str, key: str) -> PlanState:
    """Put the workspace on `tier_name` (billing's call: issue 10); audited as `plan.changed` once per `key`.

    The same tier again changes nothing but the record of who set it. `actor` is a user id, `system` or
    `function:<name>`; `key` is the billing event's id, so a redelivered event records one entry.
    """
    new = tier(tier_name)
    with as_service(pool) as conn:
        exists, previous = db.set_tier(conn, workspace_id=workspace_id, tier=new.name, actor=actor)
        if not exists:
            raise NotFound(f"Workspace {workspace_id} does not exist.")
        if previous != new.name:
            audit.record(conn, workspace_id=workspace_id, actor=actor, action="plan.changed", target_type="workspace",
                         target_id=workspace_id, details={"from": previous, "to": new.name}, key=f"plan:{key}")
        return plan_state(conn, workspace_id, default_tier=new.name)
