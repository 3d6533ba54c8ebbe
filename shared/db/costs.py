"""What a workspace's AI work cost: `model_usage` and `tool_usage` summed by day, campaign, node and model.

Run on the caller's RLS connection and filtered by workspace explicitly. Costs are integer micro-USD;
`unpriced` counts calls whose model had no price (their cost is not in the sums).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict, cast
from uuid import UUID

from shared.db.pool import Conn

_CALLS = """
WITH calls AS (
    SELECT campaign_id, node, model AS what, 'model' AS kind, cost_micro_usd, created_at
    FROM public.model_usage
    WHERE workspace_id = %(workspace)s AND created_at >= %(since)s AND created_at < %(until)s
        AND (%(campaign)s::uuid IS NULL OR campaign_id = %(campaign)s::uuid)
    UNION ALL
    SELECT campaign_id, node, vendor || ':' || tool AS what, 'tool' AS kind, cost_micro_usd, created_at
    FROM public.tool_usage
    WHERE workspace_id = %(workspace)s AND created_at >= %(since)s AND created_at < %(until)s
        AND (%(campaign)s::uuid IS NULL OR campaign_id = %(campaign)s::uuid)
)
"""
_SUMS = ("count(*)::int AS calls, coalesce(sum(cost_micro_usd), 0)::bigint AS cost_micro_usd, "
         "count(*) FILTER (WHERE cost_micro_usd IS NULL)::int AS unpriced")
_TOTAL = _CALLS + f"SELECT {_SUMS} FROM calls"
_BY_DAY = _CALLS + f"""
SELECT (created_at AT TIME ZONE 'UTC')::date AS day, {_SUMS} FROM calls GROUP BY 1 ORDER BY 1
"""
_BY_CAMPAIGN = _CALLS + f"""
SELECT calls.campaign_id, c.brief->>'title' AS title, c.kind AS campaign_kind, {_SUMS}
FROM calls LEFT JOIN public.campaigns c ON c.id = calls.campaign_id
GROUP BY calls.campaign_id, c.brief->>'title', c.kind ORDER BY cost_micro_usd DESC, calls.campaign_id LIMIT %(limit)s
"""
_BY_NODE = _CALLS + f"""
SELECT node, what AS model, kind, {_SUMS} FROM calls GROUP BY node, what, kind ORDER BY node, what
"""
_HISTORY = """
SELECT c.id, c.kind, jsonb_array_length(coalesce(c.brief->'channels', '[]'::jsonb)) AS channels,
    (SELECT coalesce(sum(u.cost_micro_usd), 0) FROM public.model_usage u WHERE u.campaign_id = c.id)
    + (SELECT coalesce(sum(t.cost_micro_usd), 0) FROM public.tool_usage t WHERE t.campaign_id = c.id)
        AS cost_micro_usd
FROM public.campaigns c
WHERE c.workspace_id = %s AND c.kind = %s AND c.status = 'completed'
ORDER BY c.created_at DESC LIMIT %s
"""


class CostLine(TypedDict):
    """Calls, their summed cost and how many had no price."""

    calls: int
    cost_micro_usd: int
    unpriced: int


class PastCampaign(TypedDict):
    """A completed campaign's size and what it cost."""

    id: UUID
    kind: str
    channels: int
    cost_micro_usd: int


def _params(workspace_id: str, since: datetime, until: datetime, campaign_id: str | None = None,
            limit: int = 100) -> dict[str, Any]:
    return {"workspace": workspace_id, "since": since, "until": until, "campaign": campaign_id, "limit": limit}


def total(conn: Conn, workspace_id: str, since: datetime, until: datetime, *,
          campaign_id: str | None = None) -> CostLine:
    """All calls of the workspace (or one campaign of it) in [since, until)."""
    return cast(CostLine, conn.execute(_TOTAL, _params(workspace_id, since, until, campaign_id)).fetchone())


def by_day(conn: Conn, workspace_id: str, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """One line per UTC day with calls, oldest first."""
    return list(conn.execute(_BY_DAY, _params(workspace_id, since, until)))


def by_campaign(conn: Conn, workspace_id: str, since: datetime, until: datetime, *,
                limit: int = 100) -> list[dict[str, Any]]:
    """One line per campaign (None: work outside campaigns), dearest first, at most `limit`."""
    return list(conn.execute(_BY_CAMPAIGN, _params(workspace_id, since, until, limit=limit)))


def by_node(conn: Conn, workspace_id: str, since: datetime, until: datetime, *,
            campaign_id: str | None = None) -> list[dict[str, Any]]:
    """One line per node and model (tools as `vendor:tool`, kind `tool`)."""
    return list(conn.execute(_BY_NODE, _params(workspace_id, since, until, campaign_id)))


def history(conn: Conn, workspace_id: str, kind: str, *, limit: int = 20) -> list[PastCampaign]:
    """The workspace's latest completed campaigns of `kind` with their channel count and total cost."""
    return cast(list[PastCampaign], conn.execute(_HISTORY, (workspace_id, kind, limit)).fetchall())
