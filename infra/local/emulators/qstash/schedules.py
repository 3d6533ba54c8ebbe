"""Schedules: validating `POST /v2/schedules/{destination}`, the documents `GET` returns, and firing.

A schedule keeps the publish headers and body it was created with and replays them on every
firing through `build_message`, so each firing is an ordinary message (signed, retried, with
callbacks and deduplication) that also carries `Upstash-Schedule-Id`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from werkzeug.datastructures import Headers

from infra.local.emulators.qstash import store as db
from infra.local.emulators.qstash.cron import CronClock, CronError, CronSchedule, parse_cron
from infra.local.emulators.qstash.documents import message_document, ms
from infra.local.emulators.qstash.errors import ApiError
from infra.local.emulators.qstash.messages import (
    DEDUP_WINDOW_SECONDS,
    Incoming,
    build_message,
    check_destination,
)
from infra.local.emulators.qstash.signing import random_id

logger = logging.getLogger(__name__)


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
    schedule_id = (headers.get("Upstash-Schedule-Id") or "").strip() or "scd_" + random_id(28)
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
        "createdAt": ms(row["created_at"]),
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
        "lastScheduleTime": ms(row["last_schedule_time"]) if row["last_schedule_time"] else None,
        "nextScheduleTime": ms(row["next_schedule_time"]) if row["next_schedule_time"] else None,
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
