"""`KnowledgeFetch` over the pgvector knowledge base: whole documents, scoped by workspace.

Passages the injection screening flagged at ingest are withheld from what an agent reads.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from shared.db.knowledge import flagged_spans
from shared.db.pool import Pool
from shared.safety.injection import withhold
from shared.tools.ports import KnowledgeDocument

_FETCH = """
SELECT id, title, source, tags, content FROM public.knowledge_documents
WHERE id = %s AND workspace_id = %s
"""


@dataclass
class PgKnowledgeFetch:
    """Reads `knowledge_documents`; a document of another workspace reads as missing."""

    pool: Pool

    def fetch(self, workspace_id: str, document_id: str) -> KnowledgeDocument | None:
        try:
            uuid.UUID(document_id)
            uuid.UUID(workspace_id)
        except ValueError:
            return None
        with self.pool.connection() as conn:
            row = conn.execute(_FETCH, (document_id, workspace_id)).fetchone()
            spans = flagged_spans(conn, document_id) if row is not None else []
        if row is None:
            return None
        return KnowledgeDocument(document_id=str(row["id"]), title=row["title"],
                                 content=withhold(row["content"], spans),
                                 source=row["source"], tags=tuple(row["tags"] or ()))
