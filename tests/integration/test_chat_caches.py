"""The chat caches on the Upstash Redis emulator (over an embedded Redis) and real Postgres.

What must hold: a cached window is exactly what the store would answer; knowledge results are never
served across workspaces or across a change of the workspace's knowledge; an unreachable or silent
cache is a miss within the timeout, never an error.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial

import pytest
from psycopg_pool import ConnectionPool

from infra.local.emulators.upstash_redis import served_over_embedded_redis
from shared.caching.chat import (
    CachedKnowledgeSearch,
    CachedMessageStore,
    ChatCache,
    ChatCaches,
    cached_canon,
    chat_cache,
    session_key,
)
from shared.db.conversations import ConversationRepository, StoredMessage
from shared.db.knowledge_version import knowledge_version
from shared.db.pool import connect
from shared.db.workspaces import ensure_workspace
from shared.ports import Finding
from shared.settings import Settings
from shared.tools.canon import load_canon
from tests.integration.harness import make_settings

REDIS_TOKEN = "chat-cache-token"
UNREACHABLE_URL = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def redis_rest_url() -> Iterator[str]:
    """The Upstash Redis REST emulator over a real embedded Redis."""
    with served_over_embedded_redis(REDIS_TOKEN) as url:
        yield url


def _settings(url: str, **extra: str) -> Settings:
    return make_settings("postgresql://unused", UPSTASH_REDIS_REST_URL=url, UPSTASH_REDIS_REST_TOKEN=REDIS_TOKEN,
                         MUSE_CHAT_CACHE_TIMEOUT_SECONDS="0.3", **extra)


@pytest.fixture
def cache(redis_rest_url: str) -> ChatCache:
    return chat_cache(_settings(redis_rest_url))


def _workspace(dsn: str) -> str:
    slug = f"cc-{uuid.uuid4().hex[:10]}"
    with connect(dsn) as conn, conn.transaction():
        return ensure_workspace(conn, slug=slug, name=slug, user_id=str(uuid.uuid4()))


@dataclass
class CountingStore:
    """The real repository, counting the window reads that reach Postgres."""

    inner: ConversationRepository
    reads: int = 0

    def ensure_conversation(self, conversation_id: str, workspace_id: str) -> None:
        self.inner.ensure_conversation(conversation_id, workspace_id)

    def append(self, conversation_id: str, workspace_id: str, **kwargs: object) -> str:
        return self.inner.append(conversation_id, workspace_id, **kwargs)  # type: ignore[arg-type]

    def oldest_after(self, conversation_id: str, after_seq: int, limit: int) -> list[StoredMessage]:
        return self.inner.oldest_after(conversation_id, after_seq, limit)

    def newest_after(self, conversation_id: str, after_seq: int, limit: int) -> list[StoredMessage]:
        self.reads += 1
        return self.inner.newest_after(conversation_id, after_seq, limit)

    def save_summary(self, conversation_id: str, summary: dict[str, object], through_seq: int) -> None:
        self.inner.save_summary(conversation_id, summary, through_seq)


class TestSessionWindow:
    def test_windows_are_what_the_store_answers_and_turns_after_the_first_hit(
            self, pool: ConnectionPool, migrated_dsn: str, cache: ChatCache) -> None:
        workspace = _workspace(migrated_dsn)
        conversation = str(uuid.uuid4())
        repo = ConversationRepository(pool)
        counting = CountingStore(repo)
        store = CachedMessageStore(inner=counting, cache=cache, tail=8)  # type: ignore[arg-type]
        store.ensure_conversation(conversation, workspace)
        for turn in range(12):
            store.append(conversation, workspace, seq=2 * turn, role="user",
                         content=f"question {turn}: दिवाली \"₹1,499\" a/b\\n\n{{}}[] 🎁")
            for after, limit in ((-1, 5), (2 * turn - 6, 7), (2 * turn - 1, 3), (-1, 8)):
                assert store.newest_after(conversation, after, limit) == repo.newest_after(conversation, after, limit)
            store.append(conversation, workspace, seq=2 * turn + 1, role="assistant", content=f"answer {turn}")
        assert cache.stats.count("session", "hit") >= 47
        assert counting.reads == 1, "only the cold tail was read from Postgres"
        assert store.newest_after(conversation, -1, 9) == repo.newest_after(conversation, -1, 9)
        assert counting.reads == 2, "a window longer than the tail is the store's"

    def test_an_append_the_cache_missed_is_never_hidden(self, pool: ConnectionPool, migrated_dsn: str,
                                                        cache: ChatCache) -> None:
        """Another writer appended without the wrapper: the next wrapped append sees the gap and drops the tail."""
        workspace, conversation = _workspace(migrated_dsn), str(uuid.uuid4())
        repo = ConversationRepository(pool)
        store = CachedMessageStore(inner=repo, cache=cache)
        store.ensure_conversation(conversation, workspace)
        store.append(conversation, workspace, seq=0, role="user", content="hi")
        store.newest_after(conversation, -1, 5)
        repo.append(conversation, workspace, seq=1, role="assistant", content="written elsewhere")
        store.append(conversation, workspace, seq=2, role="user", content="again")
        assert [m.seq for m in store.newest_after(conversation, -1, 5)] == [0, 1, 2]

    def test_another_workspace_is_a_different_key(self, cache: ChatCache) -> None:
        conversation = str(uuid.uuid4())
        cache.put("session", session_key("ws-a", conversation), {"messages": [[0, "user", "a"]], "complete": True},
                  ttl_seconds=60)
        assert cache.get("session", session_key("ws-b", conversation)) is None


@dataclass
class WorkspaceSearch:
    """A knowledge search whose results name the workspace searched; counts calls."""

    calls: list[tuple[str, str]] = field(default_factory=list)

    def search(self, workspace_id: str, query: str, *, k: int = 5) -> list[Finding]:
        self.calls.append((workspace_id, query))
        return [Finding(source_id=f"kb:{workspace_id}", title=f"doc of {workspace_id}", content=query)]


def _add_ready_document(dsn: str, workspace: str) -> str:
    with connect(dsn) as conn, conn.transaction():
        row = conn.execute("INSERT INTO public.knowledge_documents (workspace_id, title, content, status) "
                           "VALUES (%s, 'Price list', 'Assam box Rs 1,499', 'processing') RETURNING id::text AS id",
                           (workspace,)).fetchone()
        assert row is not None
        conn.execute("UPDATE public.knowledge_documents SET status = 'ready' WHERE id = %s", (row["id"],))
    return str(row["id"])


class TestKnowledgeSearch:
    def test_results_are_per_workspace_and_per_knowledge_version(self, pool: ConnectionPool, migrated_dsn: str,
                                                                 cache: ChatCache) -> None:
        first, second = _workspace(migrated_dsn), _workspace(migrated_dsn)
        inner = WorkspaceSearch()
        search = CachedKnowledgeSearch(inner=inner, cache=cache, version=partial(knowledge_version, pool))
        assert search.search(first, "diwali hampers")[0].source_id == f"kb:{first}"
        assert search.search(first, "diwali  hampers ")[0].source_id == f"kb:{first}"
        assert search.search(second, "diwali hampers")[0].source_id == f"kb:{second}"
        assert len(inner.calls) == 2, "the repeated query of the first workspace was a hit"

        before = knowledge_version(pool, first)
        document = _add_ready_document(migrated_dsn, first)
        assert knowledge_version(pool, first) != before
        search.search(first, "diwali hampers")
        search.search(second, "diwali hampers")
        assert inner.calls[2:] == [(first, "diwali hampers")], "only the changed workspace searched again"

        with connect(migrated_dsn) as conn, conn.transaction():
            conn.execute("DELETE FROM public.knowledge_documents WHERE id = %s", (document,))
        search.search(first, "diwali hampers")
        assert len(inner.calls) == 4

    def test_queued_and_processing_resources_do_not_change_the_version(self, pool: ConnectionPool,
                                                                       migrated_dsn: str) -> None:
        workspace = _workspace(migrated_dsn)
        before = knowledge_version(pool, workspace)
        with connect(migrated_dsn) as conn, conn.transaction():
            conn.execute("INSERT INTO public.knowledge_documents (workspace_id, title, content, status) "
                         "VALUES (%s, 'Draft', '', 'queued')", (workspace,))
            conn.execute("UPDATE public.knowledge_documents SET status = 'processing' WHERE workspace_id = %s",
                         (workspace,))
        assert knowledge_version(pool, workspace) == before


def test_the_canon_comes_back_equal_from_the_cache(cache: ChatCache) -> None:
    cache.cache.redis.flushall()
    first = cached_canon(cache)
    again = cached_canon(cache)
    assert cache.stats.count("canon", "miss") == 1 and cache.stats.count("canon", "hit") == 1
    assert first == again == load_canon()


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A port that accepts connections and never answers (a hung cache)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


class TestOutage:
    @pytest.mark.parametrize("kind", ["refused", "silent"])
    def test_an_unreachable_cache_is_a_miss_within_the_timeout(self, pool: ConnectionPool, migrated_dsn: str,
                                                               silent_url: str, kind: str) -> None:
        url = UNREACHABLE_URL if kind == "refused" else silent_url
        caches = ChatCaches(cache=chat_cache(_settings(url)), settings=_settings(url),
                            version=partial(knowledge_version, pool))
        workspace, conversation = _workspace(migrated_dsn), str(uuid.uuid4())
        inner = WorkspaceSearch()
        search, store = caches.knowledge(inner), caches.messages(ConversationRepository(pool))
        started = time.perf_counter()
        for _ in range(3):
            assert search.search(workspace, "festive offers")[0].source_id == f"kb:{workspace}"
        store.ensure_conversation(conversation, workspace)
        store.append(conversation, workspace, seq=0, role="user", content="hello")
        assert [m.content for m in store.newest_after(conversation, -1, 5)] == ["hello"]
        assert caches.canon() == load_canon()
        elapsed = time.perf_counter() - started
        assert len(inner.calls) == 3
        assert caches.cache.stats.count("knowledge", "error") == 1, "one failure, then the cool-down skips Redis"
        assert caches.cache.stats.count("knowledge", "skipped") == 2
        assert elapsed < 1.5, f"an outage cost {elapsed:.2f} s"
        assert not caches.forget_conversation(workspace, conversation)


def test_a_zero_session_lifetime_turns_the_session_cache_off(pool: ConnectionPool) -> None:
    settings = _settings(UNREACHABLE_URL, MUSE_CHAT_SESSION_CACHE_SECONDS="0")
    caches = ChatCaches(cache=chat_cache(settings), settings=settings, version=partial(knowledge_version, pool))
    repo = ConversationRepository(pool)
    assert caches.messages(repo) is repo


def test_a_workspace_id_that_is_no_uuid_searches_uncached(pool: ConnectionPool, cache: ChatCache) -> None:
    inner = WorkspaceSearch()
    search = CachedKnowledgeSearch(inner=inner, cache=cache, version=partial(knowledge_version, pool))
    search.search("not-a-uuid", "offers")
    search.search("not-a-uuid", "offers")
    assert len(inner.calls) == 2
