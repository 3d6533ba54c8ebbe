"""Function `subscriptions`: UPI Autopay mandates and their monthly cycles (shared.subscriptions).

QStash delivers `SubscriptionMessage`s here: webhook triggers queued by `phonepe_webhook`, and the delayed
steps of a cycle (notify, redeem, status checks, the end of grace or of a cancelled mandate's period).
"""

import flask
import functions_framework

from shared.http import json_errors, qstash_response
from shared.subscriptions.wiring import subscription_service

json_errors()


@functions_framework.http
def subscriptions(request: flask.Request) -> flask.Response:
    """Act on one subscription message (or acknowledge a duplicate); 401 without a valid QStash signature."""
    return qstash_response(
        lambda: subscription_service().handle_delivery(request.get_data(), request.headers.get("Upstash-Signature"))
    )
