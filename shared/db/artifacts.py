"""Artifacts: one row per (campaign, channel, variant), written idempotently by content and execution."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from shared.ports import Usage

_UPSERT = """
INSERT INTO public.artifacts (campaign_id, workspace_id, channel, variant, content, model, usage, revision)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (campaign_id, channel, variant) DO UPDATE
SET content = EXCLUDED.content, model = EXCLUDED.model, usage = EXCLUDED.usage,
    revision = EXCLUDED.revision, updated_at = now()
WHERE artifacts.status = 'draft'
"""
_PUBLISH = """
UPDATE public.artifacts SET status = 'published', published_at = now(), updated_at = now()
WHERE campaign_id = %s AND channel = %s AND variant = %s AND status = 'draft'
RETURNING id
"""


class PostgresArtifactStore:
    """`ArtifactStore` over Postgres."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def save_draft(self, *, campaign_id: str, workspace_id: str, channel: str, variant: str,
                   content: dict[str, Any], usage: Usage, revision: int) -> None:
        with self.pool.connection() as conn:
            conn.execute(_UPSERT, (campaign_id, workspace_id, channel, variant, Jsonb(content), usage.model,
                                   Jsonb(usage.as_dict()), revision))

    def publish(self, *, campaign_id: str, channel: str, variant: str) -> bool:
        with self.pool.connection() as conn:
            return conn.execute(_PUBLISH, (campaign_id, channel, variant)).fetchone() is not None
