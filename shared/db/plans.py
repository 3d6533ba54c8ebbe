"""SQL of plan tiers: a workspace's plan row and its tier change."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from shared.db.pool import Conn


class PlanRow(TypedDict):
    """A workspace's stored plan, or its absence (`tier` None: the deployment's default tier applies)."""

    workspace_id: str
    tier: str | None
    since: datetime | None


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
