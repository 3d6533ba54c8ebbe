"""The workspace audit log: an append-only record of who changed what (issue 7, India's DPDP Act).

`record` writes one entry on the connection of the change it records, inside that change's
transaction, so a rolled-back change leaves no entry and a committed one always has one. Pass `key`
when the change itself is idempotent (a decision id, an order state, an `Idempotency-Key`): a replay
then records nothing new. The table refuses UPDATE, DELETE and TRUNCATE for every role.

Entries never carry secrets or raw personal data: `details` holds ids, counts, versions and field
names (at most 4 KB), never the text a user wrote.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, TypedDict, get_args

from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from shared.db.pool import Conn, one

AuditAction = Literal[
    "brand_kit.updated",
    "knowledge.added",
    "knowledge.deleted",
    "privacy_policy.updated",
    "settings.updated",
    "decision.recorded",
    "channel.connected",
    "channel.disconnected",
    "payment.created",
    "campaign.cancelled",
    "payment.completed",
    "payment.failed",
    "refund.requested",
    "refund.completed",
    "refund.failed",
    "billing_profile.updated",
    "workspace.export_requested",
    "workspace.erase_requested",
    "conversation.deleted",
    "plan.changed",
    "schedule.created",
    "schedule.paused",
    "schedule.resumed",
    "schedule.deleted",
    "publication.rescheduled",
    "publication.cancelled",
]
"""Everything the log records; channel connections and refunds arrive with later issues."""
AUDIT_ACTIONS: tuple[AuditAction, ...] = get_args(AuditAction)

AuditTarget = Literal[
    "brand_kit", "knowledge_resource", "privacy_policy", "workspace_settings", "decision", "campaign",
    "channel_connection", "payment", "refund", "workspace", "conversation", "schedule", "billing_profile",
    "publication",
]
"""The kind of thing an entry is about; `target_id` names the instance."""
AUDIT_TARGETS: tuple[AuditTarget, ...] = get_args(AuditTarget)

SYSTEM = "system"
"""The actor of changes no person made (a timeout, a reconciliation)."""
MAX_DETAILS_BYTES = 4096
_ACTOR = re.compile(r"^(system|function:[a-z_]{1,40}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")


def function_actor(name: str) -> str:
    """The actor for a change a function made on its own (`function:payments`)."""
    return f"function:{name}"


class AuditEntry(TypedDict):
    """One entry as it is read back."""

    id: int
    workspace_id: str
    actor: str
    action: AuditAction
    target_type: AuditTarget
    target_id: str | None
    details: dict[str, Any]
    created_at: datetime


_INSERT = """
INSERT INTO public.audit_log (workspace_id, actor, action, target_type, target_id, details, idempotency_key)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (workspace_id, idempotency_key) DO NOTHING
RETURNING id
"""
_ROLE = "SELECT current_user::text AS role"


def record(conn: Conn, *, workspace_id: str, actor: str, action: AuditAction, target_type: AuditTarget,
           target_id: str | None, details: dict[str, Any] | None = None, key: str | None = None) -> int | None:
    """Append one entry in the caller's open transaction; its id, or None when `key` was already recorded.

    `actor` is a user id (`Principal.user_id`), `SYSTEM` or `function_actor(name)`. On a caller's
    RLS connection the row is written with the service's privileges (users may read the log, never
    write it) and the caller's role is restored after, so the transaction goes on as before.
    """
    if conn.info.transaction_status == TransactionStatus.IDLE:
        raise RuntimeError("audit.record must run inside the transaction of the change it records")
    if action not in AUDIT_ACTIONS or target_type not in AUDIT_TARGETS:
        raise ValueError(f"unknown audit action/target {action!r}/{target_type!r}")
    if not _ACTOR.match(actor):
        raise ValueError(f"actor {actor!r} is not a user id, {SYSTEM!r} or 'function:<name>'")
    payload = Jsonb(details or {})
    params = (workspace_id, actor, action, target_type, target_id, payload, key)
    role = one(conn.execute(_ROLE))["role"]
    if role == "authenticated":
        conn.execute("SET LOCAL ROLE NONE")
        try:
            row = conn.execute(_INSERT, params).fetchone()
        finally:
            conn.execute("SET LOCAL ROLE authenticated")
    else:
        row = conn.execute(_INSERT, params).fetchone()
    return None if row is None else int(row["id"])


def insert_statement(*, workspace_id: str, actor: str, action: AuditAction, target_type: AuditTarget,
                     target_id: str | None, details: dict[str, Any] | None = None,
                     key: str | None = None) -> tuple[str, tuple[Any, ...]]:
    """The entry as one statement for a batch (`shared.db.batch`) on a connection with the service's rights.

    For writers that send their whole transaction in one round trip (the step engine); elsewhere use `record`.
    """
    if action not in AUDIT_ACTIONS or target_type not in AUDIT_TARGETS or not _ACTOR.match(actor):
        raise ValueError(f"unknown audit action/target/actor {action!r}/{target_type!r}/{actor!r}")
    return _INSERT, (workspace_id, actor, action, target_type, target_id, Jsonb(details or {}), key)


_LIST = """
SELECT id, workspace_id::text AS workspace_id, actor, action, target_type, target_id, details, created_at
FROM public.audit_log
WHERE workspace_id = %(workspace_id)s
  AND (%(actions)s::text[] IS NULL OR action = ANY(%(actions)s::text[]))
  AND (%(actor)s::text IS NULL OR actor = %(actor)s::text)
  AND (%(target_type)s::text IS NULL OR target_type = %(target_type)s::text)
  AND (%(target_id)s::text IS NULL OR target_id = %(target_id)s::text)
  AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s::timestamptz)
  AND (%(until)s::timestamptz IS NULL OR created_at < %(until)s::timestamptz)
  AND (%(after_at)s::timestamptz IS NULL OR (created_at, id) < (%(after_at)s::timestamptz, %(after_id)s::bigint))
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s
"""


def list_entries(conn: Conn, workspace_id: str, *, actions: Sequence[str] = (), actor: str | None = None,
                 target_type: str | None = None, target_id: str | None = None,
                 since: datetime | None = None, until: datetime | None = None,
                 after: tuple[datetime, int] | None = None, limit: int = 50) -> list[AuditEntry]:
    """A page of the workspace's entries, newest first, strictly after `after` (`created_at`, `id`).

    Run it on the caller's RLS connection: another workspace's entries read as none.
    """
    rows = conn.execute(_LIST, {
        "workspace_id": workspace_id, "actions": list(actions) or None, "actor": actor,
        "target_type": target_type, "target_id": target_id, "since": since, "until": until,
        "after_at": after[0] if after else None, "after_id": after[1] if after else None, "limit": limit,
    }).fetchall()
    return [AuditEntry(id=r["id"], workspace_id=r["workspace_id"], actor=r["actor"], action=r["action"],
                       target_type=r["target_type"], target_id=r["target_id"], details=r["details"],
                       created_at=r["created_at"]) for r in rows]
