"""The QStash message of the `subscriptions` function, and how a verified PhonePe webhook becomes one.

Import-light (pydantic only): the PhonePe webhook function builds these on its cold-start path.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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


def webhook_message(event: str, payload: dict[str, Any]) -> SubscriptionMessage | None:
    """The message for a `subscription.*` webhook; None when the event is not one (ValueError: malformed)."""
    if not event.startswith("subscription."):
        return None
    flow = payload.get("paymentFlow") if isinstance(payload.get("paymentFlow"), dict) else {}
    reference = payload.get("merchantSubscriptionId") or flow.get("merchantSubscriptionId")  # type: ignore[union-attr]
    order = payload.get("merchantOrderId")
    if not isinstance(reference, str) or not reference:
        raise ValueError("a subscription webhook's payload names `merchantSubscriptionId` (or paymentFlow's)")
    return SubscriptionMessage(kind="event", merchant_subscription_id=reference, event=event[:100],
                               merchant_order_id=order if isinstance(order, str) else None,
                               state=str(payload.get("state") or "")[:40])
