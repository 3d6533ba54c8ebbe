"""The campaign row as the control record of its LangGraph thread: lease, head, outcome, outbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from shared.db.pool import as_service

_ACQUIRE = """
UPDATE public.campaigns
SET lease_owner = %(owner)s, lease_until = now() + make_interval(secs => %(seconds)s), fence = fence + 1
WHERE id = %(id)s AND (lease_until IS NULL OR lease_until < now())
RETURNING id, workspace_id, created_by, kind, brief, status, fence, pending_decision, outbox,
    (SELECT c.checkpoint_id FROM public.checkpoints c
     WHERE c.thread_id = %(thread)s AND c.checkpoint_ns = '' ORDER BY c.checkpoint_id DESC LIMIT 1) AS head,
    (SELECT w.settings FROM public.workspaces w WHERE w.id = campaigns.workspace_id) AS workspace_settings,
    (SELECT k.kit FROM public.brand_kits k WHERE k.workspace_id = campaigns.workspace_id) AS brand_kit
"""
_EXISTS = "SELECT lease_until FROM public.campaigns WHERE id = %s"
_RELEASE = """
UPDATE public.campaigns SET lease_owner = NULL, lease_until = NULL
WHERE id = %s AND fence = %s
"""
_FINISH = """
UPDATE public.campaigns
SET lease_owner = NULL, lease_until = NULL, status = %(status)s, current_step = %(step)s,
    pending_decision = %(pending)s, failure_reason = %(reason)s, outbox = %(outbox)s, updated_at = now()
WHERE id = %(id)s AND fence = %(fence)s
RETURNING id
"""
_EVENT = """
INSERT INTO public.campaign_events (campaign_id, workspace_id, type, data) VALUES (%s, %s, %s, %s)
"""
_FAIL = """
UPDATE public.campaigns SET status = 'failed', failure_reason = %s, outbox = NULL, updated_at = now()
WHERE id = %s AND status NOT IN ('completed', 'failed', 'expired')
RETURNING workspace_id
"""
_USAGE = """
INSERT INTO public.model_usage (campaign_id, workspace_id, node, model, prompt_tokens, cached_tokens, output_tokens,
    thinking_tokens, fallbacks)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
_DECIDED = "SELECT source FROM public.decisions WHERE id = %s"
_RECORD_DECISION = """
INSERT INTO public.decisions (id, campaign_id, workspace_id, kind, action, payload, source, decided_by)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (id) DO NOTHING
"""


@dataclass(frozen=True)
class Grant:
    """A held lease and what the step needs to know about the thread."""

    campaign_id: UUID
    workspace_id: UUID
    kind: str
    brief: dict[str, Any]
    status: str
    fence: int
    head: str | None
    pending_decision: dict[str, Any] | None
    outbox: dict[str, Any] | None
    workspace_settings: dict[str, Any] | None = None
    created_by: UUID | None = None
    brand_kit: dict[str, Any] | None = None
    """Read with the lease (one round trip) to build the step's `CampaignContext`."""


@dataclass(frozen=True)
class Event:
    """A progress event for the campaign's SSE stream."""

    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    """Where a step left the thread."""

    status: str
    current_step: str | None
    pending_decision: dict[str, Any] | None = None
    failure_reason: str | None = None
    outbox: dict[str, Any] | None = None


class LeaseBusy(Exception):
    """Another delivery holds the lease."""


class UnknownCampaign(Exception):
    """No campaign has this id."""


class ThreadRepository:
    """SQL for leases and step outcomes; runs with the service's privileges, always by campaign id."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def acquire(self, campaign_id: UUID, *, owner: str, seconds: float) -> Grant:
        """Take the campaign's lease (bumping its fence) or raise `LeaseBusy` / `UnknownCampaign`."""
        with self.pool.connection() as conn:
            row = conn.execute(
                _ACQUIRE, {"owner": owner, "seconds": seconds, "id": campaign_id, "thread": str(campaign_id)}
            ).fetchone()
            if row is None:
                if conn.execute(_EXISTS, (campaign_id,)).fetchone() is None:
                    raise UnknownCampaign(str(campaign_id))
                raise LeaseBusy(str(campaign_id))
        return Grant(
            campaign_id=row["id"], workspace_id=row["workspace_id"], kind=row["kind"], brief=row["brief"],
            status=row["status"], fence=row["fence"], head=row["head"],
            pending_decision=row["pending_decision"], outbox=row["outbox"],
            workspace_settings=row["workspace_settings"], brand_kit=row["brand_kit"], created_by=row["created_by"],
        )

    def release(self, grant: Grant) -> None:
        """Give the lease back without changing the thread."""
        with self.pool.connection() as conn:
            conn.execute(_RELEASE, (grant.campaign_id, grant.fence))

    def finish(self, grant: Grant, outcome: Outcome, events: list[Event],
               decision: tuple[str, str, str, dict[str, Any], str] | None = None, *,
               usage: list[dict[str, Any]] | None = None) -> bool:
        """Record the step's outcome, its events and outbox, and release — atomically, if still fenced.

        `decision` is (id, kind, action, payload, source) of a decision applied by this step.
        Returns False (writing nothing) when the lease was lost to another delivery.
        """
        with as_service(self.pool) as conn:
            row = conn.execute(_FINISH, {
                "status": outcome.status, "step": outcome.current_step,
                "pending": Jsonb(outcome.pending_decision) if outcome.pending_decision else None,
                "reason": outcome.failure_reason,
                "outbox": Jsonb(outcome.outbox) if outcome.outbox else None,
                "id": grant.campaign_id, "fence": grant.fence,
            }).fetchone()
            if row is None:
                return False
            if decision is not None:
                decision_id, kind, action, payload, source = decision
                conn.execute(_RECORD_DECISION, (decision_id, grant.campaign_id, grant.workspace_id, kind,
                                                action, Jsonb(payload), source, None))
            with conn.cursor() as cur:
                cur.executemany(_EVENT, [(grant.campaign_id, grant.workspace_id, e.type, Jsonb(e.data))
                                         for e in events])
                if usage:
                    cur.executemany(_USAGE, [
                        (grant.campaign_id, grant.workspace_id, u.get("node", "?"), u.get("model", "?"),
                         u.get("prompt_tokens", 0), u.get("cached_tokens", 0), u.get("output_tokens", 0),
                         u.get("thinking_tokens", 0), (u.get("route") or {}).get("fallbacks", 0)) for u in usage])
        return True

    def decided_by(self, decision_id: str) -> str | None:
        """'user' or 'timeout' if this decision was already recorded, else None."""
        with self.pool.connection() as conn:
            row = conn.execute(_DECIDED, (decision_id,)).fetchone()
        return row["source"] if row else None

    def fail(self, campaign_id: UUID, reason: str) -> None:
        """Mark a campaign failed with a readable reason (unless it already ended)."""
        with as_service(self.pool) as conn:
            row = conn.execute(_FAIL, (reason, campaign_id)).fetchone()
            if row is not None:
                conn.execute(_EVENT, (campaign_id, row["workspace_id"], "campaign.failed", Jsonb({"reason": reason})))
