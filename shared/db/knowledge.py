"""The workspace knowledge base in pgvector: documents, overlapping chunks and vector search."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from psycopg_pool import ConnectionPool

from shared.ports import Finding

_INSERT_DOC = """
INSERT INTO public.knowledge_documents (workspace_id, title, source, tags, content)
VALUES (%s, %s, %s, %s, %s) RETURNING id
"""
_INSERT_CHUNK = """
INSERT INTO public.knowledge_chunks (document_id, workspace_id, position, content, embedding)
VALUES (%s, %s, %s, %s, %s::vector)
"""
_SEARCH = """
SELECT c.id, c.document_id, c.position, c.content, d.title, 1 - (c.embedding <=> %(q)s::vector) AS score
FROM public.knowledge_chunks c JOIN public.knowledge_documents d ON d.id = c.document_id
WHERE c.workspace_id = %(ws)s
ORDER BY c.embedding <=> %(q)s::vector
LIMIT %(k)s
"""


def vector_literal(values: Sequence[float]) -> str:
    """pgvector's text form of a vector (`[0.1,0.2,...]`), cast with `::vector` in SQL."""
    return "[" + ",".join(f"{v:.7g}" for v in values) + "]"


class Embedder(Protocol):
    """Turns texts into vectors of a fixed dimension."""

    def embed(self, texts: list[str], *, task: str = "RETRIEVAL_DOCUMENT") -> list[list[float]]:
        """One vector per text."""
        ...


def chunk_text(text: str, *, size: int = 800, overlap: int = 120) -> list[str]:
    """Split `text` into chunks of about `size` characters that overlap by `overlap`, on word boundaries."""
    words = text.split()
    chunks: list[str] = []
    start = 0
    while start < len(words):
        length, end = 0, start
        while end < len(words) and length + len(words[end]) + 1 <= size:
            length += len(words[end]) + 1
            end += 1
        end = max(end, start + 1)
        chunks.append(" ".join(words[start:end]))
        if end >= len(words):
            break
        back, carried = end, 0
        while back > start + 1 and carried + len(words[back - 1]) + 1 <= overlap:
            back -= 1
            carried += len(words[back]) + 1
        start = back
    return chunks


@dataclass
class PgVectorKnowledge:
    """`KnowledgeSearch` over pgvector (cosine distance, HNSW index), scoped by workspace."""

    pool: ConnectionPool
    embedder: Embedder

    def add_document(self, conn: Any, *, workspace_id: str, title: str, content: str,
                     tags: Sequence[str] = (), source: str = "text") -> str:
        """Store a document and its embedded chunks on `conn` (the caller's transaction); returns its id."""
        chunks = chunk_text(content)
        vectors = self.embedder.embed([f"{title}\n{c}" for c in chunks])
        doc_id = conn.execute(_INSERT_DOC, (workspace_id, title, source, list(tags), content)).fetchone()["id"]
        with conn.cursor() as cur:
            cur.executemany(_INSERT_CHUNK, [(doc_id, workspace_id, i, c, vector_literal(v))
                                            for i, (c, v) in enumerate(zip(chunks, vectors, strict=True))])
        return str(doc_id)

    def search(self, workspace_id: str, query: str, *, k: int = 5) -> list[Finding]:
        [vector] = self.embedder.embed([query], task="RETRIEVAL_QUERY")
        with self.pool.connection() as conn:
            rows = conn.execute(_SEARCH, {"q": vector_literal(vector), "ws": workspace_id, "k": k}).fetchall()
        return [Finding(source_id=f"kb:{r['document_id']}:{r['position']}", title=r["title"],
                        content=r["content"], score=float(r["score"])) for r in rows]
