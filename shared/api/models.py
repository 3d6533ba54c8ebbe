"""Request and response bodies of the frontend API (also the source of the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.campaigns.schemas import Brief, CampaignKind
from shared.domain import CampaignStatus, DecisionKind


class CreateCampaign(BaseModel):
    """`POST /api/v1/campaigns`. A move is a campaign with a smaller plan."""

    model_config = ConfigDict(extra="forbid")

    kind: CampaignKind = "campaign"
    brief: Brief


class CampaignAccepted(BaseModel):
    """The campaign was created and its first step queued."""

    id: UUID
    status: CampaignStatus
    links: dict[str, str]


class Decision(BaseModel):
    """`POST /api/v1/campaigns/{id}/decisions`: the answer to the pending decision."""

    model_config = ConfigDict(extra="forbid")

    decision_id: str = Field(min_length=1, max_length=200, description="The `pending_decision.id` being answered.")
    action: Literal["approve", "reject", "edit"]
    feedback: str | None = Field(default=None, max_length=4000, description="Required to reject.")
    edits: dict[str, Any] | None = Field(default=None, description="Required to edit: the changed fields.")

    @model_validator(mode="after")
    def _needs_payload(self) -> Decision:
        if self.action == "reject" and not (self.feedback or "").strip():
            raise ValueError("`feedback` is required when `action` is 'reject': say what to change")
        if self.action == "edit" and not self.edits:
            raise ValueError("`edits` is required when `action` is 'edit': send the fields you changed")
        return self


class DecisionAccepted(BaseModel):
    """The decision was recorded and the campaign resumes."""

    decision_id: str
    action: str
    status: Literal["accepted"] = "accepted"


class PendingDecision(BaseModel):
    """What the campaign waits for."""

    id: str
    kind: DecisionKind
    payload: dict[str, Any]
    requested_at: datetime
    expires_at: datetime | None = None


class ArtifactView(BaseModel):
    """One channel's content."""

    channel: str
    variant: str = "a"
    status: Literal["draft", "published"]
    revision: int
    content: dict[str, Any]
    model: str
    usage: dict[str, Any]
    updated_at: datetime


class PaymentView(BaseModel):
    """The campaign's latest PhonePe order."""

    merchant_order_id: str
    state: Literal["creating", "pending", "completed", "failed"]
    amount_paise: int
    redirect_url: str | None


class UsageLine(BaseModel):
    """Tokens one node spent on one model."""

    node: str
    model: str
    calls: int
    prompt_tokens: int
    cached_tokens: int
    output_tokens: int
    thinking_tokens: int
    fallbacks: int


class UsageView(BaseModel):
    """Token usage of a campaign: totals and per node."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    calls: int = 0
    by_node: list[UsageLine] = Field(default_factory=list)


class CampaignView(BaseModel):
    """`GET /api/v1/campaigns/{id}`."""

    id: UUID
    kind: CampaignKind
    status: CampaignStatus
    current_step: str | None
    pending_decision: PendingDecision | None
    failure_reason: str | None
    brief: dict[str, Any]
    artifacts: list[ArtifactView]
    payment: PaymentView | None
    usage: UsageView = Field(default_factory=UsageView)
    created_at: datetime
    updated_at: datetime


class CampaignSummary(BaseModel):
    """One campaign as `GET /api/v1/campaigns` lists it: enough to render a row and link to the campaign."""

    id: UUID
    kind: CampaignKind
    title: str | None = Field(description="The brief's title.")
    status: CampaignStatus
    current_step: str | None
    pending_decision_kind: DecisionKind | None = Field(description="What the campaign waits for, if anything.")
    created_at: datetime
    updated_at: datetime


class CampaignPage(BaseModel):
    """`GET /api/v1/campaigns`: a page of the workspace's campaigns, newest first."""

    items: list[CampaignSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class Checkout(BaseModel):
    """`POST /api/v1/campaigns/{id}/checkout`: where to send the user to pay."""

    merchant_order_id: str
    redirect_url: str
    amount_paise: int
    state: str


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer."""

    error: dict[str, Any] = Field(description="`code`, `message` (what is wrong and how to fix it), `details`.")
