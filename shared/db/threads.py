"""The campaign row as the control record of its LangGraph thread: lease, head, outcome, outbox."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypedDict, cast
from uuid import UUID

from psycopg.types.json import Jsonb

from shared.db import audit, outbox
from shared.db.batch import ASYNC_COMMIT, Params, execute_batch
from shared.db.pool import Conn, Pool, as_service
from shared.domain import AppliedDecision, CampaignId, CampaignStatus, OutboxItem, OutboxRow, PendingDecision
from shared.models.pricing import cost_micro_usd

_ACQUIRE = """
UPDATE public.campaigns
SET lease_owner = %(owner)s, lease_until = now() + make_interval(secs => %(seconds)s), fence = fence + 1,
    lease_message = %(message)s
WHERE id = %(id)s AND (lease_until IS NULL OR lease_until < now())
RETURNING id, workspace_id, created_by, kind, brief, status, fence, pending_decision, amount_due_paise,
    (SELECT c.checkpoint_id FROM public.checkpoints c
     WHERE c.thread_id = %(thread)s AND c.checkpoint_ns = '' ORDER BY c.checkpoint_id DESC LIMIT 1) AS head,
    (SELECT w.settings FROM public.workspaces w WHERE w.id = campaigns.workspace_id) AS workspace_settings,
    (SELECT k.kit FROM public.brand_kits k WHERE k.workspace_id = campaigns.workspace_id) AS brand_kit,
    (SELECT p.tier FROM public.workspace_plans p WHERE p.workspace_id = campaigns.workspace_id) AS plan_tier
"""
_LEASE = """
SELECT lease_owner, fence, greatest(extract(epoch FROM lease_until - now()), 0) AS remaining
FROM public.campaigns WHERE id = %s
"""
_RENEW = """
UPDATE public.campaigns SET lease_until = now() + make_interval(secs => %s)
WHERE id = %s AND fence = %s AND lease_owner = %s
RETURNING id
"""
_RELEASE = """
UPDATE public.campaigns SET lease_owner = NULL, lease_until = NULL, lease_message = NULL
WHERE id = %s AND fence = %s
"""
_FINISH = """
UPDATE public.campaigns
SET lease_owner = NULL, lease_until = NULL, lease_message = NULL, status = %(status)s, current_step = %(step)s,
    pending_decision = %(pending)s, failure_reason = %(reason)s,
    amount_due_paise = coalesce(%(amount_due)s, amount_due_paise), updated_at = now()
WHERE id = %(id)s AND fence = %(fence)s
RETURNING id, (status <> 'completed' OR EXISTS (
    SELECT 1 FROM public.payments p WHERE p.campaign_id = campaigns.id AND p.state = 'completed'
        AND p.amount_paise = campaigns.amount_due_paise)) AS paid_if_completed
"""
_EVENT = """
INSERT INTO public.campaign_events (campaign_id, workspace_id, type, data) VALUES (%s, %s, %s, %s)
"""
_FAIL = """
UPDATE public.campaigns SET status = 'failed', failure_reason = %s, lease_owner = NULL, lease_until = NULL,
    lease_message = NULL, updated_at = now()
WHERE id = %s AND status NOT IN ('completed', 'failed', 'expired', 'cancelled')
RETURNING workspace_id
"""
_EXPIRED_LEASES = """
SELECT id, fence, lease_message FROM public.campaigns
WHERE lease_owner IS NOT NULL AND lease_until < now() - make_interval(secs => %s)
    AND status NOT IN ('completed', 'failed', 'expired', 'cancelled') AND redriven_fence IS DISTINCT FROM fence
ORDER BY lease_until LIMIT %s
"""
_MARK_REDRIVEN = "UPDATE public.campaigns SET redriven_fence = %s WHERE id = %s AND fence = %s"
_STALLED = """
SELECT c.id, c.status, c.fence, c.pending_decision,
    (SELECT k.checkpoint_id FROM public.checkpoints k
     WHERE k.thread_id = c.id::text AND k.checkpoint_ns = '' ORDER BY k.checkpoint_id DESC LIMIT 1) AS head,
    (SELECT d.payload FROM public.decisions d WHERE d.id = c.pending_decision->>'id' AND d.source = 'user')
        AS decided,
    (SELECT p.merchant_order_id FROM public.payments p
     WHERE p.campaign_id = c.id AND p.state IN ('pending', 'completed') ORDER BY p.attempt DESC LIMIT 1)
        AS merchant_order_id
FROM public.campaigns c
WHERE c.status IN ('queued', 'running', 'awaiting_decision', 'awaiting_payment')
    AND (c.lease_owner IS NULL OR c.lease_until < now())
    AND c.updated_at < now() - make_interval(secs => %s)
    AND NOT EXISTS (SELECT 1 FROM public.step_outbox o WHERE o.campaign_id = c.id AND o.published_at IS NULL)
ORDER BY c.updated_at LIMIT %s
"""
_TOUCH = "UPDATE public.campaigns SET updated_at = now() WHERE id = %s AND fence = %s"
_USAGE = """
INSERT INTO public.model_usage (campaign_id, workspace_id, node, model, prompt_tokens, cached_tokens, output_tokens,
    thinking_tokens, fallbacks, cost_micro_usd)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
_DECIDED = "SELECT source FROM public.decisions WHERE id = %s"
_RECORD_DECISION = """
INSERT INTO public.decisions (id, campaign_id, workspace_id, kind, action, payload, source, decided_by)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""


class _GrantRow(TypedDict):
    """A row of `_ACQUIRE`."""

    id: UUID
    workspace_id: UUID
    created_by: UUID | None
    kind: str
    brief: dict[str, Any]
    status: str
    fence: int
    pending_decision: PendingDecision | None
    amount_due_paise: int | None
    head: str | None
    workspace_settings: dict[str, Any] | None
    brand_kit: dict[str, Any] | None
    plan_tier: str | None


class _LeaseRow(TypedDict):
    """A row of `_LEASE`."""

    lease_owner: str | None
    fence: int
    remaining: Decimal


class _ExpiredLeaseRow(TypedDict):
    """A row of `_EXPIRED_LEASES`."""

    id: UUID
    fence: int
    lease_message: dict[str, Any] | None


class _StalledRow(TypedDict):
    """A row of `_STALLED`."""

    id: UUID
    status: str
    fence: int
    pending_decision: PendingDecision | None
    head: str | None
    decided: dict[str, Any] | None
    merchant_order_id: str | None


@dataclass(frozen=True)
class Grant:
    """A held lease and what the step needs to know about the thread."""

    campaign_id: CampaignId
    workspace_id: UUID
    kind: str
    brief: dict[str, Any]
    status: CampaignStatus
    fence: int
    owner: str
    head: str | None
    pending_decision: PendingDecision | None
    amount_due_paise: int | None
    workspace_settings: dict[str, Any] | None
    created_by: UUID | None
    brand_kit: dict[str, Any] | None
    """Read with the lease (one round trip) to build the step's `CampaignContext`."""
    plan_tier: str | None = None
    """The workspace's plan tier (None: no plan row, the deployment's default tier), read with the lease."""


@dataclass(frozen=True)
class Event:
    """A progress event for the campaign's SSE stream."""

    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    """Where a step left the thread, and the messages that continue it."""

    status: CampaignStatus
    current_step: str | None
    pending_decision: PendingDecision | None = None
    failure_reason: str | None = None
    outbox: list[OutboxItem] = field(default_factory=list)
    amount_due_paise: int | None = None


@dataclass(frozen=True)
class StalledThread:
    """A live thread nothing has moved for a while, with what could move it."""

    campaign_id: CampaignId
    status: CampaignStatus
    fence: int
    pending_decision: PendingDecision | None
    head: str | None
    decided: dict[str, Any] | None
    merchant_order_id: str | None


class LeaseBusy(Exception):
    """Another delivery holds the lease; it frees itself after `retry_after_seconds` at the latest."""

    def __init__(self, campaign_id: UUID, retry_after_seconds: float) -> None:
        super().__init__(str(campaign_id))
        self.retry_after_seconds = retry_after_seconds


class UnknownCampaign(Exception):
    """No campaign has this id."""


class LeaseLostAtFinish(Exception):
    """The fence moved on before the step's outcome could be written."""


class DecisionRaced(Exception):
    """A user answered the decision while a timeout was being applied to it; the user's answer wins."""


class UnpaidCompletion(Exception):
    """A step tried to complete a campaign that has no completed payment of the amount due."""


class ThreadRepository:
    """SQL for leases and step outcomes; runs with the service's privileges, always by campaign id."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def acquire(self, campaign_id: UUID, *, owner: str, seconds: float, message: dict[str, Any]) -> Grant:
        """Take the campaign's lease (bumping its fence) or raise `LeaseBusy` / `UnknownCampaign`.

        `message` (function + body) is kept with the lease so that the sweeper can re-send it if the
        holder dies.
        """
        with self.pool.connection() as conn:
            row = cast(_GrantRow | None, conn.execute(_ACQUIRE, {
                "owner": owner, "seconds": seconds, "id": campaign_id, "thread": str(campaign_id),
                "message": Jsonb(message)}).fetchone())
            if row is None:
                lease = cast(_LeaseRow | None, conn.execute(_LEASE, (campaign_id,)).fetchone())
                if lease is None:
                    raise UnknownCampaign(str(campaign_id))
                raise LeaseBusy(campaign_id, float(lease["remaining"]))
        return Grant(
            campaign_id=CampaignId(row["id"]), workspace_id=row["workspace_id"], kind=row["kind"],
            brief=row["brief"], status=CampaignStatus(row["status"]), fence=row["fence"], owner=owner,
            head=row["head"], pending_decision=row["pending_decision"], amount_due_paise=row["amount_due_paise"],
            workspace_settings=row["workspace_settings"], brand_kit=row["brand_kit"], created_by=row["created_by"],
            plan_tier=row["plan_tier"],
        )

    def renew(self, grant: Grant, seconds: float) -> bool:
        """Extend a held lease (the step's heartbeat); False once the lease is gone.

        Commits without waiting for the WAL flush: a renewal lost with a server crash can only let the
        lease expire early, and the fence then stops the holder's commit (which that crash broke anyway).
        """
        with self.pool.connection() as conn:
            _, renewed = execute_batch(conn, [ASYNC_COMMIT, (_RENEW, (seconds, grant.campaign_id, grant.fence,
                                                                     grant.owner))])
        return bool(renewed)

    def release(self, grant: Grant) -> None:
        """Give the lease back without changing the thread.

        Commits without waiting for the WAL flush: a release lost with a server crash leaves a lease
        that expires by itself, so deliveries meanwhile only wait (429) a little longer.
        """
        with self.pool.connection() as conn:
            execute_batch(conn, [ASYNC_COMMIT, (_RELEASE, (grant.campaign_id, grant.fence))])

    def finish(self, conn: Conn, grant: Grant, outcome: Outcome, events: list[Event],
               decision: AppliedDecision | None = None, *,
               usage: list[dict[str, Any]] | None = None) -> list[OutboxRow]:
        """Record the step's outcome, events, applied decision, usage and outbox, and release the lease.

        Runs in the caller's transaction (the step's, which already holds its checkpoint writes).
        Raises `LeaseLostAtFinish` when the fence moved on, `UnpaidCompletion` when the outcome completes
        a campaign without a completed payment of the amount due, and `DecisionRaced` when a timeout
        would overrule a user's answer recorded meanwhile; the caller rolls back. Every statement goes
        in one round trip (`execute_batch`), and the checks read their results before the caller commits.
        """
        statements: list[tuple[str, Params]] = [(_FINISH, {
            "status": outcome.status.value, "step": outcome.current_step,
            "pending": Jsonb(outcome.pending_decision) if outcome.pending_decision else None,
            "reason": outcome.failure_reason, "amount_due": outcome.amount_due_paise,
            "id": grant.campaign_id, "fence": grant.fence,
        })]
        if decision is not None:
            statements.append((_RECORD_DECISION, (decision.id, grant.campaign_id, grant.workspace_id, decision.kind,
                                                  decision.action, Jsonb(decision.payload), decision.source, None)))
        if decision is not None and decision.source == "timeout":
            statements.append(audit.insert_statement(
                workspace_id=str(grant.workspace_id), actor=audit.SYSTEM, action="decision.recorded",
                target_type="decision", target_id=decision.id, key=f"decision:{decision.id}",
                details={"campaign_id": str(grant.campaign_id), "kind": decision.kind, "action": decision.action,
                         "source": "timeout"}))
        statements += [(_EVENT, (grant.campaign_id, grant.workspace_id, e.type, Jsonb(e.data))) for e in events]
        statements += [(_USAGE, (grant.campaign_id, grant.workspace_id, u.get("node", "?"), u.get("model", "?"),
                                 u.get("prompt_tokens", 0), u.get("cached_tokens", 0), u.get("output_tokens", 0),
                                 u.get("thinking_tokens", 0), (u.get("route") or {}).get("fallbacks", 0),
                                 cost_micro_usd(u)))
                       for u in usage or []]
        statements += [outbox.insert_statement(grant.campaign_id, item) for item in outcome.outbox]
        results = execute_batch(conn, statements)
        if not results[0]:
            raise LeaseLostAtFinish(str(grant.campaign_id))
        if not results[0][0]["paid_if_completed"]:
            raise UnpaidCompletion(str(grant.campaign_id))
        if decision is not None and not results[1] and decision.source == "timeout":
            raise DecisionRaced(decision.id)
        return [cast(OutboxRow, rows[0]) for rows in results[len(results) - len(outcome.outbox):]]

    def decided_by(self, decision_id: str) -> str | None:
        """'user' or 'timeout' if this decision was already recorded, else None."""
        with self.pool.connection() as conn:
            row = conn.execute(_DECIDED, (decision_id,)).fetchone()
        return cast(str, row["source"]) if row else None

    def fail(self, campaign_id: UUID, reason: str) -> None:
        """Mark a campaign failed with a readable reason (unless it already ended)."""
        with as_service(self.pool) as conn:
            row = conn.execute(_FAIL, (reason, campaign_id)).fetchone()
            if row is not None:
                conn.execute(_EVENT, (campaign_id, row["workspace_id"], "campaign.failed", Jsonb({"reason": reason})))

    def lease(self, campaign_id: UUID) -> tuple[str | None, int, float] | None:
        """(holder, fence, seconds left) of the campaign's lease, or None for an unknown campaign."""
        with self.pool.connection() as conn:
            row = cast(_LeaseRow | None, conn.execute(_LEASE, (campaign_id,)).fetchone())
        return None if row is None else (row["lease_owner"], row["fence"], float(row["remaining"]))

    def expired_leases(self, *, grace_seconds: float, limit: int = 100) -> list[tuple[CampaignId, int, dict[str, Any]]]:
        """Threads whose holder died holding the lease: (campaign, fence, the message it was working on)."""
        with self.pool.connection() as conn:
            rows = cast(list[_ExpiredLeaseRow], conn.execute(_EXPIRED_LEASES, (grace_seconds, limit)).fetchall())
        return [(CampaignId(r["id"]), r["fence"], r["lease_message"]) for r in rows if r["lease_message"]]

    def mark_redriven(self, campaign_id: UUID, fence: int) -> None:
        """Remember that this crashed lease's message was re-sent (once per fence)."""
        with self.pool.connection() as conn:
            conn.execute(_MARK_REDRIVEN, (fence, campaign_id, fence))

    def stalled(self, *, idle_seconds: float, limit: int = 100) -> list[StalledThread]:
        """Live, unleased threads with nothing unpublished that have not changed for `idle_seconds`."""
        with self.pool.connection() as conn:
            rows = cast(list[_StalledRow], conn.execute(_STALLED, (idle_seconds, limit)).fetchall())
        return [StalledThread(campaign_id=CampaignId(r["id"]), status=CampaignStatus(r["status"]), fence=r["fence"],
                              pending_decision=r["pending_decision"], head=r["head"], decided=r["decided"],
                              merchant_order_id=r["merchant_order_id"]) for r in rows]

    def touch(self, campaign_id: UUID, fence: int) -> None:
        """Note that the sweeper just nudged this thread (so it waits `idle_seconds` before the next nudge)."""
        with self.pool.connection() as conn:
            conn.execute(_TOUCH, (campaign_id, fence))
