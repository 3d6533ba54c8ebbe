"""SQL of plan tiers: a workspace's plan row, its tier change, and the model usage of a period."""

from __future__ import annotations

from datetime import date, datetime
from typing import TypedDict

from shared.db.pool import Conn


class PlanRow(TypedDict):
    """A workspace's stored plan, or its absence (`tier` None: the deployment's default tier applies)."""

    workspace_id: str
    tier: str | None
    since: datetime | None


class UsageGroup(TypedDict):
    """Token counts of one model on one UTC day."""

    model: str
    day: date
    calls: int
    prompt_tokens: int
    cached_tokens: int
    output_tokens: int
    thinking_tokens: int


_PLAN = """
SELECT w.id::text AS workspace_id, p.tier, p.since
FROM public.workspaces w LEFT JOIN public.workspace_plans p ON p.workspace_id = w.id
WHERE w.id = %s
"""
_MEMBER_PLANS = """
SELECT m.workspace_id::text AS workspace_id, p.tier
FROM public.workspace_members m LEFT JOIN public.workspace_plans p ON p.workspace_id = m.workspace_id
WHERE m.user_id = auth.uid() ORDER BY m.created_at
"""
_LOCK_PLAN = "SELECT tier FROM public.workspaces w LEFT JOIN public.workspace_plans p ON p.workspace_id = w.id " \
             "WHERE w.id = %s FOR UPDATE OF w"
_SET_TIER = """
INSERT INTO public.workspace_plans AS p (workspace_id, tier, since, updated_at, updated_by)
VALUES (%(workspace_id)s, %(tier)s, now(), now(), %(actor)s)
ON CONFLICT (workspace_id) DO UPDATE
SET tier = EXCLUDED.tier, updated_at = now(), updated_by = EXCLUDED.updated_by,
    since = CASE WHEN p.tier = EXCLUDED.tier THEN p.since ELSE now() END
"""
_USAGE = """
SELECT model, (created_at AT TIME ZONE 'UTC')::date AS day, count(*)::int AS calls,
       sum(prompt_tokens)::bigint AS prompt_tokens, sum(cached_tokens)::bigint AS cached_tokens,
       sum(output_tokens)::bigint AS output_tokens, sum(thinking_tokens)::bigint AS thinking_tokens
FROM public.model_usage
WHERE workspace_id = %s AND created_at >= %s AND created_at < %s
GROUP BY 1, 2
"""


def workspace_plan(conn: Conn, workspace_id: str) -> PlanRow | None:
    """The workspace's plan (visible to its members, or on a service connection); None if no such workspace."""
    row = conn.execute(_PLAN, (workspace_id,)).fetchone()
    return None if row is None else PlanRow(workspace_id=row["workspace_id"], tier=row["tier"], since=row["since"])


def member_plans(conn: Conn) -> list[tuple[str, str | None]]:
    """(workspace id, stored tier or None) of every workspace of the caller (an `as_user` connection)."""
    return [(r["workspace_id"], r["tier"]) for r in conn.execute(_MEMBER_PLANS)]


def set_tier(conn: Conn, *, workspace_id: str, tier: str, actor: str) -> tuple[bool, str | None]:
    """Store the workspace's tier on a service connection; (workspace exists, previous stored tier).

    The workspace row is locked first, so two changes of one workspace never read the same previous tier.
    """
    row = conn.execute(_LOCK_PLAN, (workspace_id,)).fetchone()
    if row is None:
        return False, None
    conn.execute(_SET_TIER, {"workspace_id": workspace_id, "tier": tier, "actor": actor})
    return True, row["tier"]


def usage_between(conn: Conn, workspace_id: str, start: datetime, end: datetime) -> list[UsageGroup]:
    """The workspace's model calls in [start, end), summed per model and UTC day (what pricing needs)."""
    return [UsageGroup(model=r["model"], day=r["day"], calls=r["calls"], prompt_tokens=int(r["prompt_tokens"]),
                       cached_tokens=int(r["cached_tokens"]), output_tokens=int(r["output_tokens"]),
                       thinking_tokens=int(r["thinking_tokens"]))
            for r in conn.execute(_USAGE, (workspace_id, start, end))]
