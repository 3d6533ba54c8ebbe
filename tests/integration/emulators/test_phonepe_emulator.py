"""The PhonePe v2 emulator, driven over HTTP exactly as the product's thin httpx client talks to PhonePe."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import flask
import httpx
import pytest
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.phonepe import create_app
from infra.local.serve import RunningServer, serve_in_thread

EXPECTED_AUTHORIZATION = hashlib.sha256(b"muse_webhook:localpass123").hexdigest()


@dataclass
class Merchant:
    """A stand-in merchant backend: records webhooks and re-checks the order status while handling one."""

    url: str = ""
    phonepe_url: str = ""
    webhook_status: int = 200
    webhooks: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> flask.Flask:
        app = flask.Flask("merchant")

        @app.post("/webhooks/phonepe")
        def webhook() -> Any:
            body = flask.request.get_json()
            status = _order_status(self.phonepe_url, body["payload"]["merchantOrderId"])
            self.webhooks.append(
                {
                    "authorization": flask.request.headers.get("Authorization"),
                    "content_type": flask.request.headers.get("Content-Type"),
                    "body": body,
                    "status_seen_during_webhook": status,
                }
            )
            return {"ok": True}, self.webhook_status

        @app.get("/return")
        def payer_returns() -> Any:
            return "welcome back"

        return app


def _token(base_url: str, secret: str = "local-phonepe-secret") -> httpx.Response:
    return httpx.post(
        f"{base_url}/v1/oauth/token",
        data={
            "client_id": "MUSE_LOCAL_CLIENT",
            "client_version": "1",
            "client_secret": secret,
            "grant_type": "client_credentials",
        },
        headers={"Accept": "application/json"},
    )


def _auth(base_url: str) -> str:
    body = _token(base_url).json()
    return f"{body['token_type']} {body['access_token']}"


def _order_status(base_url: str, merchant_order_id: str, **params: str) -> dict[str, Any]:
    response = httpx.get(
        f"{base_url}/checkout/v2/order/{merchant_order_id}/status",
        params=params,
        headers={"Authorization": _auth(base_url)},
    )
    return {"http_status": response.status_code, **response.json()}


def _pay_body(merchant_order_id: str, amount: int = 49900, redirect_url: str = "") -> dict[str, Any]:
    return {
        "merchantOrderId": merchant_order_id,
        "amount": amount,
        "expireAfter": 1200,
        "metaInfo": {"udf1": "campaign-42", "udf2": "tenant-7"},
        "paymentFlow": {"type": "PG_CHECKOUT", "merchantUrls": {"redirectUrl": redirect_url}},
    }


@pytest.fixture(scope="module")
def _merchant_server() -> Iterator[Merchant]:
    merchant = Merchant()
    server = serve_in_thread(merchant.app())
    merchant.url = server.url
    try:
        yield merchant
    finally:
        server.stop()


@pytest.fixture
def merchant(_merchant_server: Merchant) -> Merchant:
    """The module's merchant with a clean webhook log; tests use distinct merchant order ids."""
    _merchant_server.webhooks.clear()
    _merchant_server.webhook_status = 200
    return _merchant_server


@pytest.fixture(scope="module")
def phonepe(_merchant_server: Merchant, fresh_database_dsn: str) -> Iterator[str]:
    """The emulator mounted under `/phonepe`, as the local stack does; yields its base URL."""
    config = EmulatorConfig(database_url=fresh_database_dsn,
                            phonepe_webhook_url=f"{_merchant_server.url}/webhooks/phonepe")
    root = flask.Flask("root")
    server: RunningServer = serve_in_thread(DispatcherMiddleware(root, {"/phonepe": create_app(config)}))
    _merchant_server.phonepe_url = f"{server.url}/phonepe"
    try:
        yield _merchant_server.phonepe_url
    finally:
        server.stop()


def _create(phonepe: str, merchant: Merchant, merchant_order_id: str, **kwargs: Any) -> httpx.Response:
    redirect_url = kwargs.pop("redirect_url", f"{merchant.url}/return?order={merchant_order_id}")
    return httpx.post(
        f"{phonepe}/checkout/v2/pay",
        json=_pay_body(merchant_order_id, redirect_url=redirect_url, **kwargs),
        headers={"Authorization": _auth(phonepe)},
    )


class TestOAuth:
    def test_token_has_documented_shape(self, phonepe: str) -> None:
        """The token response carries every documented field with epoch seconds and a one-hour lifetime."""
        response = _token(phonepe)
        assert response.status_code == 200
        body = response.json()
        assert body["token_type"] == "O-Bearer"
        assert body["expires_in"] is None
        assert body["expires_at"] - body["issued_at"] == 3600
        assert body["session_expires_at"] == body["expires_at"]
        assert body["access_token"] and body["encrypted_access_token"]

    def test_wrong_secret_is_401(self, phonepe: str) -> None:
        """Credentials that do not match the config are refused with a JSON 401."""
        response = _token(phonepe, secret="nope")
        assert response.status_code == 401
        assert response.json()["code"] == "UNAUTHORIZED"

    def test_pay_without_token_is_401(self, phonepe: str, merchant: Merchant) -> None:
        """PG APIs need `Authorization: O-Bearer <token>`."""
        response = httpx.post(f"{phonepe}/checkout/v2/pay", json=_pay_body("NOAUTH-1", redirect_url="x"))
        assert response.status_code == 401
        bad = httpx.post(
            f"{phonepe}/checkout/v2/pay",
            json=_pay_body("NOAUTH-1", redirect_url="x"),
            headers={"Authorization": "O-Bearer forged"},
        )
        assert bad.status_code == 401


class TestPay:
    def test_pay_returns_pending_order_and_pay_page_under_mount_prefix(
        self, phonepe: str, merchant: Merchant
    ) -> None:
        """A valid request yields an OMO order id, PENDING, ms expiry and a pay page on the emulator."""
        response = _create(phonepe, merchant, "CAMP-1")
        assert response.status_code == 200
        body = response.json()
        assert body["orderId"].startswith("OMO")
        assert body["state"] == "PENDING"
        assert body["expireAt"] > 10**12
        assert body["redirectUrl"].startswith(f"{phonepe}/pay/")

    @pytest.mark.parametrize(
        ("mutate", "fragment"),
        [
            (lambda b: b.update(merchantOrderId="bad id!"), "merchantOrderId"),
            (lambda b: b.update(merchantOrderId="x" * 64), "merchantOrderId"),
            (lambda b: b.update(amount=99), "amount"),
            (lambda b: b.update(amount="49900"), "amount"),
            (lambda b: b["paymentFlow"].update(type="PAY_PAGE"), "PG_CHECKOUT"),
            (lambda b: b["paymentFlow"].update(merchantUrls={}), "redirectUrl"),
            (lambda b: b.update(expireAfter=60), "expireAfter"),
        ],
    )
    def test_invalid_requests_are_bad_request(self, phonepe: str, mutate: Any, fragment: str) -> None:
        """Each documented field rule is enforced with `{"code": "BAD_REQUEST"}`."""
        body = _pay_body("CAMP-BAD", redirect_url="http://127.0.0.1:1/return")
        mutate(body)
        response = httpx.post(
            f"{phonepe}/checkout/v2/pay", json=body, headers={"Authorization": _auth(phonepe)}
        )
        assert response.status_code == 400
        assert response.json()["code"] == "BAD_REQUEST"
        assert fragment in response.json()["message"]

    def test_repeated_merchant_order_id_is_rejected(self, phonepe: str, merchant: Merchant) -> None:
        """`merchantOrderId` is unique per attempt."""
        assert _create(phonepe, merchant, "CAMP-DUP").status_code == 200
        again = _create(phonepe, merchant, "CAMP-DUP")
        assert again.status_code == 400
        assert again.json()["code"] == "ORDER_ALREADY_EXISTS"


class TestPayPageAndWebhook:
    def test_success_sends_webhook_before_redirecting(self, phonepe: str, merchant: Merchant) -> None:
        """Paying on the HTML page completes the order, delivers the webhook, then 302s to the merchant."""
        pay_url = _create(phonepe, merchant, "CAMP-OK", amount=123456).json()["redirectUrl"]
        page = httpx.get(pay_url)
        assert page.status_code == 200
        assert "₹1,234.56" in page.text
        assert 'value="success"' in page.text and 'value="failure"' in page.text

        submitted = httpx.post(pay_url, data={"outcome": "success"})

        assert submitted.status_code == 302
        assert submitted.headers["Location"] == f"{merchant.url}/return?order=CAMP-OK"
        assert len(merchant.webhooks) == 1
        webhook = merchant.webhooks[0]
        assert webhook["authorization"] == EXPECTED_AUTHORIZATION
        assert webhook["content_type"] == "application/json"
        assert webhook["body"]["event"] == "checkout.order.completed"
        payload = webhook["body"]["payload"]
        assert payload["merchantOrderId"] == "CAMP-OK"
        assert payload["merchantId"] == "MUSELOCALMERCHANT"
        assert payload["state"] == "COMPLETED"
        assert payload["amount"] == 123456
        assert payload["metaInfo"] == {"udf1": "campaign-42", "udf2": "tenant-7"}
        assert payload["paymentDetails"][0]["paymentMode"] == "UPI_INTENT"
        assert webhook["status_seen_during_webhook"]["state"] == "COMPLETED"

    def test_order_status_after_success(self, phonepe: str, merchant: Merchant) -> None:
        """The status API reports the completed attempt with amounts and echoed metaInfo."""
        pay_url = _create(phonepe, merchant, "CAMP-ST").json()["redirectUrl"]
        httpx.post(pay_url, json={"outcome": "success"})
        status = _order_status(phonepe, "CAMP-ST", details="true")
        assert status["http_status"] == 200
        assert status["state"] == "COMPLETED"
        assert status["orderId"].startswith("OMO")
        assert (status["amount"], status["payableAmount"], status["feeAmount"]) == (49900, 49900, 0)
        assert status["metaInfo"]["udf1"] == "campaign-42"
        [attempt] = status["paymentDetails"]
        assert attempt["state"] == "COMPLETED"
        assert attempt["paymentMode"] == "UPI_INTENT"
        assert attempt["transactionId"].startswith("OM")
        assert attempt["rail"]["type"] == "UPI"

    def test_failure_driven_by_json_reports_failed(self, phonepe: str, merchant: Merchant) -> None:
        """Scripts can fail a payment with a JSON `outcome`; the webhook and status API agree."""
        pay_url = _create(phonepe, merchant, "CAMP-FAIL").json()["redirectUrl"]
        result = httpx.post(pay_url, json={"outcome": "failure"})
        assert result.status_code == 200
        assert result.json()["state"] == "FAILED"
        assert result.json()["webhook"]["status"] == 200
        assert merchant.webhooks[0]["body"]["event"] == "checkout.order.failed"
        assert merchant.webhooks[0]["body"]["payload"]["paymentDetails"][0]["errorCode"] == "PAYMENT_DECLINED"
        status = _order_status(phonepe, "CAMP-FAIL", errorContext="true")
        assert status["state"] == "FAILED"
        assert status["errorCode"] == "PAYMENT_DECLINED"
        assert status["errorContext"]["errorCode"] == "PAYMENT_DECLINED"

    def test_settled_order_cannot_be_paid_again(self, phonepe: str, merchant: Merchant) -> None:
        """A second submission does not resend the webhook."""
        pay_url = _create(phonepe, merchant, "CAMP-TWICE").json()["redirectUrl"]
        httpx.post(pay_url, params={"outcome": "success"})
        again = httpx.post(pay_url, params={"outcome": "failure"})
        assert again.status_code == 409
        assert len(merchant.webhooks) == 1

    def test_unreachable_redirect_renders_result_page(self, phonepe: str, merchant: Merchant) -> None:
        """When nothing listens at the merchant redirect, the payer gets a page with a link instead."""
        pay_url = _create(phonepe, merchant, "CAMP-NOFE", redirect_url="http://127.0.0.1:9/return").json()[
            "redirectUrl"
        ]
        result = httpx.post(pay_url, data={"outcome": "success"})
        assert result.status_code == 200
        assert 'href="http://127.0.0.1:9/return"' in result.text
        assert len(merchant.webhooks) == 1


class TestStatus:
    def test_unknown_order(self, phonepe: str) -> None:
        """Unknown ids answer with PhonePe's INVALID_MERCHANT_ORDER_ID code."""
        status = _order_status(phonepe, "NOPE-1")
        assert status["http_status"] == 404
        assert status["code"] == "INVALID_MERCHANT_ORDER_ID"

    def test_pending_order_has_no_attempts(self, phonepe: str, merchant: Merchant) -> None:
        """Before the pay page is submitted the order is PENDING with no payment attempts."""
        _create(phonepe, merchant, "CAMP-PEND")
        status = _order_status(phonepe, "CAMP-PEND")
        assert status["state"] == "PENDING"
        assert status["paymentDetails"] == []


class TestKnobs:
    def test_override_changes_only_what_status_reports(self, phonepe: str, merchant: Merchant) -> None:
        """An override makes the status API disagree with the webhook; `/_emulator/orders` keeps the truth."""
        pay_url = _create(phonepe, merchant, "CAMP-LIE").json()["redirectUrl"]
        httpx.post(pay_url, json={"outcome": "success"})
        response = httpx.post(
            f"{phonepe}/_emulator/orders/CAMP-LIE/override", json={"state": "PENDING", "amount": 1}
        )
        assert response.status_code == 200

        status = _order_status(phonepe, "CAMP-LIE")
        assert (status["state"], status["amount"]) == ("PENDING", 1)
        order = httpx.get(f"{phonepe}/_emulator/orders/CAMP-LIE").json()
        assert order in httpx.get(f"{phonepe}/_emulator/orders").json()["orders"]
        assert order["state"] == "COMPLETED"
        assert order["amount"] == 49900
        assert order["webhooks"][0]["status"] == 200
        assert order["webhooks"][0]["event"] == "checkout.order.completed"

        httpx.post(f"{phonepe}/_emulator/orders/CAMP-LIE/override", json={"state": None, "amount": None})
        assert _order_status(phonepe, "CAMP-LIE")["state"] == "COMPLETED"

    def test_manual_webhook_with_forged_authorization(self, phonepe: str, merchant: Merchant) -> None:
        """A webhook can be resent with a wrong header and a claimed state; the merchant answer is kept."""
        _create(phonepe, merchant, "CAMP-FORGE")
        merchant.webhook_status = 401
        response = httpx.post(
            f"{phonepe}/_emulator/orders/CAMP-FORGE/webhook",
            json={"authorization": "forged", "event": "checkout.order.completed"},
        )
        assert response.status_code == 200
        assert response.json()["status"] == 401
        [webhook] = merchant.webhooks
        assert webhook["authorization"] == "forged"
        assert webhook["body"]["payload"]["state"] == "COMPLETED"
        assert webhook["status_seen_during_webhook"]["state"] == "PENDING"

    def test_resend_defaults_to_true_state_and_real_authorization(
        self, phonepe: str, merchant: Merchant
    ) -> None:
        """Without options the webhook repeats the order's real event with the configured credentials."""
        pay_url = _create(phonepe, merchant, "CAMP-DUPHOOK").json()["redirectUrl"]
        httpx.post(pay_url, json={"outcome": "failure"})
        httpx.post(f"{phonepe}/_emulator/orders/CAMP-DUPHOOK/webhook")
        assert [w["body"]["event"] for w in merchant.webhooks] == ["checkout.order.failed"] * 2
        assert {w["authorization"] for w in merchant.webhooks} == {EXPECTED_AUTHORIZATION}
