"""The PhonePe emulator's UPI Autopay routes over HTTP: the documented request rules, the 24 h notice before
a redemption, the outcome knob, the OAuth token on every PG call, and webhooks signed like payments."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import flask
import httpx
import pytest

from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.phonepe import create_app
from infra.local.serve import RunningServer, serve_in_thread

AUTHORIZATION = hashlib.sha256(b"muse_webhook:localpass123").hexdigest()


@pytest.fixture(scope="module")
def webhooks() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    app = flask.Flask("merchant")

    @app.post("/hook")
    def hook() -> Any:
        received.append({"authorization": flask.request.headers.get("Authorization"), **flask.request.get_json()})
        return {"ok": True}

    server = serve_in_thread(app)
    try:
        yield f"{server.url}/hook", received
    finally:
        server.stop()


@pytest.fixture(scope="module")
def phonepe(fresh_database_dsn: str, webhooks: tuple[str, list[dict[str, Any]]]) -> Iterator[RunningServer]:
    server = serve_in_thread(create_app(EmulatorConfig(database_url=fresh_database_dsn,
                                                       phonepe_webhook_url=webhooks[0])))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def auth(phonepe: RunningServer) -> dict[str, str]:
    token = httpx.post(f"{phonepe.url}/v1/oauth/token", data={
        "client_id": "MUSE_LOCAL_CLIENT", "client_version": "1", "client_secret": "local-phonepe-secret",
        "grant_type": "client_credentials"}).json()
    return {"Authorization": f"O-Bearer {token['access_token']}"}


def _setup(phonepe: RunningServer, auth: dict[str, str], reference: str, **changes: Any) -> httpx.Response:
    flow = {"type": "SUBSCRIPTION_SETUP", "merchantSubscriptionId": reference, "authWorkflowType": "PENNY_DROP",
            "amountType": "FIXED", "maxAmount": 294_882, "frequency": "MONTHLY",
            "paymentMode": {"type": "UPI_INTENT", "targetApp": "com.phonepe.app"}, **changes.pop("flow", {})}
    body = {"merchantOrderId": f"{reference}-S", "amount": 200, "paymentFlow": flow, **changes}
    return httpx.post(f"{phonepe.url}/subscriptions/v2/setup", json=body, headers=auth)


def _notify(phonepe: RunningServer, auth: dict[str, str], reference: str, order: str) -> httpx.Response:
    return httpx.post(f"{phonepe.url}/subscriptions/v2/notify", headers=auth, json={
        "merchantOrderId": order, "amount": 294_882,
        "paymentFlow": {"type": "SUBSCRIPTION_REDEMPTION", "merchantSubscriptionId": reference,
                        "redemptionRetryStrategy": "STANDARD", "autoDebit": False}})


def _knobs(phonepe: RunningServer, **values: Any) -> None:
    httpx.post(f"{phonepe.url}/_emulator/subscriptions/knobs", json=values).raise_for_status()


def test_setup_rules_and_the_token_are_checked(phonepe: RunningServer, auth: dict[str, str]) -> None:
    assert _setup(phonepe, {}, "MS-RULES").status_code == 401
    bad = _setup(phonepe, auth, "MS-RULES", amount=100)
    assert bad.status_code == 400 and "PENNY_DROP" in bad.json()["message"]
    assert _setup(phonepe, auth, "MS-RULES", flow={"frequency": "HOURLY"}).status_code == 400
    assert _setup(phonepe, auth, "MS-RULES").status_code == 200
    again = _setup(phonepe, auth, "MS-RULES")
    assert (again.status_code, again.json()["code"]) == (400, "ORDER_ALREADY_EXISTS")


def test_a_mandate_is_approved_notified_and_redeemed_after_the_notice(
        phonepe: RunningServer, auth: dict[str, str], webhooks: tuple[str, list[dict[str, Any]]]) -> None:
    _, received = webhooks
    created = _setup(phonepe, auth, "MS-FLOW").json()
    assert created["state"] == "PENDING" and "/subscriptions/approve/" in created["intentUrl"]
    assert _notify(phonepe, auth, "MS-FLOW", "MS-FLOW-C1A1").json()["code"] == "SUBSCRIPTION_NOT_ACTIVE"

    assert httpx.post(created["intentUrl"], data={"outcome": "success"}).json()["state"] == "COMPLETED"
    status = httpx.get(f"{phonepe.url}/subscriptions/v2/MS-FLOW/status", headers=auth).json()
    assert (status["state"], status["maxAmount"], status["frequency"]) == ("ACTIVE", 294_882, "MONTHLY")

    _knobs(phonepe, redeem_after_seconds=3600, redeem_outcome="success")
    assert _notify(phonepe, auth, "MS-FLOW", "MS-FLOW-C1A1").json()["state"] == "NOTIFICATION_IN_PROGRESS"
    early = httpx.post(f"{phonepe.url}/subscriptions/v2/redeem", headers=auth, json={"merchantOrderId": "MS-FLOW-C1A1"})
    assert (early.status_code, early.json()["code"]) == (400, "REDEMPTION_NOT_ALLOWED")
    order = httpx.get(f"{phonepe.url}/subscriptions/v2/order/MS-FLOW-C1A1/status", headers=auth).json()
    assert order["state"] == "NOTIFIED"
    assert order["paymentFlow"]["validAfter"] - order["paymentFlow"]["notifiedAt"] == 3_600_000

    _knobs(phonepe, redeem_after_seconds=0, redeem_outcome="failure")
    assert _notify(phonepe, auth, "MS-FLOW", "MS-FLOW-C1A2").status_code == 200
    redeemed = httpx.post(f"{phonepe.url}/subscriptions/v2/redeem", headers=auth,
                          json={"merchantOrderId": "MS-FLOW-C1A2"}).json()
    assert redeemed["state"] == "PENDING" and redeemed["transactionId"]
    failed = httpx.get(f"{phonepe.url}/subscriptions/v2/order/MS-FLOW-C1A2/status", headers=auth).json()
    assert (failed["state"], failed["errorCode"]) == ("FAILED", "INSUFFICIENT_FUNDS")

    cancelled = httpx.post(f"{phonepe.url}/subscriptions/v2/MS-FLOW/cancel", headers=auth)
    assert cancelled.status_code == 204
    events = [w["event"] for w in received if (w["payload"].get("merchantSubscriptionId") == "MS-FLOW")]
    assert events == ["subscription.setup.order.completed", "subscription.notification.completed",
                      "subscription.notification.completed", "subscription.redemption.order.failed",
                      "subscription.cancelled"]
    assert {w["authorization"] for w in received} == {AUTHORIZATION}
    _knobs(phonepe, redeem_outcome="success")


def test_a_setup_nobody_approves_in_time_fails(phonepe: RunningServer, auth: dict[str, str]) -> None:
    created = _setup(phonepe, auth, "MS-LATE", expireAt=int(time.time() * 1000) + 300).json()
    time.sleep(0.4)
    status = httpx.get(f"{phonepe.url}/subscriptions/v2/MS-LATE/status", headers=auth).json()
    assert status["state"] == "FAILED" and "_setupExpireAt" not in status
    assert httpx.post(created["intentUrl"], data={"outcome": "success"}).status_code == 409
