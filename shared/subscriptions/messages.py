"""The QStash message of the `subscriptions` function, and how a verified PhonePe webhook becomes one.

The message model lives in `shared.messages` with the other QStash messages (the outbox reads every function's rows
back without importing their packages). Import-light (pydantic only): the PhonePe webhook function builds these on
its cold-start path.
"""

from __future__ import annotations

from typing import Any

from shared.messages import MERCHANT_ID_PATTERN, SubscriptionKind, SubscriptionMessage

__all__ = ["MERCHANT_ID_PATTERN", "SubscriptionKind", "SubscriptionMessage", "webhook_message"]


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
