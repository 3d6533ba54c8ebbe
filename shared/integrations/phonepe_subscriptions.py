"""PhonePe PG v2 subscriptions (UPI Autopay): setup, notify, redeem, order and subscription status, cancel.

The same small httpx client as `shared.integrations.phonepe` (and for the same reasons: the official SDK pins
vulnerable `requests`/`urllib3` and starts threads when constructed), extended with the subscription calls
of reference `phonepe-gst-india.md` §4. The OAuth token, its Redis cache and the single retry after a 401
are that client's, inherited rather than repeated.

Every call names the merchant's own ids (merchant subscription id, merchant order id), which Muse derives
from its rows, so repeating a call after a crash never makes a second mandate or debit: PhonePe answers a
repeated setup or notify with `ORDER_ALREADY_EXISTS` (`OrderAlreadyExists`), and the caller reads the
status instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from shared.errors import UpstreamUnavailable
from shared.integrations.cache import UpstashCache
from shared.integrations.phonepe import OrderAlreadyExists, PhonePeClient
from shared.settings import Settings

SubscriptionState = Literal["ACTIVATION_IN_PROGRESS", "ACTIVE", "EXPIRED", "FAILED", "CANCEL_IN_PROGRESS",
                            "CANCELLED", "REVOKE_IN_PROGRESS", "REVOKED", "PAUSE_IN_PROGRESS", "PAUSED",
                            "UNPAUSE_IN_PROGRESS"]
"""Every state PhonePe documents for a subscription."""

PENNY_DROP_PAISE = 200
"""A `PENNY_DROP` setup verifies the payer's account with exactly ₹2 (the docs' rule)."""


class RedemptionNotAllowed(UpstreamUnavailable):
    """PhonePe refused to redeem yet (the pre-debit notification's 24 h have not passed, or it is not ACTIVE)."""

    code = "redemption_not_allowed"


@dataclass(frozen=True)
class SetupOrder:
    """A mandate setup created by `/subscriptions/v2/setup`: the payer approves it at `intent_url`."""

    order_id: str
    state: str
    intent_url: str


@dataclass(frozen=True)
class SubscriptionStatus:
    """The root of `/subscriptions/v2/{merchantSubscriptionId}/status`: decide on `state` only."""

    state: str
    subscription_id: str
    max_amount_paise: int
    raw: dict[str, Any]


@dataclass(frozen=True)
class SubscriptionOrder:
    """The root of `/subscriptions/v2/order/{merchantOrderId}/status` (a setup or a redemption order)."""

    state: str
    """PENDING, COMPLETED or FAILED; a redemption order is NOTIFICATION_IN_PROGRESS or NOTIFIED before it is
    redeemed."""
    amount_paise: int
    order_id: str
    error_code: str | None
    raw: dict[str, Any]


@dataclass
class PhonePeSubscriptionsClient(PhonePeClient):
    """The Autopay calls Muse needs, over the checkout client's token handling."""

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        response = self._authorized(method, self.settings.phonepe_base_url + path, what, **kwargs)
        if response.status_code == 204:
            return 204, {}
        return response.status_code, self._json(response, what)

    def setup(self, *, merchant_order_id: str, merchant_subscription_id: str, max_amount_paise: int,
              expire_after_seconds: int, meta: dict[str, str]) -> SetupOrder:
        """`POST /subscriptions/v2/setup`: a monthly, fixed-amount UPI mandate verified by a ₹2 penny drop."""
        expire_at = int((time.time() + expire_after_seconds) * 1000)
        body = {
            "merchantOrderId": merchant_order_id,
            "amount": PENNY_DROP_PAISE,
            "expireAt": expire_at,
            "paymentFlow": {
                "type": "SUBSCRIPTION_SETUP",
                "merchantSubscriptionId": merchant_subscription_id,
                "authWorkflowType": "PENNY_DROP",
                "amountType": "FIXED",
                "maxAmount": max_amount_paise,
                "frequency": "MONTHLY",
                "paymentMode": {"type": "UPI_INTENT", "targetApp": "com.phonepe.app"},
            },
            "deviceContext": {"deviceOS": "ANDROID"},
            "metaInfo": meta,
        }
        status, data = self._call("POST", "/subscriptions/v2/setup", "subscription setup", json=body)
        if status >= 400:
            if data.get("code") == "ORDER_ALREADY_EXISTS":
                raise OrderAlreadyExists(f"PhonePe already has setup order {merchant_order_id!r}.")
            raise UpstreamUnavailable(f"PhonePe refused subscription setup {merchant_order_id!r}: {data}")
        return SetupOrder(order_id=str(data["orderId"]), state=str(data["state"]), intent_url=str(data["intentUrl"]))

    def subscription_status(self, merchant_subscription_id: str) -> SubscriptionStatus | None:
        """`GET /subscriptions/v2/{id}/status?details=true`; None if PhonePe does not know the subscription."""
        status, data = self._call("GET", f"/subscriptions/v2/{merchant_subscription_id}/status", "subscription status",
                                  params={"details": "true"})
        if status >= 400:
            if status == 404 or "INVALID" in str(data.get("code")):
                return None
            raise UpstreamUnavailable(f"PhonePe subscription status for {merchant_subscription_id!r} failed: {data}")
        return SubscriptionStatus(state=str(data.get("state")), subscription_id=str(data.get("subscriptionId") or ""),
                                  max_amount_paise=int(data.get("maxAmount") or 0), raw=data)

    def subscription_order_status(self, merchant_order_id: str) -> SubscriptionOrder | None:
        """`GET /subscriptions/v2/order/{id}/status`; None if PhonePe does not know the order."""
        status, data = self._call("GET", f"/subscriptions/v2/order/{merchant_order_id}/status",
                                  "subscription order status", params={"details": "false"})
        if status >= 400:
            if data.get("code") == "INVALID_MERCHANT_ORDER_ID":
                return None
            raise UpstreamUnavailable(f"PhonePe subscription order status for {merchant_order_id!r} failed: {data}")
        return SubscriptionOrder(state=str(data.get("state")), amount_paise=int(data.get("amount") or 0),
                                 order_id=str(data.get("orderId") or ""), error_code=data.get("errorCode"), raw=data)

    def notify(self, *, merchant_order_id: str, merchant_subscription_id: str, amount_paise: int,
               expire_after_seconds: int) -> str:
        """`POST /subscriptions/v2/notify`: the pre-debit notification of one redemption; returns its state.

        `autoDebit` is off: Muse redeems itself once the notification's 24 h have passed.
        """
        body = {
            "merchantOrderId": merchant_order_id,
            "amount": amount_paise,
            "expireAt": int((time.time() + expire_after_seconds) * 1000),
            "paymentFlow": {"type": "SUBSCRIPTION_REDEMPTION", "merchantSubscriptionId": merchant_subscription_id,
                            "redemptionRetryStrategy": "STANDARD", "autoDebit": False},
        }
        status, data = self._call("POST", "/subscriptions/v2/notify", "subscription notify", json=body)
        if status >= 400:
            if data.get("code") == "ORDER_ALREADY_EXISTS":
                raise OrderAlreadyExists(f"PhonePe already has redemption order {merchant_order_id!r}.")
            raise UpstreamUnavailable(f"PhonePe refused to notify {merchant_order_id!r}: {data}")
        return str(data.get("state"))

    def redeem(self, merchant_order_id: str) -> str:
        """`POST /subscriptions/v2/redeem`: execute a notified redemption; returns its state (PENDING at first).

        `RedemptionNotAllowed` when PhonePe refuses it for now (too early, or the mandate is not active).
        """
        status, data = self._call("POST", "/subscriptions/v2/redeem", "subscription redeem",
                                  json={"merchantOrderId": merchant_order_id})
        if status >= 400:
            if status in (400, 409, 412, 422):
                raise RedemptionNotAllowed(f"PhonePe refused to redeem {merchant_order_id!r} now: "
                                           f"{data.get('code')}: {data.get('message')}")
            raise UpstreamUnavailable(f"PhonePe redeem of {merchant_order_id!r} failed: {data}")
        return str(data.get("state"))

    def cancel(self, merchant_subscription_id: str) -> None:
        """`POST /subscriptions/v2/{id}/cancel` (204); a subscription already ended counts as cancelled."""
        status, data = self._call("POST", f"/subscriptions/v2/{merchant_subscription_id}/cancel",
                                  "subscription cancel")
        if status >= 400 and status not in (404, 409):
            raise UpstreamUnavailable(f"PhonePe cancel of {merchant_subscription_id!r} failed: {data}")


def phonepe_subscriptions_client(settings: Settings, cache: UpstashCache | None) -> PhonePeSubscriptionsClient:
    """The Autopay client of this deployment (sandbox, production or the local emulator)."""
    return PhonePeSubscriptionsClient(http=httpx.Client(), settings=settings, cache=cache)
