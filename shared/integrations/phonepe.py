"""PhonePe PG Standard Checkout v2: OAuth token, create order, order status.

A small httpx client instead of the official `phonepe-pg-sdk-python`: that SDK pins
`requests<=2.31` and `urllib3<=1.26.12` (versions with known CVEs), installs a top-level `tests`
package, and fetches a token and starts daemon threads when constructed — wrong for a function
that must start fast and stay stateless. The token is cached in Upstash Redis instead, shared by
all instances until shortly before it expires.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from shared.errors import ConfigurationError, InvalidRequest, UpstreamUnavailable
from shared.integrations.cache import UpstashCache
from shared.settings import Settings

TOKEN_REFRESH_MARGIN_SECONDS = 300


@dataclass(frozen=True)
class CheckoutOrder:
    """An order created by `/checkout/v2/pay`."""

    order_id: str
    state: str
    redirect_url: str
    expire_at_ms: int


@dataclass(frozen=True)
class OrderStatus:
    """The root of `/checkout/v2/order/{id}/status`: decide on `state` and `amount` only."""

    state: str
    amount_paise: int
    order_id: str
    raw: dict[str, Any]


class OrderAlreadyExists(InvalidRequest):
    """PhonePe already has an order with this merchantOrderId."""

    code = "order_already_exists"


@dataclass
class PhonePeClient:
    """The three v2 calls Muse needs."""

    http: httpx.Client
    settings: Settings
    cache: UpstashCache | None = None

    def _token(self) -> str:
        key = f"phonepe:token:{self.settings.phonepe_client_id}"
        cached = self.cache.get_json(key) if self.cache else None
        if cached and cached["expires_at"] - TOKEN_REFRESH_MARGIN_SECONDS > time.time():
            return cached["header"]
        form = {
            "client_id": self.settings.phonepe_client_id,
            "client_version": self.settings.phonepe_client_version,
            "client_secret": self.settings.phonepe_client_secret.get_secret_value(),
            "grant_type": "client_credentials",
        }
        response = self._send("POST", self.settings.phonepe_oauth_url + "/v1/oauth/token", data=form)
        if response.status_code in (400, 401, 403):
            raise ConfigurationError(
                f"PhonePe refused the OAuth credentials ({response.status_code}); check PHONEPE_CLIENT_ID/SECRET."
            )
        body = self._json(response, "OAuth token")
        header = f"{body['token_type']} {body['access_token']}"
        expires_at = int(body.get("expires_at") or time.time() + 600)
        if self.cache:
            ttl = max(1, expires_at - int(time.time()) - TOKEN_REFRESH_MARGIN_SECONDS)
            self.cache.set_json(key, {"header": header, "expires_at": expires_at}, ttl_seconds=ttl)
        return header

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, url, timeout=15.0, **kwargs)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"PhonePe is unreachable at {url!r}: {exc}") from exc

    @staticmethod
    def _json(response: httpx.Response, what: str) -> dict[str, Any]:
        if response.status_code >= 500:
            raise UpstreamUnavailable(f"PhonePe {what} failed with {response.status_code}: {response.text[:200]}")
        try:
            return response.json()
        except ValueError as exc:
            raise UpstreamUnavailable(f"PhonePe {what} returned non-JSON: {response.text[:200]!r}") from exc

    def create_order(self, *, merchant_order_id: str, amount_paise: int, redirect_url: str,
                     meta: dict[str, str]) -> CheckoutOrder:
        """`POST /checkout/v2/pay` for a Standard Checkout order."""
        body = {
            "merchantOrderId": merchant_order_id,
            "amount": amount_paise,
            "expireAfter": 1200,
            "metaInfo": meta,
            "paymentFlow": {"type": "PG_CHECKOUT", "merchantUrls": {"redirectUrl": redirect_url}},
        }
        response = self._send("POST", self.settings.phonepe_base_url + "/checkout/v2/pay", json=body,
                              headers={"Authorization": self._token()})
        data = self._json(response, "create order")
        if response.status_code >= 400:
            if data.get("code") == "ORDER_ALREADY_EXISTS":
                raise OrderAlreadyExists(f"PhonePe already has order {merchant_order_id!r}.")
            raise UpstreamUnavailable(f"PhonePe refused order {merchant_order_id!r}: {data}")
        return CheckoutOrder(order_id=data["orderId"], state=data["state"], redirect_url=data["redirectUrl"],
                             expire_at_ms=int(data.get("expireAt") or 0))

    def order_status(self, merchant_order_id: str) -> OrderStatus | None:
        """`GET /checkout/v2/order/{id}/status`; None if PhonePe does not know the order."""
        url = f"{self.settings.phonepe_base_url}/checkout/v2/order/{merchant_order_id}/status"
        response = self._send("GET", url, params={"details": "false"}, headers={"Authorization": self._token()})
        data = self._json(response, "order status")
        if response.status_code >= 400:
            if data.get("code") == "INVALID_MERCHANT_ORDER_ID":
                return None
            raise UpstreamUnavailable(f"PhonePe order status for {merchant_order_id!r} failed: {data}")
        return OrderStatus(state=str(data.get("state")), amount_paise=int(data.get("amount") or 0),
                           order_id=str(data.get("orderId")), raw=data)


def phonepe_client(settings: Settings, cache: UpstashCache | None) -> PhonePeClient:
    """The PhonePe client of this deployment (sandbox, production or the local emulator)."""
    return PhonePeClient(http=httpx.Client(), settings=settings, cache=cache)
