"""Conversation messages, kept outside the LangGraph checkpoint, and storage accounting of threads.

Messages are append-only and keyed by `(conversation_id, seq)`; a node that re-runs after a crash
inserts the same seq again and gets back the row already stored, so every write is idempotent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

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
