"""Cancelling a campaign (`POST /api/v1/campaigns/{id}/cancel`): its thread stops, and unused money goes back.

One transaction on the campaign row, locked as a step locks it to take its lease:

- before payment, the campaign ends `cancelled`: its pending decision is answered by the cancel (a late answer
  finds it taken), orders still being paid are closed (one the payer completes anyway is refunded in full by
  `RefundService.refund_if_cancelled` when PhonePe confirms it), and the fence moves on, so no step commits
  after it and every late or duplicate QStash delivery meets a terminal campaign and does nothing;
- after payment and before anything is published, the same, plus a full refund through PhonePe;
- after partial publication, a refund of the unpublished channels' share (`prorata_refund_paise`); publications
  that have not fired are cancelled, and one in flight or of unknown outcome counts as published.

A step holding the lease is waited for (briefly; then 429 with `Retry-After`), so what was published is known
when the refund is worked out. Cancelling again answers the first cancel (its refund as it stands now);
cancelling a campaign that completed, failed or expired is a `Conflict` naming its status.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal, cast
from uuid import UUID

from shared.db import audit
from shared.db import campaigns as campaigns_db
from shared.db import outbox as outbox_db
from shared.db import refunds as db
from shared.db.pool import Conn, Pool, as_runtime, as_user
from shared.db.refunds import RefundRow
from shared.domain import HUMAN_DECISIONS, CampaignStatus, OutboxItem, OutboxRow
from shared.errors import Conflict, NotFound, ThreadBusy
from shared.outbox import Outbox
from shared.payments.refunds import MIN_REFUND_PAISE, prorata_refund_paise, start_refund
from shared.tracing import end_campaign_run, flush

if TYPE_CHECKING:
    import langsmith

    from shared.auth import Principal

CancelStage = Literal["before_payment", "before_publication", "partially_published", "published"]
CANCEL_REASON = "Cancelled by a member of the workspace."


@dataclass(frozen=True)
class Cancellation:
    """What a cancel did (or, repeated, what the first one did)."""

    campaign_id: UUID
    cancelled_at: datetime
    stage: CancelStage
    channels_total: int
    channels_unpublished: int
    refund: RefundRow | None
    """The campaign's latest refund attempt, as it stands now; None when nothing was paid or is refundable."""
    cancelled_now: bool


class _StepRunning(Exception):
    def __init__(self, seconds_left: float) -> None:
        super().__init__(f"a step holds the lease for {seconds_left:.1f} s more")
        self.seconds_left = seconds_left


def cancel_in_transaction(conn: Conn, campaign_id: UUID, *, actor: str) -> tuple[Cancellation, list[OutboxRow]]:
    """Cancel the campaign in the caller's transaction (service rights); returns what it did and its outbox rows.

    Raises `Conflict` for a campaign that already ended otherwise, and `_StepRunning` while a step holds it.
    """
    campaign = db.lock_campaign(conn, campaign_id)
    if campaign is None:
        raise NotFound(f"Campaign {campaign_id} does not exist in your workspaces.")
    status = CampaignStatus(campaign["status"])
    if status == CampaignStatus.CANCELLED:
        return _first_cancel(conn, campaign_id), []
    if status.terminal:
        raise Conflict(f"Campaign {campaign_id} is already {status.value!r}; only a campaign still in progress can "
                       "be cancelled.", details={"status": status.value})
    if campaign["leased"]:
        raise _StepRunning(campaign["lease_seconds_left"])
    paid = db.paid_order(conn, campaign_id)
    channels = db.channels(conn, campaign_id)
    total, unpublished = len(channels), sum(1 for channel in channels if not channel["published"])
    stage: CancelStage = ("before_payment" if paid is None else "before_publication" if unpublished == total
                          else "published" if unpublished == 0 else "partially_published")
    cancelled_at = db.mark_cancelled(conn, campaign_id, reason=CANCEL_REASON,
                                     settled_order=paid["merchant_order_id"] if paid else None)
    assert cancelled_at is not None
    closed = db.close_open_payments(conn, campaign_id)
    unfired = db.cancel_publications(conn, campaign_id)
    pending = campaign["pending_decision"]
    if pending and pending.get("kind") in HUMAN_DECISIONS and not actor.startswith(("system", "function:")):
        db.close_decision(conn, decision_id=str(pending["id"]), campaign_id=campaign_id,
                          workspace_id=campaign["workspace_id"], kind=str(pending["kind"]),
                          payload={"action": "reject", "reason": "campaign cancelled"}, user_id=UUID(actor))
    refund: RefundRow | None = None
    items: list[OutboxItem] = []
    amount = prorata_refund_paise(paid["amount_paise"], total, unpublished) if paid else 0
    if paid and amount >= MIN_REFUND_PAISE:
        refund, items = start_refund(conn, merchant_order_id=paid["merchant_order_id"], campaign_id=campaign_id,
                                     workspace_id=campaign["workspace_id"], amount_paise=amount,
                                     reason="cancelled_before_publication" if stage == "before_publication"
                                     else "cancelled_partially_published",
                                     actor=actor, channels_total=total, channels_unpublished=unpublished)
    details = {"stage": stage, "channels_total": total, "channels_unpublished": unpublished,
               "paid_order": paid["merchant_order_id"] if paid else None, "refund_paise": amount if refund else 0,
               "merchant_refund_id": refund["merchant_refund_id"] if refund else None, "closed_orders": closed,
               "publications_cancelled": unfired,
               "pending_decision": pending.get("id") if pending else None, "previous_status": status.value}
    campaigns_db.add_event(conn, campaign_id=campaign_id, workspace_id=campaign["workspace_id"],
                           type_="campaign.cancelled", data=details)
    audit.record(conn, workspace_id=str(campaign["workspace_id"]), actor=actor, action="campaign.cancelled",
                 target_type="campaign", target_id=str(campaign_id), details=details,
                 key=f"campaign:{campaign_id}:cancelled")
    rows = outbox_db.add(conn, campaign_id, items)
    return Cancellation(campaign_id=campaign_id, cancelled_at=cancelled_at, stage=stage, channels_total=total,
                        channels_unpublished=unpublished, refund=refund, cancelled_now=True), rows


def _first_cancel(conn: Conn, campaign_id: UUID) -> Cancellation:
    """The cancel already made, from its `campaign.cancelled` event, with the latest refund as it stands now."""
    event = db.cancel_event(conn, campaign_id)
    assert event is not None, f"cancelled campaign {campaign_id} has no campaign.cancelled event"
    data = event["data"]
    return Cancellation(campaign_id=campaign_id, cancelled_at=event["created_at"],
                        stage=cast(CancelStage, data["stage"]), channels_total=int(data["channels_total"]),
                        channels_unpublished=int(data["channels_unpublished"]),
                        refund=db.latest_of_campaign(conn, campaign_id), cancelled_now=False)


@dataclass
class Canceller:
    """Cancels campaigns for the API: waits out a running step, commits, then publishes the refund's message."""

    pool: Pool
    outbox: Outbox
    wait_seconds: float
    tracer: langsmith.Client | None = None
    project: str = "muse"
    flush_seconds: float = 5.0
    poll_seconds: float = 0.2

    def cancel(self, principal: Principal, campaign_id: UUID) -> Cancellation:
        """Cancel the caller's campaign (see module docstring); the same answer when repeated."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            try:
                with as_user(self.pool, principal.claims) as conn:
                    if campaigns_db.get_campaign(conn, campaign_id) is None:
                        raise NotFound(f"Campaign {campaign_id} does not exist in your workspaces.")
                    as_runtime(conn)
                    outcome, rows = cancel_in_transaction(conn, campaign_id, actor=str(principal.user_id))
                break
            except _StepRunning as busy:
                if time.monotonic() + self.poll_seconds > deadline:
                    wait = max(1, math.ceil(busy.seconds_left))
                    raise ThreadBusy(f"A step of campaign {campaign_id} is running; cancel again after it "
                                     "(Retry-After).", retry_after_seconds=wait) from None
                time.sleep(self.poll_seconds)
        self.outbox.publish(rows)
        if outcome.cancelled_now and self.tracer is not None:
            end_campaign_run(self.tracer, campaign_id, project=self.project, status="cancelled",
                             reason=CANCEL_REASON)
            flush(self.tracer, self.flush_seconds)
        return outcome
