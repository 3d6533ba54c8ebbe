"""Hit and miss timings of the chat caches (`shared.caching.chat`), printed as `name: value unit` lines.

Runs on an embedded Postgres (or `DATABASE_URL`) and the Upstash Redis REST emulator over an embedded
Redis, everything on loopback: the session window (from Postgres vs from the cached tail), an append
(Postgres alone vs Postgres + the atomic tail update), knowledge search with the local e5 model (miss:
embed + hybrid search + store; hit), the canon (parse vs cached), and an outage (refused connection,
and a cache that accepts but never answers: the first call waits the timeout, later ones skip Redis).
"""

from __future__ import annotations

import argparse
import logging
import socket
import statistics
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from time import perf_counter

from pydantic import SecretStr

from infra.bench_memory import postgres
from infra.local.emulators.upstash_redis import served_over_embedded_redis
from shared.caching.chat import CachedKnowledgeSearch, CachedMessageStore, ChatCache, cached_canon, chat_cache
from shared.db.conversations import ConversationRepository
from shared.db.knowledge import PgVectorKnowledge
from shared.db.knowledge_version import knowledge_version
from shared.db.pool import as_service, connect, create_pool
from shared.db.workspaces import ensure_workspace
from shared.integrations.embeddings import LocalE5Embedder
from shared.settings import Settings
from shared.tools.canon import CANON_PATH, parse_canon

TOKEN = "bench-chat-caches"


def _timings(fn: Callable[[], object], n: int) -> tuple[float, float]:
    samples = []
    for _ in range(n):
        started = perf_counter()
        fn()
        samples.append((perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.95) - 1)]


def _line(name: str, fn: Callable[[], object], n: int) -> None:
    p50, p95 = _timings(fn, n)
    print(f"{name}_ms_p50: {p50:.2f} ms", flush=True)
    print(f"{name}_ms_p95: {p95:.2f} ms", flush=True)


@contextmanager
def upstash() -> Iterator[str]:
    """The Upstash Redis REST emulator over an embedded Redis; yields its URL."""
    with served_over_embedded_redis(TOKEN) as url:
        yield url


def _cache(url: str) -> ChatCache:
    """The chat caches' Redis access as deployed (timeout and cool-down at their defaults)."""
    return chat_cache(Settings.model_construct(upstash_redis_rest_url=url, upstash_redis_rest_token=SecretStr(TOKEN)))


def bench(dsn: str, url: str, n: int) -> None:
    cache = _cache(url)
    pool = create_pool(dsn, max_size=4)
    try:
        slug = f"bench-cc-{uuid.uuid4().hex[:8]}"
        with connect(dsn) as conn, conn.transaction():
            workspace = ensure_workspace(conn, slug=slug, name=slug, user_id=str(uuid.uuid4()))
        conversation = str(uuid.uuid4())
        repo = ConversationRepository(pool)
        store = CachedMessageStore(inner=repo, cache=cache)
        store.ensure_conversation(conversation, workspace)
        seqs = iter(range(10_000))
        for _ in range(40):
            store.append(conversation, workspace, seq=next(seqs), role="user", content="A Diwali email, please. " * 20)
        _line("chat_cache_append_postgres_only", lambda: repo.append(
            conversation, workspace, seq=next(seqs), role="user", content="x " * 100), n)
        _line("chat_cache_append_with_tail", lambda: store.append(
            conversation, workspace, seq=next(seqs), role="user", content="x " * 100), n)
        _line("chat_cache_window_postgres", lambda: repo.newest_after(conversation, 40, 13), n)
        store.newest_after(conversation, 40, 13)
        _line("chat_cache_window_hit", lambda: store.newest_after(conversation, 40, 13), n)

        knowledge = PgVectorKnowledge(pool=pool, embedder=LocalE5Embedder())
        with as_service(pool) as conn:
            for i in range(5):
                knowledge.add_document(conn, workspace_id=workspace, title=f"Price list {i}",
                                       content=f"The Assam tea gift box {i} costs Rs 1,499 this Diwali. " * 30)
        search = CachedKnowledgeSearch(inner=knowledge, cache=cache, version=partial(knowledge_version, pool),
                                       model=knowledge.key)
        search.search(workspace, "warm-up query")
        queries = iter(f"diwali gift box question {i}" for i in range(n))
        _line("chat_cache_knowledge_miss", lambda: search.search(workspace, next(queries)), n)
        _line("chat_cache_knowledge_hit", lambda: search.search(workspace, "diwali gift box question 0"), n)

        raw = CANON_PATH.read_bytes()
        _line("chat_cache_canon_parse", lambda: parse_canon(raw), n)
        cached_canon(cache)
        _line("chat_cache_canon_hit", lambda: cached_canon(cache), n)

        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        try:
            for name, down_url in (("refused", "http://127.0.0.1:9"),
                                   ("silent", f"http://127.0.0.1:{listener.getsockname()[1]}")):
                down = _cache(down_url)
                first, _ = _timings(lambda: down.get("knowledge", "k"), 1)  # noqa: B023
                resting, _ = _timings(lambda: down.get("knowledge", "k"), 1)  # noqa: B023
                print(f"chat_cache_outage_{name}_first_ms: {first:.1f} ms", flush=True)
                print(f"chat_cache_outage_{name}_resting_ms: {resting:.3f} ms", flush=True)
        finally:
            listener.close()
    finally:
        pool.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=30, help="samples per timing")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("muse.caching.chat").setLevel(logging.ERROR)
    with postgres() as dsn, upstash() as url:
        bench(dsn, url, args.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
