"""Chat turns and their events: one running turn per conversation under a lease, every event a row.

The running slot is a partial unique index (`chat_turns_one_running_idx`), so two requests racing
for a conversation cannot both win, whatever instance they reach. A turn's terminal event and the end
of its turn commit in one transaction, so a reader that sees the turn ended has every event of it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from shared.db.pool import Conn, Pool

_CLAIM = """
INSERT INTO public.chat_turns (id, conversation_id, workspace_id, lease_until, deadline)
VALUES (%(id)s, %(conversation)s, %(workspace)s, now() + make_interval(secs => %(lease)s),
        now() + make_interval(secs => %(wall)s))
"""
_RUNNING = """
SELECT id, lease_until, deadline, lease_until < now() AS expired FROM public.chat_turns
WHERE conversation_id = %s AND status = 'running'
"""
_RENEW = """
UPDATE public.chat_turns SET lease_until = now() + make_interval(secs => %(lease)s)
WHERE id = %(id)s AND status = 'running' AND deadline > now() - make_interval(secs => %(lease)s)
RETURNING id
"""
_FINISH = """
UPDATE public.chat_turns SET status = %s, error = %s, finished_at = now()
WHERE id = %s AND status = 'running'
RETURNING id
"""
_APPEND = """
INSERT INTO public.chat_events (conversation_id, turn_id, workspace_id, kind, data)
VALUES (%s, %s, %s, %s, %s)
RETURNING id
"""
_EXPIRED = """
SELECT id, conversation_id, workspace_id FROM public.chat_turns
WHERE status = 'running' AND lease_until < now() - make_interval(secs => %s)
ORDER BY lease_until LIMIT %s
FOR UPDATE SKIP LOCKED
"""
_EXPIRED_ONE = """
SELECT id, conversation_id, workspace_id FROM public.chat_turns
WHERE id = %s AND status = 'running' AND lease_until < now()
FOR UPDATE SKIP LOCKED
"""
_EVENTS_AFTER = """
SELECT id, turn_id, kind, data FROM public.chat_events
WHERE conversation_id = %s AND id > %s ORDER BY id LIMIT %s
"""
_TURN_EVENTS_UPTO = """
SELECT id, turn_id, kind, data FROM public.chat_events
WHERE turn_id = (SELECT turn_id FROM public.chat_events WHERE id = %s AND conversation_id = %s)
  AND id <= %s ORDER BY id
"""
_VISIBLE = "SELECT workspace_id FROM public.conversations WHERE id = %s"


LOST_TURN: dict[str, Any] = {
    "code": "turn_lost", "retryable": True,
    "message": "The turn stopped before it finished (its server went away); send your message again.",
}
"""The data of the `error` event that ends a turn healed after its process died."""


@dataclass(frozen=True)
class RunningTurn:
    """The turn holding a conversation's running slot."""

    id: str
    lease_until: datetime
    expired: bool


@dataclass(frozen=True)
class StoredEvent:
    """One persisted event of a turn: `id` is its SSE `id:`, `kind` + `data` rebuild the `TurnEvent`."""

    id: int
    turn_id: str
    kind: str
    data: dict[str, Any]


def claim(pool: Pool, *, turn_id: str, conversation_id: str, workspace_id: str, lease_seconds: float,
          wall_seconds: float) -> bool:
    """Take the conversation's running slot for `turn_id`; False if another turn holds it."""
    try:
        with pool.connection() as conn:
            conn.execute(_CLAIM, {"id": turn_id, "conversation": conversation_id, "workspace": workspace_id,
                                  "lease": lease_seconds, "wall": wall_seconds})
    except psycopg.errors.UniqueViolation:
        return False
    return True


def running(pool: Pool, conversation_id: str) -> RunningTurn | None:
    """The conversation's running turn, if any (with whether its lease has run out)."""
    with pool.connection() as conn:
        row = conn.execute(_RUNNING, (conversation_id,)).fetchone()
    if row is None:
        return None
    return RunningTurn(id=str(row["id"]), lease_until=row["lease_until"], expired=bool(row["expired"]))


def renew(pool: Pool, turn_id: str, lease_seconds: float) -> bool:
    """Push the running turn's lease `lease_seconds` ahead; False if it no longer runs (healed as dead) or ran
    more than one lease past its wall-time deadline (stuck: the lease then runs out and the turn is healed)."""
    with pool.connection() as conn:
        return conn.execute(_RENEW, {"lease": lease_seconds, "id": turn_id}).fetchone() is not None


def append(conn: Conn, *, conversation_id: str, turn_id: str, workspace_id: str, kind: str,
           data: dict[str, Any]) -> int:
    """Store one event on `conn` and return its id."""
    row = conn.execute(_APPEND, (conversation_id, turn_id, workspace_id, kind, Jsonb(data))).fetchone()
    assert row is not None
    return int(row["id"])


def finish(conn: Conn, turn_id: str, *, status: str, error: str | None = None) -> bool:
    """End the running turn on `conn`; False if it had already ended (another writer healed it)."""
    return conn.execute(_FINISH, (status, error, turn_id)).fetchone() is not None


def expired(conn: Conn, *, grace_seconds: float, limit: int = 100) -> list[dict[str, Any]]:
    """Running turns whose lease ran out more than `grace_seconds` ago, locked for the caller's transaction."""
    return [dict(r) for r in conn.execute(_EXPIRED, (grace_seconds, limit)).fetchall()]


def expired_turn(conn: Conn, turn_id: str) -> dict[str, Any] | None:
    """`turn_id` locked for the caller's transaction if it still runs with its lease run out."""
    row = conn.execute(_EXPIRED_ONE, (turn_id,)).fetchone()
    return dict(row) if row is not None else None


def heal(conn: Conn, row: dict[str, Any]) -> int:
    """End a dead turn (a row of `expired`/`expired_turn`) as failed with the `LOST_TURN` error event; its id."""
    event_id = append(conn, conversation_id=str(row["conversation_id"]), turn_id=str(row["id"]),
                      workspace_id=str(row["workspace_id"]), kind="error", data=LOST_TURN)
    finish(conn, str(row["id"]), status="failed", error=LOST_TURN["code"])
    return event_id


def heal_expired(pool: Pool, *, grace_seconds: float = 0.0, limit: int = 100) -> int:
    """End every running turn whose lease ran out `grace_seconds` ago (the sweeper's pass); how many."""
    with pool.connection() as conn, conn.transaction():
        rows = expired(conn, grace_seconds=grace_seconds, limit=limit)
        for row in rows:
            heal(conn, row)
    return len(rows)


def events_after(conn: Conn, conversation_id: str, after_id: int, limit: int = 500) -> list[StoredEvent]:
    """The conversation's events after `after_id`, oldest first (under `as_user`, row-level security scopes it)."""
    rows = conn.execute(_EVENTS_AFTER, (conversation_id, after_id, limit)).fetchall()
    return [_event(r) for r in rows]


def turn_events_upto(conn: Conn, conversation_id: str, event_id: int) -> list[StoredEvent]:
    """The events of the turn `event_id` belongs to, up to and including it (empty if it is not this
    conversation's)."""
    rows = conn.execute(_TURN_EVENTS_UPTO, (event_id, conversation_id, event_id)).fetchall()
    return [_event(r) for r in rows]


def conversation_workspace(conn: Conn, conversation_id: str) -> str | None:
    """The workspace of a conversation visible on `conn` (under `as_user`: only the caller's), else None."""
    row = conn.execute(_VISIBLE, (conversation_id,)).fetchone()
    return str(row["workspace_id"]) if row is not None else None


def new_turn_id() -> str:
    return str(uuid.uuid4())


def _event(row: dict[str, Any]) -> StoredEvent:
    return StoredEvent(id=int(row["id"]), turn_id=str(row["turn_id"]), kind=str(row["kind"]), data=row["data"])
