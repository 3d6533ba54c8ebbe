"""Delivering messages: the worker that claims due messages, sends signed attempts and records outcomes.

An attempt ends delivered (2xx), scheduled for a retry (the destination's hint, the message's
expression or the default backoff, scaled by `EmulatorConfig.qstash_backoff_scale`), or failed into
the DLQ; callbacks and the failure callback are then queued as messages of their own.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.qstash import store as db
from infra.local.emulators.qstash.documents import b64, body_fields, message_document, ms
from infra.local.emulators.qstash.headers import parse_bool
from infra.local.emulators.qstash.messages import callback_message
from infra.local.emulators.qstash.retry import (
    MAX_BACKOFF_SECONDS,
    RETRY_HINT_HEADERS,
    default_backoff,
    evaluate_retry_delay,
    parse_retry_hint,
)
from infra.local.emulators.qstash.signing import sign

logger = logging.getLogger(__name__)


DEFAULT_TIMEOUT_SECONDS = 900.0
"""Free-plan "max HTTP response duration", used when a message sets no `Upstash-Timeout`."""
DELIVERY_THREADS = 8
LEASE_SECONDS = 15.0
"""How long a claimed attempt stays owned without renewal; a dead emulator's attempts restart after it."""
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
            **body_fields(self.body, "responseBody", "responseBodyBase64"),
        }


def callback_payload(row: dict[str, Any], result: AttemptResult) -> dict[str, Any]:
    """The JSON QStash posts to `Upstash-Callback` after an attempt (and, plus `dlqId`, on failure)."""
    payload: dict[str, Any] = {
        "status": result.status,
        "header": result.headers,
        "body": b64(result.body),
        "retried": row["retried"],
        "maxRetries": row["max_retries"],
        "sourceMessageId": row["id"],
        "url": row["url"],
        "method": row["method"],
        "sourceHeader": row["header"],
        "sourceBody": b64(bytes(row["body"])),
        "notBefore": str(ms(row["not_before"])),
        "createdAt": str(ms(row["created_at"])),
    }
    if row["caller_ip"]:
        payload["callerIP"] = row["caller_ip"]
    if row["queue_name"]:
        payload["queueName"] = row["queue_name"]
    if row.get("schedule_id"):
        payload["scheduleId"] = row["schedule_id"]
    return payload


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
                db.add_event(conn, row, "RETRY", now, {"nextDeliveryTime": ms(due_at)})
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
        for name in RETRY_HINT_HEADERS:
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
    details.update(body_fields(result.body, "responseBody", "responseBodyBase64"))
    if result.error:
        details["error"] = result.error
    elif not result.ok:
        details["error"] = f"destination responded with status {result.status}"
    return details
