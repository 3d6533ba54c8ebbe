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

Modules, one concept each: `app` (the Flask app, auth and errors), `routes` (the HTTP API),
`emulator` (the handle tests hold), `messages` (accepting a publish), `delivery` (attempts,
retries, DLQ, callbacks), `schedules` and `cron` (firing on a cron), `store` (Postgres), `documents`
(response JSON), `signing`, `retry`, `headers` and `errors`.
"""

from infra.local.emulators.qstash.app import create_app
from infra.local.emulators.qstash.cron import CronClock, CronError, CronSchedule, parse_cron
from infra.local.emulators.qstash.delivery import AttemptResult, DeliveryWorker, callback_payload
from infra.local.emulators.qstash.documents import emulator_document, event_document, message_document
from infra.local.emulators.qstash.emulator import QStashEmulator
from infra.local.emulators.qstash.errors import ApiError
from infra.local.emulators.qstash.headers import parse_bool, parse_duration
from infra.local.emulators.qstash.messages import (
    DEDUP_WINDOW_SECONDS,
    DEFAULT_RETRIES,
    CallbackSettings,
    Incoming,
    build_message,
    callback_message,
    callback_settings,
    check_destination,
)
from infra.local.emulators.qstash.retry import default_backoff, evaluate_retry_delay, parse_retry_hint
from infra.local.emulators.qstash.routes import raw_destination
from infra.local.emulators.qstash.schedules import Scheduler, build_schedule, schedule_document
from infra.local.emulators.qstash.signing import sign

__all__ = [
    "DEDUP_WINDOW_SECONDS",
    "DEFAULT_RETRIES",
    "ApiError",
    "AttemptResult",
    "CallbackSettings",
    "CronClock",
    "CronError",
    "CronSchedule",
    "DeliveryWorker",
    "Incoming",
    "QStashEmulator",
    "Scheduler",
    "build_message",
    "build_schedule",
    "callback_message",
    "callback_payload",
    "callback_settings",
    "check_destination",
    "create_app",
    "default_backoff",
    "emulator_document",
    "evaluate_retry_delay",
    "event_document",
    "message_document",
    "parse_bool",
    "parse_cron",
    "parse_duration",
    "parse_retry_hint",
    "raw_destination",
    "schedule_document",
    "sign",
]
