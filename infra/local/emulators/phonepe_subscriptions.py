"""The PhonePe emulator's UPI Autopay (PG v2 subscriptions) routes, registered on the PhonePe emulator app.

Follows the wire shapes of reference `phonepe-gst-india.md` §4 and the webhook events of §2.2:

1. `POST /subscriptions/v2/setup` creates a subscription (ACTIVATION_IN_PROGRESS) and its setup order
   (PENDING) and answers with `intentUrl`: the emulator's approval page (PhonePe answers a `upi://mandate`
   link; a page can be followed by a browser or a script). Following it with `outcome=success` (the
   default of the page's first button) makes the subscription ACTIVE and the order COMPLETED, `failure`
   FAILED; the `subscription.setup.order.*` webhook is sent before the page answers.
2. `POST /subscriptions/v2/notify` (ACTIVE subscriptions only) creates a redemption order and notifies the
   payer at once: state NOTIFIED, `validAfter` = now + the `redeem_after_seconds` knob (24 h by default,
   the RBI's pre-debit notice), `subscription.notification.completed` sent.
   A setup nobody approves before its `expireAt` fails: the order and the subscription read FAILED.
3. `POST /subscriptions/v2/redeem` executes a NOTIFIED order once `validAfter` has passed (before: 400
   `REDEMPTION_NOT_ALLOWED`): COMPLETED, or FAILED when the `redeem_outcome` knob says `failure`; answers
   PENDING with a transaction id as PhonePe does, after sending `subscription.redemption.order.*`.
4. `GET /subscriptions/v2/order/{merchantOrderId}/status`, `GET /subscriptions/v2/{merchantSubscriptionId}/status`.
5. `POST /subscriptions/v2/{merchantSubscriptionId}/cancel` answers 204 and sends `subscription.cancelled`.

Webhooks are signed like the payment webhook (`Authorization: SHA256(username:password)`) and delivered
synchronously, so when a call returns its webhook has reached the merchant. Subscriptions, orders, webhook
deliveries and knobs live in the stack's Postgres (schema `phonepe_emulator`, as the checkout orders), so a
restarted emulator still knows every mandate.

Test knobs under `/_emulator/subscriptions`: list and inspect subscriptions with their orders and webhooks,
set the knobs (`redeem_outcome`, `redeem_after_seconds`), revoke a mandate as the payer would from their
UPI app, and (re)send any webhook, possibly with a forged `Authorization`.
"""

from __future__ import annotations

import copy
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import flask
import httpx
from psycopg.types.json import Jsonb

from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.pgschema import SchemaDatabase
from infra.local.emulators.phonepe_wire import is_int as _is_int
from infra.local.emulators.phonepe_wire import new_id as _new_id
from infra.local.emulators.phonepe_wire import now_ms as _now_ms
from infra.local.emulators.phonepe_wire import param as _param
from infra.local.emulators.phonepe_wire import webhook_authorization

SCHEMA = "phonepe_emulator"
_SCHEMA_LOCK = 0x05_7A_50_02
DEFAULT_REDEEM_AFTER_SECONDS = 86_400
DEFAULT_SETUP_EXPIRY_MS = 10 * 60 * 1000
DEFAULT_NOTIFY_EXPIRY_MS = 48 * 3600 * 1000
WEBHOOK_TIMEOUT_SECONDS = 10.0
FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "FORTNIGHTLY", "BIMONTHLY", "QUARTERLY", "HALFYEARLY", "YEARLY",
               "ON_DEMAND")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,63}$")

_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.subscriptions (
    seq bigserial NOT NULL,
    merchant_subscription_id text PRIMARY KEY,
    document jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.subscription_orders (
    seq bigserial NOT NULL,
    merchant_order_id text PRIMARY KEY,
    order_id text NOT NULL UNIQUE,
    merchant_subscription_id text NOT NULL REFERENCES {SCHEMA}.subscriptions (merchant_subscription_id),
    document jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.subscription_webhooks (
    id bigserial PRIMARY KEY,
    merchant_subscription_id text NOT NULL,
    document jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.subscription_knobs (
    name text PRIMARY KEY,
    value jsonb NOT NULL
);
"""
KNOBS: dict[str, Any] = {"redeem_outcome": "success", "redeem_after_seconds": DEFAULT_REDEEM_AFTER_SECONDS}


class SubscriptionError(Exception):
    """An API error answered as PhonePe does: `{"code", "message"}` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _bad_request(message: str) -> SubscriptionError:
    return SubscriptionError(400, "BAD_REQUEST", message)








class SubscriptionStore:
    """Subscriptions, their orders, webhook deliveries and knobs in Postgres, one short transaction per call."""

    def __init__(self, database_url: str) -> None:
        self.db = SchemaDatabase(database_url, ddl=_DDL, lock=_SCHEMA_LOCK,
                                 missing=lambda: SubscriptionError(500, "INTERNAL_SERVER_ERROR",
                                                                   "The PhonePe emulator has no database_url"))

    def add(self, subscription: dict[str, Any], order: dict[str, Any]) -> bool:
        """Store a new subscription with its setup order; False if either merchant id is taken."""
        with self.db.transaction(wait_for_flush=False) as conn:
            taken = conn.execute(
                f"""SELECT 1 FROM {SCHEMA}.subscriptions WHERE merchant_subscription_id = %s
                    UNION ALL SELECT 1 FROM {SCHEMA}.subscription_orders WHERE merchant_order_id = %s""",
                (subscription["merchantSubscriptionId"], order["merchantOrderId"])).fetchone()
            if taken:
                return False
            conn.execute(f"INSERT INTO {SCHEMA}.subscriptions (merchant_subscription_id, document) VALUES (%s, %s)",
                         (subscription["merchantSubscriptionId"], Jsonb(subscription)))
            self._insert_order(conn, order)
        return True

    def add_order(self, order: dict[str, Any]) -> bool:
        """Store a new redemption order; False if its merchantOrderId is taken."""
        with self.db.transaction(wait_for_flush=False) as conn:
            if conn.execute(f"SELECT 1 FROM {SCHEMA}.subscription_orders WHERE merchant_order_id = %s",
                            (order["merchantOrderId"],)).fetchone():
                return False
            self._insert_order(conn, order)
        return True

    @staticmethod
    def _insert_order(conn: Any, order: dict[str, Any]) -> None:
        conn.execute(f"""INSERT INTO {SCHEMA}.subscription_orders
                         (merchant_order_id, order_id, merchant_subscription_id, document) VALUES (%s, %s, %s, %s)""",
                     (order["merchantOrderId"], order["orderId"], order["merchantSubscriptionId"], Jsonb(order)))

    @contextmanager
    def subscription(self, merchant_subscription_id: str) -> Iterator[dict[str, Any]]:
        """The subscription, locked until the block ends; changes are saved when the block ends cleanly."""
        with self.db.transaction(wait_for_flush=False) as conn:
            row = conn.execute(f"SELECT document FROM {SCHEMA}.subscriptions WHERE merchant_subscription_id = %s "
                               "FOR UPDATE", (merchant_subscription_id,)).fetchone()
            if row is None:
                raise SubscriptionError(404, "INVALID_SUBSCRIPTION_ID",
                                        f"No subscription with merchantSubscriptionId {merchant_subscription_id!r}")
            document = copy.deepcopy(row["document"])
            if document["state"] == "ACTIVATION_IN_PROGRESS" and _now_ms() > document.get("_setupExpireAt", 2**62):
                document["state"] = "FAILED"
            yield document
            if document != row["document"]:
                conn.execute(f"UPDATE {SCHEMA}.subscriptions SET document = %s WHERE merchant_subscription_id = %s",
                             (Jsonb(document), merchant_subscription_id))

    @contextmanager
    def order(self, merchant_order_id: str) -> Iterator[dict[str, Any]]:
        """The order, locked until the block ends (a PENDING order past `expireAt` is FAILED first)."""
        with self.db.transaction(wait_for_flush=False) as conn:
            row = conn.execute(f"SELECT document FROM {SCHEMA}.subscription_orders WHERE merchant_order_id = %s "
                               "FOR UPDATE", (merchant_order_id,)).fetchone()
            if row is None:
                raise SubscriptionError(404, "INVALID_MERCHANT_ORDER_ID", "No entry found for given merchant order id")
            document = copy.deepcopy(row["document"])
            if document["state"] in ("PENDING", "NOTIFICATION_IN_PROGRESS", "NOTIFIED") \
                    and _now_ms() > document["expireAt"]:
                document["state"] = "FAILED"
                document["errorCode"] = "TXN_AUTO_FAILED"
            yield document
            if document != row["document"]:
                conn.execute(f"UPDATE {SCHEMA}.subscription_orders SET document = %s WHERE merchant_order_id = %s",
                             (Jsonb(document), merchant_order_id))

    def merchant_order_id_for(self, order_id: str) -> str:
        with self.db.transaction(wait_for_flush=False) as conn:
            row = conn.execute(f"SELECT merchant_order_id FROM {SCHEMA}.subscription_orders WHERE order_id = %s",
                               (order_id,)).fetchone()
        if row is None:
            raise SubscriptionError(404, "INVALID_ORDER_ID", f"No subscription order with orderId {order_id!r}")
        return str(row["merchant_order_id"])

    def add_delivery(self, merchant_subscription_id: str, delivery: dict[str, Any]) -> None:
        with self.db.transaction(wait_for_flush=False) as conn:
            conn.execute(f"INSERT INTO {SCHEMA}.subscription_webhooks (merchant_subscription_id, document) "
                         "VALUES (%s, %s)", (merchant_subscription_id, Jsonb(delivery)))

    def knobs(self) -> dict[str, Any]:
        with self.db.transaction(wait_for_flush=False) as conn:
            rows = conn.execute(f"SELECT name, value FROM {SCHEMA}.subscription_knobs").fetchall()
        return {**KNOBS, **{row["name"]: row["value"] for row in rows}}

    def set_knobs(self, values: dict[str, Any]) -> dict[str, Any]:
        with self.db.transaction(wait_for_flush=False) as conn:
            for name, value in values.items():
                conn.execute(f"""INSERT INTO {SCHEMA}.subscription_knobs (name, value) VALUES (%s, %s)
                                 ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value""", (name, Jsonb(value)))
        return self.knobs()

    def view(self, merchant_subscription_id: str | None = None) -> list[dict[str, Any]]:
        """Subscriptions (one, or all oldest first) with their orders and webhook deliveries, for tests."""
        with self.db.transaction(wait_for_flush=False) as conn:
            subs = conn.execute(f"""SELECT document FROM {SCHEMA}.subscriptions
                                    WHERE %(id)s::text IS NULL OR merchant_subscription_id = %(id)s ORDER BY seq""",
                                {"id": merchant_subscription_id}).fetchall()
            orders = conn.execute(f"""SELECT merchant_subscription_id AS ref, document FROM {SCHEMA}.subscription_orders
                                      WHERE %(id)s::text IS NULL OR merchant_subscription_id = %(id)s ORDER BY seq""",
                                  {"id": merchant_subscription_id}).fetchall()
            hooks = conn.execute(f"""SELECT merchant_subscription_id AS ref, document
                                     FROM {SCHEMA}.subscription_webhooks
                                     WHERE %(id)s::text IS NULL OR merchant_subscription_id = %(id)s ORDER BY id""",
                                 {"id": merchant_subscription_id}).fetchall()
        found = []
        for sub in subs:
            ref = sub["document"]["merchantSubscriptionId"]
            found.append({**sub["document"], "orders": [o["document"] for o in orders if o["ref"] == ref],
                          "webhooks": [h["document"] for h in hooks if h["ref"] == ref]})
        return found




def _deliver(config: EmulatorConfig, store: SubscriptionStore, merchant_subscription_id: str, event: str,
             payload: dict[str, Any], authorization: str | None = None) -> dict[str, Any]:
    """POST one webhook to `config.phonepe_webhook_url`, record how the merchant answered and return the record."""
    header = authorization or webhook_authorization(config.phonepe_webhook_username, config.phonepe_webhook_password)
    delivery: dict[str, Any] = {"event": event, "url": config.phonepe_webhook_url, "authorization": header,
                                "payload": payload, "sent_at": _now_ms(), "status": None, "error": None}
    if not config.phonepe_webhook_url:
        delivery["error"] = "phonepe_webhook_url is not configured"
    else:
        try:
            response = httpx.post(config.phonepe_webhook_url, json={"event": event, "payload": payload},
                                  headers={"Authorization": header}, timeout=WEBHOOK_TIMEOUT_SECONDS)
            delivery["status"] = response.status_code
        except httpx.HTTPError as exc:
            delivery["error"] = f"{type(exc).__name__}: {exc}"
    store.add_delivery(merchant_subscription_id, delivery)
    return delivery


def _subscription_payload(config: EmulatorConfig, sub: dict[str, Any]) -> dict[str, Any]:
    """A subscription as its status API and its state-change webhooks report it."""
    return {"merchantId": config.phonepe_merchant_id, **{k: v for k, v in sub.items() if not k.startswith("_")}}


def _order_payload(config: EmulatorConfig, order: dict[str, Any]) -> dict[str, Any]:
    """An order as its status API and its webhooks report it."""
    return {"merchantId": config.phonepe_merchant_id, **{k: v for k, v in order.items() if not k.startswith("_")}}


def _attempt(order: dict[str, Any], state: str, error_code: str | None) -> dict[str, Any]:
    attempt = {"transactionId": _new_id("OM"), "paymentMode": "UPI_AUTO_PAY", "timestamp": _now_ms(),
               "amount": order["amount"], "state": state,
               "rail": {"type": "UPI", "utr": f"{secrets.randbelow(10**12):012d}", "vpa": "12****78@ybl"}}
    if error_code:
        attempt["errorCode"] = error_code
        attempt["detailedErrorCode"] = "U30"
    return attempt


def _validate_setup(body: Any) -> tuple[str, str, int, dict[str, Any]]:
    if not isinstance(body, dict):
        raise _bad_request("Request body must be a JSON object")
    merchant_order_id = body.get("merchantOrderId")
    if not isinstance(merchant_order_id, str) or not _ID.match(merchant_order_id):
        raise _bad_request("merchantOrderId must be 1-63 characters of [A-Za-z0-9_-]")
    flow = body.get("paymentFlow")
    if not isinstance(flow, dict) or flow.get("type") != "SUBSCRIPTION_SETUP":
        raise _bad_request('paymentFlow.type must be "SUBSCRIPTION_SETUP"')
    merchant_subscription_id = flow.get("merchantSubscriptionId")
    if not isinstance(merchant_subscription_id, str) or not _ID.match(merchant_subscription_id):
        raise _bad_request("paymentFlow.merchantSubscriptionId must be 1-63 characters of [A-Za-z0-9_-]")
    amount = body.get("amount")
    workflow = flow.get("authWorkflowType")
    if workflow not in ("TRANSACTION", "PENNY_DROP"):
        raise _bad_request("paymentFlow.authWorkflowType must be TRANSACTION or PENNY_DROP")
    if not _is_int(amount) or (workflow == "PENNY_DROP" and amount != 200) or amount < 100:
        raise _bad_request("amount must be paise >= 100 (exactly 200 for PENNY_DROP)")
    if flow.get("amountType") not in ("FIXED", "VARIABLE"):
        raise _bad_request("paymentFlow.amountType must be FIXED or VARIABLE")
    if not _is_int(flow.get("maxAmount")) or flow["maxAmount"] < 100:
        raise _bad_request("paymentFlow.maxAmount must be paise >= 100")
    if flow.get("frequency") not in FREQUENCIES:
        raise _bad_request(f"paymentFlow.frequency must be one of {', '.join(FREQUENCIES)}")
    mode = flow.get("paymentMode")
    if not isinstance(mode, dict) or mode.get("type") not in ("UPI_INTENT", "UPI_COLLECT"):
        raise _bad_request("paymentFlow.paymentMode.type must be UPI_INTENT or UPI_COLLECT")
    return merchant_order_id, merchant_subscription_id, amount, flow


def _setup(config: EmulatorConfig, store: SubscriptionStore, body: Any) -> Any:
    merchant_order_id, merchant_subscription_id, amount, flow = _validate_setup(body)
    expire_at = body.get("expireAt") if _is_int(body.get("expireAt")) else _now_ms() + DEFAULT_SETUP_EXPIRY_MS
    subscription = {
        "merchantSubscriptionId": merchant_subscription_id, "subscriptionId": _new_id("OMS"),
        "state": "ACTIVATION_IN_PROGRESS", "productType": "UPI_MANDATE", "authInstrumentType": "UPI",
        "authWorkflowType": flow["authWorkflowType"], "amountType": flow["amountType"], "currency": "INR",
        "maxAmount": flow["maxAmount"], "frequency": flow["frequency"],
        "expireAt": flow.get("expireAt") if _is_int(flow.get("expireAt")) else _now_ms() + 30 * 365 * 86_400_000,
        "pauseStartDate": None, "pauseEndDate": None, "_setupExpireAt": expire_at,
    }
    order = {"merchantOrderId": merchant_order_id, "orderId": _new_id("OMO"),
             "merchantSubscriptionId": merchant_subscription_id, "state": "PENDING", "amount": amount,
             "expireAt": expire_at, "metaInfo": body.get("metaInfo"), "paymentDetails": [],
             "paymentFlow": {"type": "SUBSCRIPTION_SETUP", "merchantSubscriptionId": merchant_subscription_id,
                             "subscriptionId": subscription["subscriptionId"]}}
    if not store.add(subscription, order):
        raise SubscriptionError(400, "ORDER_ALREADY_EXISTS",
                                f"Order {merchant_order_id!r} or subscription {merchant_subscription_id!r} exists")
    intent = flask.url_for("subscription_approval_page", order_id=order["orderId"], _external=True)
    return {"orderId": order["orderId"], "state": "PENDING", "intentUrl": intent, "nativeOtpEnabled": False}




def _approve(config: EmulatorConfig, store: SubscriptionStore, order_id: str) -> Any:
    """The payer approves (or declines) the mandate in their UPI app: settle, send the webhook, answer."""
    outcome = (_param("outcome") or "").lower()
    if outcome not in ("success", "failure"):
        raise _bad_request(f"outcome must be 'success' or 'failure', not {outcome!r}")
    merchant_order_id = store.merchant_order_id_for(order_id)
    with store.order(merchant_order_id) as order:
        if order["state"] != "PENDING":
            raise SubscriptionError(409, "ORDER_NOT_PENDING", f"Setup order {merchant_order_id!r} is {order['state']}")
        with store.subscription(order["merchantSubscriptionId"]) as sub:
            if sub["state"] != "ACTIVATION_IN_PROGRESS":
                raise SubscriptionError(409, "SUBSCRIPTION_NOT_PENDING",
                                        f"Subscription {sub['merchantSubscriptionId']!r} is {sub['state']}")
            completed = outcome == "success"
            order["state"] = "COMPLETED" if completed else "FAILED"
            order["paymentDetails"] = [_attempt(order, order["state"], None if completed else "AUTHORIZATION_ERROR")]
            if not completed:
                order["errorCode"] = "AUTHORIZATION_ERROR"
            sub["state"] = "ACTIVE" if completed else "FAILED"
            payload = _order_payload(config, order)
            ref = sub["merchantSubscriptionId"]
    event = "subscription.setup.order.completed" if completed else "subscription.setup.order.failed"
    delivery = _deliver(config, store, ref, event, payload)
    return {"merchantOrderId": merchant_order_id, "state": payload["state"], "webhook": delivery}


def _require_active(store: SubscriptionStore, merchant_subscription_id: str) -> None:
    with store.subscription(merchant_subscription_id) as sub:
        if sub["state"] != "ACTIVE":
            raise SubscriptionError(400, "SUBSCRIPTION_NOT_ACTIVE",
                                    f"Subscription {merchant_subscription_id!r} is {sub['state']}, not ACTIVE")


def _notify(config: EmulatorConfig, store: SubscriptionStore, body: Any) -> Any:
    if not isinstance(body, dict):
        raise _bad_request("Request body must be a JSON object")
    merchant_order_id = body.get("merchantOrderId")
    flow = body.get("paymentFlow")
    amount = body.get("amount")
    if not isinstance(merchant_order_id, str) or not _ID.match(merchant_order_id):
        raise _bad_request("merchantOrderId must be 1-63 characters of [A-Za-z0-9_-]")
    if not isinstance(flow, dict) or flow.get("type") != "SUBSCRIPTION_REDEMPTION":
        raise _bad_request('paymentFlow.type must be "SUBSCRIPTION_REDEMPTION"')
    ref = flow.get("merchantSubscriptionId")
    if not isinstance(ref, str):
        raise _bad_request("paymentFlow.merchantSubscriptionId is required")
    _require_active(store, ref)
    with store.subscription(ref) as sub:
        if not _is_int(amount) or not 100 <= amount <= sub["maxAmount"]:
            raise _bad_request(f"amount must be paise between 100 and the mandate's maxAmount {sub['maxAmount']}")
        subscription_id = sub["subscriptionId"]
    now = _now_ms()
    redeem_after = int(store.knobs()["redeem_after_seconds"])
    order: dict[str, Any] = {
             "merchantOrderId": merchant_order_id, "orderId": _new_id("OMO"), "merchantSubscriptionId": ref,
             "state": "NOTIFIED", "amount": amount,
             "expireAt": body["expireAt"] if _is_int(body.get("expireAt")) else now + DEFAULT_NOTIFY_EXPIRY_MS,
             "paymentDetails": [],
             "paymentFlow": {"type": "SUBSCRIPTION_REDEMPTION", "merchantSubscriptionId": ref,
                             "subscriptionId": subscription_id,
                             "redemptionRetryStrategy": flow.get("redemptionRetryStrategy", "STANDARD"),
                             "autoDebit": bool(flow.get("autoDebit")), "notifiedAt": now,
                             "validAfter": now + redeem_after * 1000,
                             "validUpto": now + redeem_after * 1000 + DEFAULT_NOTIFY_EXPIRY_MS}}
    if not store.add_order(order):
        raise SubscriptionError(400, "ORDER_ALREADY_EXISTS", f"Order {merchant_order_id!r} already exists")
    _deliver(config, store, ref, "subscription.notification.completed", _order_payload(config, order))
    return {"orderId": order["orderId"], "state": "NOTIFICATION_IN_PROGRESS", "expireAt": order["expireAt"]}


def _redeem(config: EmulatorConfig, store: SubscriptionStore, body: Any) -> Any:
    merchant_order_id = body.get("merchantOrderId") if isinstance(body, dict) else None
    if not isinstance(merchant_order_id, str):
        raise _bad_request("merchantOrderId is required")
    with store.order(merchant_order_id) as order:
        if order["paymentFlow"]["type"] != "SUBSCRIPTION_REDEMPTION":
            raise _bad_request(f"Order {merchant_order_id!r} is not a redemption order")
        ref = order["merchantSubscriptionId"]
        if order["state"] in ("COMPLETED", "FAILED", "PENDING"):
            return {"state": order["state"], "transactionId": (order["paymentDetails"] or [{}])[-1].get(
                "transactionId")}
        if _now_ms() < order["paymentFlow"]["validAfter"]:
            raise SubscriptionError(400, "REDEMPTION_NOT_ALLOWED",
                                    f"Order {merchant_order_id!r} may be redeemed from "
                                    f"{order['paymentFlow']['validAfter']} (epoch ms), 24 h after its notification")
        _require_active(store, ref)
        succeeded = store.knobs()["redeem_outcome"] != "failure"
        order["state"] = "COMPLETED" if succeeded else "FAILED"
        attempt = _attempt(order, order["state"], None if succeeded else "INSUFFICIENT_FUNDS")
        order["paymentDetails"].append(attempt)
        if not succeeded:
            order["errorCode"] = "INSUFFICIENT_FUNDS"
        payload = _order_payload(config, order)
    event = "subscription.redemption.order.completed" if succeeded else "subscription.redemption.order.failed"
    _deliver(config, store, ref, event, payload)
    return {"state": "PENDING", "transactionId": attempt["transactionId"]}


def _end(config: EmulatorConfig, store: SubscriptionStore, merchant_subscription_id: str, state: str) -> None:
    """Cancel (merchant) or revoke (payer) a mandate and send its webhook; an ended mandate stays as it is."""
    with store.subscription(merchant_subscription_id) as sub:
        if sub["state"] in ("CANCELLED", "REVOKED", "EXPIRED", "FAILED"):
            return
        sub["state"] = state
        payload = _subscription_payload(config, sub)
    _deliver(config, store, merchant_subscription_id, f"subscription.{state.lower()}", payload)


def _resend(config: EmulatorConfig, store: SubscriptionStore, body: dict[str, Any]) -> dict[str, Any]:
    """(Re)send a webhook about an order or a subscription; `event`, `state` and `authorization` may lie."""
    event = body.get("event")
    if not isinstance(event, str) or not event.startswith("subscription."):
        raise _bad_request("event must be a subscription.* event name")
    if isinstance(body.get("merchantOrderId"), str):
        with store.order(body["merchantOrderId"]) as order:
            payload = _order_payload(config, order)
            ref = order["merchantSubscriptionId"]
    elif isinstance(body.get("merchantSubscriptionId"), str):
        with store.subscription(body["merchantSubscriptionId"]) as sub:
            payload = _subscription_payload(config, sub)
            ref = sub["merchantSubscriptionId"]
    else:
        raise _bad_request("name merchantOrderId or merchantSubscriptionId")
    if body.get("state"):
        payload["state"] = body["state"]
    return _deliver(config, store, ref, event, payload, body.get("authorization"))


def _set_knobs(store: SubscriptionStore, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or set(body) - set(KNOBS):
        raise _bad_request(f"knobs are {sorted(KNOBS)}")
    if "redeem_outcome" in body and body["redeem_outcome"] not in ("success", "failure"):
        raise _bad_request("redeem_outcome must be 'success' or 'failure'")
    if "redeem_after_seconds" in body and (not _is_int(body["redeem_after_seconds"])
                                           or body["redeem_after_seconds"] < 0):
        raise _bad_request("redeem_after_seconds must be a whole number of seconds >= 0")
    return store.set_knobs(body)


_APPROVAL_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>PhonePe emulator: approve mandate {{ ref }}</title></head>
<body>
  <h1>PhonePe emulator: UPI Autopay mandate</h1>
  <p>Subscription <code>{{ ref }}</code>, up to <strong>{{ rupees }}</strong> {{ frequency }}.</p>
  {% if state == "PENDING" %}
  <form method="post">
    <button type="submit" name="outcome" value="success">Approve the mandate</button>
    <button type="submit" name="outcome" value="failure">Decline</button>
  </form>
  {% else %}<p>This mandate setup is already {{ state }}.</p>{% endif %}
</body>
</html>
"""


def register(app: flask.Flask, config: EmulatorConfig, *, require_token: Callable[[], None]) -> SubscriptionStore:
    """Add the subscription routes to the PhonePe emulator `app`; `require_token` checks its OAuth token."""
    store = SubscriptionStore(config.database_url)
    app.extensions["phonepe_subscriptions"] = store

    @app.errorhandler(SubscriptionError)
    def _subscription_error(error: SubscriptionError) -> flask.Response:
        response = flask.jsonify({"code": error.code, "message": error.message})
        response.status_code = error.status
        return response

    @app.post("/subscriptions/v2/setup")
    def subscription_setup() -> Any:
        require_token()
        return _setup(config, store, flask.request.get_json(silent=True))

    @app.route("/subscriptions/approve/<order_id>", methods=["GET", "POST"])
    def subscription_approval_page(order_id: str) -> Any:
        if flask.request.method == "GET" and not _param("outcome"):
            with store.order(store.merchant_order_id_for(order_id)) as order, \
                    store.subscription(order["merchantSubscriptionId"]) as sub:
                rupees = f"₹{sub['maxAmount'] // 100:,}.{sub['maxAmount'] % 100:02d}"
                return flask.render_template_string(_APPROVAL_PAGE, ref=sub["merchantSubscriptionId"], rupees=rupees,
                                                    frequency=sub["frequency"].lower(), state=order["state"])
        return _approve(config, store, order_id)

    @app.get("/subscriptions/v2/order/<merchant_order_id>/status")
    def subscription_order_status(merchant_order_id: str) -> Any:
        require_token()
        with store.order(merchant_order_id) as order:
            return _order_payload(config, order)

    @app.get("/subscriptions/v2/<merchant_subscription_id>/status")
    def subscription_status(merchant_subscription_id: str) -> Any:
        require_token()
        with store.subscription(merchant_subscription_id) as sub:
            return _subscription_payload(config, sub)

    @app.post("/subscriptions/v2/notify")
    def subscription_notify() -> Any:
        require_token()
        return _notify(config, store, flask.request.get_json(silent=True))

    @app.post("/subscriptions/v2/redeem")
    def subscription_redeem() -> Any:
        require_token()
        return _redeem(config, store, flask.request.get_json(silent=True))

    @app.post("/subscriptions/v2/<merchant_subscription_id>/cancel")
    def subscription_cancel(merchant_subscription_id: str) -> Any:
        require_token()
        _end(config, store, merchant_subscription_id, "CANCELLED")
        return flask.Response(status=204)

    @app.get("/_emulator/subscriptions")
    def list_subscriptions() -> Any:
        return {"subscriptions": store.view()}

    @app.get("/_emulator/subscriptions/<merchant_subscription_id>")
    def get_subscription(merchant_subscription_id: str) -> Any:
        found = store.view(merchant_subscription_id)
        if not found:
            raise SubscriptionError(404, "INVALID_SUBSCRIPTION_ID", f"No subscription {merchant_subscription_id!r}")
        return found[0]

    @app.post("/_emulator/subscriptions/<merchant_subscription_id>/revoke")
    def revoke_subscription(merchant_subscription_id: str) -> Any:
        _end(config, store, merchant_subscription_id, "REVOKED")
        return store.view(merchant_subscription_id)[0]

    @app.post("/_emulator/subscriptions/webhook")
    def resend_subscription_webhook() -> Any:
        return _resend(config, store, flask.request.get_json(silent=True) or {})

    @app.route("/_emulator/subscriptions/knobs", methods=["GET", "POST"])
    def subscription_knobs() -> Any:
        if flask.request.method == "GET":
            return store.knobs()
        return _set_knobs(store, flask.request.get_json(silent=True))

    return store
