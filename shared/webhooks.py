"""The PhonePe webhook: verify, then hand off to the payments step through QStash.

Imports nothing of the graph stack, so it acknowledges within PhonePe's few seconds even on a
cold start. It never trusts the body: the payments step confirms through the Order Status API, and the
`subscriptions` function (UPI Autopay `subscription.*` events) through the subscription status APIs.
"""

from __future__ import annotations

import json
from typing import Any

from shared.errors import InvalidRequest, Unauthorized
from shared.http import json_too_deep
from shared.messages import PaymentEvent, RefundEvent, StepMessage
from shared.queue import StepQueue
from shared.settings import Settings
from shared.subscriptions.messages import webhook_message
from shared.webhook_auth import is_authorized

WEBHOOK_MAX_DEPTH = 16
HANDLED_EVENTS = ("checkout.order.completed", "checkout.order.failed", "pg.order.completed", "pg.order.failed")
REFUND_EVENTS = ("pg.refund.completed", "pg.refund.failed", "pg.refund.accepted")


def receive_phonepe_webhook(body: bytes, authorization: str | None, *, settings: Settings,
                            queue: StepQueue) -> dict[str, Any]:
    """Verify a PhonePe S2S callback and queue its confirmation; duplicates collapse in QStash."""
    if not is_authorized(authorization, username=settings.phonepe_webhook_username,
                         password=settings.phonepe_webhook_password.get_secret_value()):
        raise Unauthorized("Webhook Authorization does not match SHA256(username:password) of the configured "
                           "PHONEPE_WEBHOOK_USERNAME/PASSWORD.")
    if json_too_deep(body, WEBHOOK_MAX_DEPTH):
        raise InvalidRequest(f"Webhook body nests deeper than {WEBHOOK_MAX_DEPTH} levels; PhonePe's never does.")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise InvalidRequest(f"Webhook body is not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("payload"), dict):
        raise InvalidRequest("Webhook body needs `event` and a `payload` object.")
    event = str(data.get("event") or "")
    payload = data["payload"]
    order = payload.get("merchantOrderId")
    try:
        subscription = webhook_message(event, payload)
    except ValueError as exc:
        raise InvalidRequest(f"Webhook payload is malformed: {exc}") from exc
    if subscription is not None:
        queue.publish("subscriptions", subscription)
        return {"received": True, "handled": True}
    if event in REFUND_EVENTS:
        return _queue_refund_event(event, payload, queue)
    if event not in HANDLED_EVENTS:
        return {"received": True, "handled": False, "reason": f"event {event!r} is not used by Muse"}
    if not isinstance(order, str) or not order:
        raise InvalidRequest("Webhook payload has no `merchantOrderId`.")
    try:
        payment = PaymentEvent(merchant_order_id=order, event=event, state=str(payload.get("state") or "")[:20])
    except ValueError as exc:
        raise InvalidRequest(f"Webhook payload is malformed: {exc}") from exc
    queue.publish("payments", StepMessage(kind="payment_event", payment=payment))
    return {"received": True, "handled": True}


def _queue_refund_event(event: str, payload: dict[str, Any], queue: StepQueue) -> dict[str, Any]:
    """Hand a refund webhook to the payments step, which confirms it through the Refund Status API."""
    refund_id = payload.get("merchantRefundId")
    if not isinstance(refund_id, str) or not refund_id:
        raise InvalidRequest("Refund webhook payload has no `merchantRefundId`.")
    try:
        refund = RefundEvent(merchant_refund_id=refund_id, event=event, state=str(payload.get("state") or "")[:20])
    except ValueError as exc:
        raise InvalidRequest(f"Refund webhook payload is malformed: {exc}") from exc
    queue.publish("payments", StepMessage(kind="refund_event", refund=refund))
    return {"received": True, "handled": True}
