"""PhonePe PG Standard Checkout v2 emulator: OAuth token, pay, order status, pay page, refunds and S2S webhooks.

The product talks to PhonePe with its own small httpx client, so this emulator follows the documented
wire shapes (reference `phonepe-gst-india.md` §1–§2) rather than any SDK. A checkout goes:

1. `POST /v1/oauth/token` (form credentials) returns an `O-Bearer` token valid for one hour.
2. `POST /checkout/v2/pay` creates a PENDING order and returns the emulator's own pay page as `redirectUrl`.
3. The pay page (HTML, or driven by scripts with `outcome=success|failure`) settles the order, sends the
   webhook *synchronously* (so the caller knows it was delivered), then redirects to the merchant.
4. `GET /checkout/v2/order/{merchantOrderId}/status` reports the order, unless a test override says otherwise.

Refunds (`POST /payments/v2/refund`, `GET /payments/v2/refund/{merchantRefundId}/status`) take a COMPLETED
order's money back, at most what is left of it (the order's amount minus its refunds that did not fail). The
same merchantRefundId sent again for the same order and amount is the same refund (answered as it stands now);
for another order or amount it is a 400 `DUPLICATE_MERCHANT_REFUND_ID` (PhonePe documents no code for this).
A refund stays PENDING until a test settles it (`POST /_emulator/refunds/{id}/settle` with `outcome`
completed, failed or confirmed), which sends `pg.refund.completed` / `pg.refund.failed` / `pg.refund.accepted`
signed like the payment webhooks; with `phonepe_refund_settle_seconds` set (the local stack), one that old
completes when its status is asked for. An unknown merchantRefundId is a 404 `INVALID_MERCHANT_REFUND_ID`.

Tokens, orders (with their status overrides), refunds and webhook deliveries live in the stack's Postgres (schema
`phonepe_emulator`), as the QStash emulator keeps its messages: a restarted stack still knows the order a
campaign waits on and still accepts the tokens functions cached in Redis before the restart.

Test knobs live under `/_emulator/`: list orders with their webhook deliveries, override what the status API
reports, (re)send a webhook, possibly with a forged `Authorization`, list the tokens it knows, and forget every
token (`DELETE /_emulator/tokens`) so the next PG call with a cached token gets a 401. Refunds have theirs:
list them, settle one, and (re)send its webhook (`POST /_emulator/refunds/{id}/webhook`).
"""

from __future__ import annotations

import re
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import flask
import httpx
import psycopg
from psycopg.types.json import Jsonb

from infra.local.emulators import phonepe_subscriptions
from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.pgschema import SchemaDatabase
from infra.local.emulators.phonepe_wire import is_int as _is_int
from infra.local.emulators.phonepe_wire import new_id as _new_id
from infra.local.emulators.phonepe_wire import now_ms as _now_ms
from infra.local.emulators.phonepe_wire import param as _param
from infra.local.emulators.phonepe_wire import webhook_authorization

OrderState = Literal["PENDING", "COMPLETED", "FAILED"]
RefundState = Literal["PENDING", "CONFIRMED", "COMPLETED", "FAILED"]

TOKEN_TTL_SECONDS = 3600
DEFAULT_EXPIRE_AFTER_SECONDS = 1200
"""PhonePe does not document its default `expireAfter`; 20 minutes matches the reference client sketch."""
MIN_AMOUNT_PAISE = 100
WEBHOOK_TIMEOUT_SECONDS = 10.0
EVENT_BY_STATE: dict[str, str] = {"COMPLETED": "checkout.order.completed", "FAILED": "checkout.order.failed"}
STATE_BY_EVENT: dict[str, str] = {event: state for state, event in EVENT_BY_STATE.items()}
REFUND_EVENT_BY_STATE: dict[str, str] = {"COMPLETED": "pg.refund.completed", "FAILED": "pg.refund.failed",
                                         "CONFIRMED": "pg.refund.accepted"}
REFUND_STATE_BY_OUTCOME: dict[str, RefundState] = {"completed": "COMPLETED", "failed": "FAILED",
                                                   "confirmed": "CONFIRMED"}

_MERCHANT_ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{1,63}$")

SCHEMA = "phonepe_emulator"
_SCHEMA_LOCK = 0x05_7A_50_01
_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.tokens (
    token text PRIMARY KEY,
    issued_at bigint NOT NULL,
    expires_at bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.orders (
    seq bigserial NOT NULL,
    merchant_order_id text PRIMARY KEY,
    order_id text NOT NULL UNIQUE,
    document jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.webhook_deliveries (
    id bigserial PRIMARY KEY,
    merchant_order_id text NOT NULL REFERENCES {SCHEMA}.orders (merchant_order_id),
    document jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_order ON {SCHEMA}.webhook_deliveries (merchant_order_id, id);
CREATE TABLE IF NOT EXISTS {SCHEMA}.refunds (
    seq bigserial NOT NULL,
    merchant_refund_id text PRIMARY KEY,
    merchant_order_id text NOT NULL REFERENCES {SCHEMA}.orders (merchant_order_id),
    document jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS refunds_order ON {SCHEMA}.refunds (merchant_order_id);
"""




class PhonePeError(Exception):
    """An API error answered as PhonePe does: `{"code", "message"}` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class WebhookDelivery:
    """One attempt to POST an S2S webhook to the merchant, kept for `/_emulator/orders`."""

    event: str
    url: str
    authorization: str
    payload: dict[str, Any]
    sent_at: int
    status: int | None = None
    """HTTP status the merchant answered, or None when the request could not be made."""
    error: str | None = None


@dataclass
class Order:
    """An order as the emulator knows it; `override` changes only what the status API reports.

    Stored as one JSON document; its webhook deliveries are rows of their own, appended without rewriting it.
    """

    merchant_order_id: str
    order_id: str
    amount: int
    expire_at: int
    """Epoch milliseconds, as PhonePe reports it."""
    merchant_redirect_url: str
    meta_info: dict[str, Any] | None
    state: OrderState = "PENDING"
    error_code: str | None = None
    detailed_error_code: str | None = None
    payment_details: list[dict[str, Any]] = field(default_factory=list)
    override: dict[str, Any] = field(default_factory=dict)
    created_at: int = field(default_factory=_now_ms)


@dataclass
class Refund:
    """A refund of (part of) a COMPLETED order, stored as one JSON document."""

    merchant_refund_id: str
    refund_id: str
    original_merchant_order_id: str
    amount: int
    state: RefundState = "PENDING"
    error_code: str | None = None
    detailed_error_code: str | None = None
    timestamp: int = field(default_factory=_now_ms)
    """Epoch milliseconds of the last change, as PhonePe reports it."""
    created_at: int = field(default_factory=_now_ms)


class _Store:
    """The emulator's state in Postgres, one short transaction per call.

    Commits do not wait for the WAL flush (`synchronous_commit = off`, as in the QStash emulator): a crashed
    emulator loses nothing, only an OS crash could drop the last fraction of a second. The schema is created
    on first use.
    """

    def __init__(self, database_url: str) -> None:
        self.db = SchemaDatabase(database_url, ddl=_DDL, lock=_SCHEMA_LOCK,
                                 missing=lambda: PhonePeError(500, "INTERNAL_SERVER_ERROR",
                                                              "The PhonePe emulator has no database_url configured"))

    def _tx(self) -> AbstractContextManager[psycopg.Connection[dict[str, Any]]]:
        return self.db.transaction(wait_for_flush=False)

    def add_token(self, token: str, issued_at: int, expires_at: int) -> None:
        """Remember a new token (and drop the expired ones)."""
        with self._tx() as conn:
            conn.execute(f"DELETE FROM {SCHEMA}.tokens WHERE expires_at <= %s", (issued_at,))
            conn.execute(f"INSERT INTO {SCHEMA}.tokens (token, issued_at, expires_at) VALUES (%s, %s, %s)",
                         (token, issued_at, expires_at))

    def token_expiry(self, token: str) -> int | None:
        """When `token` expires (epoch seconds), or None if it was never issued or was revoked."""
        with self._tx() as conn:
            row = conn.execute(f"SELECT expires_at FROM {SCHEMA}.tokens WHERE token = %s", (token,)).fetchone()
        return None if row is None else int(row["expires_at"])

    def tokens(self) -> list[dict[str, int]]:
        """Issue and expiry times of the tokens still known, oldest first (not the token values)."""
        with self._tx() as conn:
            rows = conn.execute(f"SELECT issued_at, expires_at FROM {SCHEMA}.tokens ORDER BY issued_at").fetchall()
        return [{"issued_at": int(row["issued_at"]), "expires_at": int(row["expires_at"])} for row in rows]

    def revoke_tokens(self) -> int:
        """Forget every token; returns how many there were."""
        with self._tx() as conn:
            return conn.execute(f"DELETE FROM {SCHEMA}.tokens").rowcount

    def add_order(self, order: Order) -> bool:
        """Store a new order; False if its merchantOrderId is taken."""
        with self._tx() as conn:
            row = conn.execute(
                f"""INSERT INTO {SCHEMA}.orders (merchant_order_id, order_id, document) VALUES (%s, %s, %s)
                    ON CONFLICT (merchant_order_id) DO NOTHING RETURNING merchant_order_id""",
                (order.merchant_order_id, order.order_id, Jsonb(asdict(order))),
            ).fetchone()
        return row is not None

    @contextmanager
    def order(self, merchant_order_id: str) -> Iterator[Order]:
        """The order, locked until the block ends and failed first if it expired while PENDING.

        Changes made to it in the block are saved when the block ends without an exception.
        """
        with self._tx() as conn:
            row = conn.execute(
                f"SELECT document FROM {SCHEMA}.orders WHERE merchant_order_id = %s FOR UPDATE", (merchant_order_id,)
            ).fetchone()
            if row is None:
                raise PhonePeError(404, "INVALID_MERCHANT_ORDER_ID", "No entry found for given merchant order id")
            order = Order(**row["document"])
            stored = asdict(order)
            if order.state == "PENDING" and _now_ms() > order.expire_at:
                order.state = "FAILED"
                order.error_code = "TXN_AUTO_FAILED"
            yield order
            if asdict(order) != stored:
                conn.execute(f"UPDATE {SCHEMA}.orders SET document = %s WHERE merchant_order_id = %s",
                             (Jsonb(asdict(order)), merchant_order_id))

    def current(self, merchant_order_id: str) -> Order:
        """The order as `order()` sees it, without keeping it locked."""
        with self.order(merchant_order_id) as order:
            return order

    def orders(self) -> list[Order]:
        """Every order, oldest first, as stored (an expired PENDING order shows as PENDING here)."""
        with self._tx() as conn:
            rows = conn.execute(f"SELECT document FROM {SCHEMA}.orders ORDER BY seq").fetchall()
        return [Order(**row["document"]) for row in rows]

    def merchant_order_id_for(self, order_id: str) -> str | None:
        """The merchantOrderId of PhonePe's `orderId`."""
        with self._tx() as conn:
            row = conn.execute(
                f"SELECT merchant_order_id FROM {SCHEMA}.orders WHERE order_id = %s", (order_id,)
            ).fetchone()
        return None if row is None else str(row["merchant_order_id"])

    def add_delivery(self, merchant_order_id: str, delivery: WebhookDelivery) -> None:
        """Record one webhook attempt for the order."""
        with self._tx() as conn:
            conn.execute(f"INSERT INTO {SCHEMA}.webhook_deliveries (merchant_order_id, document) VALUES (%s, %s)",
                         (merchant_order_id, Jsonb(asdict(delivery))))

    def deliveries(self, merchant_order_id: str | None = None) -> dict[str, list[WebhookDelivery]]:
        """Webhook attempts, oldest first, by merchantOrderId: of one order, or of all when it is None."""
        by_order: dict[str, list[WebhookDelivery]] = {}
        with self._tx() as conn:
            rows = conn.execute(
                f"""SELECT merchant_order_id, document FROM {SCHEMA}.webhook_deliveries
                    WHERE %(id)s::text IS NULL OR merchant_order_id = %(id)s ORDER BY id""",
                {"id": merchant_order_id},
            ).fetchall()
        for row in rows:
            by_order.setdefault(row["merchant_order_id"], []).append(WebhookDelivery(**row["document"]))
        return by_order

    def debug_view(self, order: Order) -> dict[str, Any]:
        """Everything about an order, including its webhook deliveries, for tests."""
        return _debug_view(order, self.deliveries(order.merchant_order_id).get(order.merchant_order_id, []))

    def create_refund(self, merchant_refund_id: str, merchant_order_id: str, amount: int) -> Refund:
        """The refund `merchant_refund_id`: the stored one when it repeats a request, else a new PENDING one.

        The order is locked while its refundable amount is worked out, so concurrent refunds of one order
        never take back more than it was paid.
        """
        with self._tx() as conn:
            order_row = conn.execute(f"SELECT document FROM {SCHEMA}.orders WHERE merchant_order_id = %s FOR UPDATE",
                                     (merchant_order_id,)).fetchone()
            existing = conn.execute(f"SELECT document FROM {SCHEMA}.refunds WHERE merchant_refund_id = %s",
                                    (merchant_refund_id,)).fetchone()
            if existing is not None:
                refund = Refund(**existing["document"])
                if refund.original_merchant_order_id != merchant_order_id or refund.amount != amount:
                    raise _bad_request_code("DUPLICATE_MERCHANT_REFUND_ID",
                                            f"merchantRefundId {merchant_refund_id!r} was used for another refund "
                                            f"({refund.amount} paise of {refund.original_merchant_order_id!r})")
                return refund
            if order_row is None:
                raise PhonePeError(400, "INVALID_MERCHANT_ORDER_ID", "No entry found for given merchant order id")
            order = Order(**order_row["document"])
            if order.state != "COMPLETED":
                raise _bad_request_code("ORDER_NOT_COMPLETED",
                                        f"Order {merchant_order_id!r} is {order.state}; only a COMPLETED order is "
                                        "refundable")
            refunded = conn.execute(
                f"""SELECT coalesce(sum((document->>'amount')::bigint), 0) AS n FROM {SCHEMA}.refunds
                    WHERE merchant_order_id = %s AND document->>'state' <> 'FAILED'""", (merchant_order_id,),
            ).fetchone()
            refundable = order.amount - int(refunded["n"] if refunded else 0)
            if amount > refundable:
                raise _bad_request_code("INVALID_REFUND_AMOUNT",
                                        f"amount {amount} exceeds the {refundable} paise still refundable of order "
                                        f"{merchant_order_id!r}")
            refund = Refund(merchant_refund_id=merchant_refund_id, refund_id=_new_id("OMR"),
                            original_merchant_order_id=merchant_order_id, amount=amount)
            conn.execute(f"INSERT INTO {SCHEMA}.refunds (merchant_refund_id, merchant_order_id, document) "
                         "VALUES (%s, %s, %s)", (merchant_refund_id, merchant_order_id, Jsonb(asdict(refund))))
        return refund

    @contextmanager
    def refund(self, merchant_refund_id: str) -> Iterator[Refund]:
        """The refund, locked until the block ends; changes made in the block are saved when it ends cleanly."""
        with self._tx() as conn:
            row = conn.execute(f"SELECT document FROM {SCHEMA}.refunds WHERE merchant_refund_id = %s FOR UPDATE",
                               (merchant_refund_id,)).fetchone()
            if row is None:
                raise PhonePeError(404, "INVALID_MERCHANT_REFUND_ID", "No refund found for given merchant refund id")
            refund = Refund(**row["document"])
            stored = asdict(refund)
            yield refund
            if asdict(refund) != stored:
                conn.execute(f"UPDATE {SCHEMA}.refunds SET document = %s WHERE merchant_refund_id = %s",
                             (Jsonb(asdict(refund)), merchant_refund_id))

    def refunds(self) -> list[Refund]:
        """Every refund, oldest first."""
        with self._tx() as conn:
            rows = conn.execute(f"SELECT document FROM {SCHEMA}.refunds ORDER BY seq").fetchall()
        return [Refund(**row["document"]) for row in rows]


def create_app(config: EmulatorConfig) -> flask.Flask:
    """Build the PhonePe emulator; its state lives in `config.database_url` and outlives the app."""
    app = flask.Flask(__name__)
    store = _Store(config.database_url)
    app.extensions["phonepe_emulator"] = store

    @app.errorhandler(PhonePeError)
    def _phonepe_error(error: PhonePeError) -> flask.Response:
        response = flask.jsonify({"code": error.code, "message": error.message})
        response.status_code = error.status
        return response

    @app.post("/v1/oauth/token")
    def oauth_token() -> Any:
        return _issue_token(config, store, flask.request.form)

    @app.post("/checkout/v2/pay")
    def pay() -> Any:
        _require_token(store)
        return _create_order(store, flask.request.get_json(silent=True))

    @app.get("/checkout/v2/order/<merchant_order_id>/status")
    def order_status(merchant_order_id: str) -> Any:
        _require_token(store)
        args = flask.request.args
        with store.order(merchant_order_id) as order:
            return _status_view(
                config,
                order,
                details=args.get("details", "false").lower() == "true",
                error_context=args.get("errorContext", "false").lower() == "true",
            )

    @app.route("/pay/<order_id>", methods=["GET", "POST"])
    def pay_page(order_id: str) -> Any:
        merchant_order_id = _merchant_order_id_for(store, order_id)
        if flask.request.method == "GET" and not _param("outcome"):
            with store.order(merchant_order_id) as order:
                return _render_pay_page(order)
        return _settle_from_pay_page(config, store, merchant_order_id)

    @app.get("/_emulator/orders")
    def list_orders() -> Any:
        deliveries = store.deliveries()
        return {"orders": [_debug_view(order, deliveries.get(order.merchant_order_id, []))
                           for order in store.orders()]}

    @app.get("/_emulator/orders/<merchant_order_id>")
    def get_order(merchant_order_id: str) -> Any:
        return store.debug_view(store.current(merchant_order_id))

    @app.post("/_emulator/orders/<merchant_order_id>/override")
    def override_order(merchant_order_id: str) -> Any:
        return _set_override(store, merchant_order_id, flask.request.get_json(silent=True) or {})

    @app.post("/_emulator/orders/<merchant_order_id>/webhook")
    def resend_webhook(merchant_order_id: str) -> Any:
        body = flask.request.get_json(silent=True) or {}
        return asdict(_send_manual_webhook(config, store, merchant_order_id, body))

    @app.post("/payments/v2/refund")
    def refund() -> Any:
        _require_token(store)
        merchant_refund_id, merchant_order_id, amount = _validate_refund_request(flask.request.get_json(silent=True))
        created = store.create_refund(merchant_refund_id, merchant_order_id, amount)
        return {"refundId": created.refund_id, "amount": created.amount, "state": created.state}

    @app.get("/payments/v2/refund/<merchant_refund_id>/status")
    def refund_status(merchant_refund_id: str) -> Any:
        _require_token(store)
        with store.refund(merchant_refund_id) as found:
            settled = _auto_settle(config, found)
            view = _refund_view(config, found)
        if settled:
            _send_refund_webhook(config, store, merchant_refund_id)
        return view

    @app.get("/_emulator/refunds")
    def list_refunds() -> Any:
        return {"refunds": [asdict(found) for found in store.refunds()]}

    @app.post("/_emulator/refunds/<merchant_refund_id>/settle")
    def settle_refund(merchant_refund_id: str) -> Any:
        return _settle_refund(config, store, merchant_refund_id, flask.request.get_json(silent=True) or {})

    @app.post("/_emulator/refunds/<merchant_refund_id>/webhook")
    def resend_refund_webhook(merchant_refund_id: str) -> Any:
        body = flask.request.get_json(silent=True) or {}
        return asdict(_send_refund_webhook(config, store, merchant_refund_id, authorization=body.get("authorization"),
                                           event=body.get("event")))

    @app.get("/_emulator/tokens")
    def list_tokens() -> Any:
        return {"tokens": store.tokens()}

    @app.delete("/_emulator/tokens")
    def revoke_tokens() -> Any:
        return {"revoked": store.revoke_tokens()}

    phonepe_subscriptions.register(app, config, require_token=lambda: _require_token(store))
    return app








def _issue_token(config: EmulatorConfig, store: _Store, form: Any) -> Any:
    expected = {
        "client_id": config.phonepe_client_id,
        "client_secret": config.phonepe_client_secret,
        "client_version": str(config.phonepe_client_version),
        "grant_type": "client_credentials",
    }
    wrong = sorted(name for name, value in expected.items() if form.get(name) != value)
    if wrong:
        raise PhonePeError(401, "UNAUTHORIZED", f"Invalid client credentials: check {', '.join(wrong)}")
    issued_at = int(time.time())
    expires_at = issued_at + TOKEN_TTL_SECONDS
    token = f"local-{secrets.token_urlsafe(24)}"
    store.add_token(token, issued_at, expires_at)
    return {
        "access_token": token,
        "encrypted_access_token": token,
        "expires_in": None,
        "issued_at": issued_at,
        "expires_at": expires_at,
        "session_expires_at": expires_at,
        "token_type": "O-Bearer",
    }


def _require_token(store: _Store) -> None:
    """Reject a call without a live `Authorization: O-Bearer <token>` from `/v1/oauth/token`."""
    scheme, _, token = flask.request.headers.get("Authorization", "").partition(" ")
    expires_at = store.token_expiry(token.strip()) if scheme == "O-Bearer" else None
    if expires_at is None or expires_at <= time.time():
        raise PhonePeError(401, "UNAUTHORIZED", "Missing, unknown or expired `Authorization: O-Bearer` token")


def _bad_request(message: str) -> PhonePeError:
    return PhonePeError(400, "BAD_REQUEST", message)


def _bad_request_code(code: str, message: str) -> PhonePeError:
    return PhonePeError(400, code, message)




def _validate_pay_request(body: Any) -> tuple[str, int, int, str, dict[str, Any] | None]:
    """Check a pay request as PhonePe documents it.

    Returns:
        `(merchantOrderId, amount, expireAfter, redirectUrl, metaInfo)`.
    """
    if not isinstance(body, dict):
        raise _bad_request("Request body must be a JSON object")
    merchant_order_id = body.get("merchantOrderId")
    if not isinstance(merchant_order_id, str) or not _MERCHANT_ORDER_ID.match(merchant_order_id):
        raise _bad_request("merchantOrderId must be 1-63 characters of [A-Za-z0-9_-]")
    amount = body.get("amount")
    if not _is_int(amount) or amount < MIN_AMOUNT_PAISE:
        raise _bad_request(f"amount must be an integer number of paise >= {MIN_AMOUNT_PAISE}")
    expire_after = body.get("expireAfter")
    if expire_after is None:
        expire_after = DEFAULT_EXPIRE_AFTER_SECONDS
    elif not _is_int(expire_after) or not 300 <= expire_after <= 3600:
        raise _bad_request("expireAfter must be an integer number of seconds between 300 and 3600")
    meta_info = body.get("metaInfo")
    if meta_info is not None and not isinstance(meta_info, dict):
        raise _bad_request("metaInfo must be an object of udf1..udf15")
    flow = body.get("paymentFlow")
    if not isinstance(flow, dict) or flow.get("type") != "PG_CHECKOUT":
        raise _bad_request('paymentFlow.type must be "PG_CHECKOUT"')
    redirect_url = (flow.get("merchantUrls") or {}).get("redirectUrl")
    if not isinstance(redirect_url, str) or not redirect_url:
        raise _bad_request("paymentFlow.merchantUrls.redirectUrl is required")
    mode_config = flow.get("paymentModeConfig") or {}
    if mode_config.get("enabledPaymentModes") and mode_config.get("disabledPaymentModes"):
        raise _bad_request("Use either enabledPaymentModes or disabledPaymentModes, not both")
    return merchant_order_id, amount, expire_after, redirect_url, meta_info


def _create_order(store: _Store, body: Any) -> Any:
    merchant_order_id, amount, expire_after, redirect_url, meta_info = _validate_pay_request(body)
    order = Order(
        merchant_order_id=merchant_order_id,
        order_id=_new_id("OMO"),
        amount=amount,
        expire_at=_now_ms() + expire_after * 1000,
        merchant_redirect_url=redirect_url,
        meta_info=meta_info,
    )
    if not store.add_order(order):
        raise PhonePeError(400, "ORDER_ALREADY_EXISTS", f"Order {merchant_order_id!r} already exists")
    pay_page_url = flask.url_for("pay_page", order_id=order.order_id, _external=True)
    return {
        "orderId": order.order_id,
        "state": order.state,
        "expireAt": order.expire_at,
        "redirectUrl": pay_page_url,
    }


def _merchant_order_id_for(store: _Store, order_id: str) -> str:
    merchant_order_id = store.merchant_order_id_for(order_id)
    if merchant_order_id is None:
        raise PhonePeError(404, "INVALID_ORDER_ID", f"No order with orderId {order_id!r}")
    return merchant_order_id


def _status_view(
    config: EmulatorConfig, order: Order, *, details: bool, error_context: bool
) -> dict[str, Any]:
    """The Order Status API body, with any test override applied to the root `state` and amounts."""
    amount = order.override.get("amount", order.amount)
    view: dict[str, Any] = {
        "merchantId": config.phonepe_merchant_id,
        "merchantOrderId": order.merchant_order_id,
        "orderId": order.order_id,
        "state": order.override.get("state", order.state),
        "amount": amount,
        "payableAmount": amount,
        "feeAmount": 0,
        "expireAt": order.expire_at,
        "paymentDetails": list(order.payment_details) if details else order.payment_details[-1:],
    }
    if order.meta_info is not None:
        view["metaInfo"] = order.meta_info
    if order.state == "FAILED":
        view["errorCode"] = order.error_code
        view["detailedErrorCode"] = order.detailed_error_code
        if error_context:
            view["errorContext"] = {
                "errorCode": order.error_code,
                "detailedErrorCode": order.detailed_error_code,
                "source": "CUSTOMER",
                "stage": "AUTHORIZATION",
                "description": "Payment declined on the emulator's pay page",
            }
    return view


def _payment_attempt(order: Order, state: OrderState, error_code: str | None) -> dict[str, Any]:
    """One UPI_INTENT attempt as the status API and webhook report it."""
    attempt: dict[str, Any] = {
        "transactionId": _new_id("OM"),
        "paymentMode": "UPI_INTENT",
        "timestamp": _now_ms(),
        "amount": order.amount,
        "payableAmount": order.amount,
        "feeAmount": 0,
        "state": state,
        "rail": {
            "type": "UPI",
            "utr": f"{secrets.randbelow(10**12):012d}",
            "upiTransactionId": _new_id("YBL"),
            "vpa": "12****78@ybl",
        },
        "instrument": {"type": "ACCOUNT", "maskedAccountNumber": "******1234", "accountType": "SAVINGS"},
    }
    if state == "FAILED":
        attempt["errorCode"] = error_code
        attempt["detailedErrorCode"] = "ZM"
    return attempt


def _settle(order: Order, outcome: str, error_code: str | None) -> None:
    """Move a PENDING order to COMPLETED or FAILED with one payment attempt (the caller has it locked)."""
    if order.state != "PENDING":
        raise PhonePeError(409, "ORDER_NOT_PENDING", f"Order {order.merchant_order_id!r} is {order.state}")
    if outcome not in ("success", "failure"):
        raise _bad_request(f"outcome must be 'success' or 'failure', not {outcome!r}")
    state: OrderState = "COMPLETED" if outcome == "success" else "FAILED"
    attempt = _payment_attempt(order, state, error_code)
    order.state = state
    order.payment_details.append(attempt)
    if state == "FAILED":
        order.error_code = error_code
        order.detailed_error_code = attempt["detailedErrorCode"]


def _webhook_payload(config: EmulatorConfig, order: Order, *, state: str, amount: int) -> dict[str, Any]:
    """The `payload` of a `checkout.order.*` webhook, in the compact attempt shape of the docs."""
    keys = ("paymentMode", "transactionId", "timestamp", "amount", "state", "errorCode", "detailedErrorCode")
    return {
        "orderId": order.order_id,
        "merchantId": config.phonepe_merchant_id,
        "merchantOrderId": order.merchant_order_id,
        "state": state,
        "amount": amount,
        "expireAt": order.expire_at,
        "paymentDetails": [{key: a[key] for key in keys if key in a} for a in order.payment_details],
        "metaInfo": order.meta_info,
    }


def _deliver(
    config: EmulatorConfig, event: str, payload: dict[str, Any], authorization: str
) -> WebhookDelivery:
    """POST one webhook to `config.phonepe_webhook_url` and record how the merchant answered."""
    delivery = WebhookDelivery(
        event=event,
        url=config.phonepe_webhook_url,
        authorization=authorization,
        payload=payload,
        sent_at=_now_ms(),
    )
    if not config.phonepe_webhook_url:
        delivery.error = "phonepe_webhook_url is not configured"
        return delivery
    try:
        response = httpx.post(
            config.phonepe_webhook_url,
            json={"event": event, "payload": payload},
            headers={"Authorization": authorization},
            timeout=WEBHOOK_TIMEOUT_SECONDS,
        )
        delivery.status = response.status_code
    except httpx.HTTPError as exc:
        delivery.error = f"{type(exc).__name__}: {exc}"
    return delivery


def _settle_from_pay_page(config: EmulatorConfig, store: _Store, merchant_order_id: str) -> Any:
    """Settle the order, send its webhook before answering, then send the payer back to the merchant."""
    outcome = (_param("outcome") or "").lower()
    error_code = _param("errorCode") or "PAYMENT_DECLINED"
    with store.order(merchant_order_id) as order:
        _settle(order, outcome, error_code)
        payload = _webhook_payload(config, order, state=order.state, amount=order.amount)
        event = EVENT_BY_STATE[order.state]
        redirect_url = order.merchant_redirect_url
    authorization = webhook_authorization(config.phonepe_webhook_username, config.phonepe_webhook_password)
    delivery = _deliver(config, event, payload, authorization)
    store.add_delivery(merchant_order_id, delivery)
    if _wants_json():
        return {
            "merchantOrderId": merchant_order_id,
            "state": payload["state"],
            "redirectUrl": redirect_url,
            "webhook": asdict(delivery),
        }
    if _reachable(redirect_url):
        return flask.redirect(redirect_url, code=302)
    return flask.render_template_string(_RESULT_PAGE, state=payload["state"], redirect_url=redirect_url)


def _wants_json() -> bool:
    request = flask.request
    return request.is_json or request.accept_mimetypes.best == "application/json"


def _reachable(url: str) -> bool:
    """Whether something listens at the redirect URL's host and port (a dev frontend may not be running)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=0.5):
            return True
    except OSError:
        return False


def _set_override(store: _Store, merchant_order_id: str, body: dict[str, Any]) -> Any:
    """Make the status API report `state` and/or `amount` other than the truth; `null` clears a field."""
    unknown = set(body) - {"state", "amount"}
    if unknown:
        raise _bad_request(f"Unknown override fields {sorted(unknown)}; use 'state' and/or 'amount'")
    with store.order(merchant_order_id) as order:
        for name, value in body.items():
            if value is None:
                order.override.pop(name, None)
            else:
                order.override[name] = value
    return store.debug_view(order)


def _send_manual_webhook(
    config: EmulatorConfig, store: _Store, merchant_order_id: str, body: dict[str, Any]
) -> WebhookDelivery:
    """(Re)send a webhook for an order; `event`, `state`, `amount` and `authorization` may lie."""
    with store.order(merchant_order_id) as order:
        event = body.get("event")
        state = body.get("state") or STATE_BY_EVENT.get(event or "") or order.state
        event = event or EVENT_BY_STATE.get(state)
        if event is None:
            raise PhonePeError(409, "ORDER_NOT_PENDING", "Order is PENDING: pass an 'event' to send anyway")
        payload = _webhook_payload(config, order, state=state, amount=body.get("amount", order.amount))
    authorization = body.get("authorization") or webhook_authorization(
        config.phonepe_webhook_username, config.phonepe_webhook_password
    )
    delivery = _deliver(config, event, payload, authorization)
    store.add_delivery(merchant_order_id, delivery)
    return delivery


def _validate_refund_request(body: Any) -> tuple[str, str, int]:
    """Check a refund request as PhonePe documents it: `(merchantRefundId, originalMerchantOrderId, amount)`."""
    if not isinstance(body, dict):
        raise _bad_request("Request body must be a JSON object")
    merchant_refund_id = body.get("merchantRefundId")
    if not isinstance(merchant_refund_id, str) or not _MERCHANT_ORDER_ID.match(merchant_refund_id):
        raise _bad_request("merchantRefundId must be 1-63 characters of [A-Za-z0-9_-]")
    merchant_order_id = body.get("originalMerchantOrderId")
    if not isinstance(merchant_order_id, str) or not _MERCHANT_ORDER_ID.match(merchant_order_id):
        raise _bad_request("originalMerchantOrderId must be 1-63 characters of [A-Za-z0-9_-]")
    amount = body.get("amount")
    if not _is_int(amount) or amount < MIN_AMOUNT_PAISE:
        raise _bad_request(f"amount must be an integer number of paise >= {MIN_AMOUNT_PAISE}")
    return merchant_refund_id, merchant_order_id, amount


def _refund_view(config: EmulatorConfig, refund: Refund) -> dict[str, Any]:
    """The Refund Status API body (also the `payload` of a `pg.refund.*` webhook)."""
    view: dict[str, Any] = {
        "merchantId": config.phonepe_merchant_id,
        "merchantRefundId": refund.merchant_refund_id,
        "originalMerchantOrderId": refund.original_merchant_order_id,
        "amount": refund.amount,
        "state": refund.state,
        "timestamp": refund.timestamp,
        "refundId": refund.refund_id,
        "paymentDetails": [{"paymentMode": "UPI_INTENT", "timestamp": refund.timestamp, "amount": refund.amount,
                            "transactionId": refund.refund_id, "state": refund.state}],
    }
    if refund.state == "FAILED":
        view["errorCode"] = refund.error_code
        view["detailedErrorCode"] = refund.detailed_error_code
    return view


def _auto_settle(config: EmulatorConfig, refund: Refund) -> bool:
    """Complete a refund in progress once it is `phonepe_refund_settle_seconds` old (the caller has it locked)."""
    after = config.phonepe_refund_settle_seconds
    if after is None or refund.state not in ("PENDING", "CONFIRMED") or _now_ms() - refund.created_at < after * 1000:
        return False
    refund.state = "COMPLETED"
    refund.timestamp = _now_ms()
    return True


def _settle_refund(config: EmulatorConfig, store: _Store, merchant_refund_id: str, body: dict[str, Any]) -> Any:
    """Move a refund on (`outcome` completed, failed or confirmed) and send its webhook unless `webhook` is false."""
    outcome = str(body.get("outcome") or "").lower()
    state = REFUND_STATE_BY_OUTCOME.get(outcome)
    if state is None:
        raise _bad_request(f"outcome must be one of {sorted(REFUND_STATE_BY_OUTCOME)}, not {outcome!r}")
    with store.refund(merchant_refund_id) as found:
        if found.state in ("COMPLETED", "FAILED"):
            raise PhonePeError(409, "REFUND_NOT_PENDING", f"Refund {merchant_refund_id!r} is {found.state}")
        found.state = state
        found.timestamp = _now_ms()
        if state == "FAILED":
            found.error_code = str(body.get("errorCode") or "REFUND_FAILED")
            found.detailed_error_code = "RF"
    result: dict[str, Any] = {"refund": asdict(found)}
    if body.get("webhook", True):
        result["webhook"] = asdict(_send_refund_webhook(config, store, merchant_refund_id))
    return result


def _send_refund_webhook(config: EmulatorConfig, store: _Store, merchant_refund_id: str, *,
                         authorization: str | None = None, event: str | None = None) -> WebhookDelivery:
    """(Re)send the refund's `pg.refund.*` webhook as it stands; `authorization` and `event` may lie."""
    with store.refund(merchant_refund_id) as found:
        payload = _refund_view(config, found)
    event = event or REFUND_EVENT_BY_STATE.get(found.state)
    if event is None:
        raise PhonePeError(409, "REFUND_PENDING", "Refund is PENDING: pass an 'event' to send anyway")
    delivery = _deliver(config, event, payload, authorization or webhook_authorization(
        config.phonepe_webhook_username, config.phonepe_webhook_password))
    store.add_delivery(found.original_merchant_order_id, delivery)
    return delivery


def _debug_view(order: Order, deliveries: list[WebhookDelivery]) -> dict[str, Any]:
    """Everything about an order, including its webhook deliveries, for tests."""
    return {**asdict(order), "webhooks": [asdict(delivery) for delivery in deliveries]}


_PAY_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>PhonePe emulator: pay {{ order.merchant_order_id }}</title></head>
<body>
  <h1>PhonePe emulator</h1>
  <p>Order <code>{{ order.merchant_order_id }}</code> ({{ order.order_id }})</p>
  <p>Amount: <strong>{{ rupees }}</strong></p>
  {% if order.state == "PENDING" %}
  <form method="post">
    <button type="submit" name="outcome" value="success">Pay successfully</button>
    <button type="submit" name="outcome" value="failure">Fail the payment</button>
  </form>
  {% else %}
  <p>This order is already {{ order.state }}.</p>
  {% endif %}
</body>
</html>
"""

_RESULT_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>PhonePe emulator: payment {{ state }}</title></head>
<body>
  <h1>Payment {{ state }}</h1>
  <p>The merchant was notified. Continue to <a href="{{ redirect_url }}">{{ redirect_url }}</a>.</p>
</body>
</html>
"""


def _render_pay_page(order: Order) -> str:
    rupees = f"₹{order.amount // 100:,}.{order.amount % 100:02d}"
    return flask.render_template_string(_PAY_PAGE, order=order, rupees=rupees)
