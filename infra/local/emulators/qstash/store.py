"""Postgres persistence of the QStash emulator: messages, events, DLQ, deduplication keys and schedules.

Everything lives in the schema `qstash_emulator`, so the emulator can share a database with the
product. Times are unix seconds (`double precision`) taken from the emulator's clock, which keeps
delay and backoff arithmetic in one place. Rows are plain dicts (`dict_row`).

Claiming is the only delicate operation: due messages are locked with `FOR UPDATE SKIP LOCKED` and
leased to one worker (`lease_owner`, `lease_until`), under a transaction-scoped advisory lock so
that flow-control and queue limits are counted consistently even with several emulator processes
on one database. A lease that is not renewed (the process died) expires and the attempt is made
again: delivery is at-least-once, as in QStash.

Schedules fire the same way across processes: the due ones are locked `FOR UPDATE SKIP LOCKED`, and
the message they produce is inserted in the same transaction that moves `next_schedule_time` on, so
each cron slot yields one message however many emulators share the database.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

SCHEMA = "qstash_emulator"
PENDING_STATES = ("CREATED", "RETRY", "ACTIVE")
"""States of a message that still has to be delivered (ACTIVE: an attempt is in flight)."""

_SCHEMA_LOCK = 0x05_7A_54_01
_CLAIM_LOCK = 0x05_7A_54_02
_CLAIM_SCAN = 500

_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.messages (
    seq bigserial NOT NULL,
    id text PRIMARY KEY,
    kind text NOT NULL DEFAULT 'message',
    source_message_id text,
    url text NOT NULL,
    method text NOT NULL,
    body bytea NOT NULL,
    header jsonb NOT NULL,
    callback text,
    failure_callback text,
    callback_header jsonb NOT NULL DEFAULT '{{}}',
    failure_callback_header jsonb NOT NULL DEFAULT '{{}}',
    max_retries integer NOT NULL,
    retry_delay_expr text,
    timeout_s double precision,
    queue_name text,
    flow_key text,
    flow_parallelism integer,
    flow_rate integer,
    flow_period_s double precision,
    label text,
    caller_ip text,
    duplicates integer NOT NULL DEFAULT 1,
    state text NOT NULL,
    retried integer NOT NULL DEFAULT 0,
    attempts integer NOT NULL DEFAULT 0,
    created_at double precision NOT NULL,
    not_before double precision NOT NULL,
    due_at double precision NOT NULL,
    lease_owner text,
    lease_until double precision,
    last_status integer,
    updated_at double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_pending_due ON {SCHEMA}.messages (due_at)
    WHERE state IN ('CREATED', 'RETRY', 'ACTIVE');
CREATE INDEX IF NOT EXISTS messages_queue ON {SCHEMA}.messages (queue_name, seq)
    WHERE queue_name IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_flow ON {SCHEMA}.messages (flow_key) WHERE flow_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS {SCHEMA}.events (
    id bigserial PRIMARY KEY,
    time_ms bigint NOT NULL,
    message_id text NOT NULL,
    state text NOT NULL,
    url text NOT NULL,
    queue_name text,
    label text,
    flow_key text,
    extra jsonb NOT NULL DEFAULT '{{}}'
);
CREATE INDEX IF NOT EXISTS events_message ON {SCHEMA}.events (message_id);
CREATE TABLE IF NOT EXISTS {SCHEMA}.dlq (
    seq bigserial NOT NULL,
    dlq_id text PRIMARY KEY,
    message_id text NOT NULL,
    url text NOT NULL,
    queue_name text,
    label text,
    response_status integer NOT NULL,
    created_ms bigint NOT NULL,
    document jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.dedup (
    key text PRIMARY KEY,
    message_id text NOT NULL,
    expires_at double precision NOT NULL
);
ALTER TABLE {SCHEMA}.messages ADD COLUMN IF NOT EXISTS schedule_id text;
ALTER TABLE {SCHEMA}.events ADD COLUMN IF NOT EXISTS schedule_id text;
CREATE TABLE IF NOT EXISTS {SCHEMA}.schedules (
    id text PRIMARY KEY,
    destination text NOT NULL,
    cron text NOT NULL,
    headers jsonb NOT NULL,
    body bytea NOT NULL,
    queue_name text,
    caller_ip text,
    paused boolean NOT NULL DEFAULT false,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    last_schedule_time double precision,
    next_schedule_time double precision,
    last_message_ids jsonb NOT NULL DEFAULT '[]',
    error text
);
CREATE INDEX IF NOT EXISTS schedules_due ON {SCHEMA}.schedules (next_schedule_time) WHERE NOT paused;
"""

_MESSAGE_COLUMNS = (
    "id",
    "kind",
    "source_message_id",
    "url",
    "method",
    "body",
    "header",
    "callback",
    "failure_callback",
    "callback_header",
    "failure_callback_header",
    "max_retries",
    "retry_delay_expr",
    "timeout_s",
    "queue_name",
    "flow_key",
    "flow_parallelism",
    "flow_rate",
    "flow_period_s",
    "label",
    "caller_ip",
    "duplicates",
    "schedule_id",
    "state",
    "created_at",
    "not_before",
    "due_at",
    "updated_at",
)
_JSON_COLUMNS = {"header", "callback_header", "failure_callback_header"}


def _relaxed_commit(conn: psycopg.Connection[Any]) -> None:
    """Emulator commits skip the WAL flush wait: a crashed emulator process loses nothing (Postgres keeps the
    commit); only an OS crash could drop the last fraction of a second, which a local stack can afford."""
    conn.autocommit = True
    conn.execute("SET synchronous_commit = off")
    conn.autocommit = False


class QStashStore:
    """Thin data-access layer over the `qstash_emulator` schema, on a small connection pool."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._pool = ConnectionPool(database_url, min_size=1, max_size=12, open=True, name="qstash-emulator",
                                    kwargs={"prepare_threshold": None, "row_factory": dict_row},
                                    configure=_relaxed_commit)

    def connect(self) -> AbstractContextManager[psycopg.Connection[dict[str, Any]]]:
        """A pooled connection for one `with` block (committed, or rolled back on error, when returned)."""
        return self._pool.connection()

    def close(self) -> None:
        """Close the pool."""
        self._pool.close()

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """A connection inside one transaction, committed on success and closed afterwards."""
        with self.connect() as conn, conn.transaction():
            yield conn

    def ensure_schema(self) -> None:
        """Create the schema and tables if absent (serialised so concurrent emulators do not race)."""
        with self.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            conn.execute(_DDL)

    def insert_message(
        self, message: dict[str, Any], dedup_key: str | None, dedup_ttl: float, now: float
    ) -> tuple[str, bool]:
        """Store a new message unless `dedup_key` was seen within its window.

        Returns `(message_id, deduplicated)`; a duplicate returns the id of the original.
        """
        with self.transaction() as conn:
            return insert_new_message(conn, message, dedup_key, dedup_ttl, now)

    def claim(self, owner: str, limit: int, now: float, lease_seconds: float) -> list[dict[str, Any]]:
        """Lease up to `limit` due messages to `owner`, honouring queue FIFO and flow-control limits."""
        with self.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CLAIM_LOCK,))
            candidates = conn.execute(
                f"""SELECT * FROM {SCHEMA}.messages
                    WHERE state = ANY(%s) AND due_at <= %s AND (lease_until IS NULL OR lease_until < %s)
                    ORDER BY due_at, seq LIMIT %s FOR UPDATE SKIP LOCKED""",
                (list(PENDING_STATES), now, now, _CLAIM_SCAN),
            ).fetchall()
            chosen = _admissible(conn, candidates, limit, now)
            if not chosen:
                return []
            conn.execute(
                f"""UPDATE {SCHEMA}.messages SET state = 'ACTIVE', lease_owner = %s, lease_until = %s,
                    updated_at = %s WHERE id = ANY(%s)""",
                (owner, now + lease_seconds, now, [m["id"] for m in chosen]),
            )
            for message in chosen:
                message.update(state="ACTIVE", lease_owner=owner, lease_until=now + lease_seconds)
                add_event(conn, message, "ACTIVE", now, {"retried": message["retried"]})
        return chosen

    def renew_leases(self, owner: str, message_ids: Sequence[str], until: float) -> None:
        """Extend the leases `owner` holds on in-flight messages."""
        if not message_ids:
            return
        with self.transaction() as conn:
            conn.execute(
                f"""UPDATE {SCHEMA}.messages SET lease_until = %s
                    WHERE lease_owner = %s AND state = 'ACTIVE' AND id = ANY(%s)""",
                (until, owner, list(message_ids)),
            )

    def count_pending(self, now: float) -> int:
        """Messages due now or with an attempt in flight."""
        with self.connect() as conn:
            row = conn.execute(
                f"SELECT count(*) AS n FROM {SCHEMA}.messages WHERE state = ANY(%s) AND due_at <= %s",
                (list(PENDING_STATES), now),
            ).fetchone()
        return int(row["n"]) if row else 0

    def get_message(self, message_id: str) -> dict[str, Any] | None:
        with self.connect() as conn:
            return conn.execute(f"SELECT * FROM {SCHEMA}.messages WHERE id = %s", (message_id,)).fetchone()

    def list_messages(self) -> list[dict[str, Any]]:
        with self.connect() as conn:
            return conn.execute(f"SELECT * FROM {SCHEMA}.messages ORDER BY seq").fetchall()

    def cancel(self, message_ids: Sequence[str] | None, now: float) -> int:
        """Cancel pending messages (all of them when `message_ids` is None); returns how many."""
        with self.transaction() as conn:
            condition, params = ("", []) if message_ids is None else ("AND id = ANY(%s)", [list(message_ids)])
            rows = conn.execute(
                f"""UPDATE {SCHEMA}.messages SET state = 'CANCELED', lease_owner = NULL, lease_until = NULL,
                    updated_at = %s WHERE state = ANY(%s) {condition} RETURNING *""",
                [now, list(PENDING_STATES), *params],
            ).fetchall()
            for row in rows:
                add_event(conn, row, "CANCELED", now, {})
        return len(rows)

    def list_events(self, filters: dict[str, Any], cursor: int | None, count: int) -> list[dict[str, Any]]:
        """Events newest first, at most `count + 1` (the extra one tells that a next page exists)."""
        clauses, params = _event_filters(filters)
        if cursor is not None:
            clauses.append("id < %s")
            params.append(cursor)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self.connect() as conn:
            return conn.execute(
                f"SELECT * FROM {SCHEMA}.events {where} ORDER BY id DESC LIMIT %s", [*params, count + 1]
            ).fetchall()

    def list_dlq(self, filters: dict[str, Any], cursor: int | None, count: int) -> list[dict[str, Any]]:
        """DLQ entries oldest first, at most `count + 1`."""
        clauses, params = _dlq_filters(filters)
        if cursor is not None:
            clauses.append("seq > %s")
            params.append(cursor)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self.connect() as conn:
            return conn.execute(
                f"SELECT * FROM {SCHEMA}.dlq {where} ORDER BY seq LIMIT %s", [*params, count + 1]
            ).fetchall()

    def get_dlq(self, dlq_id: str) -> dict[str, Any] | None:
        with self.connect() as conn:
            return conn.execute(f"SELECT * FROM {SCHEMA}.dlq WHERE dlq_id = %s", (dlq_id,)).fetchone()

    def delete_dlq(self, dlq_ids: Sequence[str]) -> int:
        with self.transaction() as conn:
            cursor = conn.execute(f"DELETE FROM {SCHEMA}.dlq WHERE dlq_id = ANY(%s)", (list(dlq_ids),))
            return cursor.rowcount

    def upsert_schedule(self, schedule: dict[str, Any]) -> bool:
        """Create the schedule, or replace the settings of the one with its id; True when created.

        An update keeps the creation time, the pause state and the record of the last firing.
        """
        columns = ("id", "destination", "cron", "headers", "body", "queue_name", "caller_ip", "created_at",
                   "updated_at", "next_schedule_time")
        values = [Jsonb(schedule[c]) if c == "headers" else schedule[c] for c in columns]
        with self.transaction() as conn:
            row = conn.execute(
                f"""INSERT INTO {SCHEMA}.schedules ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})
                    ON CONFLICT (id) DO UPDATE SET destination = EXCLUDED.destination, cron = EXCLUDED.cron,
                        headers = EXCLUDED.headers, body = EXCLUDED.body, queue_name = EXCLUDED.queue_name,
                        caller_ip = EXCLUDED.caller_ip, updated_at = EXCLUDED.updated_at, error = NULL,
                        next_schedule_time = CASE WHEN {SCHEMA}.schedules.paused THEN NULL
                                                  ELSE EXCLUDED.next_schedule_time END
                    RETURNING (xmax = 0) AS created""",
                values,
            ).fetchone()
        return bool(row and row["created"])

    def get_schedule(self, schedule_id: str) -> dict[str, Any] | None:
        with self.connect() as conn:
            return conn.execute(f"SELECT * FROM {SCHEMA}.schedules WHERE id = %s", (schedule_id,)).fetchone()

    def list_schedules(self) -> list[dict[str, Any]]:
        with self.connect() as conn:
            return conn.execute(f"SELECT * FROM {SCHEMA}.schedules ORDER BY created_at, id").fetchall()

    def delete_schedule(self, schedule_id: str) -> bool:
        """Forget the schedule; messages it already produced are still delivered."""
        with self.transaction() as conn:
            return conn.execute(f"DELETE FROM {SCHEMA}.schedules WHERE id = %s", (schedule_id,)).rowcount > 0

    def pause_schedule(self, schedule_id: str, now: float) -> bool:
        """Stop the schedule producing messages; False if there is no such schedule."""
        with self.transaction() as conn:
            cursor = conn.execute(
                f"""UPDATE {SCHEMA}.schedules SET paused = true, next_schedule_time = NULL, updated_at = %s
                    WHERE id = %s""",
                (now, schedule_id),
            )
            return cursor.rowcount > 0

    def resume_schedule(self, schedule_id: str, now: float, next_time: Callable[[dict[str, Any]], float]) -> bool:
        """Let a paused schedule fire again from `next_time(row)` on; False if there is no such schedule."""
        with self.transaction() as conn:
            row = conn.execute(
                f"SELECT * FROM {SCHEMA}.schedules WHERE id = %s FOR UPDATE", (schedule_id,)
            ).fetchone()
            if row is None:
                return False
            if row["paused"]:
                update_schedule(conn, schedule_id, paused=False, next_schedule_time=next_time(row), updated_at=now)
        return True

    def reschedule(self, now: float, next_time: Callable[[dict[str, Any]], float]) -> None:
        """Recompute the next firing of every active schedule not yet due (after the cron clock changed).

        Schedules already due keep their time, so one missed while the emulator was down fires once now.
        """
        with self.transaction() as conn:
            rows = conn.execute(
                f"""SELECT * FROM {SCHEMA}.schedules WHERE NOT paused AND next_schedule_time > %s
                    FOR UPDATE SKIP LOCKED""",
                (now,),
            ).fetchall()
            for row in rows:
                update_schedule(conn, row["id"], next_schedule_time=next_time(row))

    def next_schedule_due(self) -> float | None:
        """The earliest `next_schedule_time` of an active schedule (None when there is none)."""
        with self.connect() as conn:
            row = conn.execute(
                f"SELECT min(next_schedule_time) AS t FROM {SCHEMA}.schedules WHERE NOT paused"
            ).fetchone()
        return row["t"] if row else None

    def message_states(self, message_ids: Sequence[str]) -> dict[str, str]:
        """The current state of each of the given messages that still exists."""
        if not message_ids:
            return {}
        with self.connect() as conn:
            rows = conn.execute(
                f"SELECT id, state FROM {SCHEMA}.messages WHERE id = ANY(%s)", (list(message_ids),)
            ).fetchall()
        return {row["id"]: row["state"] for row in rows}


def insert_new_message(
    conn: psycopg.Connection[Any], message: dict[str, Any], dedup_key: str | None, dedup_ttl: float, now: float
) -> tuple[str, bool]:
    """Insert a new message and its CREATED event, unless `dedup_key` is live; see `QStashStore.insert_message`."""
    if dedup_key is not None:
        existing = _claim_dedup_key(conn, dedup_key, message["id"], now + dedup_ttl, now)
        if existing is not None:
            return existing, True
    insert_message(conn, message)
    add_event(conn, message, "CREATED", now, _creation_details(message))
    return message["id"], False


def lock_due_schedules(conn: psycopg.Connection[Any], now: float, limit: int) -> list[dict[str, Any]]:
    """Active schedules whose `next_schedule_time` has come, locked for this transaction."""
    return conn.execute(
        f"""SELECT * FROM {SCHEMA}.schedules WHERE NOT paused AND next_schedule_time <= %s
            ORDER BY next_schedule_time LIMIT %s FOR UPDATE SKIP LOCKED""",
        (now, limit),
    ).fetchall()


def update_schedule(conn: psycopg.Connection[Any], schedule_id: str, **changes: Any) -> None:
    """Set the given columns of one schedule."""
    values = [Jsonb(v) if c in ("headers", "last_message_ids") else v for c, v in changes.items()]
    assignments = ", ".join(f"{column} = %s" for column in changes)
    conn.execute(f"UPDATE {SCHEMA}.schedules SET {assignments} WHERE id = %s", [*values, schedule_id])


def insert_message(conn: psycopg.Connection[Any], message: dict[str, Any]) -> None:
    """Insert one message row (the dict carries every column of `_MESSAGE_COLUMNS`)."""
    values = [Jsonb(message[c]) if c in _JSON_COLUMNS else message[c] for c in _MESSAGE_COLUMNS]
    placeholders = ", ".join(["%s"] * len(_MESSAGE_COLUMNS))
    conn.execute(f"INSERT INTO {SCHEMA}.messages ({', '.join(_MESSAGE_COLUMNS)}) VALUES ({placeholders})", values)


def add_event(
    conn: psycopg.Connection[Any], message: dict[str, Any], state: str, now: float, extra: dict[str, Any]
) -> None:
    """Append one log entry for `message` in `state` (with the message's `retryDelayExpr`, as QStash logs it)."""
    if message.get("retry_delay_expr"):
        extra = {"retryDelayExpr": message["retry_delay_expr"], **extra}
    conn.execute(
        f"""INSERT INTO {SCHEMA}.events (time_ms, message_id, state, url, queue_name, label, flow_key,
            schedule_id, extra) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            int(now * 1000),
            message["id"],
            state,
            message["url"],
            message.get("queue_name"),
            message.get("label"),
            message.get("flow_key"),
            message.get("schedule_id"),
            Jsonb(extra),
        ),
    )


def lock_active(conn: psycopg.Connection[Any], message_id: str, owner: str, retried: int) -> dict[str, Any] | None:
    """The message if `owner` still holds the lease for attempt `retried` (locked for update)."""
    return conn.execute(
        f"""SELECT * FROM {SCHEMA}.messages WHERE id = %s AND state = 'ACTIVE' AND lease_owner = %s
            AND retried = %s FOR UPDATE""",
        (message_id, owner, retried),
    ).fetchone()


def update_message(conn: psycopg.Connection[Any], message_id: str, **changes: Any) -> None:
    """Set the given columns of one message."""
    assignments = ", ".join(f"{column} = %s" for column in changes)
    conn.execute(f"UPDATE {SCHEMA}.messages SET {assignments} WHERE id = %s", [*changes.values(), message_id])


def add_dlq_entry(
    conn: psycopg.Connection[Any], message: dict[str, Any], response_status: int, document: dict[str, Any]
) -> str:
    """Store a dead letter; returns its id, shaped like QStash's (`<unix ms>-<sequence>`)."""
    now_ms = int(time.time() * 1000)
    seq = conn.execute(f"SELECT nextval(pg_get_serial_sequence('{SCHEMA}.dlq', 'seq')) AS s").fetchone()
    dlq_id = f"{now_ms}-{seq['s']}"
    conn.execute(
        f"""INSERT INTO {SCHEMA}.dlq (seq, dlq_id, message_id, url, queue_name, label, response_status,
            created_ms, document) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            seq["s"],
            dlq_id,
            message["id"],
            message["url"],
            message.get("queue_name"),
            message.get("label"),
            response_status,
            now_ms,
            Jsonb({**document, "dlqId": dlq_id}),
        ),
    )
    return dlq_id


def _claim_dedup_key(
    conn: psycopg.Connection[Any], key: str, message_id: str, expires_at: float, now: float
) -> str | None:
    """Take `key` for `message_id`; returns the id holding a live key instead, if there is one."""
    taken = conn.execute(
        f"""INSERT INTO {SCHEMA}.dedup (key, message_id, expires_at) VALUES (%s, %s, %s)
            ON CONFLICT (key) DO UPDATE SET message_id = EXCLUDED.message_id, expires_at = EXCLUDED.expires_at
            WHERE {SCHEMA}.dedup.expires_at <= %s RETURNING message_id""",
        (key, message_id, expires_at, now),
    ).fetchone()
    if taken is not None:
        return None
    existing = conn.execute(f"SELECT message_id FROM {SCHEMA}.dedup WHERE key = %s", (key,)).fetchone()
    return existing["message_id"] if existing else None


def _admissible(
    conn: psycopg.Connection[Any], candidates: list[dict[str, Any]], limit: int, now: float
) -> list[dict[str, Any]]:
    """The candidates that may start now: queue heads only, and within their flow-control limits."""
    queue_heads = _queue_heads(conn, {c["queue_name"] for c in candidates if c["queue_name"]})
    flow_keys = {c["flow_key"] for c in candidates if c["flow_key"]}
    in_flight = _flow_in_flight(conn, flow_keys, now)
    started = _flow_started(conn, [c for c in candidates if c["flow_key"] and c["flow_rate"]], now)
    chosen: list[dict[str, Any]] = []
    for message in candidates:
        if len(chosen) >= limit:
            break
        if message["queue_name"] and queue_heads.get(message["queue_name"]) != message["id"]:
            continue
        key = message["flow_key"]
        if key:
            if message["flow_parallelism"] and in_flight[key] >= message["flow_parallelism"]:
                continue
            if message["flow_rate"] and started[key] >= message["flow_rate"]:
                continue
            in_flight[key] += 1
            started[key] += 1
        chosen.append(message)
    return chosen


def _queue_heads(conn: psycopg.Connection[Any], queues: set[str]) -> dict[str, str]:
    """For each queue, the oldest message not yet delivered, failed or cancelled."""
    if not queues:
        return {}
    rows = conn.execute(
        f"""SELECT DISTINCT ON (queue_name) queue_name, id FROM {SCHEMA}.messages
            WHERE queue_name = ANY(%s) AND state = ANY(%s) ORDER BY queue_name, seq""",
        (list(queues), list(PENDING_STATES)),
    ).fetchall()
    return {row["queue_name"]: row["id"] for row in rows}


def _flow_in_flight(conn: psycopg.Connection[Any], keys: set[str], now: float) -> Counter[str]:
    if not keys:
        return Counter()
    rows = conn.execute(
        f"""SELECT flow_key, count(*) AS n FROM {SCHEMA}.messages
            WHERE state = 'ACTIVE' AND lease_until >= %s AND flow_key = ANY(%s) GROUP BY flow_key""",
        (now, list(keys)),
    ).fetchall()
    return Counter({row["flow_key"]: row["n"] for row in rows})


def _flow_started(conn: psycopg.Connection[Any], rated: list[dict[str, Any]], now: float) -> Counter[str]:
    """Attempts started per rate-limited flow key within its current period."""
    counts: Counter[str] = Counter()
    periods = {m["flow_key"]: m["flow_period_s"] or 1.0 for m in rated}
    for key, period in periods.items():
        row = conn.execute(
            f"""SELECT count(*) AS n FROM {SCHEMA}.events
                WHERE state = 'ACTIVE' AND flow_key = %s AND time_ms >= %s""",
            (key, int((now - period) * 1000)),
        ).fetchone()
        counts[key] = row["n"] if row else 0
    return counts


def _creation_details(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "method": message["method"],
        "header": message["header"],
        "maxRetries": message["max_retries"],
        **({"callback": message["callback"]} if message["callback"] else {}),
        **({"failureCallback": message["failure_callback"]} if message["failure_callback"] else {}),
    }


def _event_filters(filters: dict[str, Any]) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for key, column in (
        ("messageId", "message_id"),
        ("state", "state"),
        ("url", "url"),
        ("queueName", "queue_name"),
        ("label", "label"),
        ("scheduleId", "schedule_id"),
    ):
        if filters.get(key):
            clauses.append(f"{column} = %s")
            params.append(filters[key])
    if filters.get("messageIds"):
        clauses.append("message_id = ANY(%s)")
        params.append(list(filters["messageIds"]))
    if filters.get("fromDate"):
        clauses.append("time_ms >= %s")
        params.append(int(filters["fromDate"]))
    if filters.get("toDate"):
        clauses.append("time_ms <= %s")
        params.append(int(filters["toDate"]))
    return clauses, params


def _dlq_filters(filters: dict[str, Any]) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for key, column in (
        ("messageId", "message_id"),
        ("url", "url"),
        ("queueName", "queue_name"),
        ("label", "label"),
    ):
        if filters.get(key):
            clauses.append(f"{column} = %s")
            params.append(filters[key])
    if filters.get("scheduleId"):
        clauses.append("document->>'scheduleId' = %s")
        params.append(filters["scheduleId"])
    if filters.get("responseStatus"):
        clauses.append("response_status = %s")
        params.append(int(filters["responseStatus"]))
    if filters.get("fromDate"):
        clauses.append("created_ms >= %s")
        params.append(int(filters["fromDate"]))
    if filters.get("toDate"):
        clauses.append("created_ms <= %s")
        params.append(int(filters["toDate"]))
    return clauses, params
