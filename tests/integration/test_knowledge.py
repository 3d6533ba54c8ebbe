"""The knowledge base on a real Postgres + pgvector, with the real e5 model and Storage/Tavily on the wire.

Ingestion is driven the way QStash drives it: every published `IngestMessage` is delivered (as JSON
bytes) to the service until none is left; retries and duplicates are delivered on purpose.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import threading
import uuid
from collections.abc import Iterator
from functools import partial
from typing import Any, Literal

import flask
import jwt
import numpy as np
import psycopg
import pytest
from psycopg import sql
from psycopg_pool import ConnectionPool

from infra.local.serve import RunningServer
from infra.reembed_knowledge import Reembedded, reembed
from shared.api import knowledge as knowledge_api
from shared.api.app import dispatch
from shared.auth import Principal
from shared.db import knowledge as db
from shared.db import outbox as outbox_db
from shared.db.knowledge import PgVectorKnowledge, ensure_vector_index, vector_index_name
from shared.db.pool import as_service, as_user, connect
from shared.db.workspaces import ensure_workspace
from shared.errors import InvalidRequest, NotFound, UpstreamUnavailable
from shared.integrations.gemini import GeminiEmbedder, gemini_client
from shared.knowledge.models import IngestMessage, SearchQuery, TextResource
from shared.knowledge.service import ingest_outbox
from shared.settings import get_settings
from shared.testing.fakes import RecordingQueue
from tests.integration.knowledge_world import BASE_ENV, World, build_world, kb_settings, knowledge_emulators, open_pool
from tests.pdfgen import make_pdf

CORPUS_URL = "https://example-news.in/business/saanjh-sarees-diwali-2026-campaign"

ASSAM = ("Assam black tea from the Brahmaputra valley is malty, brisk and strong. It makes the classic "
         "breakfast cuppa and takes milk well; our Assam second flush is picked in June.")
DARJEELING = ("Darjeeling first flush is light, floral and muscatel. Grown on steep Himalayan slopes, it is "
              "best brewed without milk at 85 degrees for three minutes.")
RETURNS = ("Refund policy: gift boxes can be returned within 14 days if unopened. We refund to the original "
           "payment method through PhonePe within five working days.")


@pytest.fixture(scope="module")
def servers(migrated_dsn: str) -> Iterator[dict[str, RunningServer]]:
    with knowledge_emulators(migrated_dsn, gemini=True) as running:
        yield running


@pytest.fixture(scope="module")
def module_pool(migrated_dsn: str) -> Iterator[ConnectionPool]:
    with open_pool(migrated_dsn, max_size=6) as pool:
        yield pool


@pytest.fixture
def world(migrated_dsn: str, module_pool: ConnectionPool, servers: dict[str, RunningServer]) -> Iterator[World]:
    built = build_world(migrated_dsn, module_pool, servers)
    yield built
    built.service.store.client.session.close()  # type: ignore[attr-defined]


def _count(dsn: str, sql: str, *params: Any) -> int:
    with connect(dsn) as conn:
        return conn.execute(sql, params).fetchone()["n"]


class TestIngestion:
    def test_every_kind_becomes_searchable_text(self, world: World) -> None:
        owner = world.principal()
        markdown = "# Brand voice\n\nWe sound **warm** and plain. We never say *cheap*; we say *good value*."
        html = ("<html><head><title>Shipping FAQ</title><script>track()</script></head><body>"
                "<h1>Shipping</h1><p>We ship across India in 3&ndash;5 days.</p></body></html>")
        ids = {
            "text": world.add(owner, ASSAM, tags=["Tea", "assam"]),
            "markdown": world.add(owner, markdown, kind="markdown"),
            "html": world.add(owner, html, kind="html"),
        }
        pdf = make_pdf(["Darjeeling first flush guide", DARJEELING[:90], DARJEELING[90:]], title="Darjeeling Guide")
        accepted = world.service.submit_file(owner, filename="darjeeling.pdf", data=pdf, content_type="application/pdf",
                                             kind=None, title=None, tags=["tea"], workspace=None)
        assert accepted.status == "queued" and accepted.title == "darjeeling"
        assert world.service.get(owner, accepted.id).status == "queued"
        world.pump()
        ids["pdf"] = accepted.id
        url = world.service.submit_text(owner, TextResource(kind="url", url=CORPUS_URL), workspace=None)
        world.pump()
        ids["url"] = url.id

        views = {kind: world.service.get(owner, document_id) for kind, document_id in ids.items()}
        assert {kind: view.status for kind, view in views.items()} == dict.fromkeys(ids, "ready")
        assert views["text"].tags == ["tea", "assam"] and views["text"].title.startswith("Assam black tea")
        assert views["markdown"].title == "Brand voice" and "We never say cheap" in (views["markdown"].content or "")
        assert views["html"].title == "Shipping FAQ" and "track()" not in (views["html"].content or "")
        assert "3–5 days" in (views["html"].content or "")
        assert views["pdf"].title == "Darjeeling Guide" and views["pdf"].kind == "pdf"
        assert views["url"].source == CORPUS_URL and "Saanjh" in (views["url"].content or "")
        assert all(view.chunk_count >= 1 for view in views.values())

        store = world.service.store
        with as_service(world.pool) as conn:
            pdf_row = db.get_document(conn, ids["pdf"])
        assert store.get(pdf_row["storage_path"]) == pdf
        assert pdf_row["storage_path"] == f"{owner.requested_workspace}/{ids['pdf']}/darjeeling.pdf"
        assert store.get(f"{owner.requested_workspace}/{ids['url']}/page.md").startswith(b"#")

    def test_large_document_is_ingested_in_chained_rounds(self, migrated_dsn: str, module_pool: ConnectionPool,
                                                          servers: dict[str, RunningServer]) -> None:
        world = build_world(migrated_dsn, module_pool, servers, MUSE_KNOWLEDGE_EMBED_BATCH="3")
        owner = world.principal()
        text = "\n\n".join(f"Section {i}. " + ("Masala chai blends cardamom, ginger and clove. " * 9)
                           for i in range(8))
        accepted = world.service.submit_text(owner, TextResource(kind="text", content=text), workspace=None)
        first = world.deliver(world.queue.messages[0])
        world.delivered = 1
        assert first["status"] == "processing" and first["embedded"] == 3
        view = world.service.get(owner, accepted.id)
        assert view.status == "processing" and view.content is None and view.chunk_count > 6
        assert world.search(owner, "masala chai cardamom") == [], "half-ingested resources are not searchable"
        replies = world.pump()
        assert [r["status"] for r in replies][-1] == "ready"
        assert len(world.queue.messages) == 1 + len(replies)
        assert [m.round for m in world.queue.messages] == list(range(len(world.queue.messages)))
        assert world.service.get(owner, accepted.id).status == "ready"
        assert _count(world.dsn, "SELECT count(*) AS n FROM public.knowledge_embeddings e JOIN public.knowledge_chunks "
                                 "c ON c.id = e.chunk_id WHERE c.document_id = %s", accepted.id) == view.chunk_count
        world.service.store.client.session.close()  # type: ignore[attr-defined]

    def test_retried_and_concurrent_deliveries_never_duplicate_chunks(self, world: World) -> None:
        owner = world.principal()
        text = " ".join(f"Fact {i}: cold brew green tea keeps for three days in the fridge." for i in range(24))
        accepted = world.service.submit_text(owner, TextResource(content=text, kind="text"), workspace=None)
        [message] = world.queue.messages
        errors: list[BaseException] = []

        def deliver() -> None:
            try:
                world.deliver(message)
            except BaseException as exc:  # pragma: no cover - surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=deliver) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        world.delivered = 1
        world.pump()
        again = world.deliver(message)
        assert again == {"status": "ready", "duplicate": True}
        view = world.service.get(owner, accepted.id)
        chunks = _count(world.dsn, "SELECT count(*) AS n FROM public.knowledge_chunks WHERE document_id = %s",
                        accepted.id)
        vectors = _count(world.dsn, "SELECT count(*) AS n FROM public.knowledge_embeddings e JOIN "
                                    "public.knowledge_chunks c ON c.id = e.chunk_id WHERE c.document_id = %s",
                         accepted.id)
        assert view.status == "ready" and chunks == view.chunk_count == vectors

    def test_unusable_originals_fail_with_a_reason(self, world: World) -> None:
        owner = world.principal()
        broken = world.service.submit_file(owner, filename="broken.pdf", data=b"%PDF-1.4\nnot really a pdf",
                                           content_type="application/pdf", kind=None, title="Broken",
                                           tags=[], workspace=None)
        missing = world.service.submit_text(owner, TextResource(kind="url", url="https://unknown.example/page"),
                                            workspace=None)
        replies = world.pump()
        assert [r["status"] for r in replies] == ["failed", "failed"]
        assert "not a readable PDF" in (world.service.get(owner, broken.id).error or "")
        assert "could not extract" in (world.service.get(owner, missing.id).error or "")
        assert world.deliver(world.queue.messages[0]) == {"status": "failed", "duplicate": True}

    def test_the_first_round_is_sent_after_the_resource_commits(self, world: World) -> None:
        """The round is an outbox row of the submitting transaction: with QStash down the submission still
        succeeds, and the round waits to be published; it can never reach `ingest` before the resource exists."""

        class DownQueue(RecordingQueue):
            def publish(self, function: str, message: Any, *, dedup_id: str | None = None,
                        not_before: Any = None) -> str:
                raise UpstreamUnavailable("QStash is unreachable")

        owner = world.principal()
        service = dataclasses.replace(world.service, outbox=ingest_outbox(world.pool, DownQueue()))
        accepted = service.submit_text(owner, TextResource(content="Some note"), workspace=None)
        assert service.get(owner, accepted.id).status == "queued"
        with connect(world.dsn) as conn:
            [row] = conn.execute("SELECT function, message, published_at FROM public.step_outbox "
                                 "WHERE message->>'document_id' = %s", (str(accepted.id),)).fetchall()
        assert (row["function"], row["published_at"]) == ("ingest", None)
        mine = [r for r in outbox_db.unpublished(world.pool, older_than_seconds=0)
                if r["message"].get("document_id") == str(accepted.id)]
        assert world.service.outbox.publish(mine) == 1
        world.pump()
        assert world.service.get(owner, accepted.id).status == "ready"

    def test_a_round_for_a_resource_that_does_not_exist_changes_nothing(self, world: World) -> None:
        assert world.deliver(IngestMessage(document_id=uuid.uuid4()))["status"] == "ignored"

    def test_failure_callback_marks_the_resource_failed(self, world: World) -> None:
        owner = world.principal()
        accepted = world.service.submit_text(owner, TextResource(content="Some note"), workspace=None)
        source = json.dumps(world.queue.messages[0].model_dump(mode="json")).encode()
        callback = {"sourceMessageId": "msg_1", "dlqId": "dlq_1", "status": 503, "retried": 5,
                    "sourceBody": base64.b64encode(source).decode(),
                    "body": base64.b64encode(b"embedder down").decode()}
        body = json.dumps(callback).encode()
        reply = world.service.handle_delivery(body, world.signed(body))
        assert reply.body["status"] == "failed"
        view = world.service.get(owner, accepted.id)
        assert view.status == "failed" and "after 5 retries (last answer HTTP 503): embedder down" in (view.error or "")

    def test_bad_submissions_are_refused_before_storing(self, world: World) -> None:
        owner = world.principal()
        with pytest.raises(InvalidRequest, match="does not start with %PDF-"):
            world.service.submit_file(owner, filename="x.pdf", data=b"hello", content_type="application/pdf",
                                      kind=None, title=None, tags=[], workspace=None)
        with pytest.raises(NotFound, match="not a member"):
            world.service.submit_text(owner, TextResource(content="x"), workspace=str(uuid.uuid4()))
        assert world.queue.messages == []


class TestSearch:
    @pytest.fixture
    def library(self, world: World) -> tuple[World, Principal, dict[str, uuid.UUID]]:
        owner = world.principal()
        ids = {
            "assam": world.add(owner, ASSAM, title="Assam tea", tags=["tea", "black"]),
            "darjeeling": world.add(owner, DARJEELING, title="Darjeeling tea", tags=["tea"]),
            "returns": world.add(owner, RETURNS, kind="markdown", title="Returns", tags=["policy"]),
            "hindi": world.add(owner, "दिवाली के लिए हमारे चाय उपहार बॉक्स में चार तरह की चाय है और मुफ़्त डिलीवरी मिलती है।",
                               title="दिवाली उपहार", tags=["hindi"]),
        }
        return world, owner, ids

    def test_hybrid_search_returns_chunks_with_citations(self, library: tuple[World, Principal, dict]) -> None:
        world, owner, ids = library
        [best, *rest] = world.search(owner, "malty Assam tea with milk", k=3)
        assert best.citation.resource_id == ids["assam"]
        assert best.citation.title == "Assam tea" and best.citation.position == 0 and best.citation.kind == "text"
        assert best.citation.source_id == f"kb:{ids['assam']}:0"
        assert best.citation.char_start == 0 and best.citation.char_end == len(ASSAM)
        assert best.content == ASSAM
        assert best.ranks["vector"] is not None and best.ranks["text"] is not None
        assert 0 < best.similarity <= 1 and best.score > max(r.score for r in rest)

    def test_refund_question_and_hindi_query(self, library: tuple[World, Principal, dict]) -> None:
        world, owner, ids = library
        assert world.search(owner, "can I send back a gift box?", k=1)[0].citation.resource_id == ids["returns"]
        hindi = world.search(owner, "दिवाली चाय उपहार", k=1)[0]
        assert hindi.citation.resource_id == ids["hindi"]
        cross = world.search(owner, "Diwali gift box with free delivery", k=2, mode="vector")
        assert ids["hindi"] in [r.citation.resource_id for r in cross], "e5 is multilingual"

    def test_modes_and_filters(self, library: tuple[World, Principal, dict]) -> None:
        world, owner, ids = library
        text_only = world.search(owner, "muscatel", mode="text")
        assert [r.citation.resource_id for r in text_only] == [ids["darjeeling"]]
        assert text_only[0].ranks == {"vector": None, "text": 1}
        assert world.search(owner, "zzzz qqqq", mode="text") == []
        either = world.search(owner, "malty or muscatel", mode="text")
        assert {r.citation.resource_id for r in either} == {ids["assam"], ids["darjeeling"]}
        assert world.search(owner, "muscatel -floral", mode="text") == []
        assert [r.citation.resource_id for r in world.search(owner, '"first flush"', mode="text")] == [
            ids["darjeeling"]]
        assert len(world.search(owner, "zzzz qqqq", mode="vector", k=4)) == 4
        by_type = world.search(owner, "tea", type=["markdown"], k=10)
        assert {r.citation.resource_id for r in by_type} == {ids["returns"]}
        by_tags = world.search(owner, "tea", tags=["tea", "black"], k=10)
        assert {r.citation.resource_id for r in by_tags} == {ids["assam"]}
        assert world.search(owner, "tea", tags=["tea", "missing"]) == []

    def test_graph_port_is_hybrid_and_scoped(self, library: tuple[World, Principal, dict]) -> None:
        world, owner, ids = library
        findings = world.service.knowledge.search(owner.requested_workspace, "floral tea brewed without milk", k=2)
        assert findings[0].source_id == f"kb:{ids['darjeeling']}:0" and findings[0].title == "Darjeeling tea"
        assert world.service.knowledge.search(str(uuid.uuid4()), "floral tea", k=2) == []


class _FixedEmbedder:
    """A made-up 8-dimensional model whose only query is the first axis."""

    dimensions = 8

    def __init__(self) -> None:
        self.model = f"iterscan-{uuid.uuid4().hex[:8]}"

    def embed(self, texts: list[str], *, task: str = "RETRIEVAL_DOCUMENT") -> list[list[float]]:
        return [[1.0] + [0.0] * 7 for _ in texts]


def _fill_workspace(conn: Any, workspace_id: str, key: str, vectors: list[list[float]]) -> None:
    document = conn.execute(
        "INSERT INTO public.knowledge_documents (workspace_id, title, status) VALUES (%s, 'crowd', 'ready') "
        "RETURNING id", (workspace_id,)).fetchone()["id"]
    chunk_ids = [row["id"] for row in conn.execute(
        "INSERT INTO public.knowledge_chunks (document_id, workspace_id, position, content) "
        "SELECT %s, %s, g, 'chunk ' || g FROM generate_series(0, %s - 1) AS g RETURNING id",
        (document, workspace_id, len(vectors))).fetchall()]
    db.insert_embeddings(conn, key, [(chunk_id, workspace_id, vector)
                                     for chunk_id, vector in zip(chunk_ids, vectors, strict=True)])


class TestFilteredVectorSearch:
    """The workspace filter applied to an HNSW scan: iterative scans still return `k` chunks."""

    @pytest.fixture
    def crowded(self, migrated_dsn: str, module_pool: ConnectionPool) -> Iterator[tuple[PgVectorKnowledge, str]]:
        """1,500 chunks of other workspaces right next to the query, 8 of the caller's much farther away."""
        embedder = _FixedEmbedder()
        key = db.embedding_key(embedder)
        rng = np.random.default_rng(7)
        near = np.array([1.0] + [0.0] * 7) + rng.normal(0, 0.05, (1500, 8))
        far = np.array([0.6, 0.8] + [0.0] * 6) + rng.normal(0, 0.05, (8, 8))
        with connect(migrated_dsn) as conn, conn.transaction():
            crowd = [ensure_workspace(conn, slug=f"crowd-{uuid.uuid4().hex[:10]}", name="crowd",
                                      user_id=str(uuid.uuid4())) for _ in range(3)]
            caller = ensure_workspace(conn, slug=f"lonely-{uuid.uuid4().hex[:10]}", name="lonely",
                                      user_id=str(uuid.uuid4()))
            for i, workspace_id in enumerate(crowd):
                _fill_workspace(conn, workspace_id, key, near[i::3].tolist())
            _fill_workspace(conn, caller, key, far.tolist())
        with connect(migrated_dsn) as conn:
            index = ensure_vector_index(conn, key)
            conn.execute("ANALYZE public.knowledge_embeddings")
        try:
            yield PgVectorKnowledge(pool=module_pool, embedder=embedder, candidates=5), caller
        finally:
            with connect(migrated_dsn) as conn:
                conn.execute(f'DROP INDEX public."{index}"')
                conn.execute("DELETE FROM public.workspaces WHERE id = ANY(%s)", ([*crowd, caller],))

    def test_caller_gets_k_chunks_despite_closer_foreign_ones(self, crowded: tuple[PgVectorKnowledge, str]) -> None:
        """Without iterative scans the 40 candidates HNSW returns all belong to other workspaces.

        For so few rows the planner would rather read the workspace's rows and sort them (exact, no problem);
        `enable_sort = off` makes it take the HNSW path a large workspace gets, and the plan is checked.
        """
        knowledge, caller = crowded
        vector = knowledge.query_vector("anything")

        def search(iterative_scan: Literal["relaxed_order", "strict_order", "off"]) -> tuple[list[Any], str]:
            searcher = PgVectorKnowledge(pool=knowledge.pool, embedder=knowledge.embedder, candidates=5,
                                         iterative_scan=iterative_scan)
            with as_service(knowledge.pool) as conn:
                conn.execute("SET LOCAL enable_sort = off")
                hits = searcher.search_in(conn, caller, "anything", k=5, mode="vector", vector=vector)
                params = {"ws": caller, "limit": 5, "kinds": None, "tags": None, "vector": db.vector_literal(vector)}
                plan = "\n".join(row["QUERY PLAN"] for row in conn.execute(
                    sql.SQL("EXPLAIN ") + db.vector_ranking(knowledge.embedder.dimensions, knowledge.key), params))
            return hits, plan

        without, plan = search("off")
        assert vector_index_name(knowledge.key) in plan, plan
        assert len(without) < 5, "ef_search (40) candidates are all other workspaces' chunks"
        for mode in ("relaxed_order", "strict_order"):
            hits, plan = search(mode)
            assert vector_index_name(knowledge.key) in plan, plan
            assert len(hits) == 5, mode
            similarities = [hit.similarity for hit in hits]
            assert similarities == sorted(similarities, reverse=True)
            assert all(s is not None and s < 0.9 for s in similarities), "only the caller's far chunks"


class TestRowLevelSecurity:
    def test_one_workspace_never_sees_another(self, world: World) -> None:
        alice, bob = world.principal(), world.principal()
        secret = world.add(bob, "Bob's confidential Darjeeling muscatel pricing: ₹2,400 per kilo.", title="Bob prices")
        mine = world.add(alice, "Alice's Darjeeling muscatel notes.", title="Alice notes")
        for mode in ("hybrid", "vector", "text"):
            found = world.search(alice, "Darjeeling muscatel", k=50, mode=mode)
            assert {r.citation.resource_id for r in found} == {mine}, mode
        with pytest.raises(NotFound):
            world.service.get(alice, secret)
        with as_user(world.pool, alice.claims) as conn:
            hits = world.service.knowledge.search_in(conn, bob.requested_workspace, "Darjeeling pricing", k=50)
            assert hits == [], "RLS hides Bob's chunks even when Alice names Bob's workspace"
            counts = conn.execute(
                "SELECT (SELECT count(*) FROM public.knowledge_chunks WHERE document_id = %(d)s) AS chunks, "
                "(SELECT count(*) FROM public.knowledge_embeddings e JOIN public.knowledge_chunks c ON c.id = "
                "e.chunk_id WHERE c.document_id = %(d)s) AS vectors, (SELECT count(*) FROM "
                "public.knowledge_documents WHERE id = %(d)s) AS documents", {"d": secret}).fetchone()
            assert counts == {"chunks": 0, "vectors": 0, "documents": 0}
        with pytest.raises(NotFound, match="not a member"):
            world.service.search(alice, SearchQuery(q="pricing"), workspace=bob.requested_workspace)

    def test_members_cannot_forge_pipeline_state(self, world: World) -> None:
        alice = world.principal()
        with pytest.raises(psycopg.errors.InsufficientPrivilege), as_user(world.pool, alice.claims) as conn:
            conn.execute("INSERT INTO public.knowledge_documents (workspace_id, title, status) VALUES (%s, 'x', "
                         "'ready')", (alice.requested_workspace,))


class TestModelSwitch:
    def test_switching_models_re_embeds_without_schema_change(self, world: World, servers: dict) -> None:
        owner = world.principal()
        ids = [world.add(owner, text, title=title) for title, text in
               (("Assam", ASSAM), ("Darjeeling", DARJEELING), ("Returns", RETURNS))]
        columns_before = _columns(world.dsn)
        gemini_settings = kb_settings(world.dsn, GEMINI_BASE_URL=servers["gemini"].url)
        gemini = GeminiEmbedder(connect=partial(gemini_client, gemini_settings), model="gemini-embedding-001",
                                dimensions=256)
        switched = PgVectorKnowledge(pool=world.pool, embedder=gemini)
        assert switched.key == "gemini-embedding-001@256"

        with as_user(world.pool, owner.claims) as conn:
            before = switched.search_in(conn, owner.requested_workspace, "refund policy returned", k=3, mode="vector")
            still = switched.search_in(conn, owner.requested_workspace, "refund policy returned", k=1)
        assert before == [], "no vectors of the new model yet"
        assert still[0].document_id == ids[2], "full text keeps working during the switch"

        with connect(world.dsn) as conn:
            assert ensure_vector_index(conn, switched.key) == vector_index_name(switched.key)
            ensure_vector_index(conn, switched.key)
        added = switched.reembed(workspace_id=owner.requested_workspace, batch=2)
        assert added == 3 and switched.reembed(workspace_id=owner.requested_workspace) == 0
        with as_user(world.pool, owner.claims) as conn:
            after = switched.search_in(conn, owner.requested_workspace, "refund policy returned", k=1, mode="vector")
        assert after[0].document_id == ids[2]
        with connect(world.dsn) as conn:
            conn.execute("SET enable_seqscan = off")
            plan = conn.execute(
                "EXPLAIN SELECT chunk_id FROM public.knowledge_embeddings e WHERE e.model = "
                "'gemini-embedding-001@256' ORDER BY (e.embedding::vector(256)) <=> %s::vector(256) LIMIT 5",
                (db.vector_literal([0.1] * 256),)).fetchall()
        assert any(vector_index_name(switched.key) in row["QUERY PLAN"] for row in plan)
        keys = {r["model"] for r in _rows(world.dsn, "SELECT DISTINCT e.model FROM public.knowledge_embeddings e "
                                                     "WHERE e.workspace_id = %s", owner.requested_workspace)}
        assert keys == {"multilingual-e5-small@384", "gemini-embedding-001@256"}
        assert _columns(world.dsn) == columns_before

        with as_service(world.pool) as conn:
            assert db.prune_embeddings(conn, switched.key, workspace_id=owner.requested_workspace) == 3
        with as_user(world.pool, owner.claims) as conn:
            assert switched.search_in(conn, owner.requested_workspace, "malty", k=1)[0].document_id == ids[0]

        with pytest.raises(Exception, match="knowledge_embeddings_dimensions"), connect(world.dsn) as conn:
            conn.execute("INSERT INTO public.knowledge_embeddings (chunk_id, model, workspace_id, embedding) "
                         "SELECT id, 'gemini-embedding-001@256', workspace_id, %s::vector FROM "
                         "public.knowledge_chunks WHERE document_id = %s ON CONFLICT DO NOTHING",
                         (db.vector_literal([0.1] * 3), ids[0]))


    def test_the_reembed_job_indexes_embeds_and_prunes(self, world: World, servers: dict) -> None:
        owner = world.principal()
        kept = world.add(owner, RETURNS, title="Returns")
        world.add(owner, ASSAM, title="Assam")
        settings = kb_settings(world.dsn, GEMINI_BASE_URL=servers["gemini"].url, MUSE_EMBEDDING_PROVIDER="gemini",
                               MUSE_EMBEDDING_DIMENSIONS="128")
        result = reembed(settings, workspace_id=owner.requested_workspace, prune=True, batch=1)
        assert result == Reembedded(model="gemini-embedding-001@128", index=vector_index_name(result.model),
                                    embedded=2, pruned=2)
        assert reembed(settings, workspace_id=owner.requested_workspace).embedded == 0
        gemini = GeminiEmbedder(connect=partial(gemini_client, settings), model="gemini-embedding-001",
                                dimensions=128)
        with as_user(world.pool, owner.claims) as conn:
            hits = PgVectorKnowledge(pool=world.pool, embedder=gemini).search_in(
                conn, owner.requested_workspace, "refund returned within 14 days", k=1, mode="vector")
        assert hits[0].document_id == kept


# ------------------------------------------------------------------------------------------ HTTP routes

SECRET = BASE_ENV["SUPABASE_JWT_SECRET"]


@pytest.fixture
def api(migrated_dsn: str, module_pool: ConnectionPool, servers: dict[str, RunningServer],
        monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    world = build_world(migrated_dsn, module_pool, servers, MUSE_KNOWLEDGE_MAX_UPLOAD_BYTES="4096")
    os.environ.update({**BASE_ENV, "DATABASE_URL": migrated_dsn, "MUSE_KNOWLEDGE_MAX_UPLOAD_BYTES": "4096"})
    get_settings.cache_clear()
    monkeypatch.setattr(knowledge_api, "service", lambda: world.service)
    yield world
    get_settings.cache_clear()
    world.service.store.client.session.close()  # type: ignore[attr-defined]


def bearer(principal: Principal) -> dict[str, str]:
    token = jwt.encode({**principal.claims, "exp": 4102444800}, SECRET, algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


def call(method: str, path: str, **kwargs: Any) -> tuple[int, Any, flask.Response]:
    app = flask.Flask("knowledge-test")
    with app.test_request_context(path, method=method, **kwargs):
        response = dispatch(flask.request)
        return response.status_code, response.get_json(silent=True), response


def test_upload_poll_search_fetch(api: World) -> None:
    owner = api.principal()
    pdf = make_pdf(["Nilgiri frost tea is brisk and fragrant.", "Harvested in winter above 1,800 metres."],
                   title="Nilgiri Frost")
    status, body, response = call("POST", "/api/v1/knowledge", headers=bearer(owner),
                                  content_type="multipart/form-data",
                                  data={"file": (io.BytesIO(pdf), "nilgiri.pdf", "application/pdf"),
                                        "tags": ["Tea, winter", "premium"]})
    assert status == 202, body
    assert body["status"] == "queued" and body["kind"] == "pdf" and body["title"] == "nilgiri"
    assert response.headers["Location"] == f"/api/v1/knowledge/{body['id']}"
    status, view, _ = call("GET", body["links"]["self"], headers=bearer(owner))
    assert status == 200 and view["status"] == "queued" and view["content"] is None
    api.pump()
    status, view, _ = call("GET", body["links"]["self"], headers=bearer(owner))
    assert status == 200 and view["status"] == "ready" and view["title"] == "Nilgiri Frost"
    assert view["tags"] == ["tea", "winter", "premium"] and "Harvested in winter" in view["content"]

    status, found, _ = call("GET", "/api/v1/knowledge/search?q=winter+harvested+tea&k=2&type=pdf&tags=winter",
                            headers=bearer(owner))
    assert status == 200, found
    [hit] = found["results"]
    assert hit["citation"]["resource_id"] == body["id"] and hit["citation"]["page"] == 1
    assert hit["citation"]["source_id"] == f"kb:{body['id']}:0" and found["mode"] == "hybrid"

    status, found, _ = call("GET", "/api/v1/knowledge/search?q=winter&type=url", headers=bearer(owner))
    assert status == 200 and found["results"] == []


def test_json_resources_and_url(api: World) -> None:
    owner = api.principal()
    status, body, _ = call("POST", "/v1/knowledge", headers=bearer(owner),
                           json={"kind": "url", "url": "https://example-news.in/business/"
                                                       "saanjh-sarees-diwali-2026-campaign", "tags": ["press"]})
    assert status == 202 and body["kind"] == "url"
    status, body, _ = call("POST", "/v1/knowledge/", headers=bearer(owner),
                           json={"kind": "markdown", "content": "# Voice\n\nWarm and plain."})
    assert status == 202 and body["title"] == "Voice"
    assert [r["status"] for r in api.pump()] == ["ready", "ready"]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "message"), [
    ("POST", "/api/v1/knowledge", {"data": "plain", "content_type": "text/plain"}, 400, "Unsupported Content-Type"),
    ("POST", "/api/v1/knowledge", {"json": {"kind": "markdown"}}, 400, "`content` is required"),
    ("POST", "/api/v1/knowledge", {"json": {"content": "x", "colour": "red"}}, 400, "colour"),
    ("POST", "/api/v1/knowledge", {"json": {"kind": "url", "url": "ftp://x"}}, 400, "not an http(s) URL"),
    ("POST", "/api/v1/knowledge", {"json": {"content": "x" * 5000}}, 413, "MUSE_KNOWLEDGE_MAX_UPLOAD_BYTES"),
    ("POST", "/api/v1/knowledge", {"content_type": "multipart/form-data", "data": {"title": "x"}}, 400,
     "multipart field `file`"),
    ("POST", "/api/v1/knowledge", {"content_type": "multipart/form-data",
                                   "data": {"file": (io.BytesIO(b"x"), "a.txt"), "tag": "x"}}, 400, "`tag`"),
    ("POST", "/api/v1/knowledge", {"content_type": "multipart/form-data",
                                   "data": {"file": (io.BytesIO(b"x"), "deck.pptx")}}, 400, ".pdf, .md, .html or .txt"),
    ("POST", "/api/v1/knowledge", {"content_type": "multipart/form-data",
                                   "data": {"file": (io.BytesIO(b"x" * 5000), "big.txt")}}, 413, "larger than 4096"),
    ("GET", "/api/v1/knowledge/search", {}, 400, "`q`"),
    ("GET", "/api/v1/knowledge/search?q=tea&k=many", {}, 400, "`k`"),
    ("GET", "/api/v1/knowledge/search?q=tea&type=doc", {}, 400, "type"),
    ("GET", "/api/v1/knowledge/search?q=tea&mode=fuzzy", {}, 400, "'hybrid', 'vector' or 'text'"),
    ("GET", "/api/v1/knowledge/search?q=tea&limit=3", {}, 400, "`limit`"),
    ("GET", "/api/v1/knowledge/not-a-uuid", {}, 400, "ids are UUIDs"),
    ("POST", "/api/v1/knowledge/search", {}, 405, "use ['GET']"),
])
def test_bad_requests_say_what_to_fix(api: World, method: str, path: str, kwargs: dict[str, Any], status: int,
                                      message: str) -> None:
    owner = api.principal()
    got, body, _ = call(method, path, headers=bearer(owner), **kwargs)
    assert got == status, body
    assert message in body["error"]["message"]
    assert api.queue.messages == []


def test_auth_and_isolation(api: World) -> None:
    alice, bob = api.principal(), api.principal()
    status, body, _ = call("POST", "/api/v1/knowledge", headers=bearer(bob), json={"content": "Bob's secret plan"})
    api.pump()
    assert call("GET", f"/api/v1/knowledge/{body['id']}")[0] == 401
    status, error, _ = call("GET", f"/api/v1/knowledge/{body['id']}", headers=bearer(alice))
    assert status == 404 and error["error"]["code"] == "not_found"
    assert call("GET", f"/api/v1/knowledge/{uuid.uuid4()}", headers=bearer(alice))[0] == 404
    status, found, _ = call("GET", "/api/v1/knowledge/search?q=secret+plan", headers=bearer(alice))
    assert status == 200 and found["results"] == []
    status, error, _ = call("GET", "/api/v1/knowledge/search?q=plan", headers={
        **bearer(alice), "X-Workspace-Id": bob.requested_workspace})
    assert status == 404


def _rows(dsn: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    with connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def _columns(dsn: str) -> list[tuple[str, str, str]]:
    rows = _rows(dsn, "SELECT table_name, column_name, udt_name FROM information_schema.columns WHERE table_schema = "
                      "'public' AND table_name LIKE 'knowledge_%%' ORDER BY 1, 2")
    return [(r["table_name"], r["column_name"], r["udt_name"]) for r in rows]
