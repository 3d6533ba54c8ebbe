"""SQL of the transactional outbox (`step_outbox`): rows written with a state change, marked once published."""

from __future__ import annotations

from typing import cast
from uuid import UUID

from psycopg.types.json import Jsonb

from shared.db.batch import ASYNC_COMMIT, execute_batch
from shared.db.pool import Conn, Pool
from shared.domain import OutboxItem, OutboxRow

_INSERT = """
INSERT INTO public.step_outbox (campaign_id, function, message, dedup_id, not_before)
VALUES (%s, %s, %s, %s, %s)
RETURNING id, campaign_id, function, message, dedup_id, not_before
"""
_MARK = "UPDATE public.step_outbox SET published_at = now() WHERE id = ANY(%s) AND published_at IS NULL"
_UNPUBLISHED = """
SELECT id, campaign_id, function, message, dedup_id, not_before FROM public.step_outbox
WHERE published_at IS NULL AND created_at < now() - make_interval(secs => %s)
ORDER BY id LIMIT %s
"""
_UNPUBLISHED_FOR = """
SELECT id, campaign_id, function, message, dedup_id, not_before FROM public.step_outbox
WHERE campaign_id = %s AND published_at IS NULL ORDER BY id
"""
_CONTINUATION = """
SELECT id, campaign_id, function, message, dedup_id, not_before FROM public.step_outbox
WHERE campaign_id = %(campaign)s AND (
    (message->>'kind' = 'continue' AND message->>'expected_checkpoint_id' = %(head)s)
    OR (%(head)s::text IS NULL AND message->>'kind' = 'start'))
ORDER BY id LIMIT 1
"""
def add(conn: Conn, campaign_id: UUID | None, items: list[OutboxItem]) -> list[OutboxRow]:
    """Write `items` in the caller's transaction (which must run with the service's privileges)."""
    rows: list[OutboxRow] = []
    for item in items:
        sql, params = insert_statement(campaign_id, item)
        rows.append(cast(OutboxRow, conn.execute(sql, params).fetchone()))
    return rows


def insert_statement(campaign_id: UUID | None, item: OutboxItem) -> tuple[str, tuple[object, ...]]:
    """The statement that writes `item` and returns its row (for callers batching it with others)."""
    return _INSERT, (campaign_id, item["function"], Jsonb(item["message"]), item["dedup_id"], item["not_before"])


def mark_published(pool: Pool, ids: list[int]) -> None:
    """Record that these rows reached QStash.

    The marker commits without waiting for the WAL flush: losing it in a crash only means one more,
    deduplicated, publish by the sweeper. One round trip (`execute_batch`: one implicit transaction).
    """
    if not ids:
        return
    with pool.connection() as conn:
        execute_batch(conn, [ASYNC_COMMIT, (_MARK, (ids,))])


def unpublished(pool: Pool, *, older_than_seconds: float, limit: int = 200) -> list[OutboxRow]:
    """Committed rows nobody published (their writer died between commit and publish)."""
    with pool.connection() as conn:
        return cast(list[OutboxRow], conn.execute(_UNPUBLISHED, (older_than_seconds, limit)).fetchall())


def unpublished_for(pool: Pool, campaign_id: UUID) -> list[OutboxRow]:
    """One campaign's unpublished rows, oldest first."""
    with pool.connection() as conn:
        return cast(list[OutboxRow], conn.execute(_UNPUBLISHED_FOR, (campaign_id,)).fetchall())


def continuation(pool: Pool, campaign_id: UUID, head: str | None) -> OutboxRow | None:
    """The message that continues the thread from `head` (its `start` when it has no checkpoint yet)."""
    with pool.connection() as conn:
        return cast(OutboxRow | None, conn.execute(_CONTINUATION, {"campaign": campaign_id, "head": head}).fetchone())
