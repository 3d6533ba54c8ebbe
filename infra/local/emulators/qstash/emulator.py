"""The emulator handle: the store, the delivery worker, the scheduler and the test controls together."""

from __future__ import annotations

import threading
import time
from typing import Any

from werkzeug.datastructures import Headers

from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.qstash import store as db
from infra.local.emulators.qstash.cron import CronClock
from infra.local.emulators.qstash.delivery import DeliveryWorker
from infra.local.emulators.qstash.messages import DEDUP_WINDOW_SECONDS, Incoming, build_message
from infra.local.emulators.qstash.schedules import Scheduler, build_schedule, schedule_document


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
