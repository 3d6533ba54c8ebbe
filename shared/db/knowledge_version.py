"""A workspace's knowledge version: it changes whenever what a knowledge search can return changes.

Triggers on `knowledge_documents` bump it in the transaction of the change (a resource becomes ready,
a ready one is edited, any one is deleted), from a sequence, so a value never repeats. Caches of
search results key on it (`shared.chat.caches`).
"""

from __future__ import annotations

import uuid

from shared.db.pool import Pool

_VERSION = "SELECT knowledge_version FROM public.workspaces WHERE id = %s"


def knowledge_version(pool: Pool, workspace_id: str) -> int | None:
    """The workspace's current knowledge version; None if the workspace does not exist (or the id is no UUID)."""
    try:
        uuid.UUID(workspace_id)
    except ValueError:
        return None
    with pool.connection() as conn:
        row = conn.execute(_VERSION, (workspace_id,)).fetchone()
    return None if row is None else int(row["knowledge_version"])
