"""Refunds in the PhonePe emulator, driven by the product's client: idempotency, limits, status, webhooks, restarts."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

import flask
import httpx
import pytest
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from infra.local.emulators import phonepe as phonepe_emulator
from infra.local.emulators.config import EmulatorConfig
from infra.local.serve import RunningServer, serve_in_thread
from shared.errors import InvalidRequest
from shared.integrations.phonepe import PhonePeClient
from tests.integration.harness import make_settings

EXPECTED_AUTHORIZATION = hashlib.sha256(b"muse_webhook:localpass123").hexdigest()


class Merchant:
    """Records the webhooks PhonePe sends."""

    def __init__(self) -> None:
        self.webhooks: list[dict[str, Any]] = []
        self.app = flask.Flask("merchant")
        self.app.add_url_rule("/webhooks/phonepe", "webhook", self._webhook, methods=["POST"])

    def _webhook(self) -> Any:
        self.webhooks.append({"authorization": flask.request.headers.get("Authorization"),
                              "body": flask.request.get_json()})
        return {"ok": True}


@pytest.fixture(scope="module")
def merchant() -> Iterator[tuple[Merchant, str]]:
    found = Merchant()
    server = serve_in_thread(found.app)
    try:
        yield found, server.url
    finally:
        server.stop()


def _serve(database_url: str, webhook_url: str) -> RunningServer:
    config = EmulatorConfig(database_url=database_url, phonepe_webhook_url=webhook_url)
    return serve_in_thread(DispatcherMiddleware(flask.Flask("root"), {"/phonepe": phonepe_emulator.create_app(config)}))


@pytest.fixture(scope="module")
def database(fresh_database_dsn: str) -> str:
    return fresh_database_dsn


@pytest.fixture
def phonepe(database: str, merchant: tuple[Merchant, str]) -> Iterator[str]:
    recorder, url = merchant
    recorder.webhooks.clear()
    server = _serve(database, f"{url}/webhooks/phonepe")
    try:
        yield f"{server.url}/phonepe"
    finally:
        server.stop()


def _client(base: str) -> PhonePeClient:
    settings = make_settings("postgresql://unused", PHONEPE_BASE_URL=base, PHONEPE_OAUTH_URL=base,
                             PHONEPE_CLIENT_ID="MUSE_LOCAL_CLIENT", PHONEPE_CLIENT_SECRET="local-phonepe-secret")
    return PhonePeClient(http=httpx.Client(), settings=settings)


def _paid_order(base: str, amount: int = 50_000) -> str:
    """A COMPLETED order of `amount` paise (paid on the emulator's pay page)."""
    client = _client(base)
    merchant_order_id = f"ORD-{uuid.uuid4().hex[:12]}"
    order = client.create_order(merchant_order_id=merchant_order_id, amount_paise=amount,
                                redirect_url="http://127.0.0.1:9/return", meta={})
    httpx.post(order.redirect_url, json={"outcome": "success"}).raise_for_status()
    return merchant_order_id


def test_refund_is_idempotent_by_merchant_refund_id(phonepe: str) -> None:
    """The same merchantRefundId sent again is the same refund (same refundId), never a second one."""
    client = _client(phonepe)
    order = _paid_order(phonepe)
    first = client.refund("RF-IDEM-1", order, 20_000)
    again = client.refund("RF-IDEM-1", order, 20_000)
    assert first.state == again.state == "PENDING"
    assert first.refund_id.startswith("OMR") and again.refund_id == first.refund_id
    listed = [r for r in httpx.get(f"{phonepe}/_emulator/refunds").json()["refunds"]
              if r["original_merchant_order_id"] == order]
    assert [r["merchant_refund_id"] for r in listed] == ["RF-IDEM-1"]
    with pytest.raises(InvalidRequest, match="DUPLICATE_MERCHANT_REFUND_ID"):
        client.refund("RF-IDEM-1", order, 10_000)


def test_refunds_never_exceed_what_was_paid(phonepe: str) -> None:
    """Refunds of one order add up to at most its amount; a failed one gives its share back."""
    client = _client(phonepe)
    order = _paid_order(phonepe, amount=30_000)
    client.refund("RF-CAP-1", order, 20_000)
    with pytest.raises(InvalidRequest, match="INVALID_REFUND_AMOUNT"):
        client.refund("RF-CAP-2", order, 10_001)
    httpx.post(f"{phonepe}/_emulator/refunds/RF-CAP-1/settle", json={"outcome": "failed"}).raise_for_status()
    assert client.refund("RF-CAP-3", order, 30_000).state == "PENDING"


def test_refund_rules(phonepe: str) -> None:
    """Refunds of unpaid or unknown orders and of less than 100 paise are refused with PhonePe's codes."""
    client = _client(phonepe)
    unpaid = f"ORD-{uuid.uuid4().hex[:12]}"
    client.create_order(merchant_order_id=unpaid, amount_paise=10_000, redirect_url="http://x/r", meta={})
    with pytest.raises(InvalidRequest, match="ORDER_NOT_COMPLETED"):
        client.refund("RF-UNPAID", unpaid, 10_000)
    with pytest.raises(InvalidRequest, match="INVALID_MERCHANT_ORDER_ID"):
        client.refund("RF-NOORDER", "ORD-never-created", 10_000)
    with pytest.raises(InvalidRequest, match="BAD_REQUEST"):
        client.refund("RF-SMALL", _paid_order(phonepe), 99)
    assert client.refund_status("RF-NEVER-SENT") is None


def test_status_and_webhooks_follow_the_refund(phonepe: str, merchant: tuple[Merchant, str]) -> None:
    """PENDING → CONFIRMED (pg.refund.accepted) → COMPLETED (pg.refund.completed), each webhook signed like
    the payment webhooks; the status API reports each state with the refund's amount."""
    recorder, _ = merchant
    client = _client(phonepe)
    order = _paid_order(phonepe)
    recorder.webhooks.clear()
    client.refund("RF-FLOW-1", order, 12_345)
    assert client.refund_status("RF-FLOW-1").state == "PENDING"  # type: ignore[union-attr]
    httpx.post(f"{phonepe}/_emulator/refunds/RF-FLOW-1/settle", json={"outcome": "confirmed"}).raise_for_status()
    assert client.refund_status("RF-FLOW-1").state == "CONFIRMED"  # type: ignore[union-attr]
    httpx.post(f"{phonepe}/_emulator/refunds/RF-FLOW-1/settle", json={"outcome": "completed"}).raise_for_status()
    status = client.refund_status("RF-FLOW-1")
    assert status is not None and (status.state, status.amount_paise) == ("COMPLETED", 12_345)
    assert [(w["body"]["event"], w["body"]["payload"]["state"]) for w in recorder.webhooks] == [
        ("pg.refund.accepted", "CONFIRMED"), ("pg.refund.completed", "COMPLETED")]
    assert {w["authorization"] for w in recorder.webhooks} == {EXPECTED_AUTHORIZATION}
    payload = recorder.webhooks[-1]["body"]["payload"]
    assert (payload["merchantRefundId"], payload["originalMerchantOrderId"], payload["amount"]) == (
        "RF-FLOW-1", order, 12_345)
    again = httpx.post(f"{phonepe}/_emulator/refunds/RF-FLOW-1/settle", json={"outcome": "failed"})
    assert again.status_code == 409


def test_failed_refund_reports_its_error(phonepe: str, merchant: tuple[Merchant, str]) -> None:
    """A failed refund carries errorCode in its status and in `pg.refund.failed`."""
    recorder, _ = merchant
    client = _client(phonepe)
    order = _paid_order(phonepe)
    recorder.webhooks.clear()
    client.refund("RF-FAIL-1", order, 10_000)
    httpx.post(f"{phonepe}/_emulator/refunds/RF-FAIL-1/settle",
               json={"outcome": "failed", "errorCode": "ACCOUNT_CLOSED"}).raise_for_status()
    status = client.refund_status("RF-FAIL-1")
    assert status is not None and (status.state, status.error_code) == ("FAILED", "ACCOUNT_CLOSED")
    assert recorder.webhooks[-1]["body"]["event"] == "pg.refund.failed"
    assert recorder.webhooks[-1]["body"]["payload"]["errorCode"] == "ACCOUNT_CLOSED"


def test_refunds_survive_a_restart(database: str, merchant: tuple[Merchant, str]) -> None:
    """A restarted emulator still knows the refund, its state and its limit, and settles it."""
    _, url = merchant
    server = _serve(database, f"{url}/webhooks/phonepe")
    base = f"{server.url}/phonepe"
    order = _paid_order(base, amount=10_000)
    first = _client(base).refund("RF-RESTART-1", order, 10_000)
    server.stop()
    server = _serve(database, f"{url}/webhooks/phonepe")
    base = f"{server.url}/phonepe"
    try:
        client = _client(base)
        status = client.refund_status("RF-RESTART-1")
        assert status is not None and (status.state, status.refund_id) == ("PENDING", first.refund_id)
        assert client.refund("RF-RESTART-1", order, 10_000).refund_id == first.refund_id
        with pytest.raises(InvalidRequest, match="INVALID_REFUND_AMOUNT"):
            client.refund("RF-RESTART-2", order, 100)
        httpx.post(f"{base}/_emulator/refunds/RF-RESTART-1/settle", json={"outcome": "completed"}).raise_for_status()
        assert client.refund_status("RF-RESTART-1").state == "COMPLETED"  # type: ignore[union-attr]
    finally:
        server.stop()


def test_a_refund_completes_by_itself_when_configured(database: str, merchant: tuple[Merchant, str]) -> None:
    """With `phonepe_refund_settle_seconds` (the local stack's setting), a refund that old completes when its
    status is asked for, and its webhook is sent once."""
    recorder, url = merchant
    config = EmulatorConfig(database_url=database, phonepe_webhook_url=f"{url}/webhooks/phonepe",
                            phonepe_refund_settle_seconds=0.0)
    server = serve_in_thread(DispatcherMiddleware(flask.Flask("root"),
                                                  {"/phonepe": phonepe_emulator.create_app(config)}))
    base = f"{server.url}/phonepe"
    try:
        client = _client(base)
        order = _paid_order(base)
        recorder.webhooks.clear()
        assert client.refund("RF-AUTO-1", order, 10_000).state == "PENDING"
        assert client.refund_status("RF-AUTO-1").state == "COMPLETED"  # type: ignore[union-attr]
        assert client.refund_status("RF-AUTO-1").state == "COMPLETED"  # type: ignore[union-attr]
        assert [w["body"]["event"] for w in recorder.webhooks] == ["pg.refund.completed"]
    finally:
        server.stop()
