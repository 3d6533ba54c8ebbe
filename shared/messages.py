"""The QStash messages Muse sends: the step message that chains steps and carries resume events, and the
messages of the `publish` and `subscriptions` functions (here so the outbox reads any row back without importing
those functions' packages)."""

from __future__ import annotations

import re
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MessageKind = Literal["start", "continue", "resume", "decision_timeout", "payment_event", "refund_event"]


class PaymentEvent(BaseModel):
    """What a verified PhonePe webhook said; only a trigger, confirmed through the Order Status API."""

    model_config = ConfigDict(extra="forbid")

    merchant_order_id: str = Field(min_length=1, max_length=63)
    event: str = Field(min_length=1, max_length=100)
    state: str = Field(default="", max_length=20)
    recheck: int = Field(default=0, ge=0, le=100)
    """0 for the webhook itself; n for the n-th scheduled Order Status re-check (reconciliation)."""


class RefundEvent(BaseModel):
    """Something to do about a refund: send it, re-check it, or what a verified `pg.refund.*` webhook said.

    Only a trigger, like `PaymentEvent`: the refund's state is taken from PhonePe's Refund Status API.
    """

    model_config = ConfigDict(extra="forbid")

    merchant_refund_id: str = Field(min_length=1, max_length=63)
    event: str = Field(min_length=1, max_length=100)
    """`initiate` (a new refund), `reconcile` (a scheduled re-check) or the webhook's event name."""
    state: str = Field(default="", max_length=20)
    recheck: int = Field(default=0, ge=0, le=100)


class StepMessage(BaseModel):
    """One delivery to a step function.

    `expected_checkpoint_id` is the thread head the sender saw; a delivery whose head has moved on
    is a duplicate or stale and is acknowledged without doing anything. A `resume` names the pending
    interrupt it answers (`decision_id`); it never resumes a payment interrupt, which only a payment
    confirmed by PhonePe's Order Status API can do.
    """

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    kind: MessageKind
    campaign_id: UUID | None = None
    expected_checkpoint_id: str | None = None
    decision_id: str | None = None
    resume: dict[str, Any] | None = None
    payment: PaymentEvent | None = None
    refund: RefundEvent | None = None
    trace: dict[str, str] | None = None
    """The campaign's LangSmith trace context (`langsmith-trace` dotted order and `baggage`), so every
    step's runs join the campaign's one trace; optional (absent in messages sent before it existed)."""

    @field_validator("trace")
    @classmethod
    def _trace_headers_only(cls, trace: dict[str, str] | None) -> dict[str, str] | None:
        if trace is None:
            return None
        unknown = set(trace) - {"langsmith-trace", "baggage"}
        if unknown or any(len(value) > 4096 for value in trace.values()):
            raise ValueError("`trace` carries only the `langsmith-trace` and `baggage` headers, each under 4 KiB")
        return trace

    @model_validator(mode="after")
    def _names_what_it_answers(self) -> StepMessage:
        if self.kind in ("resume", "decision_timeout") and not self.decision_id:
            raise ValueError(f"a {self.kind!r} message must name the pending interrupt it answers in `decision_id`")
        if self.kind == "payment_event" and self.payment is None:
            raise ValueError("a 'payment_event' message needs `payment`")
        if self.kind == "refund_event" and self.refund is None:
            raise ValueError("a 'refund_event' message needs `refund`")
        if self.kind not in ("payment_event", "refund_event") and self.campaign_id is None:
            raise ValueError(f"a {self.kind!r} message needs `campaign_id`")
        return self

    def dedup_id(self) -> str:
        """A QStash deduplication id derived from thread and checkpoint (no `:` or spaces)."""
        head = self.expected_checkpoint_id or "root"
        if self.kind == "payment_event" and self.payment is not None:
            p = self.payment
            return f"pay-{p.merchant_order_id}-{p.event}-{p.recheck}".replace(":", "-")
        if self.kind == "refund_event" and self.refund is not None:
            r = self.refund
            return f"refund-{r.merchant_refund_id}-{r.event}-{r.state or 'any'}-{r.recheck}".replace(":", "-")
        suffix = f"-{self.decision_id}" if self.decision_id else ""
        return f"{self.campaign_id}-{self.kind}-{head}{suffix}"


class PublishMessage(BaseModel):
    """One delivery to the `publish` function: fire publication `publication_id` (issue 11).

    It names the publication's `version` (bumped by every reschedule) and how many create `attempt`s had
    been made when it was sent, so a message for an older time or an earlier attempt is a no-op.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["publish"] = "publish"
    publication_id: UUID
    version: int = Field(ge=1, le=1_000_000)
    attempt: int = Field(default=0, ge=0, le=1000)
    purpose: Literal["fire", "watch"] = "fire"
    """`watch`: sent with `sending`, due when the call is presumed dead; it reconciles a crashed attempt."""

    def dedup_id(self) -> str:
        """QStash deduplication id: one message per (publication, version, attempt, purpose)."""
        return f"pub-{self.publication_id}-v{self.version}-a{self.attempt}-{self.purpose}"


MERCHANT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,63}$"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")

SubscriptionKind = Literal["event", "setup_check", "notify", "redeem", "order_check", "period_end", "grace_end"]
"""`event`: a verified webhook (a trigger, confirmed through a status call); `setup_check`: confirm a setup
through Subscription Status; `notify` / `redeem`: the two steps of a cycle's collection; `order_check`:
confirm a redemption through Order Status; `period_end`: a cancelled mandate's paid period is over;
`grace_end`: a failed cycle's grace period is over."""


class SubscriptionMessage(BaseModel):
    """One delivery to the `subscriptions` function about mandate `merchant_subscription_id`."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    kind: SubscriptionKind
    merchant_subscription_id: str = Field(pattern=MERCHANT_ID_PATTERN)
    merchant_order_id: str | None = Field(default=None, pattern=MERCHANT_ID_PATTERN)
    cycle: int = Field(default=0, ge=0, le=10_000)
    attempt: int = Field(default=0, ge=0, le=100)
    event: str | None = Field(default=None, max_length=100)
    state: str = Field(default="", max_length=40)
    recheck: int = Field(default=0, ge=0, le=100)
    """0 for the first check; n for the n-th scheduled re-check of an inconclusive status."""

    def dedup_id(self) -> str:
        """QStash deduplication id: one message per (mandate, kind, order or cycle, event, re-check)."""
        parts = [self.kind, self.merchant_subscription_id, self.merchant_order_id or f"c{self.cycle}a{self.attempt}",
                 self.event or "", self.state, str(self.recheck)]
        return _UNSAFE.sub("-", "sub-" + "-".join(parts))
