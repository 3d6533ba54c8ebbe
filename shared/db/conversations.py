"""Conversation messages, kept outside the LangGraph checkpoint, and storage accounting of threads.

Messages are append-only and keyed by `(conversation_id, seq)`; a node that re-runs after a crash
inserts the same seq again and gets back the row already stored, so every write is idempotent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

from psycopg import sql
from psycopg.types.json import Jsonb

from shared.db.pool import Conn, Pool, one
from shared.ports import Usage

_ENSURE = """
INSERT INTO public.conversations (id, workspace_id, kind, campaign_id) VALUES (%s, %s, %s, %s)
ON CONFLICT (id) DO NOTHING
"""
_APPEND = """
INSERT INTO public.conversation_messages (conversation_id, seq, workspace_id, role, content, usage)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (conversation_id, seq) DO NOTHING
RETURNING content
"""
_CONTENT = "SELECT content FROM public.conversation_messages WHERE conversation_id = %s AND seq = %s"
_OLDEST_AFTER = """
SELECT seq, role, content FROM public.conversation_messages
WHERE conversation_id = %s AND seq > %s ORDER BY seq LIMIT %s
"""
_NEWEST_AFTER = """
SELECT seq, role, content FROM (
    SELECT seq, role, content FROM public.conversation_messages
    WHERE conversation_id = %s AND seq > %s ORDER BY seq DESC LIMIT %s
) newest ORDER BY seq
"""
_SAVE_SUMMARY = """
UPDATE public.conversations SET summary = %s, summary_through_seq = %s, updated_at = now() WHERE id = %s
"""
_COUNT = "SELECT count(*) AS n FROM public.conversation_messages WHERE conversation_id = %s"
_THREAD_BYTES = """
SELECT
    (SELECT coalesce(sum(pg_column_size(c.*)), 0) FROM public.checkpoints c WHERE c.thread_id = %(t)s)
        + (SELECT coalesce(sum(pg_column_size(b.*)), 0) FROM public.checkpoint_blobs b WHERE b.thread_id = %(t)s)
        + (SELECT coalesce(sum(pg_column_size(w.*)), 0) FROM public.checkpoint_writes w WHERE w.thread_id = %(t)s)
        AS checkpoint_bytes,
    (SELECT coalesce(sum(pg_column_size(m.*)), 0) FROM public.conversation_messages m
        WHERE m.conversation_id = %(m)s) AS message_bytes
"""


@dataclass(frozen=True)
class StoredMessage:
    """One message of a conversation; `seq` orders them and is the message's citable id."""

    seq: int
    role: str
    content: str


@dataclass(frozen=True)
class ThreadStorage:
    """Bytes one thread occupies: its checkpoint rows (checkpoints, blobs, writes) and its messages."""

    checkpoint_bytes: int
    message_bytes: int

    @property
    def total(self) -> int:
        return self.checkpoint_bytes + self.message_bytes


class ConversationRepository:
    """Messages and rolling summaries of conversations, over Postgres (service role; callers scope)."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def ensure_conversation(self, conversation_id: str, workspace_id: str, *, kind: str = "chat",
                            campaign_id: str | None = None) -> None:
        """Create the conversation row if it does not exist yet."""
        with self.pool.connection() as conn:
            conn.execute(_ENSURE, (conversation_id, workspace_id, kind, campaign_id))

    def append(self, conversation_id: str, workspace_id: str, *, seq: int, role: str, content: str,
               usage: Usage | None = None) -> str:
        """Store message `seq` unless it exists; returns the content stored under `seq` either way."""
        with self.pool.connection() as conn:
            row = conn.execute(_APPEND, (conversation_id, seq, workspace_id, role, content,
                                         Jsonb(usage.as_dict()) if usage else None)).fetchone()
            if row is None:
                row = one(conn.execute(_CONTENT, (conversation_id, seq)))
        return str(row["content"])

    def oldest_after(self, conversation_id: str, after_seq: int, limit: int) -> list[StoredMessage]:
        """The first `limit` messages with a seq above `after_seq`."""
        with self.pool.connection() as conn:
            rows = conn.execute(_OLDEST_AFTER, (conversation_id, after_seq, limit)).fetchall()
        return [StoredMessage(seq=r["seq"], role=r["role"], content=r["content"]) for r in rows]

    def newest_after(self, conversation_id: str, after_seq: int, limit: int) -> list[StoredMessage]:
        """The last `limit` messages with a seq above `after_seq`, oldest first."""
        with self.pool.connection() as conn:
            rows = conn.execute(_NEWEST_AFTER, (conversation_id, after_seq, limit)).fetchall()
        return [StoredMessage(seq=r["seq"], role=r["role"], content=r["content"]) for r in rows]

    def save_summary(self, conversation_id: str, summary: dict[str, Any], through_seq: int) -> None:
        """Publish the rolling summary for readers of the conversation (the checkpoint stays authoritative)."""
        with self.pool.connection() as conn:
            conn.execute(_SAVE_SUMMARY, (Jsonb(summary), through_seq, conversation_id))

    def count(self, conversation_id: str) -> int:
        with self.pool.connection() as conn:
            return int(one(conn.execute(_COUNT, (conversation_id,)))["n"])


def transcript(conn: Conn, conversation_id: str, *, after_seq: int = -1, limit: int = 100) -> list[StoredMessage]:
    """A page of a conversation's messages on `conn`; under `as_user` row-level security scopes it."""
    rows = conn.execute(_OLDEST_AFTER, (conversation_id, after_seq, limit)).fetchall()
    return [StoredMessage(seq=r["seq"], role=r["role"], content=r["content"]) for r in rows]


class ConversationRow(TypedDict):
    """One conversation as the API lists it."""

    id: str
    workspace_id: str
    kind: str
    campaign_id: str | None
    title: str | None
    created_at: datetime
    last_message_at: datetime


_COLUMNS = """
id::text AS id, workspace_id::text AS workspace_id, kind, campaign_id::text AS campaign_id, title, created_at,
last_message_at
"""
_LIST = f"""
SELECT {_COLUMNS} FROM public.conversations
WHERE workspace_id = %(workspace_id)s
  AND (%(after_at)s::timestamptz IS NULL OR (last_message_at, id) < (%(after_at)s::timestamptz, %(after_id)s::uuid))
ORDER BY last_message_at DESC, id DESC
LIMIT %(limit)s
"""
_GET = f"SELECT {_COLUMNS} FROM public.conversations WHERE id = %s"
_RETITLE = f"UPDATE public.conversations SET title = %s WHERE id = %s RETURNING {_COLUMNS}"
_LOCK = "SELECT workspace_id::text AS workspace_id FROM public.conversations WHERE id = %s FOR UPDATE"
_DELETE = "DELETE FROM public.conversations WHERE id = %s"
_MESSAGES_OF = "SELECT count(*) AS n FROM public.conversation_messages WHERE conversation_id = %s"
_EXISTING = "SELECT to_regclass(%s) IS NOT NULL AS present"
_RUNNING = """
SELECT id FROM public.chat_turns WHERE conversation_id = %s AND status = 'running' AND lease_until > now()
"""
CHECKPOINT_TABLES = ("checkpoint_writes", "checkpoint_blobs", "checkpoints")
"""LangGraph's tables, keyed by `thread_id`: a conversation's id is its thread id."""
CHAT_TABLES = ("chat_events", "chat_turns")
"""The chat function's per-turn tables, keyed by `conversation_id`; deleted if the schema has them."""


def list_conversations(conn: Conn, workspace_id: str, *, after: tuple[datetime, uuid.UUID] | None = None,
                       limit: int = 20) -> list[ConversationRow]:
    """A page of the workspace's conversations, most recently active first, strictly after `after`.

    Run it on the caller's RLS connection: another workspace's conversations read as none.
    """
    rows = conn.execute(_LIST, {"workspace_id": workspace_id, "after_at": after[0] if after else None,
                                "after_id": after[1] if after else None, "limit": limit}).fetchall()
    return [ConversationRow(**r) for r in rows]  # type: ignore[typeddict-item]


def get_conversation(conn: Conn, conversation_id: uuid.UUID) -> ConversationRow | None:
    """The conversation if the connection may see it (RLS: the caller's workspaces), else None."""
    row = conn.execute(_GET, (conversation_id,)).fetchone()
    return None if row is None else ConversationRow(**row)  # type: ignore[typeddict-item]


class MessageRow(TypedDict):
    """One message as the API shows it; `seq` is its id and the page cursor."""

    seq: int
    role: str
    content: str
    created_at: datetime


_PAGE = """
SELECT seq, role, content, created_at FROM public.conversation_messages
WHERE conversation_id = %s AND seq > %s ORDER BY seq LIMIT %s
"""


def messages_page(conn: Conn, conversation_id: uuid.UUID, *, after_seq: int = -1, limit: int = 50) -> list[MessageRow]:
    """Up to `limit` messages after `after_seq`, oldest first; under `as_user` row-level security scopes it."""
    rows = conn.execute(_PAGE, (conversation_id, after_seq, limit)).fetchall()
    return [MessageRow(**r) for r in rows]  # type: ignore[typeddict-item]


def message_count(conn: Conn, conversation_id: uuid.UUID) -> int:
    """How many messages the conversation holds."""
    return int(one(conn.execute(_MESSAGES_OF, (conversation_id,)))["n"])


def retitle(conn: Conn, conversation_id: uuid.UUID, title: str | None) -> ConversationRow | None:
    """Set (or clear) the title; None when the caller's RLS connection cannot see the conversation."""
    row = conn.execute(_RETITLE, (title, conversation_id)).fetchone()
    return None if row is None else ConversationRow(**row)  # type: ignore[typeddict-item]


def lock_conversation(conn: Conn, conversation_id: uuid.UUID) -> bool:
    """Lock the conversation's row for the rest of the transaction; False if it does not exist.

    Held, it keeps a new chat turn from being claimed (its row references the conversation) until the
    transaction ends.
    """
    return conn.execute(_LOCK, (conversation_id,)).fetchone() is not None


def running_turn(conn: Conn, conversation_id: uuid.UUID) -> str | None:
    """The id of the conversation's running chat turn whose lease is live, if the schema has chat turns."""
    if not one(conn.execute(_EXISTING, ("public.chat_turns",)))["present"]:
        return None
    row = conn.execute(_RUNNING, (conversation_id,)).fetchone()
    return None if row is None else str(row["id"])


def delete_conversation(conn: Conn, conversation_id: uuid.UUID) -> dict[str, int]:
    """Delete the conversation, its messages, checkpoints and chat turns/events; rows deleted per table.

    Runs with the service's rights (the caller checked visibility and locked the row with
    `lock_conversation`), in the caller's transaction.
    """
    counts: dict[str, int] = {}
    for table in CHECKPOINT_TABLES:
        counts[table] = conn.execute(sql.SQL("DELETE FROM {} WHERE thread_id = %s").format(
            sql.Identifier("public", table)), (str(conversation_id),)).rowcount
    for table in CHAT_TABLES:
        if one(conn.execute(_EXISTING, (f"public.{table}",)))["present"]:
            counts[table] = conn.execute(sql.SQL("DELETE FROM {} WHERE conversation_id = %s").format(
                sql.Identifier("public", table)), (conversation_id,)).rowcount
    counts["conversation_messages"] = message_count(conn, conversation_id)
    counts["conversations"] = conn.execute(_DELETE, (conversation_id,)).rowcount
    return counts


def thread_storage(pool: Pool, thread_id: str) -> ThreadStorage:
    """Row bytes (as stored, after compression) of one thread's checkpoints and messages."""
    with pool.connection() as conn:
        row = one(conn.execute(_THREAD_BYTES, {"t": thread_id, "m": _as_uuid(thread_id)}))
    return ThreadStorage(checkpoint_bytes=int(row["checkpoint_bytes"]), message_bytes=int(row["message_bytes"]))


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
