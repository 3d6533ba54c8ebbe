"""Artifacts: one row per (campaign, channel, variant), written idempotently by content and execution."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from shared.db.pool import Pool
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
UPDATE public.artifacts a SET status = 'published', published_at = now(), updated_at = now()
WHERE a.campaign_id = %s AND a.channel = %s AND a.variant = %s AND a.status = 'draft'
    AND EXISTS (SELECT 1 FROM public.campaigns c JOIN public.payments p ON p.campaign_id = c.id
                WHERE c.id = a.campaign_id AND p.state = 'completed' AND p.amount_paise = c.amount_due_paise)
RETURNING a.id
"""
"""Publishing needs a completed payment of exactly the amount due: no code path can publish unpaid work."""


class PostgresArtifactStore:
    """`ArtifactStore` over Postgres."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def save_draft(self, *, campaign_id: str, workspace_id: str, channel: str, variant: str,
                   content: dict[str, Any], usage: Usage, revision: int) -> None:
        with self.pool.connection() as conn:
            conn.execute(_UPSERT, (campaign_id, workspace_id, channel, variant, Jsonb(content), usage.model,
                                   Jsonb(usage.as_dict()), revision))

    def publish(self, *, campaign_id: str, channel: str, variant: str) -> bool:
        with self.pool.connection() as conn:
            return conn.execute(_PUBLISH, (campaign_id, channel, variant)).fetchone() is not None
