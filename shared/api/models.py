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


IDEMPOTENCY_KEY_PATTERN = r"^[!-~](?:[ -~]{0,198}[!-~])?$"
"""1-200 printable ASCII characters, no leading or trailing space (HTTP would strip it)."""
WHITESPACE = "\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
"""Unicode White_Space as a regex class body: what pydantic's `strip_whitespace` removes. Spelt out because
`\\s` differs between the regex dialects that read the document (ECMA's lacks U+0085 and has U+FEFF)."""
EMAIL_PATTERN = r"^[\x21-\x3f\x41-\x7e]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$"
"""An email address: printable ASCII local part, dotted host name. Spelt without `\\s` so that Python and the
ECMA regexes reading the document agree on every string."""
TEXT_PATTERN = r"^[^\x00]*$"
"""Any text Postgres can store: no NUL byte (the edge answers 400 for one)."""
NOT_BLANK_PATTERN = f"^[^\\x00]*[^{WHITESPACE}\\x1c-\\x1f\\x00][^\\x00]*$"
"""Stored text with a character Python's `str.strip()` keeps (White_Space and U+001C-U+001F go)."""


def stripped_pattern(longest: int | None, *, required: bool = True) -> str:
    """A string that pydantic strips to at most `longest` characters (at least one if `required`), no NUL."""
    inner = "[^\\x00]*" if longest is None else f"[^\\x00]{{0,{max(longest - 2, 0)}}}"
    keep = f"[^{WHITESPACE}\\x00]"
    core = keep if longest == 1 else f"{keep}(?:{inner}{keep})?"
    return f"^[{WHITESPACE}]*(?:{core}){'' if required else '?'}[{WHITESPACE}]*$"


_DECISION_RULES: dict[str, Any] = {"oneOf": [
    {"properties": {"action": {"const": "approve"}}},
    {"properties": {"action": {"const": "reject"}, "feedback": {"type": "string", "pattern": NOT_BLANK_PATTERN}},
     "required": ["feedback"]},
    {"properties": {"action": {"const": "edit"}, "edits": {"type": "object", "minProperties": 1}},
     "required": ["edits"]},
]}


class Decision(BaseModel):
    """`POST /api/v1/campaigns/{id}/decisions`: the answer to the pending decision.

    Rejecting needs `feedback` (not blank), editing needs `edits` (at least one field): the schema's
    `oneOf` states it, the validator enforces it.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra=_DECISION_RULES)

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


class Money(BaseModel):
    """An amount in micro-USD, US dollars and rupees (at `MUSE_USD_INR_RATE`)."""

    micro_usd: int
    usd: float
    inr: float


class CostNodeLine(BaseModel):
    """The calls of one node and model (a tool as `vendor:tool`) and what they cost."""

    node: str
    model: str
    kind: Literal["model", "tool"]
    calls: int
    cost: Money
    unpriced: int = Field(0, description="Calls whose model has no price (not in `cost`).")


class CampaignCostView(BaseModel):
    """What a campaign's AI work cost so far, and its cap."""

    total: Money
    cap: Money
    reserved: Money = Field(description="Held by calls in flight.")
    by_node: list[CostNodeLine]


class PublicationView(BaseModel):
    """One publication: a campaign's copy (one artifact variant) on one platform, fired once at its time."""

    id: UUID
    channel: str = Field(description="The artifact's channel (`linkedin_post`, `x_thread`, `instagram_caption`, "
                                     "`email`).")
    provider: Literal["linkedin", "x", "facebook", "instagram", "email", "whatsapp"]
    variant: str
    status: Literal["scheduled", "sending", "published", "failed", "unconfirmed", "cancelled", "waiting"] = Field(
        description="`waiting`: the channel is not connected or needs a reconnect (`waiting_reason`, `error`); "
                    "`unconfirmed`: the platform did not confirm and a lookup found no post: check the account.")
    waiting_reason: Literal["not_connected", "needs_reconnect"] | None
    external_id: str | None = Field(description="The platform's post (or message) id once published.")
    url: str | None
    scheduled_at: datetime
    published_at: datetime | None
    attempts: int
    error: str | None = Field(description="The platform's message for a failure, or why it waits.")


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
    publications: list[PublicationView] = Field(default_factory=list)
    waiting_for: list[str] = Field(default_factory=list, description=(
        "What the campaign still waits for while it publishes, e.g. `waiting: linkedin needs reconnect: <the "
        "platform's reason>` or `scheduled: x at 2026-12-03T12:00:00+05:30`."))
    usage: UsageView = Field(default_factory=UsageView)
    cost: CampaignCostView | None = None
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


class ErrorDetail(BaseModel):
    """What went wrong: a stable `code`, a `message` naming the value and the fix, optional `details`."""

    code: str = Field(description="Stable and machine-readable, e.g. `invalid_request`, `not_found`.")
    message: str
    details: dict[str, Any] | None = Field(default=None, description="e.g. `field`, `value`, `fields`.")


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer."""

    error: ErrorDetail


class CampaignEvent(BaseModel):
    """The `data` of one Server-Sent Event of `GET /api/v1/campaigns/{id}/events` (JSON).

    Each SSE frame is `id: <event id>`, `event: <type>`, `data: <this object>`; reconnect with the last
    `id` as `Last-Event-ID`. Types: `campaign.created` (`kind`, `title`), `step.completed` (`node`,
    `function`, what the node produced), `plan.changed` (`node`, `reason`, ...), `decision.requested` and
    `payment.requested` (`id`, `kind`, `payload`), `decision.received` (`id`, `action`, `feedback`),
    `decision.applied`, `decision.expired` (`id`, ...), `payment.created` (`merchant_order_id`,
    `amount_paise`), `campaign.completed` ({}), `campaign.failed` (`reason`, `function`).
    """

    type: str = Field(description="The event type, as in the frame's `event:` line.")
    data: dict[str, Any] = Field(description="The event's fields (see the types above).")
    at: datetime = Field(description="When the event was recorded.")
