"""A wire-compatible emulator of the QStash v2 REST API, backed by Postgres.

Product code talks to it through the official `qstash` SDK (`QStash(token, base_url=...)`) and
verifies deliveries with `qstash.Receiver`, exactly as against the cloud: the same paths, headers,
JSON shapes, status codes and `Upstash-Signature` JWTs. Messages live in Postgres (schema
`qstash_emulator`), so a restarted emulator loses nothing; an attempt that was in flight when the
process died is made again once its lease expires (at-least-once, like QStash).

One daemon thread claims due messages and hands them to a small pool of delivery threads. Queues
deliver FIFO one at a time; flow-control keys cap parallelism (and rate) across emulator
processes sharing a database. Backoff is scaled by `EmulatorConfig.qstash_backoff_scale` so
tests can run the real retry schedule in milliseconds.

Schedules (`/v2/schedules`) are stored beside the messages; a scheduler thread fires the due ones
on their UTC cron (or `CRON_TZ=`), each firing being an ordinary message (signed, retried, with
callbacks and deduplication) that carries `Upstash-Schedule-Id`.

Emulator-only extras, for tests of at-least-once receivers: the publish header
`Upstash-Emulator-Duplicates: n` (or `POST /_emulator/duplicates {"times": n}` for every later
message) sends each attempt n times concurrently, and `GET /_emulator/messages` lists every message
with its state and attempt count. `POST /_emulator/cron {"seconds_per_minute": n}` (or
`EmulatorConfig.qstash_cron_seconds`) makes n real seconds one cron minute, so schedules can be
watched firing without waiting minutes. The `/_emulator/` endpoints need no token.

Not emulated: URL groups, queue and flow-control management endpoints, key rotation, wait/notify,
and rate-limit (429) responses.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
import json
import logging
import math
import operator
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import flask
import httpx
import jwt
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException

from infra.local.emulators import _qstash_store as db
from infra.local.emulators._qstash_cron import CronClock, CronError, CronSchedule, parse_cron
from infra.local.emulators.config import EmulatorConfig

logger = logging.getLogger(__name__)

DEFAULT_RETRIES = 3
DEDUP_WINDOW_SECONDS = 600.0
MAX_BACKOFF_SECONDS = 86400.0
DEFAULT_TIMEOUT_SECONDS = 900.0
"""Free-plan "max HTTP response duration", used when a message sets no `Upstash-Timeout`."""
DELIVERY_THREADS = 8
LEASE_SECONDS = 15.0
"""How long a claimed attempt stays owned without renewal; a dead emulator's attempts restart after it."""
SIGNATURE_LIFETIME_SECONDS = 300

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"})
_SCHEME_ERROR = "invalid destination url: endpoint has invalid scheme, add http:// or https://"
_DURATION_PART = re.compile(r"(\d+)([smhd])")
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_RETRY_HINT_HEADERS = (
    "retry-after",
    "x-ratelimit-reset",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
)
_RESERVED_DELIVERY_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "user-agent",
        "upstash-message-id",
        "upstash-retried",
        "upstash-signature",
        "upstash-caller-ip",
        "upstash-schedule-id",
    }
)
_ID_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
SCHEDULE_BATCH = 50
"""Schedules fired per scheduler transaction."""
SCHEDULER_MAX_SLEEP = 1.0
_SCHEDULE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_SCHEDULE_ONLY_HEADERS = frozenset({"upstash-cron", "upstash-schedule-id", "upstash-queue-name"})
_SCHEDULE_DOCUMENT_KEYS = frozenset(
    {
        "body",
        "bodyBase64",
        "callback",
        "failureCallback",
        "callbackHeader",
        "failureCallbackHeader",
        "callerIP",
        "queueName",
        "retryDelayExpression",
        "label",
        "flowControlKey",
        "parallelism",
        "rate",
        "period",
    }
)
_SCHEDULE_STATES = {"DELIVERED": "SUCCESS", "FAILED": "FAIL", "CANCELED": "FAIL"}


class ApiError(Exception):
    """A client error answered as `{"error": message}` with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --- header values -------------------------------------------------------------------------------


def parse_duration(value: str, header: str) -> float:
    """Seconds in a QStash duration such as `30s` or `1d10h30m` (a bare integer means seconds)."""
    text = value.strip()
    if text.isdigit():
        return float(text)
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ApiError(400, f"invalid {header} header: {value!r}; use e.g. 30s, 10m, 1d10h30m")
    return sum(int(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def parse_bool(value: str | None) -> bool:
    """QStash booleans; the Python SDK sends `True`/`False`."""
    return (value or "").strip().lower() == "true"


def _parse_go_duration(text: str) -> float | None:
    parts = _GO_DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def parse_retry_hint(value: str, now: float) -> float | None:
    """Seconds asked for by a `Retry-After`-style value (seconds, HTTP date or Go duration).

    None when unreadable or above one day: QStash then falls back to its own backoff.
    """
    text = value.strip()
    seconds: float | None
    try:
        seconds = float(text)
    except ValueError:
        seconds = _parse_go_duration(text)
        if seconds is None:
            try:
                seconds = parsedate_to_datetime(text).timestamp() - now
            except (TypeError, ValueError, IndexError):
                return None
    if not math.isfinite(seconds) or seconds > MAX_BACKOFF_SECONDS:
        return None
    return max(0.0, seconds)


_FUNCTIONS: dict[str, Callable[..., float]] = {
    "pow": math.pow,
    "exp": math.exp,
    "sqrt": math.sqrt,
    "abs": abs,
    "floor": math.floor,
    "ceil": math.ceil,
    "round": round,
    "min": min,
    "max": max,
}
_BINARY_OPS: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
    ast.Pow: math.pow,
}
_MAX_EXPRESSION_LENGTH = 512


def evaluate_retry_delay(expression: str, retried: int) -> float:
    """Milliseconds given by an `Upstash-Retry-Delay` expression for the `retried`-th retry.

    Only numbers, `retried`, `+ - * / % **` and the nine QStash functions are allowed; the
    expression is walked as an AST whitelist, never `eval`-ed. Raises ValueError when invalid.
    """
    if len(expression) > _MAX_EXPRESSION_LENGTH:
        raise ValueError("expression is too long")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
        result = float(_evaluate(tree.body, float(retried)))
    except (SyntaxError, ArithmeticError, TypeError, RecursionError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from exc
    if math.isnan(result):
        raise ValueError("expression is not a number")
    return result


def _evaluate(node: ast.AST, retried: float) -> float:
    match node:
        case ast.Constant(value=bool()):
            raise ValueError("booleans are not allowed")
        case ast.Constant(value=int() | float() as number):
            return float(number)
        case ast.Name(id="retried"):
            return retried
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return -_evaluate(operand, retried)
        case ast.UnaryOp(op=ast.UAdd(), operand=operand):
            return _evaluate(operand, retried)
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY_OPS:
            return _BINARY_OPS[type(op)](_evaluate(left, retried), _evaluate(right, retried))
        case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in _FUNCTIONS and args:
            return float(_FUNCTIONS[name](*(_evaluate(arg, retried) for arg in args)))
    raise ValueError(f"unsupported element in retry delay expression: {type(node).__name__}")


def default_backoff(retried: int) -> float:
    """QStash's default wait (seconds) before the next try, after attempt number `retried` failed."""
    return min(MAX_BACKOFF_SECONDS, math.exp(2.5 * (retried + 1)))


# --- signing -------------------------------------------------------------------------------------


def sign(body: bytes, url: str, key: str, now: float | None = None) -> str:
    """The `Upstash-Signature` JWT for delivering `body` to exactly `url` (no `aud`, padded hash)."""
    issued = int(time.time() if now is None else now)
    body_hash = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode()
    claims = {
        "iss": "Upstash",
        "sub": url,
        "exp": issued + SIGNATURE_LIFETIME_SECONDS,
        "nbf": issued,
        "iat": issued,
        "jti": "jwt_" + _random_id(26),
        "body": body_hash,
    }
    return jwt.encode(claims, key, algorithm="HS256")


def _random_id(length: int) -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


# --- accepting messages --------------------------------------------------------------------------


@dataclass(frozen=True)
class Incoming:
    """One message as received by publish, enqueue or an element of batch."""

    destination: str
    headers: Headers
    body: bytes
    queue: str | None = None
    caller_ip: str | None = None


@dataclass(frozen=True)
class CallbackSettings:
    """How a callback or failure-callback message is sent, from `Upstash-[Failure-]Callback-*`."""

    method: str
    retries: int
    retry_delay: str | None
    timeout: float | None
    delay: float
    forward: dict[str, list[str]]


def callback_settings(config: dict[str, str], prefix: str, default_retries: int) -> CallbackSettings:
    """Parse the callback configuration headers (keys are what follows `prefix`)."""
    lowered = {k.lower(): v for k, v in config.items()}
    retries = _parse_retries(lowered.get("retries"), f"{prefix}Retries", default_retries)
    retry_delay = lowered.get("retry-delay")
    if retry_delay:
        _check_retry_delay(retry_delay, f"{prefix}Retry-Delay")
    timeout = lowered.get("timeout")
    delay = lowered.get("delay")
    forward: dict[str, list[str]] = {}
    for key, value in config.items():
        if key.lower().startswith("forward-"):
            forward.setdefault(key[len("forward-") :], []).append(value)
    return CallbackSettings(
        method=_parse_method(lowered.get("method"), f"{prefix}Method"),
        retries=retries,
        retry_delay=retry_delay or None,
        timeout=parse_duration(timeout, f"{prefix}Timeout") if timeout else None,
        delay=parse_duration(delay, f"{prefix}Delay") if delay else 0.0,
        forward=forward,
    )


def build_message(incoming: Incoming, now: float, duplicates: int) -> tuple[dict[str, Any], str | None]:
    """The message row for an incoming publish and its deduplication key (None if not deduplicated)."""
    h = incoming.headers
    url = check_destination(incoming.destination)
    header = _destination_headers(h)
    retries = _parse_retries(h.get("Upstash-Retries"), "Upstash-Retries", DEFAULT_RETRIES)
    retry_delay = h.get("Upstash-Retry-Delay") or None
    if retry_delay:
        _check_retry_delay(retry_delay, "Upstash-Retry-Delay")
    callback, callback_config = _callback_headers(h, "Upstash-Callback", retries)
    failure_callback, failure_config = _callback_headers(h, "Upstash-Failure-Callback", retries)
    flow = _flow_control(h)
    due_at = _due_at(h, now)
    timeout = h.get("Upstash-Timeout")
    message = {
        "id": "msg_" + _random_id(28),
        "kind": "message",
        "source_message_id": None,
        "url": url,
        "method": _parse_method(h.get("Upstash-Method"), "Upstash-Method"),
        "body": incoming.body,
        "header": header,
        "callback": callback,
        "failure_callback": failure_callback,
        "callback_header": callback_config,
        "failure_callback_header": failure_config,
        "max_retries": retries,
        "retry_delay_expr": retry_delay,
        "timeout_s": parse_duration(timeout, "Upstash-Timeout") if timeout else None,
        "queue_name": incoming.queue,
        **flow,
        "label": h.get("Upstash-Label") or None,
        "caller_ip": incoming.caller_ip,
        "duplicates": _parse_duplicates(h.get("Upstash-Emulator-Duplicates"), duplicates),
        "schedule_id": None,
        "state": "CREATED",
        "created_at": now,
        "not_before": due_at,
        "due_at": due_at,
        "updated_at": now,
    }
    return message, _dedup_key(h, url, incoming.body, header)


def check_destination(destination: str) -> str:
    """The destination URL if QStash would accept it, else the matching 4xx."""
    scheme, sep, rest = destination.partition("://")
    if not sep:
        raise ApiError(404, f"url group {destination!r} not found (the emulator supports URL destinations only)")
    if scheme.lower() not in ("http", "https") or not rest or rest.startswith("/"):
        raise ApiError(400, _SCHEME_ERROR)
    return destination


def _destination_headers(h: Headers) -> dict[str, list[str]]:
    """Content-Type plus every `Upstash-Forward-*` header, prefix stripped, as `{name: [values]}`."""
    header: dict[str, list[str]] = {}
    if h.get("Content-Type"):
        header["Content-Type"] = [h["Content-Type"]]
    for name, value in _with_prefix(h, "Upstash-Forward-"):
        header.setdefault(name, []).append(value)
    return header


def _callback_headers(h: Headers, name: str, retries: int) -> tuple[str | None, dict[str, str]]:
    url = h.get(name) or None
    config = dict(_with_prefix(h, f"{name}-"))
    if url is not None:
        try:
            check_destination(url)
        except ApiError as exc:
            raise ApiError(400, f"invalid {name} url: {url!r}") from exc
        callback_settings(config, f"{name}-", retries)
    return url, config


def _with_prefix(h: Headers, prefix: str) -> Iterable[tuple[str, str]]:
    size = len(prefix)
    lowered = prefix.lower()
    for key, value in h.items():
        if key.lower().startswith(lowered) and len(key) > size:
            yield key[size:], value


def _parse_retries(value: str | None, header: str, default: int) -> int:
    if value is None or value.strip() == "":
        return default
    if not value.strip().isdigit():
        raise ApiError(400, f"invalid {header} header: {value!r}; expected a non-negative integer")
    return int(value)


def _parse_method(value: str | None, header: str) -> str:
    method = (value or "POST").strip().upper()
    if method not in _METHODS:
        raise ApiError(400, f"invalid {header} header: {value!r}; use one of {', '.join(sorted(_METHODS))}")
    return method


def _check_retry_delay(expression: str, header: str) -> None:
    try:
        evaluate_retry_delay(expression, 0)
    except ValueError as exc:
        raise ApiError(400, f"invalid {header} header: {expression!r}: {exc}") from exc


def _parse_duplicates(value: str | None, default: int) -> int:
    if value is None:
        return default
    if not value.strip().isdigit() or int(value) < 1:
        raise ApiError(400, f"invalid Upstash-Emulator-Duplicates header: {value!r}")
    return int(value)


def _due_at(h: Headers, now: float) -> float:
    """`Upstash-Not-Before` (unix seconds) wins over `Upstash-Delay`."""
    not_before = h.get("Upstash-Not-Before")
    if not_before:
        try:
            return float(not_before)
        except ValueError as exc:
            message = f"invalid Upstash-Not-Before header: {not_before!r}; expected unix seconds"
            raise ApiError(400, message) from exc
    delay = h.get("Upstash-Delay")
    return now + parse_duration(delay, "Upstash-Delay") if delay else now


def _flow_control(h: Headers) -> dict[str, Any]:
    """Columns for `Upstash-Flow-Control-Key/-Value` (`parallelism=2, rate=10, period=60s`)."""
    key = h.get("Upstash-Flow-Control-Key") or None
    settings: dict[str, Any] = {
        "flow_key": key,
        "flow_parallelism": None,
        "flow_rate": None,
        "flow_period_s": None,
    }
    value = h.get("Upstash-Flow-Control-Value") or ""
    if key is None:
        return settings
    for part in filter(None, (p.strip() for p in value.split(","))):
        name, _, raw = part.partition("=")
        name, raw = name.strip().lower(), raw.strip()
        if name in ("parallelism", "rate") and raw.isdigit() and int(raw) > 0:
            settings[f"flow_{name}"] = int(raw)
        elif name == "period" and raw:
            settings["flow_period_s"] = parse_duration(raw, "Upstash-Flow-Control-Value period")
        else:
            raise ApiError(400, f"invalid Upstash-Flow-Control-Value header: {value!r}")
    return settings


def _dedup_key(h: Headers, url: str, body: bytes, header: dict[str, list[str]]) -> str | None:
    dedup_id = h.get("Upstash-Deduplication-Id")
    if dedup_id:
        return f"id:{dedup_id}"
    if not parse_bool(h.get("Upstash-Content-Based-Deduplication")):
        return None
    digest = hashlib.sha256()
    for part in (url.encode(), body, json.dumps(header, sort_keys=True).encode()):
        digest.update(len(part).to_bytes(8, "big") + part)
    return f"content:{digest.hexdigest()}"


# --- documents (what the API returns and what callbacks carry) ----------------------------------


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _body_fields(body: bytes, text_key: str, base64_key: str) -> dict[str, str]:
    try:
        return {text_key: body.decode("utf-8")}
    except UnicodeDecodeError:
        return {base64_key: _b64(body)}


def message_document(row: dict[str, Any]) -> dict[str, Any]:
    """A message as `GET /v2/messages/{id}` returns it (the keys `qstash.Message` reads)."""
    doc: dict[str, Any] = {
        "messageId": row["id"],
        "url": row["url"],
        "method": row["method"],
        "header": row["header"],
        "maxRetries": row["max_retries"],
        "notBefore": _ms(row["not_before"]),
        "createdAt": _ms(row["created_at"]),
        **_body_fields(bytes(row["body"]), "body", "bodyBase64"),
    }
    optional = {
        "queueName": row["queue_name"],
        "callback": row["callback"],
        "failureCallback": row["failure_callback"],
        "callerIP": row["caller_ip"],
        "retryDelayExpression": row["retry_delay_expr"],
        "label": row["label"],
        "flowControlKey": row["flow_key"],
        "parallelism": row["flow_parallelism"],
        "rate": row["flow_rate"],
        "period": int(row["flow_period_s"]) if row["flow_period_s"] else None,
        "scheduleId": row.get("schedule_id"),
    }
    doc.update({k: v for k, v in optional.items() if v is not None})
    if row["callback_header"]:
        doc["callbackHeader"] = {f"Upstash-Callback-{k}": [v] for k, v in row["callback_header"].items()}
    if row["failure_callback_header"]:
        doc["failureCallbackHeader"] = {
            f"Upstash-Failure-Callback-{k}": [v] for k, v in row["failure_callback_header"].items()
        }
    return doc


def emulator_document(row: dict[str, Any]) -> dict[str, Any]:
    """A message as `GET /_emulator/messages` lists it: every state, with attempt bookkeeping."""
    return {
        **message_document(row),
        "kind": row["kind"],
        "sourceMessageId": row["source_message_id"],
        "state": row["state"],
        "retried": row["retried"],
        "attempts": row["attempts"],
        "lastStatus": row["last_status"],
        "dueAt": _ms(row["due_at"]),
        "duplicates": row["duplicates"],
    }


def event_document(row: dict[str, Any]) -> dict[str, Any]:
    optional = {
        "queueName": row["queue_name"],
        "label": row["label"],
        "flowControlKey": row["flow_key"],
        "scheduleId": row.get("schedule_id"),
    }
    return {
        "time": row["time_ms"],
        "messageId": row["message_id"],
        "state": row["state"],
        "url": row["url"],
        **{k: v for k, v in optional.items() if v is not None},
        **row["extra"],
    }


@dataclass(frozen=True)
class AttemptResult:
    """What one delivery attempt got back; `status` 0 means no HTTP response (error/timeout)."""

    status: int
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def non_retryable(self) -> bool:
        flags = self.headers.get("Upstash-Nonretryable-Error", [])
        return self.status == 489 and any(parse_bool(flag) for flag in flags)

    def header(self, name: str) -> str | None:
        for key, values in self.headers.items():
            if key.lower() == name and values:
                return values[0]
        return None

    def response_fields(self) -> dict[str, Any]:
        return {
            "responseStatus": self.status,
            "responseHeader": self.headers,
            **_body_fields(self.body, "responseBody", "responseBodyBase64"),
        }


def callback_payload(row: dict[str, Any], result: AttemptResult) -> dict[str, Any]:
    """The JSON QStash posts to `Upstash-Callback` after an attempt (and, plus `dlqId`, on failure)."""
    payload: dict[str, Any] = {
        "status": result.status,
        "header": result.headers,
        "body": _b64(result.body),
        "retried": row["retried"],
        "maxRetries": row["max_retries"],
        "sourceMessageId": row["id"],
        "url": row["url"],
        "method": row["method"],
        "sourceHeader": row["header"],
        "sourceBody": _b64(bytes(row["body"])),
        "notBefore": str(_ms(row["not_before"])),
        "createdAt": str(_ms(row["created_at"])),
    }
    if row["caller_ip"]:
        payload["callerIP"] = row["caller_ip"]
    if row["queue_name"]:
        payload["queueName"] = row["queue_name"]
    if row.get("schedule_id"):
        payload["scheduleId"] = row["schedule_id"]
    return payload


def callback_message(
    parent: dict[str, Any], kind: str, url: str, config: dict[str, str], payload: dict[str, Any], now: float
) -> dict[str, Any]:
    """A new message row carrying `payload` to a callback URL, configured by `config`."""
    prefix = "Upstash-Callback-" if kind == "callback" else "Upstash-Failure-Callback-"
    settings = callback_settings(config, prefix, parent["max_retries"])
    due_at = now + settings.delay
    return {
        "id": "msg_" + _random_id(28),
        "kind": kind,
        "source_message_id": parent["id"],
        "url": url,
        "method": settings.method,
        "body": json.dumps(payload).encode(),
        "header": {"Content-Type": ["application/json"], **settings.forward},
        "callback": None,
        "failure_callback": None,
        "callback_header": {},
        "failure_callback_header": {},
        "max_retries": settings.retries,
        "retry_delay_expr": settings.retry_delay,
        "timeout_s": settings.timeout,
        "queue_name": None,
        "flow_key": None,
        "flow_parallelism": None,
        "flow_rate": None,
        "flow_period_s": None,
        "label": parent["label"],
        "caller_ip": parent["caller_ip"],
        "duplicates": parent["duplicates"],
        "schedule_id": None,
        "state": "CREATED",
        "created_at": now,
        "not_before": due_at,
        "due_at": due_at,
        "updated_at": now,
    }


# --- delivery ------------------------------------------------------------------------------------


def _canonical(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


class DeliveryWorker:
    """Claims due messages from Postgres and delivers them on a small thread pool.

    One loop thread claims (never more than there are free delivery threads, so nothing claimed
    waits unstarted), renews the leases of in-flight attempts, and sleeps `qstash_poll_interval`
    or until woken by a publish or a finished delivery.
    """

    def __init__(self, store: db.QStashStore, config: EmulatorConfig) -> None:
        self._store = store
        self._config = config
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._http = httpx.Client(follow_redirects=False)
        self._executor = ThreadPoolExecutor(DELIVERY_THREADS, thread_name_prefix="qstash-delivery")
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qstash-emulator-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming, let in-flight attempts finish, release the HTTP client."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._executor.shutdown(wait=True)
        self._http.close()

    def busy(self) -> bool:
        with self._lock:
            return bool(self._in_flight)

    def _run(self) -> None:
        last_renewal = time.monotonic()
        pause = self._config.qstash_poll_interval
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                if time.monotonic() - last_renewal > LEASE_SECONDS / 3:
                    self._renew_leases()
                    last_renewal = time.monotonic()
                self._claim_and_dispatch()
                pause = self._config.qstash_poll_interval
            except Exception:
                logger.exception("QStash emulator worker iteration failed; retrying in %.1fs", pause)
                pause = min(max(pause * 2, 0.1), 5.0)
            self._wake.wait(pause)

    def _renew_leases(self) -> None:
        with self._lock:
            ids = list(self._in_flight)
        self._store.renew_leases(self._owner, ids, time.time() + LEASE_SECONDS)

    def _claim_and_dispatch(self) -> None:
        with self._lock:
            free = DELIVERY_THREADS - len(self._in_flight)
        if free <= 0:
            return
        for message in self._store.claim(self._owner, free, time.time(), LEASE_SECONDS):
            with self._lock:
                self._in_flight.add(message["id"])
            self._executor.submit(self._deliver, message)

    def _deliver(self, message: dict[str, Any]) -> None:
        try:
            result = self._attempt(message)
            self._finish(message, result)
        except Exception:
            logger.exception("QStash emulator failed to deliver %s", message["id"])
        finally:
            with self._lock:
                self._in_flight.discard(message["id"])
            self._wake.set()

    def _attempt(self, message: dict[str, Any]) -> AttemptResult:
        """Send the attempt, `duplicates` times at once when the test knob asks for it."""
        copies = max(1, message["duplicates"])
        if copies == 1:
            return self._send(message)
        barrier = threading.Barrier(copies)
        results: list[AttemptResult] = [AttemptResult(0, error="not sent")] * copies

        def send_copy(index: int) -> None:
            try:
                barrier.wait(timeout=5)
            except threading.BrokenBarrierError:
                pass
            results[index] = self._send(message)

        threads = [threading.Thread(target=send_copy, args=(i,), daemon=True) for i in range(copies)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results[0]

    def _send(self, message: dict[str, Any]) -> AttemptResult:
        body = bytes(message["body"])
        headers = [
            (name, value)
            for name, values in message["header"].items()
            if name.lower() not in _RESERVED_DELIVERY_HEADERS
            for value in values
        ]
        headers += [
            ("User-Agent", "Upstash-QStash"),
            ("Upstash-Message-Id", message["id"]),
            ("Upstash-Retried", str(message["retried"])),
            ("Upstash-Signature", sign(body, message["url"], self._config.qstash_current_signing_key)),
        ]
        if message["caller_ip"]:
            headers.append(("Upstash-Caller-Ip", message["caller_ip"]))
        if message.get("schedule_id"):
            headers.append(("Upstash-Schedule-Id", message["schedule_id"]))
        try:
            response = self._http.request(
                message["method"],
                message["url"],
                content=body,
                headers=headers,
                timeout=message["timeout_s"] or DEFAULT_TIMEOUT_SECONDS,
            )
        except Exception as exc:
            return AttemptResult(0, error=f"{type(exc).__name__}: {exc}")
        response_headers: dict[str, list[str]] = {}
        for name, value in response.headers.multi_items():
            response_headers.setdefault(_canonical(name), []).append(value)
        return AttemptResult(response.status_code, response_headers, response.content)

    def _finish(self, message: dict[str, Any], result: AttemptResult) -> None:
        """Record the attempt: delivered, retry later, or failed into the DLQ; then fire callbacks."""
        now = time.time()
        with self._store.transaction() as conn:
            row = db.lock_active(conn, message["id"], self._owner, message["retried"])
            if row is None:
                return
            outcome = _response_event(result)
            common = {
                "attempts": row["attempts"] + 1,
                "last_status": result.status,
                "lease_owner": None,
                "lease_until": None,
                "updated_at": now,
            }
            dlq_id = None
            if result.ok:
                db.update_message(conn, row["id"], state="DELIVERED", **common)
                db.add_event(conn, row, "DELIVERED", now, outcome)
            elif not result.non_retryable and row["retried"] < row["max_retries"]:
                due_at = now + self._retry_delay(row, result, now)
                db.update_message(conn, row["id"], state="RETRY", retried=row["retried"] + 1, due_at=due_at, **common)
                db.add_event(conn, row, "ERROR", now, outcome)
                db.add_event(conn, row, "RETRY", now, {"nextDeliveryTime": _ms(due_at)})
            else:
                db.update_message(conn, row["id"], state="FAILED", **common)
                db.add_event(conn, row, "ERROR", now, outcome)
                db.add_event(conn, row, "FAILED", now, outcome)
                dlq_id = db.add_dlq_entry(
                    conn, row, result.status, {**message_document(row), **result.response_fields()}
                )
            self._schedule_callbacks(conn, row, result, dlq_id, now)

    def _schedule_callbacks(
        self, conn: Any, row: dict[str, Any], result: AttemptResult, dlq_id: str | None, now: float
    ) -> None:
        if row["kind"] != "message":
            return
        payload = callback_payload(row, result)
        created = []
        if row["callback"]:
            created.append(callback_message(row, "callback", row["callback"], row["callback_header"], payload, now))
        if dlq_id and row["failure_callback"]:
            created.append(
                callback_message(
                    row,
                    "failure_callback",
                    row["failure_callback"],
                    row["failure_callback_header"],
                    {**payload, "dlqId": dlq_id},
                    now,
                )
            )
        for callback in created:
            db.insert_message(conn, callback)
            db.add_event(conn, callback, "CREATED", now, {"method": callback["method"]})

    def _retry_delay(self, row: dict[str, Any], result: AttemptResult, now: float) -> float:
        """Seconds until the next try: the destination's hint, else the expression, else the default."""
        scale = self._config.qstash_backoff_scale
        for name in _RETRY_HINT_HEADERS:
            value = result.header(name)
            hinted = parse_retry_hint(value, now) if value else None
            if hinted is not None:
                return hinted * scale
        if row["retry_delay_expr"]:
            try:
                milliseconds = evaluate_retry_delay(row["retry_delay_expr"], row["retried"])
                return min(MAX_BACKOFF_SECONDS, max(0.0, milliseconds / 1000)) * scale
            except ValueError:
                logger.warning("bad retry delay %r of %s", row["retry_delay_expr"], row["id"])
        return default_backoff(row["retried"]) * scale


def _response_event(result: AttemptResult) -> dict[str, Any]:
    details: dict[str, Any] = {"responseStatus": result.status, "responseHeader": result.headers}
    details.update(_body_fields(result.body, "responseBody", "responseBodyBase64"))
    if result.error:
        details["error"] = result.error
    elif not result.ok:
        details["error"] = f"destination responded with status {result.status}"
    return details


# --- schedules -----------------------------------------------------------------------------------


def schedule_settings(headers: Headers) -> list[list[str]]:
    """The request headers a schedule replays on every firing: Content-Type and the publish `Upstash-*` ones."""
    kept: list[list[str]] = []
    for name, value in headers.items():
        lowered = name.lower()
        if lowered == "content-type" or (lowered.startswith("upstash-") and lowered not in _SCHEDULE_ONLY_HEADERS):
            kept.append([name, value])
    return kept


def build_schedule(
    destination: str, headers: Headers, body: bytes, caller_ip: str | None, now: float, clock: CronClock
) -> dict[str, Any]:
    """The schedule row for `POST /v2/schedules/{destination}`, validated as QStash would.

    `Upstash-Schedule-Id` names (and so upserts) the schedule; `Upstash-Queue-Name` enqueues its messages.
    """
    cron_text = (headers.get("Upstash-Cron") or "").strip()
    cron = _parse_cron(cron_text)
    if headers.get("Upstash-Not-Before"):
        raise ApiError(400, "Upstash-Not-Before is not supported on schedules; use Upstash-Delay")
    schedule_id = (headers.get("Upstash-Schedule-Id") or "").strip() or "scd_" + _random_id(28)
    if not _SCHEDULE_ID.fullmatch(schedule_id):
        raise ApiError(400, f"invalid Upstash-Schedule-Id header: {schedule_id!r}; use letters, digits and _.:-")
    schedule = {
        "id": schedule_id,
        "destination": check_destination(destination),
        "cron": cron_text,
        "headers": schedule_settings(headers),
        "body": body,
        "queue_name": headers.get("Upstash-Queue-Name") or None,
        "caller_ip": caller_ip,
        "created_at": now,
        "updated_at": now,
        "next_schedule_time": clock.next_fire(cron, now),
    }
    schedule_message(schedule, now, 1)
    return schedule


def schedule_message(schedule: dict[str, Any], now: float, duplicates: int) -> tuple[dict[str, Any], str | None]:
    """The message one firing of `schedule` publishes at `now`, and its deduplication key."""
    incoming = Incoming(
        destination=schedule["destination"],
        headers=Headers([(name, value) for name, value in schedule["headers"]]),
        body=bytes(schedule["body"]),
        queue=schedule["queue_name"],
        caller_ip=schedule["caller_ip"],
    )
    message, dedup_key = build_message(incoming, now, duplicates)
    message["schedule_id"] = schedule["id"]
    return message, dedup_key


def schedule_document(row: dict[str, Any], message_states: dict[str, str]) -> dict[str, Any]:
    """A schedule as `GET /v2/schedules[/{id}]` returns it (the keys `qstash.Schedule` reads)."""
    template, _ = schedule_message(row, row["created_at"], 1)
    published = message_document(template)
    doc: dict[str, Any] = {
        "scheduleId": row["id"],
        "destination": row["destination"],
        "cron": row["cron"],
        "createdAt": _ms(row["created_at"]),
        "method": template["method"],
        "retries": template["max_retries"],
        "header": template["header"],
        "isPaused": row["paused"],
        **{k: v for k, v in published.items() if k in _SCHEDULE_DOCUMENT_KEYS},
    }
    delay = template["not_before"] - template["created_at"]
    optional = {
        "delay": int(delay) if delay else None,
        "timeout": int(template["timeout_s"]) if template["timeout_s"] else None,
        "lastScheduleTime": _ms(row["last_schedule_time"]) if row["last_schedule_time"] else None,
        "nextScheduleTime": _ms(row["next_schedule_time"]) if row["next_schedule_time"] else None,
        "error": row["error"],
    }
    doc.update({k: v for k, v in optional.items() if v is not None})
    states = {
        mid: _SCHEDULE_STATES.get(message_states[mid], "IN_PROGRESS")
        for mid in row["last_message_ids"]
        if mid in message_states
    }
    if states:
        doc["lastScheduleStates"] = states
    return doc


def _parse_cron(expression: str) -> CronSchedule:
    try:
        return parse_cron(expression)
    except CronError as exc:
        raise ApiError(400, str(exc)) from exc


class Scheduler:
    """Fires due schedules: one daemon thread that sleeps until the next firing is due.

    It never sleeps more than `SCHEDULER_MAX_SLEEP`, so a schedule created through another emulator
    process on the same database is picked up too. Each firing inserts its message in the
    transaction that moves the schedule on, then wakes the delivery worker.
    """

    def __init__(
        self, store: db.QStashStore, clock: CronClock, duplicates: Callable[[], int], on_fired: Callable[[], None]
    ) -> None:
        self.clock = clock
        self._store = store
        self._duplicates = duplicates
        self._on_fired = on_fired
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qstash-emulator-scheduler", daemon=True)

    def start(self) -> None:
        """Align the stored next firings with this process's cron clock, then start firing."""
        self._store.reschedule(time.time(), self._next_from_now)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def next_time(self, row: dict[str, Any], after: float) -> float:
        """When the schedule `row` fires next after real time `after`, on this process's cron clock."""
        return self.clock.next_fire(parse_cron(row["cron"]), after)

    def set_speed(self, seconds_per_minute: float) -> None:
        """Make `seconds_per_minute` real seconds one cron minute and move every pending firing accordingly."""
        self.clock.set_speed(seconds_per_minute)
        self._store.reschedule(time.time(), self._next_from_now)
        self.wake()

    def fire_due(self) -> int:
        """Publish one message for every schedule that is due; returns how many were published."""
        now = time.time()
        fired = 0
        with self._store.transaction() as conn:
            for row in db.lock_due_schedules(conn, now, SCHEDULE_BATCH):
                changes: dict[str, Any] = {"last_schedule_time": now, "updated_at": now}
                try:
                    message, dedup_key = schedule_message(row, now, self._duplicates())
                    message_id, _ = db.insert_new_message(conn, message, dedup_key, DEDUP_WINDOW_SECONDS, now)
                    changes.update(last_message_ids=[message_id], error=None)
                    fired += 1
                except ApiError as exc:
                    changes["error"] = exc.message
                try:
                    changes["next_schedule_time"] = self.next_time(row, now)
                except CronError as exc:
                    changes.update(next_schedule_time=None, error=str(exc))
                db.update_schedule(conn, row["id"], **changes)
        return fired

    def _next_from_now(self, row: dict[str, Any]) -> float:
        return self.next_time(row, time.time())

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                if self.fire_due():
                    self._on_fired()
                due = self._store.next_schedule_due()
                pause = SCHEDULER_MAX_SLEEP if due is None else due - time.time()
            except Exception:
                logger.exception("QStash emulator scheduler iteration failed")
                pause = SCHEDULER_MAX_SLEEP
            self._wake.wait(min(SCHEDULER_MAX_SLEEP, max(0.005, pause)))


# --- the emulator handle and HTTP API ------------------------------------------------------------


class QStashEmulator:
    """What `app.extensions["qstash_emulator"]` holds: the store, the worker, the scheduler and test controls."""

    def __init__(self, config: EmulatorConfig, store: db.QStashStore, worker: DeliveryWorker) -> None:
        self.config = config
        self.store = store
        self.worker = worker
        self.scheduler = Scheduler(store, CronClock(config.qstash_cron_seconds), lambda: self.duplicates, worker.wake)
        self._duplicates = 1
        self._lock = threading.Lock()

    @property
    def duplicates(self) -> int:
        """How many concurrent copies every later message sends per attempt (default 1)."""
        with self._lock:
            return self._duplicates

    @duplicates.setter
    def duplicates(self, times: int) -> None:
        with self._lock:
            self._duplicates = times

    def start(self) -> None:
        """Start delivering messages and firing schedules."""
        self.worker.start()
        self.scheduler.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the scheduler and the delivery worker; pending messages and schedules stay in Postgres."""
        self.scheduler.stop(timeout)
        self.worker.stop(timeout)
        self.store.close()

    def drain(self, timeout: float = 10.0) -> bool:
        """Block until no message is due or in flight; False if that did not happen within `timeout`.

        Messages scheduled later (delays, backoff not yet elapsed) do not count as due.
        """
        deadline = time.monotonic() + timeout
        interval = max(0.005, min(0.05, self.config.qstash_poll_interval))
        while True:
            if not self.worker.busy() and self.store.count_pending(time.time()) == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)

    def accept(self, incoming: Incoming) -> tuple[int, dict[str, Any]]:
        """Store one published message; returns the HTTP status and publish response body."""
        now = time.time()
        message, dedup_key = build_message(incoming, now, self.duplicates)
        message_id, deduplicated = self.store.insert_message(message, dedup_key, DEDUP_WINDOW_SECONDS, now)
        if not deduplicated:
            self.worker.wake()
        return (202 if deduplicated else 201), {"messageId": message_id, "deduplicated": deduplicated}

    def create_schedule(
        self, destination: str, headers: Headers, body: bytes, caller_ip: str | None
    ) -> tuple[bool, str]:
        """Create or update (same `Upstash-Schedule-Id`) a schedule; returns (created, schedule id)."""
        schedule = build_schedule(destination, headers, body, caller_ip, time.time(), self.scheduler.clock)
        created = self.store.upsert_schedule(schedule)
        self.scheduler.wake()
        return created, schedule["id"]

    def schedule_documents(self, schedule_id: str | None = None) -> list[dict[str, Any]]:
        """Every schedule (or the one with `schedule_id`) as the schedules API returns them."""
        if schedule_id is None:
            rows = self.store.list_schedules()
        else:
            row = self.store.get_schedule(schedule_id)
            rows = [row] if row else []
        states = self.store.message_states([mid for row in rows for mid in row["last_message_ids"]])
        return [schedule_document(row, states) for row in rows]

    def resume_schedule(self, schedule_id: str) -> bool:
        """Let a paused schedule fire again from its next cron time; False if there is no such schedule."""
        resumed = self.store.resume_schedule(
            schedule_id, time.time(), lambda row: self.scheduler.next_time(row, time.time())
        )
        self.scheduler.wake()
        return resumed


def create_app(config: EmulatorConfig) -> flask.Flask:
    """The QStash v2 API as a Flask app served at its root; starts the delivery worker and the scheduler.

    Creates the `qstash_emulator` schema if absent. Stop both with
    `app.extensions["qstash_emulator"].stop()`.
    """
    store = db.QStashStore(config.database_url)
    store.ensure_schema()
    emulator = QStashEmulator(config, store, DeliveryWorker(store, config))
    app = flask.Flask(__name__)
    app.url_map.merge_slashes = False
    app.extensions["qstash_emulator"] = emulator
    _register_handlers(app, config)
    _register_publish_routes(app, emulator)
    _register_management_routes(app, emulator)
    _register_schedule_routes(app, emulator)
    _register_emulator_routes(app, emulator)
    emulator.start()
    return app


def _error(status: int, message: str) -> flask.Response:
    response = flask.jsonify(error=message)
    response.status_code = status
    return response


def _register_handlers(app: flask.Flask, config: EmulatorConfig) -> None:
    @app.before_request
    def authenticate() -> flask.Response | None:
        if flask.request.path.startswith("/_emulator/"):
            return None
        header = flask.request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else flask.request.args.get("qstash_token")
        if token and hmac.compare_digest(token.encode(), config.qstash_token.encode()):
            return None
        return _error(401, "unauthorized: pass the QStash token as `Authorization: Bearer <token>`")

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> flask.Response:
        return _error(exc.status, exc.message)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> flask.Response:
        return _error(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> flask.Response:
        logger.exception("QStash emulator request failed")
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")


def raw_destination(environ: dict[str, Any], marker: str) -> str:
    """Everything after `marker` in the raw request URI, query included, not percent-decoded.

    Works behind a mount prefix; the SDK appends the destination unescaped, so its own query string
    arrives as the request's. A `qstash_token` query parameter is removed.
    """
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        raw = raw.encode("latin-1").decode("utf-8", "replace")
    else:
        path = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1")
        raw = path.decode("utf-8", "replace")
        if environ.get("QUERY_STRING"):
            raw += "?" + environ["QUERY_STRING"]
    index = raw.find(marker)
    if index < 0:
        raise ApiError(400, "missing destination")
    path, sep, query = raw[index + len(marker) :].partition("?")
    kept = [p for p in query.split("&") if p and not p.startswith("qstash_token=")] if sep else []
    return path + ("?" + "&".join(kept) if kept else "")


def _incoming(destination: str, queue: str | None = None) -> Incoming:
    request = flask.request
    return Incoming(destination, Headers(request.headers), request.get_data(), queue, request.remote_addr)


def _json_body() -> Any:
    data = flask.request.get_data()
    if not data.strip():
        return None
    try:
        return json.loads(data)
    except ValueError as exc:
        raise ApiError(400, f"invalid JSON body: {exc}") from exc


def _json(payload: Any, status: int = 200) -> flask.Response:
    response = flask.jsonify(payload)
    response.status_code = status
    return response


def _register_publish_routes(app: flask.Flask, emulator: QStashEmulator) -> None:
    @app.post("/v2/publish/<path:destination>")
    def publish(destination: str) -> flask.Response:
        status, body = emulator.accept(_incoming(raw_destination(flask.request.environ, "/v2/publish/")))
        return _json(body, status)

    @app.post("/v2/enqueue/<queue>/<path:destination>")
    def enqueue(queue: str, destination: str) -> flask.Response:
        rest = raw_destination(flask.request.environ, "/v2/enqueue/")
        _, _, target = rest.partition("/")
        status, body = emulator.accept(_incoming(target, queue))
        return _json(body, status)

    @app.post("/v2/batch")
    def batch() -> flask.Response:
        items = _json_body()
        if not isinstance(items, list):
            raise ApiError(400, "batch body must be a JSON array of {destination, headers, body, queue}")
        return _json([_batch_item(emulator, item) for item in items], 201)


def _batch_item(emulator: QStashEmulator, item: Any) -> dict[str, Any]:
    """Publish one batch element; a bad element yields an error entry and the rest still go out."""
    try:
        if not isinstance(item, dict) or not isinstance(item.get("destination"), str):
            raise ApiError(400, "each batch element needs a string `destination`")
        headers = item.get("headers") or {}
        if not isinstance(headers, dict):
            raise ApiError(400, "batch element `headers` must be an object")
        incoming = Incoming(
            destination=item["destination"],
            headers=Headers({str(k): str(v) for k, v in headers.items()}),
            body=_batch_body(item.get("body")),
            queue=item.get("queue") or None,
            caller_ip=flask.request.remote_addr,
        )
        return emulator.accept(incoming)[1]
    except ApiError as exc:
        return {"error": exc.message}


def _batch_body(body: Any) -> bytes:
    if body is None:
        return b""
    return body.encode() if isinstance(body, str) else json.dumps(body).encode()


def _page_params(default_count: int) -> tuple[int | None, int]:
    args = flask.request.args
    cursor = args.get("cursor") or None
    try:
        count = min(max(1, int(args.get("count", default_count))), default_count)
        return (int(cursor) if cursor else None), count
    except ValueError as exc:
        raise ApiError(400, f"invalid cursor or count: {exc}") from exc


def _register_management_routes(app: flask.Flask, emulator: QStashEmulator) -> None:
    store = emulator.store

    @app.get("/v2/messages/<message_id>")
    def get_message(message_id: str) -> flask.Response:
        row = store.get_message(message_id)
        if row is None or row["state"] not in db.PENDING_STATES:
            raise ApiError(404, f"message {message_id} not found")
        return _json(message_document(row))

    @app.delete("/v2/messages/<message_id>")
    def cancel_message(message_id: str) -> flask.Response:
        if store.cancel([message_id], time.time()) == 0:
            raise ApiError(404, f"message {message_id} not found")
        return flask.Response(status=202)

    @app.delete("/v2/messages")
    def cancel_messages() -> flask.Response:
        body = _json_body()
        ids = body.get("messageIds") if isinstance(body, dict) else None
        return _json({"cancelled": store.cancel(ids, time.time())})

    @app.get("/v2/events")
    @app.get("/v2/logs")
    def list_events() -> flask.Response:
        cursor, count = _page_params(1000)
        filters = {**flask.request.args.to_dict(), "messageIds": flask.request.args.getlist("messageIds")}
        rows = store.list_events(filters, cursor, count)
        next_cursor = str(rows[count - 1]["id"]) if len(rows) > count else None
        key = "logs" if flask.request.path.endswith("/logs") else "events"
        return _json({"cursor": next_cursor, key: [event_document(r) for r in rows[:count]]})

    @app.get("/v2/dlq")
    def list_dlq() -> flask.Response:
        cursor, count = _page_params(100)
        rows = store.list_dlq(flask.request.args.to_dict(), cursor, count)
        next_cursor = str(rows[count - 1]["seq"]) if len(rows) > count else None
        return _json({"cursor": next_cursor, "messages": [r["document"] for r in rows[:count]]})

    @app.get("/v2/dlq/<dlq_id>")
    def get_dlq(dlq_id: str) -> flask.Response:
        row = store.get_dlq(dlq_id)
        if row is None:
            raise ApiError(404, f"dlq message {dlq_id} not found")
        return _json(row["document"])

    @app.delete("/v2/dlq/<dlq_id>")
    def delete_dlq(dlq_id: str) -> flask.Response:
        if store.delete_dlq([dlq_id]) == 0:
            raise ApiError(404, f"dlq message {dlq_id} not found")
        return flask.Response(status=200)

    @app.delete("/v2/dlq")
    def delete_dlq_many() -> flask.Response:
        body = _json_body()
        ids = body.get("dlqIds") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            raise ApiError(400, 'body must be {"dlqIds": [...]}')
        return _json({"deleted": store.delete_dlq([str(i) for i in ids])})

    @app.get("/v2/keys")
    def keys() -> flask.Response:
        config = emulator.config
        return _json({"current": config.qstash_current_signing_key, "next": config.qstash_next_signing_key})

    @app.post("/v2/keys/rotate")
    def rotate_keys() -> flask.Response:
        raise ApiError(400, "the emulator's signing keys come from its configuration and cannot be rotated")


def _register_schedule_routes(app: flask.Flask, emulator: QStashEmulator) -> None:
    store = emulator.store

    @app.post("/v2/schedules/<path:destination>")
    def create_schedule(destination: str) -> flask.Response:
        request = flask.request
        target = raw_destination(request.environ, "/v2/schedules/")
        created, schedule_id = emulator.create_schedule(
            target, Headers(request.headers), request.get_data(), request.remote_addr
        )
        return _json({"scheduleId": schedule_id}, 201 if created else 200)

    @app.get("/v2/schedules")
    def list_schedules() -> flask.Response:
        return _json(emulator.schedule_documents())

    @app.get("/v2/schedules/<schedule_id>")
    def get_schedule(schedule_id: str) -> flask.Response:
        found = emulator.schedule_documents(schedule_id)
        if not found:
            raise ApiError(404, f"schedule {schedule_id} not found")
        return _json(found[0])

    @app.delete("/v2/schedules/<schedule_id>")
    def delete_schedule(schedule_id: str) -> flask.Response:
        if not store.delete_schedule(schedule_id):
            raise ApiError(404, f"schedule {schedule_id} not found")
        return flask.Response(status=200)

    @app.route("/v2/schedules/<schedule_id>/pause", methods=["PATCH", "POST"])
    def pause_schedule(schedule_id: str) -> flask.Response:
        if not store.pause_schedule(schedule_id, time.time()):
            raise ApiError(404, f"schedule {schedule_id} not found")
        return flask.Response(status=200)

    @app.route("/v2/schedules/<schedule_id>/resume", methods=["PATCH", "POST"])
    def resume_schedule(schedule_id: str) -> flask.Response:
        if not emulator.resume_schedule(schedule_id):
            raise ApiError(404, f"schedule {schedule_id} not found")
        return flask.Response(status=200)


def _register_emulator_routes(app: flask.Flask, emulator: QStashEmulator) -> None:
    @app.get("/_emulator/messages")
    def all_messages() -> flask.Response:
        return _json({"messages": [emulator_document(row) for row in emulator.store.list_messages()]})

    @app.get("/_emulator/duplicates")
    def get_duplicates() -> flask.Response:
        return _json({"times": emulator.duplicates})

    @app.post("/_emulator/duplicates")
    def set_duplicates() -> flask.Response:
        body = _json_body()
        times = body.get("times") if isinstance(body, dict) else None
        if not isinstance(times, int) or isinstance(times, bool) or times < 1:
            raise ApiError(400, 'body must be {"times": <integer >= 1>}')
        emulator.duplicates = times
        return _json({"times": times})

    @app.get("/_emulator/cron")
    def get_cron_speed() -> flask.Response:
        return _json({"seconds_per_minute": emulator.scheduler.clock.seconds_per_minute})

    @app.post("/_emulator/cron")
    def set_cron_speed() -> flask.Response:
        body = _json_body()
        seconds = body.get("seconds_per_minute") if isinstance(body, dict) else None
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 0 < seconds < math.inf:
            raise ApiError(400, 'body must be {"seconds_per_minute": <number > 0>}')
        emulator.scheduler.set_speed(float(seconds))
        return _json({"seconds_per_minute": emulator.scheduler.clock.seconds_per_minute})
