"""A knowledge service over real Postgres, the e5 model, and the Storage/Tavily/Gemini emulators on the wire.

Used by the knowledge integration tests and the storage emulator's tests.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import flask
from psycopg_pool import ConnectionPool
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from infra.local.emulators import tavily
from infra.local.emulators.config import DEV_QSTASH_CURRENT_SIGNING_KEY, EmulatorConfig
from infra.local.emulators.gemini import create_app as create_gemini
from infra.local.emulators.qstash import sign
from infra.local.emulators.supabase_storage import LOCAL_SERVICE_ROLE_KEY
from infra.local.emulators.supabase_storage import create_app as create_storage
from infra.local.serve import RunningServer, serve_in_thread
from shared.auth import Principal
from shared.db.knowledge import PgVectorKnowledge
from shared.db.pool import connect, create_pool
from shared.db.workspaces import ensure_workspace
from shared.integrations.embeddings import LocalE5Embedder
from shared.integrations.storage import supabase_object_store
from shared.integrations.tavily_extract import tavily_page_extractor
from shared.knowledge.models import IngestMessage, SearchQuery, TextResource
from shared.knowledge.service import KnowledgeService, ingest_outbox
from shared.queue import qstash_receiver
from shared.settings import Settings
from shared.testing.fakes import RecordingQueue

E5 = LocalE5Embedder()
EMULATORS = EmulatorConfig(database_url="")
BASE_ENV = {
    "DATABASE_URL": "postgresql://unused",
    "QSTASH_URL": "http://127.0.0.1:9/qstash",
    "QSTASH_TOKEN": "t",
    "QSTASH_CURRENT_SIGNING_KEY": DEV_QSTASH_CURRENT_SIGNING_KEY,
    "QSTASH_NEXT_SIGNING_KEY": "sig_next_unused_but_long_enough_000000",
    "UPSTASH_REDIS_REST_URL": "http://127.0.0.1:9/redis",
    "UPSTASH_REDIS_REST_TOKEN": "t",
    "GEMINI_API_KEY": EMULATORS.gemini_api_key,
    "TAVILY_API_KEY": EMULATORS.tavily_api_key,
    "PHONEPE_CLIENT_ID": "c",
    "PHONEPE_CLIENT_SECRET": "s",
    "PHONEPE_WEBHOOK_USERNAME": "u",
    "PHONEPE_WEBHOOK_PASSWORD": "p",
    "SUPABASE_JWT_SECRET": "local-knowledge-test-secret-of-32-bytes-or-more",
    "SUPABASE_SERVICE_ROLE_KEY": LOCAL_SERVICE_ROLE_KEY,
    "MUSE_EMBEDDING_PROVIDER": "local",
    "MUSE_FUNCTION_URL_TEMPLATE": "https://{name}.functions.test/",
    "MUSE_URL_ALLOWLIST": "example-news.in,.example",
    "MUSE_ENCRYPTION_KEYS": "tests:CzrIE6ykR0Cy05v5/PKe7S4P7ByHv/TNyKvzVH4jYgA=",
}
"""`MUSE_URL_ALLOWLIST` trusts the Tavily emulator's fictional hosts by name, as the local stack does."""


def kb_settings(dsn: str, **overrides: str) -> Settings:
    """Settings for in-process knowledge tests (QStash, Redis and PhonePe are never reached)."""
    return Settings(**{**BASE_ENV, "DATABASE_URL": dsn, **overrides})  # type: ignore[arg-type]


@dataclass
class World:
    """A knowledge service over real Postgres, Storage and Tavily emulators, and a recording queue."""

    dsn: str
    pool: ConnectionPool
    settings: Settings
    service: KnowledgeService
    queue: RecordingQueue
    delivered: int = 0

    def principal(self) -> Principal:
        user_id = str(uuid.uuid4())
        with connect(self.dsn) as conn, conn.transaction():
            slug = f"kb-{uuid.uuid4().hex[:10]}"
            workspace_id = ensure_workspace(conn, slug=slug, name=slug, user_id=user_id)
        claims = {"sub": user_id, "aud": "authenticated", "role": "authenticated",
                  "app_metadata": {"workspace_id": workspace_id}}
        return Principal(user_id=uuid.UUID(user_id), claims=claims)

    def deliver(self, message: IngestMessage) -> dict[str, Any]:
        body = json.dumps(message.model_dump(mode="json")).encode()
        reply = self.service.handle_delivery(body, self.signed(body))
        assert reply.status == 200
        return reply.body

    def signed(self, body: bytes) -> str:
        """The `Upstash-Signature` QStash would send with `body` to the ingest function."""
        return sign(body, self.settings.function_url("ingest"), DEV_QSTASH_CURRENT_SIGNING_KEY)

    def pump(self, limit: int = 200) -> list[dict[str, Any]]:
        replies = []
        while self.delivered < len(self.queue.messages) and limit:
            replies.append(self.deliver(self.queue.messages[self.delivered]))
            self.delivered += 1
            limit -= 1
        return replies

    def add(self, principal: Principal, content: str, *, kind: str = "text", title: str | None = None,
            tags: list[str] | None = None) -> uuid.UUID:
        body = TextResource.model_validate({"kind": kind, "content": content, "title": title, "tags": tags or []})
        accepted = self.service.submit_text(principal, body, workspace=None)
        self.pump()
        return accepted.id

    def search(self, principal: Principal, q: str, **params: Any) -> list[Any]:
        return self.service.search(principal, SearchQuery.model_validate({"q": q, **params}), workspace=None).results


def build_world(dsn: str, pool: ConnectionPool, servers: dict[str, RunningServer], **env: str) -> World:
    settings = kb_settings(dsn, SUPABASE_URL=f"{servers['storage'].url}/supabase",
                           TAVILY_BASE_URL=servers["tavily"].url, **env)
    queue = RecordingQueue()
    service = KnowledgeService(settings=settings, pool=pool, knowledge=PgVectorKnowledge(pool=pool, embedder=E5),
                               store=supabase_object_store(settings), outbox=ingest_outbox(pool, queue),
                               pages=tavily_page_extractor(settings), receiver=qstash_receiver(settings))
    return World(dsn=dsn, pool=pool, settings=settings, service=service, queue=queue)


@contextmanager
def knowledge_emulators(dsn: str, *, gemini: bool = False) -> Iterator[dict[str, RunningServer]]:
    """The Storage and Tavily emulators (and Gemini's, when asked) served on loopback threads."""
    config = EmulatorConfig(database_url=dsn)
    servers = {"storage": serve_in_thread(DispatcherMiddleware(flask.Flask("root"),
                                                               {"/supabase/storage": create_storage(config)})),
               "tavily": serve_in_thread(tavily.create_app(config))}
    if gemini:
        servers["gemini"] = serve_in_thread(create_gemini(config))
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@contextmanager
def open_pool(dsn: str, max_size: int) -> Iterator[ConnectionPool]:
    """A pool closed on exit (module-scoped knowledge fixtures share one)."""
    pool = create_pool(dsn, max_size=max_size)
    try:
        yield pool
    finally:
        pool.close()
