"""Campaign reads and writes made on behalf of a signed-in user (row-level security applies)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from shared.db.pool import Conn, one

_MEMBERSHIPS = "SELECT workspace_id FROM public.workspace_members WHERE user_id = auth.uid() ORDER BY created_at"
_INSERT = """
INSERT INTO public.campaigns (id, workspace_id, created_by, kind, brief, idempotency_key, idempotency_fingerprint)
VALUES (%s, %s, auth.uid(), %s, %s, %s, %s)
ON CONFLICT (workspace_id, idempotency_key) DO NOTHING
RETURNING id
"""
_BY_KEY = """
SELECT id, status, idempotency_fingerprint FROM public.campaigns WHERE workspace_id = %s AND idempotency_key = %s
"""
_GET = """
SELECT id, workspace_id, kind, status, current_step, pending_decision, failure_reason, brief, created_at, updated_at
FROM public.campaigns WHERE id = %s
"""
_ARTIFACTS = """
SELECT channel, variant, status, revision, content, model, usage, updated_at
FROM public.artifacts WHERE campaign_id = %s ORDER BY channel, variant
"""
_PAYMENT = """
SELECT merchant_order_id, state, amount_paise, redirect_url FROM public.payments
WHERE campaign_id = %s ORDER BY attempt DESC LIMIT 1
"""
_USAGE = """
SELECT node, model, sum(prompt_tokens) AS prompt_tokens, sum(cached_tokens) AS cached_tokens,
       sum(output_tokens) AS output_tokens, sum(thinking_tokens) AS thinking_tokens, count(*) AS calls,
       sum(fallbacks) AS fallbacks
FROM public.model_usage WHERE campaign_id = %s GROUP BY node, model ORDER BY node, model
"""
_EVENTS = """
SELECT id, type, data, created_at FROM public.campaign_events
WHERE campaign_id = %s AND id > %s ORDER BY id LIMIT %s
"""
_SERVICE_EVENT = "INSERT INTO public.campaign_events (campaign_id, workspace_id, type, data) VALUES (%s, %s, %s, %s)"
_DECISION = """
INSERT INTO public.decisions (id, campaign_id, workspace_id, kind, action, payload, source, decided_by)
VALUES (%s, %s, %s, %s, %s, %s, 'user', %s)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""
_EXISTING_DECISION = "SELECT action, payload, source FROM public.decisions WHERE id = %s"
_LIST = """
SELECT id, kind, brief->>'title' AS title, status, current_step, pending_decision->>'kind' AS pending_decision_kind,
       created_at, updated_at
FROM public.campaigns
WHERE {where}
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s
"""


def memberships(conn: Conn) -> list[str]:
    """Workspaces the caller belongs to."""
    return [str(r["workspace_id"]) for r in conn.execute(_MEMBERSHIPS)]


def insert_campaign(conn: Conn, *, campaign_id: UUID, workspace_id: str, kind: str, brief: dict[str, Any],
                    idempotency_key: str | None, fingerprint: str | None = None) -> tuple[UUID, bool, str | None]:
    """Create the campaign; returns (id, created, stored fingerprint).

    A repeated idempotency key creates nothing and returns the first campaign's id and the fingerprint
    stored with the key (None for rows older than fingerprints), for the caller to compare.
    """
    row = conn.execute(_INSERT, (campaign_id, workspace_id, kind, Jsonb(brief), idempotency_key,
                                 fingerprint)).fetchone()
    if row is not None:
        return row["id"], True, fingerprint
    existing = one(conn.execute(_BY_KEY, (workspace_id, idempotency_key)))
    return existing["id"], False, existing["idempotency_fingerprint"]


def get_campaign(conn: Conn, campaign_id: UUID) -> dict[str, Any] | None:
    """The campaign row, if visible to the caller."""
    return conn.execute(_GET, (campaign_id,)).fetchone()


def campaign_artifacts(conn: Conn, campaign_id: UUID) -> list[dict[str, Any]]:
    """The campaign's artifacts, one per channel."""
    return conn.execute(_ARTIFACTS, (campaign_id,)).fetchall()


def latest_payment(conn: Conn, campaign_id: UUID) -> dict[str, Any] | None:
    """The campaign's most recent payment attempt."""
    return conn.execute(_PAYMENT, (campaign_id,)).fetchone()


def campaign_usage(conn: Conn, campaign_id: UUID) -> list[dict[str, Any]]:
    """Token usage of the campaign's model calls, per node and model."""
    return [{k: (int(v) if k not in ("node", "model") else v) for k, v in r.items()}
            for r in conn.execute(_USAGE, (campaign_id,))]


def events_after(conn: Conn, campaign_id: UUID, after_id: int, *, limit: int = 200) -> list[dict[str, Any]]:
    """Events newer than `after_id`, oldest first."""
    return conn.execute(_EVENTS, (campaign_id, after_id, limit)).fetchall()


def add_event(conn: Conn, *, campaign_id: UUID, workspace_id: str | UUID, type_: str, data: dict[str, Any]) -> None:
    """Append an event (service connection)."""
    conn.execute(_SERVICE_EVENT, (campaign_id, workspace_id, type_, Jsonb(data)))


def record_user_decision(conn: Conn, *, decision_id: str, campaign_id: UUID, workspace_id: str | UUID, kind: str,
                         action: str, payload: dict[str, Any], user_id: UUID) -> dict[str, Any] | None:
    """Record the decision (service connection); returns the earlier one if it was already decided."""
    row = conn.execute(_DECISION, (decision_id, campaign_id, workspace_id, kind, action, Jsonb(payload),
                                   user_id)).fetchone()
    if row is not None:
        return None
    return conn.execute(_EXISTING_DECISION, (decision_id,)).fetchone()


def list_campaigns(conn: Conn, *, workspace_id: str, statuses: Sequence[str] = (), kinds: Sequence[str] = (),
                   after: tuple[datetime, UUID] | None = None, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` summary rows of the workspace's campaigns, newest first, strictly after `after`.

    Empty `statuses`/`kinds` mean any. The order and the `after` bound are both on `(created_at, id)`,
    which `campaigns_workspace_recent_idx` serves as one range scan.
    """
    where = ["workspace_id = %(workspace_id)s"]
    params: dict[str, Any] = {"workspace_id": workspace_id, "limit": limit}
    if statuses:
        where.append("status = ANY(%(statuses)s)")
        params["statuses"] = list(statuses)
    if kinds:
        where.append("kind = ANY(%(kinds)s)")
        params["kinds"] = list(kinds)
    if after is not None:
        where.append("(created_at, id) < (%(after_at)s, %(after_id)s)")
        params["after_at"], params["after_id"] = after
    return conn.execute(_LIST.format(where=" AND ".join(where)), params).fetchall()
