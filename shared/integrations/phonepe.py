"""PhonePe PG Standard Checkout v2: OAuth token, create order, order status, refund and refund status.

A small httpx client instead of the official `phonepe-pg-sdk-python`: that SDK pins
`requests<=2.31` and `urllib3<=1.26.12` (versions with known CVEs), installs a top-level `tests`
package, and fetches a token and starts daemon threads when constructed — wrong for a function
that must start fast and stay stateless. The token is cached in Upstash Redis instead, shared by
all instances until shortly before it expires. The cache only saves token calls: when Redis cannot be
reached the client asks PhonePe for a token itself, and a token PhonePe no longer accepts (401) is
dropped from the cache and replaced once per call.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
from upstash_redis.errors import UpstashError

from shared.errors import ConfigurationError, InvalidRequest, UpstreamUnavailable
from shared.integrations.cache import UpstashCache
from shared.settings import Settings

TOKEN_REFRESH_MARGIN_SECONDS = 300
CACHE_FAILURES: tuple[type[Exception], ...] = (httpx.HTTPError, UpstashError, ValueError)
"""What the Upstash SDK raises when Redis is unreachable or answers garbage: transport errors, REST errors, bad JSON."""

log = logging.getLogger("muse.phonepe")


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


@dataclass(frozen=True)
class RefundStatus:
    """A refund as PhonePe reports it (`/payments/v2/refund` and its status API); decide on `state` only.

    `state` is PENDING or CONFIRMED (both still in progress), COMPLETED or FAILED (final; a failed refund is
    re-initiated under a new merchantRefundId).
    """

    state: str
    amount_paise: int
    refund_id: str
    error_code: str | None
    raw: dict[str, Any]


REFUND_UNKNOWN_CODES = frozenset({"INVALID_MERCHANT_REFUND_ID", "REFUND_NOT_FOUND", "INVALID_REFUND_ID"})
"""What the status API answers for a merchantRefundId PhonePe never received (the docs name no code)."""


class OrderAlreadyExists(InvalidRequest):
    """PhonePe already has an order with this merchantOrderId."""

    code = "order_already_exists"


@dataclass
class PhonePeClient:
    """The v2 calls Muse needs: checkout orders, their status, refunds and their status."""

    http: httpx.Client
    settings: Settings
    cache: UpstashCache | None = None

    @property
    def _token_key(self) -> str:
        return f"phonepe:token:{self.settings.phonepe_client_id}"

    def _token(self, *, reuse_cached: bool = True) -> str:
        """The `Authorization` header value: the cached token while it has a margin left, else a new one."""
        cached = self._cached_token() if reuse_cached else None
        if cached is not None:
            return cached
        header, expires_at = self._fetch_token()
        self._cache_token(header, expires_at)
        return header

    def _fetch_token(self) -> tuple[str, int]:
        """A new token from `POST /v1/oauth/token`: the header value and its expiry (epoch seconds)."""
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
        return f"{body['token_type']} {body['access_token']}", int(body.get("expires_at") or time.time() + 600)

    def _cached_token(self) -> str | None:
        """The shared token if the cache has one that is not about to expire; a cache outage counts as a miss."""
        if self.cache is None:
            return None
        try:
            cached = self.cache.get_json(self._token_key)
        except CACHE_FAILURES as exc:
            log.warning("token cache unreadable, asking PhonePe for a token: %s", exc)
            return None
        if cached and cached["expires_at"] - TOKEN_REFRESH_MARGIN_SECONDS > time.time():
            return str(cached["header"])
        return None

    def _cache_token(self, header: str, expires_at: int) -> None:
        """Share the token until shortly before it expires; if the cache is down, the next call fetches again."""
        if self.cache is None:
            return
        ttl = max(1, expires_at - int(time.time()) - TOKEN_REFRESH_MARGIN_SECONDS)
        try:
            self.cache.set_json(self._token_key, {"header": header, "expires_at": expires_at}, ttl_seconds=ttl)
        except CACHE_FAILURES as exc:
            log.warning("token cache unwritable, the token is not shared: %s", exc)

    def _forget_token(self) -> None:
        """Drop the shared token PhonePe refused, so other instances stop sending it too."""
        if self.cache is None:
            return
        try:
            self.cache.delete(self._token_key)
        except CACHE_FAILURES as exc:
            log.warning("token cache unreachable, the refused token stays cached: %s", exc)

    def _authorized(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
        """A PG API call with the shared token; after a 401, forget that token and send once more with a new one.

        PhonePe checks the token before it acts on a request, so a 401 means nothing happened and repeating the
        request (even `create_order`) cannot do anything twice. A newly issued token refused as well is not
        retried again here: that is PhonePe's fault, reported as `UpstreamUnavailable` for the caller to retry later.
        """
        response = self._send(method, url, headers={"Authorization": self._token()}, **kwargs)
        if response.status_code != 401:
            return response
        self._forget_token()
        response = self._send(method, url, headers={"Authorization": self._token(reuse_cached=False)}, **kwargs)
        if response.status_code == 401:
            raise UpstreamUnavailable(f"PhonePe refused a newly issued OAuth token for {what} (401): "
                                      f"{response.text[:200]}")
        return response

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
        """`POST /checkout/v2/pay` for a Standard Checkout order.

        Sent a second time only after a 401, which PhonePe answers without creating the order, so one call never
        creates two orders.
        """
        body = {
            "merchantOrderId": merchant_order_id,
            "amount": amount_paise,
            "expireAfter": 1200,
            "metaInfo": meta,
            "paymentFlow": {"type": "PG_CHECKOUT", "merchantUrls": {"redirectUrl": redirect_url}},
        }
        response = self._authorized("POST", self.settings.phonepe_base_url + "/checkout/v2/pay", "create order",
                                    json=body)
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
        response = self._authorized("GET", url, "order status", params={"details": "false"})
        data = self._json(response, "order status")
        if response.status_code >= 400:
            if data.get("code") == "INVALID_MERCHANT_ORDER_ID":
                return None
            raise UpstreamUnavailable(f"PhonePe order status for {merchant_order_id!r} failed: {data}")
        return OrderStatus(state=str(data.get("state")), amount_paise=int(data.get("amount") or 0),
                           order_id=str(data.get("orderId")), raw=data)


    def refund(self, merchant_refund_id: str, original_merchant_order_id: str, amount_paise: int) -> RefundStatus:
        """`POST /payments/v2/refund` of `amount_paise` of a completed order.

        PhonePe keys a refund by `merchant_refund_id`, so sending the same one again (a retry after a timeout)
        cannot refund twice. A refusal (amount above what is refundable, unknown order) is `InvalidRequest`.
        """
        body = {"merchantRefundId": merchant_refund_id, "originalMerchantOrderId": original_merchant_order_id,
                "amount": amount_paise}
        response = self._authorized("POST", self.settings.phonepe_base_url + "/payments/v2/refund", "refund",
                                    json=body)
        data = self._json(response, "refund")
        if response.status_code >= 400:
            raise InvalidRequest(f"PhonePe refused refund {merchant_refund_id!r} of {amount_paise} paise of order "
                                 f"{original_merchant_order_id!r}: {data.get('code')}: {data.get('message')}")
        return _refund_status(data, amount_paise)

    def refund_status(self, merchant_refund_id: str) -> RefundStatus | None:
        """`GET /payments/v2/refund/{id}/status`; None if PhonePe never received this refund."""
        url = f"{self.settings.phonepe_base_url}/payments/v2/refund/{merchant_refund_id}/status"
        response = self._authorized("GET", url, "refund status")
        data = self._json(response, "refund status")
        if response.status_code >= 400:
            if response.status_code == 404 or data.get("code") in REFUND_UNKNOWN_CODES:
                return None
            raise UpstreamUnavailable(f"PhonePe refund status for {merchant_refund_id!r} failed: {data}")
        return _refund_status(data, 0)


def _refund_status(data: dict[str, Any], default_amount: int) -> RefundStatus:
    error = data.get("errorCode")
    return RefundStatus(state=str(data.get("state")), amount_paise=int(data.get("amount") or default_amount),
                        refund_id=str(data.get("refundId") or ""), error_code=str(error) if error else None, raw=data)


def phonepe_client(settings: Settings, cache: UpstashCache | None) -> PhonePeClient:
    """The PhonePe client of this deployment (sandbox, production or the local emulator)."""
    return PhonePeClient(http=httpx.Client(), settings=settings, cache=cache)
