"""Knowledge operations, independent of HTTP: submit a resource, read it, search, and the chained ingest step.

Submitting stores the original in Supabase Storage, inserts the resource (status `queued`) under the
caller's row-level security and writes its first `IngestMessage` to the outbox in the same transaction
(published after commit, so a round never meets a resource that is not there yet); the `ingest`
function then extracts, chunks and embeds it in rounds of `MUSE_KNOWLEDGE_EMBED_BATCH` chunks, each
round chaining the next through QStash, and marks it `ready`. Every round is idempotent.

Cost is bounded before it is spent: a resource may become at most `MUSE_KNOWLEDGE_MAX_CHUNKS` chunks
(text, Markdown and HTML are chunked at submit and refused with 413; PDFs and pages fail at ingest
before anything is embedded), and a workspace may ingest `MUSE_KNOWLEDGE_DAILY_CHUNKS` per rolling
24 hours (429 with Retry-After; counted once per resource, atomically). A workspace's rounds share a
QStash flow-control key (`shared.queue`), so its big upload queues behind itself, not ahead of
another workspace. URLs must be public (`shared.safety.urls`), checked at submit and again at ingest.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass, field, replace
from email.message import Message
from typing import Any, Protocol
from uuid import UUID

from pydantic import ValidationError
from qstash import Receiver

from shared.auth import Principal, choose_workspace
from shared.db import audit
from shared.db import knowledge as db
from shared.db import outbox as outbox_db
from shared.db import privacy as privacy_db
from shared.db.campaigns import memberships
from shared.db.knowledge import Embedder, PgVectorKnowledge
from shared.db.pool import Pool, as_runtime, as_service, as_user, create_pool
from shared.delivery import FailureCallback, Reply, deliver
from shared.errors import (
    InvalidRequest,
    MuseError,
    NotFound,
    PayloadTooLarge,
    PermanentStepError,
    QuotaExceeded,
)
from shared.integrations.embeddings import embedder_from_settings
from shared.integrations.gemini import structured_model
from shared.integrations.storage import supabase_object_store
from shared.integrations.tavily_extract import tavily_page_extractor
from shared.knowledge.models import (
    Citation,
    IngestMessage,
    ResourceAccepted,
    ResourceView,
    SearchQuery,
    SearchResponse,
    SearchResult,
    TextResource,
)
from shared.outbox import Outbox, item
from shared.queue import StepQueue, qstash_queue, qstash_receiver
from shared.retrieval.text import Chunk, Extracted, ResourceKind, chunk_text, extract
from shared.safety.injection import DocumentRisk, InjectionDetector, document_risk
from shared.safety.pii import mask, mask_text
from shared.settings import Settings

log = logging.getLogger("muse.knowledge")

CONTENT_TYPES: dict[str, str] = {
    "text": "text/plain; charset=utf-8",
    "markdown": "text/markdown; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "url": "text/markdown; charset=utf-8",
}
_EXTENSIONS: dict[str, ResourceKind] = {".pdf": "pdf", ".md": "markdown", ".markdown": "markdown", ".html": "html",
                                        ".htm": "html", ".txt": "text", ".text": "text"}
_MEDIA_TYPES: dict[str, ResourceKind] = {"application/pdf": "pdf", "text/markdown": "markdown",
                                         "text/x-markdown": "markdown", "text/html": "html",
                                         "application/xhtml+xml": "html", "text/plain": "text"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DEFAULT_EXTENSIONS = {"text": ".txt", "markdown": ".md", "html": ".html", "pdf": ".pdf", "url": ".md"}


class ObjectStore(Protocol):
    """Where originals are kept (Supabase Storage)."""

    def put(self, path: str, data: bytes, *, content_type: str) -> None: ...

    def get(self, path: str) -> bytes: ...

    def remove(self, paths: list[str]) -> None: ...

    def remove_under(self, folder: str) -> int: ...


class PageExtractor(Protocol):
    """Fetches a public web page as Markdown (Tavily extract); see `shared.safety.urls` for what is public."""

    def check(self, url: str) -> str:
        """`url` if it is public now (after DNS), else `InvalidRequest` naming the rule."""
        ...

    def extract(self, url: str) -> str:
        """The page as Markdown, checked again (DNS may have changed) and on every redirect."""
        ...


def kind_of_upload(filename: str, content_type: str | None, declared: str | None) -> ResourceKind:
    """The kind of an uploaded file: as declared, else by extension, else by media type."""
    if declared:
        if declared not in ("text", "markdown", "html", "pdf"):
            raise InvalidRequest(f"`kind` {declared!r} is not an upload kind; use text, markdown, html or pdf.")
        return declared  # type: ignore[return-value]
    dot = filename.rfind(".")
    if dot >= 0 and filename[dot:].lower() in _EXTENSIONS:
        return _EXTENSIONS[filename[dot:].lower()]
    media = (content_type or "").split(";")[0].strip().lower()
    if media in _MEDIA_TYPES:
        return _MEDIA_TYPES[media]
    raise InvalidRequest(f"Cannot tell the kind of {filename!r} ({content_type or 'no content type'}); upload "
                         ".pdf, .md, .html or .txt, or send the form field `kind`.")


def charset_of(content_type: str | None) -> str | None:
    """The `charset` parameter of a Content-Type, if any."""
    if not content_type:
        return None
    message = Message()
    message["content-type"] = content_type
    charset = message.get_param("charset")
    return str(charset) if isinstance(charset, str) else None


def safe_filename(filename: str, kind: ResourceKind) -> str:
    """A storage-safe object name keeping the extension (no path, dot segments or odd characters)."""
    name = _UNSAFE.sub("_", filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]).strip("._")[:100]
    return name or "original" + _DEFAULT_EXTENSIONS[kind]


def provisional_title(kind: ResourceKind, *, filename: str | None, url: str | None, data: bytes | None) -> str:
    """A title to show until ingestion finds the resource's own: file name, URL or first line."""
    if filename:
        stem = filename.rsplit("/", 1)[-1]
        return (stem.rsplit(".", 1)[0] if "." in stem else stem)[:300] or "Untitled"
    if url:
        return url[:300]
    if data and kind in ("text", "markdown"):
        for line in data.decode("utf-8", "replace").splitlines():
            line = line.strip().lstrip("#").strip()
            if line:
                return line[:120]
    return "Untitled"


def validate_original(kind: ResourceKind, data: bytes, content_type: str | None) -> None:
    """Cheap checks before accepting an original; the full parse happens in the ingest step."""
    if not data.strip():
        raise InvalidRequest("The resource is empty; send a file or text with content.")
    if kind == "pdf" and not data.lstrip()[:5] == b"%PDF-":
        raise InvalidRequest("The file is not a PDF (it does not start with %PDF-); upload a PDF or pick its kind.")
    if kind in ("text", "markdown"):
        charset = charset_of(content_type) or "utf-8"
        try:
            data.decode(charset)
        except (UnicodeDecodeError, LookupError) as exc:
            raise InvalidRequest(f"The {kind} is not valid {charset} text; save it as UTF-8 and upload again.") from exc


@dataclass
class KnowledgeService:
    """The knowledge base's operations for one instance of the API or ingest function."""

    settings: Settings
    pool: Pool
    knowledge: PgVectorKnowledge
    store: ObjectStore
    outbox: Outbox
    pages: PageExtractor
    receiver: Receiver
    detector: InjectionDetector = field(default_factory=InjectionDetector)
    """Screens chunks at ingest; without a model (the default) borderline chunks stay `medium`."""

    # ------------------------------------------------------------------------------------------ submit

    def _workspace(self, conn: Any, principal: Principal, requested: str | None) -> str:
        return choose_workspace(memberships(conn), principal, requested)

    def submit_text(self, principal: Principal, body: TextResource, *, workspace: str | None) -> ResourceAccepted:
        """Accept inline text, Markdown, HTML or a URL (a public one: checked after DNS, 400 naming the rule)."""
        if body.kind == "url":
            assert body.url is not None
            url = self.pages.check(body.url)
            return self._submit(principal, workspace, kind="url", title=body.title, tags=body.tags, source=url,
                                data=None, content_type=None, filename=None)
        data = (body.content or "").encode("utf-8")
        if len(data) > self.settings.knowledge_max_upload_bytes:
            raise PayloadTooLarge(f"`content` is {len(data)} bytes; the limit is "
                                  f"{self.settings.knowledge_max_upload_bytes} (MUSE_KNOWLEDGE_MAX_UPLOAD_BYTES).")
        return self._submit(principal, workspace, kind=body.kind, title=body.title, tags=body.tags, source="api",
                            data=data, content_type=CONTENT_TYPES[body.kind], filename=None)

    def submit_file(self, principal: Principal, *, filename: str, data: bytes, content_type: str | None,
                    kind: str | None, title: str | None, tags: list[str], workspace: str | None) -> ResourceAccepted:
        """Accept an uploaded file (PDF, Markdown, HTML or plain text)."""
        resolved = kind_of_upload(filename, content_type, kind)
        media = (content_type or "").split(";")[0].strip().lower()
        stored_type = content_type if media in _MEDIA_TYPES and _MEDIA_TYPES[media] == resolved else None
        return self._submit(principal, workspace, kind=resolved, title=title, tags=tags, source=filename,
                            data=data, content_type=stored_type or CONTENT_TYPES[resolved], filename=filename)

    def _submit(self, principal: Principal, workspace: str | None, *, kind: ResourceKind, title: str | None,
                tags: list[str], source: str, data: bytes | None, content_type: str | None,
                filename: str | None) -> ResourceAccepted:
        if data is not None:
            validate_original(kind, data, content_type)
        chunks = self._chunks_at_submit(kind, data, content_type)
        document_id = uuid.uuid4()
        shown = title or provisional_title(kind, filename=filename, url=source if kind == "url" else None, data=data)
        with as_user(self.pool, principal.claims) as conn:
            workspace_id = self._workspace(conn, principal, workspace)
            self._reserve(conn, workspace_id, None, chunks)
        path = None
        if data is not None:
            path = f"{workspace_id}/{document_id}/{safe_filename(filename or '', kind)}"
            self.store.put(path, data, content_type=content_type or CONTENT_TYPES[kind])
        try:
            with as_user(self.pool, principal.claims) as conn:
                row = db.insert_document(conn, document_id=document_id, workspace_id=workspace_id, title=shown,
                                         kind=kind, source=source, tags=list(dict.fromkeys(tags)),
                                         storage_path=path, content_type=content_type,
                                         byte_size=None if data is None else len(data), created_by=principal.user_id)
                audit.record(conn, workspace_id=workspace_id, actor=str(principal.user_id), action="knowledge.added",
                             target_type="knowledge_resource", target_id=str(document_id),
                             details={"kind": kind, "bytes": None if data is None else len(data)})
                as_runtime(conn)
                self._reserve(conn, workspace_id, document_id if chunks is not None else None, chunks)
                rows = outbox_db.add(conn, None, [item("ingest", IngestMessage(
                    document_id=document_id, infer_title=title is None, workspace_id=UUID(workspace_id)))])
        except BaseException:
            if path is not None:
                self.store.remove([path])
            raise
        self.outbox.publish(rows)
        return ResourceAccepted(id=row["id"], status=row["status"], kind=kind, title=shown,
                                links={"self": f"/api/v1/knowledge/{document_id}"})

    def _chunks_at_submit(self, kind: ResourceKind, data: bytes | None, content_type: str | None) -> int | None:
        """How many chunks text, Markdown or HTML becomes (cheap to know now); None for PDFs and URLs.

        A resource over `MUSE_KNOWLEDGE_MAX_CHUNKS` is refused here with 413, before anything is stored.
        """
        if data is None or kind not in ("text", "markdown", "html"):
            return None
        extracted = extract(kind, data, charset=charset_of(content_type))
        count = len(chunk_text(extracted.text, page_starts=extracted.page_starts))
        if count == 0:
            raise InvalidRequest(f"The {kind} has no text to index (only markup or whitespace); send a document "
                                 "with text in it.")
        self._within_chunk_cap(count)
        return count

    def _within_chunk_cap(self, count: int) -> None:
        cap = self.settings.knowledge_max_chunks
        if count > cap:
            raise PayloadTooLarge(f"The resource would become {count:,} chunks; one resource may have at most "
                                  f"{cap:,} (MUSE_KNOWLEDGE_MAX_CHUNKS). Split it into smaller documents.",
                                  details={"chunks": count, "limit": cap})

    def _reserve(self, conn: Any, workspace_id: str, document_id: UUID | None, chunks: int | None, *,
                 then: str = "retry") -> None:
        """Count the resource's chunks against the workspace's daily quota, or raise `QuotaExceeded` (429).

        With `document_id` None it only checks that `chunks` (at least one) would fit now.
        """
        limit = self.settings.knowledge_daily_chunks
        needed = max(1, chunks or 0)
        state = db.reserve_ingest(conn, workspace_id=workspace_id, document_id=document_id, limit=limit,
                                  chunks=needed if document_id is None else chunks or 0)
        if state["allowed"]:
            return
        details = {"used": state["used"], "limit": limit, "chunks": needed}
        wait = state["retry_after_seconds"]
        if wait is None:
            raise PayloadTooLarge(f"The resource would become {needed:,} chunks, more than a workspace may ingest "
                                  f"in 24 hours ({limit:,}, MUSE_KNOWLEDGE_DAILY_CHUNKS); split it into smaller "
                                  "documents.", details=details)
        raise QuotaExceeded(f"Ingestion quota used up: the workspace has ingested {state['used']:,} of its {limit:,} "
                            f"chunks in the last 24 hours (MUSE_KNOWLEDGE_DAILY_CHUNKS) and this resource needs "
                            f"{needed:,}; {then} after {wait:,} seconds.", retry_after_seconds=wait, details=details)

    # ----------------------------------------------------------------------------------------- delete

    def delete(self, principal: Principal, document_id: UUID) -> None:
        """Delete a resource: its row, chunks, embeddings, pending ingest rounds and stored objects; audited.

        The stored objects are removed before the rows commit: if Storage fails, nothing is deleted and
        the caller may retry; a resource never lingers in Storage after its row is gone.
        """
        with as_user(self.pool, principal.claims) as conn:
            row = db.delete_document(conn, document_id)
            if row is None:
                raise NotFound(f"Knowledge resource {document_id} does not exist in your workspaces.")
            audit.record(conn, workspace_id=row["workspace_id"], actor=str(principal.user_id),
                         action="knowledge.deleted", target_type="knowledge_resource", target_id=str(document_id),
                         details={"kind": row["kind"], "chunks": row["chunk_count"]})
            as_runtime(conn)
            db.delete_ingest_rounds(conn, document_id)
            self.store.remove_under(f"{row['workspace_id']}/{document_id}/")

    # ------------------------------------------------------------------------------------------- read

    def get(self, principal: Principal, document_id: UUID) -> ResourceView:
        """The whole resource, if the caller's workspaces hold it (otherwise 404, whether it exists or not)."""
        with as_user(self.pool, principal.claims) as conn:
            row = db.get_document(conn, document_id)
        if row is None:
            raise NotFound(f"Knowledge resource {document_id} does not exist in your workspaces.")
        return ResourceView(**{**row, "content": row["content"] if row["status"] == "ready" else None})

    def search(self, principal: Principal, query: SearchQuery, *, workspace: str | None) -> SearchResponse:
        """Hybrid (or vector/text-only) search of the caller's workspace, under row-level security."""
        vector = self.knowledge.query_vector(query.q) if query.mode != "text" else None
        with as_user(self.pool, principal.claims) as conn:
            workspace_id = self._workspace(conn, principal, workspace)
            hits = self.knowledge.search_in(conn, workspace_id, query.q, k=query.k, kinds=query.type,
                                            tags=query.tags, mode=query.mode, vector=vector)
        results = [SearchResult(
            content=hit.content, score=hit.score, similarity=hit.similarity,
            ranks={"vector": hit.vector_rank, "text": hit.text_rank},
            citation=Citation(resource_id=hit.document_id, source_id=hit.source_id, title=hit.title,
                              kind=hit.kind, position=hit.position, char_start=hit.char_start,
                              char_end=hit.char_end, page=hit.page, url=hit.source if hit.kind == "url" else None),
        ) for hit in hits]
        return SearchResponse(query=query.q, mode=query.mode, results=results)

    # ----------------------------------------------------------------------------------------- ingest

    def handle_delivery(self, body: bytes, signature: str | None) -> Reply:
        """One QStash delivery to the `ingest` function (a round, or QStash's failure callback)."""
        return deliver(self.receiver, url=self.settings.function_url("ingest"), body=body, signature=signature,
                       on_message=self._on_round, on_failure=self._on_failure_callback)

    def _on_round(self, raw: Any) -> Reply:
        try:
            message = IngestMessage.model_validate(raw)
        except ValidationError as exc:
            raise PermanentStepError(f"Invalid ingest message: {exc.errors(include_url=False)}") from exc
        return Reply(200, self.ingest(message))

    def ingest(self, message: IngestMessage) -> dict[str, Any]:
        """One round: extract and chunk (first time only), embed one batch, chain the next or mark ready."""
        document_id = message.document_id
        with as_service(self.pool) as conn:
            document = db.get_document(conn, document_id, with_content=False)
            if document is None:
                return {"status": "ignored", "reason": f"knowledge resource {document_id} does not exist"}
            if document["status"] in ("ready", "failed"):
                return {"status": document["status"], "duplicate": True}
            db.start_processing(conn, document_id)
        try:
            if document["chunk_count"] == 0:
                self._chunk(document, infer_title=message.infer_title)
            embedded, remaining = self._embed_batch(document_id)
        except MuseError as exc:
            if exc.retryable:
                raise
            with as_service(self.pool) as conn:
                db.mark_failed(conn, document_id, exc.message)
            log.warning("ingest of %s failed: %s", document_id, exc.message)
            return {"status": "failed", "error": exc.message}
        if remaining:
            self.outbox.send(None, [item("ingest", IngestMessage(document_id=document_id, round=message.round + 1,
                                                                 workspace_id=document["workspace_id"]))])
            return {"status": "processing", "embedded": embedded, "remaining": remaining}
        return {"status": "ready", "embedded": embedded, "remaining": 0}

    def _chunk(self, document: dict[str, Any], *, infer_title: bool) -> None:
        kind: ResourceKind = document["kind"]
        if kind == "url":
            original = self.pages.extract(document["source"]).encode("utf-8")
            path = f"{document['workspace_id']}/{document['id']}/page.md"
            self.store.put(path, original, content_type=CONTENT_TYPES["url"])
        else:
            if not document["storage_path"]:
                raise PermanentStepError(f"Resource {document['id']} has no stored original to ingest.")
            original = self.store.get(document["storage_path"])
        extracted = extract(kind, original, charset=charset_of(document["content_type"]))
        extracted, stored_title = self._without_pii(document, extracted)
        chunks = chunk_text(extracted.text, page_starts=extracted.page_starts)
        if not chunks:
            raise InvalidRequest("The resource has no text to index; upload a file with text in it.")
        self._within_chunk_cap(len(chunks))
        title = extracted.title[:300] if infer_title and extracted.title else stored_title
        risk = self._screen(chunks)
        with as_service(self.pool) as conn:
            self._reserve_at_ingest(conn, document, len(chunks))
            db.save_chunks(conn, document_id=document["id"], title=title, content=extracted.text, chunks=chunks)
            db.save_injection_risk(conn, document["id"], risk.model_dump(), risk.flagged_chunks)

    def _screen(self, chunks: list[Chunk]) -> DocumentRisk:
        """Scan every chunk for prompt injection (the classifier settles borderline ones, up to
        `MUSE_INJECTION_CLASSIFIER_MAX_CALLS`); flagged chunks are kept from agents' knowledge search."""
        detector = replace(self.detector, answers=[])
        return document_risk([(c.position, c.start, detector.assess(c.content)) for c in chunks])

    def _without_pii(self, document: dict[str, Any], extracted: Extracted) -> tuple[Extracted, str]:
        """The extracted text and both titles (found, stored) with personal data masked by the workspace's policy.

        Runs before chunking, so the stored text, chunks, embeddings, search results and fetched
        resources never hold what the policy masks; PDF page starts move with the text.
        """
        with as_service(self.pool) as conn:
            policy = privacy_db.policy_of(conn, str(document["workspace_id"]))
        masked = mask_text(extracted.text, policy)
        found = Extracted(text=masked.text, title=mask(extracted.title, policy) if extracted.title else None,
                          page_starts=tuple(masked.position(start) for start in extracted.page_starts))
        return found, mask(document["title"], policy)

    def _reserve_at_ingest(self, conn: Any, document: dict[str, Any], chunks: int) -> None:
        """Count a PDF's or page's chunks once they are known; over quota, the resource fails (nothing embedded).

        Text, Markdown and HTML were counted at submit, so this finds them counted and changes nothing.
        """
        try:
            self._reserve(conn, str(document["workspace_id"]), document["id"], chunks, then="add it again")
        except QuotaExceeded as exc:
            raise PermanentStepError(exc.message, details=exc.details) from exc

    def _embed_batch(self, document_id: UUID) -> tuple[int, int]:
        key = self.knowledge.key
        with as_service(self.pool) as conn:
            rows = db.chunks_missing_embedding(conn, key=key, limit=self.settings.knowledge_embed_batch,
                                               document_id=document_id)
        vectors = self.knowledge.embed_passages([(r["heading"], r["content"]) for r in rows])
        with as_service(self.pool) as conn:
            db.insert_embeddings(conn, key, [(r["id"], r["workspace_id"], vector)
                                             for r, vector in zip(rows, vectors, strict=True)])
            remaining = db.count_missing_embeddings(conn, key=key, document_id=document_id)
            if remaining == 0:
                db.mark_ready(conn, document_id)
        return len(rows), remaining

    def _on_failure_callback(self, callback: FailureCallback) -> Reply:
        """QStash gave up on a round: the resource is marked failed with the last answer as the reason."""
        try:
            source = IngestMessage.model_validate_json(callback.source())
        except (ValueError, ValidationError):
            return Reply(200, {"status": "ignored", "reason": "failure callback for an unknown message"})
        reason = (f"Ingestion failed after {callback.retried if callback.retried is not None else '?'} retries "
                  f"(last answer HTTP {callback.status}): {callback.answer()}")
        with as_service(self.pool) as conn:
            db.mark_failed(conn, source.document_id, reason)
        return Reply(200, {"status": "failed", "reason": reason})


def knowledge_service(settings: Settings, *, pool: Pool | None = None,
                      embedder: Embedder | None = None) -> KnowledgeService:
    """The knowledge service of this deployment, wired from settings."""
    pool = pool or create_pool(settings.database_url, max_size=settings.database_pool_max)
    knowledge = PgVectorKnowledge(pool=pool, embedder=embedder or embedder_from_settings(settings))
    return KnowledgeService(settings=settings, pool=pool, knowledge=knowledge, store=supabase_object_store(settings),
                            outbox=ingest_outbox(pool, qstash_queue(settings)), pages=tavily_page_extractor(settings),
                            receiver=qstash_receiver(settings), detector=injection_detector(settings))


def injection_detector(settings: Settings) -> InjectionDetector:
    """The ingest step's detector: patterns, plus the fast tier for borderline chunks unless turned off."""
    model = structured_model(settings) if settings.injection_classifier else None
    return InjectionDetector(model=model, max_classifications=settings.injection_classifier_max_calls)


def ingest_outbox(pool: Pool, queue: StepQueue) -> Outbox:
    """The outbox that sends ingest rounds (read back as `IngestMessage`s)."""
    return Outbox(pool=pool, queue=queue, parsers={"ingest": IngestMessage.model_validate})
