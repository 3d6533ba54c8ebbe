"""The campaign thread's vocabulary, shared by every layer: statuses, ids, pending decisions, outbox items.

It imports nothing of Muse, so the database modules, the runtime and the API can all depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, NewType, NotRequired, TypedDict
from uuid import UUID

CampaignId = NewType("CampaignId", UUID)
"""A campaign's id, which is also its LangGraph thread id."""


class CampaignStatus(StrEnum):
    """Where a campaign's thread stands (the `campaigns.status` column)."""

    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_DECISION = "awaiting_decision"
    AWAITING_PAYMENT = "awaiting_payment"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    """Ended by `POST /api/v1/campaigns/{id}/cancel`; whatever was paid and not published is refunded."""

    @property
    def terminal(self) -> bool:
        """No delivery can move a campaign out of this status."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({CampaignStatus.COMPLETED, CampaignStatus.FAILED, CampaignStatus.EXPIRED,
                               CampaignStatus.CANCELLED})

DecisionKind = Literal["strategy_approval", "qa_review", "payment", "budget"]
HUMAN_DECISIONS: frozenset[str] = frozenset({"strategy_approval", "qa_review", "budget"})
"""`budget`: an AI-spend cap would be passed; approve once the cap is raised (the node runs again), reject cancels."""
DecisionAction = Literal["approve", "reject", "edit", "expire"]
DecisionSource = Literal["user", "timeout"]


class PendingDecision(TypedDict):
    """The interrupt a parked thread waits on (`campaigns.pending_decision`).

    `id` is LangGraph's interrupt id: every resume must name it, and is bound to exactly it.
    """

    id: str
    kind: DecisionKind
    node: str
    function: str
    payload: dict[str, Any]
    requested_at: str
    expires_at: NotRequired[str]


@dataclass(frozen=True)
class AppliedDecision:
    """A decision a step applied to its pending interrupt, recorded with the step's outcome."""

    id: str
    kind: str
    action: DecisionAction
    payload: dict[str, Any]
    source: DecisionSource


class OutboxItem(TypedDict):
    """A QStash message to send once the transaction that calls for it commits (`step_outbox`)."""

    function: str
    message: dict[str, Any]
    dedup_id: str
    not_before: datetime | None


class OutboxRow(OutboxItem):
    """An outbox item as stored, with its row id."""

    id: int
    campaign_id: UUID | None


@dataclass(frozen=True)
class ConfirmedPayment:
    """A payment PhonePe's Order Status API confirmed COMPLETED for the expected amount.

    Only the payments module creates one, after that check; it is the only thing that can resume a
    thread parked on a payment interrupt.
    """

    merchant_order_id: str
    campaign_id: UUID
    amount_paise: int
    phonepe_order_id: str | None = None
    seen: dict[str, Any] = field(default_factory=dict)
