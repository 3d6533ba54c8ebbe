"""Recurring schedules: a cron in a timezone plus the brief each tick starts (`public.recurring_schedules`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from shared.db.pool import Conn, one

_COLUMNS = """id, workspace_id, created_by, name, cron, timezone, kind, brief, status, ticks, last_tick_at,
last_campaign_id, last_error, created_at, updated_at"""


def insert(conn: Conn, *, schedule_id: UUID, workspace_id: str, created_by: str, name: str, cron: str,
           timezone: str, kind: str, brief: dict[str, Any]) -> DictRow:
    """Create a schedule (active)."""
    return one(conn.execute(
        f"""INSERT INTO public.recurring_schedules (id, workspace_id, created_by, name, cron, timezone, kind, brief)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}""",
        (schedule_id, workspace_id, created_by, name, cron, timezone, kind, Jsonb(brief))))


def get(conn: Conn, schedule_id: UUID, *, lock: bool = False) -> DictRow | None:
    """One schedule the connection may see (`lock`: held until the transaction ends)."""
    suffix = " FOR UPDATE" if lock else ""
    return conn.execute(f"SELECT {_COLUMNS} FROM public.recurring_schedules WHERE id = %s{suffix}",
                        (schedule_id,)).fetchone()


def page(conn: Conn, workspace_id: str, *, limit: int, before: tuple[datetime, UUID] | None) -> list[DictRow]:
    """The workspace's schedules, newest first, at most `limit + 1` (the extra one says a next page exists)."""
    if before is None:
        return conn.execute(
            f"""SELECT {_COLUMNS} FROM public.recurring_schedules WHERE workspace_id = %s
                ORDER BY created_at DESC, id DESC LIMIT %s""", (workspace_id, limit + 1)).fetchall()
    return conn.execute(
        f"""SELECT {_COLUMNS} FROM public.recurring_schedules WHERE workspace_id = %s AND (created_at, id) < (%s, %s)
            ORDER BY created_at DESC, id DESC LIMIT %s""", (workspace_id, *before, limit + 1)).fetchall()


def set_status(conn: Conn, schedule_id: UUID, status: str) -> DictRow | None:
    """Pause or resume; the row as it is now."""
    return conn.execute(
        f"""UPDATE public.recurring_schedules SET status = %s,
                updated_at = CASE WHEN status = %s THEN updated_at ELSE now() END
            WHERE id = %s RETURNING {_COLUMNS}""", (status, status, schedule_id)).fetchone()


def delete(conn: Conn, schedule_id: UUID) -> bool:
    """Remove a schedule; False when there was none."""
    return conn.execute("DELETE FROM public.recurring_schedules WHERE id = %s", (schedule_id,)).rowcount > 0


def record_tick(conn: Conn, schedule_id: UUID, *, campaign_id: UUID | None, error: dict[str, Any] | None,
                counted: bool) -> None:
    """Note a tick's outcome: the move it started, or why it started none (`counted`: a new move was made)."""
    conn.execute(
        """UPDATE public.recurring_schedules SET last_tick_at = now(), ticks = ticks + %s,
               last_campaign_id = COALESCE(%s, last_campaign_id), last_error = %s
           WHERE id = %s""", (1 if counted else 0, campaign_id, Jsonb(error) if error else None, schedule_id))


def creator_is_member(conn: Conn, schedule_id: UUID) -> bool:
    """Whether the member who created the schedule still belongs to its workspace."""
    row = conn.execute(
        """SELECT EXISTS (SELECT 1 FROM public.recurring_schedules s JOIN public.workspace_members m
               ON m.workspace_id = s.workspace_id AND m.user_id = s.created_by WHERE s.id = %s) AS member""",
        (schedule_id,)).fetchone()
    return bool(row and row["member"])
