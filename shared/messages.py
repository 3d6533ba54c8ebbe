"""The QStash message that chains steps and carries resume events."""

from __future__ import annotations

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

