"""The chat's caches on Upstash Redis: a conversation's recent messages, the canon, knowledge-search results.

Each is a transparent wrapper over the port it speeds up, so the graph, the agent and the tool belt
cannot tell they are there:

- `CachedMessageStore` wraps the conversation graph's `MessageStore`: the tail of a conversation (its
  last `tail` messages) is cached for `MUSE_CHAT_SESSION_CACHE_SECONDS` and kept exact on every append
  (an append that does not extend the cached tail by the next seq drops it), so the window a turn
  reads never misses a message. The rolling summary itself lives in the turn's checkpoint.
- `cached_canon` loads the canon by version (its declared version + file hash): a cold instance reads
  the validated canon from the cache instead of parsing and checking it against the channel schemas;
  the process keeps it after that, as `load_canon` does.
- `CachedKnowledgeSearch` wraps `KnowledgeSearch`: results are keyed by workspace, the workspace's
  knowledge version (bumped in Postgres whenever a resource becomes ready, is edited or deleted), the
  embedding model, the query and `k`, so a change of the knowledge base makes older results unreachable.

Guarantees: a workspace's entries live under `workspace_key(workspace_id, ...)`, built from the
workspace the caller was authorized for, so one workspace is never served another's data (and
`UpstashCache.erase_workspace` finds them all). A cache outage is a miss, never an error: every call
is bounded by `MUSE_CHAT_CACHE_TIMEOUT_SECONDS`, and after a failure the caches are skipped for
`MUSE_CHAT_CACHE_COOLDOWN_SECONDS`, so an outage costs one timeout per cool-down, not one per call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from shared.caching.best_effort import CACHE_FAILURES as CACHE_FAILURES
from shared.caching.best_effort import CACHE_NAMES as CACHE_NAMES
from shared.caching.best_effort import CacheName as CacheName
from shared.caching.best_effort import CacheStats as CacheStats
from shared.caching.best_effort import ChatCache as ChatCache
from shared.caching.best_effort import Outcome as Outcome
from shared.db.conversations import StoredMessage
from shared.db.knowledge_version import knowledge_version
from shared.db.pool import Pool
from shared.integrations.cache import upstash_cache, workspace_key
from shared.ports import Finding, KnowledgeSearch, Usage
from shared.settings import Settings
from shared.tools.canon import CANON_PATH, Canon, parse_canon
from shared.tools.catalog import ToolDeps

log = logging.getLogger("muse.caching.chat")

def chat_cache(settings: Settings) -> ChatCache:
    """The chat caches' access to this deployment's Upstash Redis: short timeout, no SDK retry."""
    return ChatCache(cache=upstash_cache(settings, timeout_seconds=settings.chat_cache_timeout_seconds, retries=0),
                     cooldown_seconds=settings.chat_cache_cooldown_seconds)


# ------------------------------------------------------------------------------------------ session


class MessageStore(Protocol):
    """The conversation graph's message store (`shared.conversations.graph.MessageStore`), restated here so
    this package does not depend on the graph."""

    def ensure_conversation(self, conversation_id: str, workspace_id: str) -> None: ...

    def append(self, conversation_id: str, workspace_id: str, *, seq: int, role: str, content: str,
               usage: Usage | None = None) -> str: ...

    def oldest_after(self, conversation_id: str, after_seq: int, limit: int) -> list[StoredMessage]: ...

    def newest_after(self, conversation_id: str, after_seq: int, limit: int) -> list[StoredMessage]: ...

    def save_summary(self, conversation_id: str, summary: dict[str, Any], through_seq: int) -> None: ...


def session_key(workspace_id: str, conversation_id: str) -> str:
    """Where a conversation's cached tail lives (under its workspace)."""
    return workspace_key(workspace_id, f"chat:{conversation_id}:tail")


_APPEND_TAIL = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local ok, tail = pcall(cjson.decode, raw)
if not ok or type(tail) ~= 'table' or type(tail.messages) ~= 'table' then
  redis.call('DEL', KEYS[1]) return -1
end
local seq = tonumber(ARGV[1])
local messages = tail.messages
local last = -1
if #messages > 0 then last = messages[#messages][1] end
for i = 1, #messages do if messages[i][1] == seq then return 1 end end
if seq ~= last + 1 then redis.call('DEL', KEYS[1]) return -1 end
table.insert(messages, {seq, ARGV[2], ARGV[3]})
local complete = tail.complete
while #messages > tonumber(ARGV[4]) do table.remove(messages, 1) complete = false end
redis.call('SET', KEYS[1], cjson.encode({messages = messages, complete = complete}), 'EX', tonumber(ARGV[5]))
return 2
"""
"""Extend a cached tail by message `seq` atomically, in one round trip: 2 extended, 1 already there, 0 no tail
cached, -1 not the next seq (or unreadable): the tail is deleted."""


@dataclass
class Appended:
    """What this process appended last, per conversation: its workspace and newest seq (at most 1,024 kept)."""

    limit: int = 1024
    _entries: OrderedDict[str, tuple[str, int]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, conversation_id: str, workspace_id: str, seq: int) -> None:
        with self._lock:
            known = self._entries.pop(conversation_id, None)
            newest = max(seq, known[1]) if known and known[0] == workspace_id else seq
            self._entries[conversation_id] = (workspace_id, newest)
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)

    def get(self, conversation_id: str) -> tuple[str, int] | None:
        with self._lock:
            return self._entries.get(conversation_id)

    def forget(self, conversation_id: str) -> None:
        with self._lock:
            self._entries.pop(conversation_id, None)


@dataclass
class CachedMessageStore:
    """A `MessageStore` whose recent-window reads come from the cached tail of the conversation.

    The tail is exact: the conversation's last messages, a suffix of what the store holds. An append
    extends it (atomically, in one round trip) only when its seq is the next one; anything else drops
    it. A read is served from it only when this process knows the conversation's workspace and newest
    seq (it appended there, as a turn does before it answers) and the tail reaches them; otherwise the
    read goes to the store. Every other method is the wrapped store's.
    """

    inner: MessageStore
    cache: ChatCache
    ttl_seconds: int = 1800
    tail: int = 64
    """Messages kept in the cached tail; a window of up to this many is served from it."""
    appended: Appended = field(default_factory=Appended)
    """Shared by the wrappers of one process (`ChatCaches.messages`)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def ensure_conversation(self, conversation_id: str, workspace_id: str) -> None:
        self.inner.ensure_conversation(conversation_id, workspace_id)

    def append(self, conversation_id: str, workspace_id: str, *, seq: int, role: str, content: str,
               usage: Usage | None = None) -> str:
        """Store through the wrapped store, then extend the cached tail (or drop it)."""
        stored = self.inner.append(conversation_id, workspace_id, seq=seq, role=role, content=content, usage=usage)
        self.appended.note(conversation_id, workspace_id, seq)
        key = session_key(workspace_id, conversation_id)
        if self.cache.script("session", _APPEND_TAIL, key, [seq, role, stored, self.tail, self.ttl_seconds]) is None:
            self.cache.forget(key)
        return stored

    def oldest_after(self, conversation_id: str, after_seq: int, limit: int) -> list[StoredMessage]:
        return self.inner.oldest_after(conversation_id, after_seq, limit)

    def newest_after(self, conversation_id: str, after_seq: int, limit: int) -> list[StoredMessage]:
        """The last `limit` messages after `after_seq`, from the cached tail when it covers them."""
        known = self.appended.get(conversation_id)
        if known is None or limit > self.tail:
            return self.inner.newest_after(conversation_id, after_seq, limit)
        workspace_id, newest = known
        key = session_key(workspace_id, conversation_id)
        cached = _tail(self.cache.get("session", key))
        if cached is not None:
            served = _serve(cached, after_seq, limit, newest)
            if served is not None:
                return served
        fresh = self.inner.newest_after(conversation_id, -1, self.tail)
        tail = {"messages": [[m.seq, m.role, m.content] for m in fresh], "complete": len(fresh) < self.tail}
        if fresh and fresh[-1].seq >= newest:
            self.cache.put("session", key, tail, ttl_seconds=self.ttl_seconds)
        served = _serve(tail, after_seq, limit, newest)
        return served if served is not None else self.inner.newest_after(conversation_id, after_seq, limit)

    def save_summary(self, conversation_id: str, summary: dict[str, Any], through_seq: int) -> None:
        self.inner.save_summary(conversation_id, summary, through_seq)


def _tail(cached: Any) -> dict[str, Any] | None:
    """A cached tail as written by this module, or None (absent, or of another shape: treated as a miss)."""
    if not isinstance(cached, dict) or not isinstance(cached.get("messages"), list):
        return None
    if not all(isinstance(m, list) and len(m) == 3 and isinstance(m[0], int) for m in cached["messages"]):
        return None
    return cached


def _serve(cached: dict[str, Any], after_seq: int, limit: int, newest: int) -> list[StoredMessage] | None:
    """The window from a cached tail, or None when the tail cannot prove it holds all of it."""
    messages = cached["messages"]
    if not messages or messages[-1][0] < newest:
        return None
    after = [m for m in messages if m[0] > after_seq]
    covers = bool(cached["complete"]) or len(after) >= limit or messages[0][0] <= after_seq + 1
    if not covers:
        return None
    return [StoredMessage(seq=m[0], role=m[1], content=m[2]) for m in after[-limit:]]


# ------------------------------------------------------------------------------------------- canon


def cached_canon(cache: ChatCache, *, ttl_seconds: int = 7 * 86400, path: Path = CANON_PATH) -> Canon:
    """The canon at `path`, from the cache when this version was validated before, else parsed and cached.

    The key is the canon's version (declared version + hash of the file), so editing canon.json is
    never served stale: the new file has a new key.
    """
    raw = path.read_bytes()
    key = f"canon:{json.loads(raw)['version']}+{hashlib.sha256(raw).hexdigest()[:8]}"
    found = cache.get("canon", key)
    if found is not None:
        try:
            return Canon.model_validate(found)
        except ValueError as exc:
            log.warning("cached canon %s does not validate, parsing the file: %s", key, exc)
    canon = parse_canon(raw)
    cache.put("canon", key, canon.model_dump(mode="json"), ttl_seconds=ttl_seconds)
    return canon


# --------------------------------------------------------------------------------------- knowledge


@dataclass
class CachedKnowledgeSearch:
    """`KnowledgeSearch` with results cached per workspace and knowledge version.

    `version(workspace_id)` reads the version from Postgres (one indexed row); when it is None (no such
    workspace) the search goes to the wrapped port uncached. `model` names the embedding model, so
    re-embedding with another model never serves results ranked by the old one.
    """

    inner: KnowledgeSearch
    cache: ChatCache
    version: Callable[[str], int | None]
    model: str = ""
    ttl_seconds: int = 86400

    def key(self, workspace_id: str, version: int, query: str, k: int) -> str:
        """The cache key of one search."""
        digest = hashlib.sha256(json.dumps({"q": " ".join(query.split()), "k": k, "model": self.model},
                                           sort_keys=True).encode()).hexdigest()[:32]
        return workspace_key(workspace_id, f"ks:{version}:{digest}")

    def search(self, workspace_id: str, query: str, *, k: int = 5) -> list[Finding]:
        version = self.version(workspace_id)
        if version is None:
            return self.inner.search(workspace_id, query, k=k)
        key = self.key(workspace_id, version, query, k)
        cached = self.cache.get("knowledge", key)
        if isinstance(cached, list):
            try:
                return [Finding(**item) for item in cached]
            except TypeError:
                log.warning("cached knowledge results under %s have another shape; searching again", key)
        found = self.inner.search(workspace_id, query, k=k)
        self.cache.put("knowledge", key, [f.as_dict() for f in found], ttl_seconds=self.ttl_seconds)
        return found


# -------------------------------------------------------------------------------------------- wiring


@dataclass
class ChatCaches:
    """The three caches of one instance, over one `ChatCache`; build once per process (`chat_caches`).

    Wire them where a turn's deps are built: `messages(ConversationRepository(pool))` as the graph's
    store,
    `knowledge(search)` as the tool belt's knowledge search and `canon()` as its canon.
    Wrappers are cheap: one per turn is fine.
    """

    cache: ChatCache
    settings: Settings
    version: Callable[[str], int | None]
    """The workspace's knowledge version (`partial(shared.db.knowledge_version.knowledge_version, pool)`)."""
    appended: Appended = field(default_factory=Appended, init=False)
    _canon: Canon | None = field(default=None, init=False)

    def messages(self, store: MessageStore) -> MessageStore:
        """`store` with its recent windows cached (wrappers made here share what this process appended);
        `store` itself when `MUSE_CHAT_SESSION_CACHE_SECONDS` is 0."""
        if self.settings.chat_session_cache_seconds == 0:
            return store
        return CachedMessageStore(inner=store, cache=self.cache, ttl_seconds=self.settings.chat_session_cache_seconds,
                                  appended=self.appended)

    def knowledge(self, search: KnowledgeSearch) -> CachedKnowledgeSearch:
        """`search` with results cached per workspace and knowledge version."""
        return CachedKnowledgeSearch(inner=search, cache=self.cache, version=self.version,
                                     model=str(getattr(search, "key", "")),
                                     ttl_seconds=self.settings.chat_knowledge_cache_seconds)

    def canon(self) -> Canon:
        """The canon, through the cache on this process's first call."""
        if self._canon is None:
            self._canon = cached_canon(self.cache, ttl_seconds=self.settings.chat_canon_cache_seconds)
        return self._canon

    def tool_deps(self, deps: ToolDeps) -> ToolDeps:
        """The tool belt's deps with knowledge search and the canon cached."""
        return replace(deps, knowledge=self.knowledge(deps.knowledge), canon=self.canon())

    def forget_conversation(self, workspace_id: str, conversation_id: str) -> bool:
        """Drop a deleted conversation's cached context; False if the cache was unreachable (it expires)."""
        self.appended.forget(conversation_id)
        return self.cache.forget(session_key(workspace_id, conversation_id))


def chat_caches(settings: Settings, pool: Pool) -> ChatCaches:
    """This deployment's chat caches (opens no connection until used)."""
    return ChatCaches(cache=chat_cache(settings), settings=settings, version=partial(knowledge_version, pool))
