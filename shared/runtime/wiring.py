"""Per-instance construction of a step function's runtime: created on first use, never at import."""

from __future__ import annotations

from functools import cache, partial

from shared.billing.invoices import InvoicePdfs, PaymentInvoicing
from shared.caching.best_effort import best_effort_cache
from shared.caching.chat import CachedKnowledgeSearch
from shared.caching.embeddings import CachedEmbedder
from shared.caching.responses import CachedModel
from shared.caching.semantic import SemanticQueryCache, threshold_for
from shared.campaigns.gate import LayeredGate
from shared.campaigns.graph import build_campaign_graph
from shared.campaigns.memory import MemoryPlans
from shared.campaigns.summaries import RecursiveSummarizer
from shared.db.artifacts import PostgresArtifactStore
from shared.db.knowledge import PgVectorKnowledge
from shared.db.knowledge_version import knowledge_version
from shared.db.payments import PaymentRepository
from shared.db.pool import Pool, create_pool
from shared.db.threads import ThreadRepository
from shared.db.workspaces import PostgresWorkspaceStore
from shared.deps import NO_CAMPAIGN, Deps, DepsOverrides
from shared.economics.budgets import PostgresBudgets
from shared.integrations.cache import upstash_cache
from shared.integrations.embeddings import embedder_from_settings
from shared.integrations.gemini import structured_model
from shared.integrations.phonepe import phonepe_client
from shared.integrations.tavily import tavily_search
from shared.memory.extract import FactExtractor
from shared.memory.pg import build_memory
from shared.outbox import Outbox
from shared.payments.confirmation import PaymentConfirmer
from shared.payments.credit_notes import InvoiceCreditNotes
from shared.payments.refunds import RefundService
from shared.publishing.wiring import build_publisher
from shared.queue import qstash_queue, qstash_receiver
from shared.runtime.checkpointer import create_checkpointer
from shared.runtime.step import StepRuntime
from shared.security.keys import workspace_key_lookup
from shared.settings import Settings, get_settings
from shared.tools.canon import load_canon
from shared.tools.catalog import ToolDeps, standard_belt
from shared.tools.knowledge import PgKnowledgeFetch
from shared.tracing import langsmith_client

__all__ = ("build_deps", "build_step_runtime", "langsmith_client", "step_runtime")


def build_deps(settings: Settings, pool: Pool, *, overrides: DepsOverrides = DepsOverrides()) -> Deps:
    """The graph's run context for this deployment; building it opens no connection and imports no vendor SDK.

    Each step binds its campaign (`shared.campaigns.context.load_step_context`). `overrides` is the one
    seam for tests: it replaces boundary pieces, and everything else is built here as in production.
    """
    caches = best_effort_cache(settings)
    embedder = CachedEmbedder(embedder_from_settings(settings), caches, ttl_seconds=settings.embedding_cache_seconds)
    own_key = workspace_key_lookup(settings, pool)
    model = overrides.model if overrides.model is not None else CachedModel(
        structured_model(settings, own_key=partial(own_key, "gemini")), caches,
        ttl_seconds=settings.response_cache_seconds)
    threshold = threshold_for(embedder.model, settings.semantic_cache_threshold,
                              explicit="semantic_cache_threshold" in settings.model_fields_set)
    semantic = SemanticQueryCache(caches, embedder, model=embedder.model, threshold=threshold,
                                  entries=settings.semantic_cache_entries, ttl_seconds=settings.web_cache_seconds)
    web = overrides.web if overrides.web is not None else tavily_search(settings, caches, semantic,
                                                                        own_key=partial(own_key, "tavily"))
    knowledge = overrides.knowledge if overrides.knowledge is not None else CachedKnowledgeSearch(
        inner=PgVectorKnowledge(pool=pool, embedder=embedder), cache=caches, version=partial(knowledge_version, pool),
        model=embedder.model, ttl_seconds=settings.chat_knowledge_cache_seconds)
    memory = overrides.memory if overrides.memory is not None else build_memory(pool, embedder)
    canon = load_canon()
    return Deps(
        model=model,
        web=web,
        knowledge=knowledge,
        workspaces=PostgresWorkspaceStore(pool),
        artifacts=PostgresArtifactStore(pool),
        plans=MemoryPlans(router=memory.router, semantic=memory.semantic, episodic=memory.episodic,
                          selector=memory.selector, extractor=FactExtractor(model)),
        summarizer=RecursiveSummarizer(model=model),
        canon=canon,
        qa=LayeredGate(model=model if settings.qa_judge else None),
        tools=standard_belt(ToolDeps(web=web, knowledge=knowledge, documents=PgKnowledgeFetch(pool), model=model,
                                     canon=canon)),
        publishing=overrides.publishing if overrides.publishing is not None else build_publisher(settings, pool),
        campaign=NO_CAMPAIGN,
        budgets=PostgresBudgets.from_settings(pool, settings),
    )


def build_step_runtime(function: str, settings: Settings) -> StepRuntime:
    """Everything one step function needs, wired from settings."""
    pool = create_pool(settings.database_url, max_size=settings.database_pool_max)
    graph = build_campaign_graph(function).compile(checkpointer=create_checkpointer(pool))
    outbox = Outbox(pool=pool, queue=qstash_queue(settings))
    payments = refunds = None
    if function == "payments":
        phonepe = phonepe_client(settings, upstash_cache(settings))
        refunds = RefundService(pool=pool, phonepe=phonepe, outbox=outbox,
                                recheck_seconds=settings.refund_recheck_seconds,
                                max_attempts=settings.refund_max_attempts,
                                credit_notes=InvoiceCreditNotes(pool, settings))
        payments = PaymentConfirmer(payments=PaymentRepository(pool), phonepe=phonepe, outbox=outbox,
                                    recheck_seconds=settings.payment_recheck_seconds,
                                    invoices=PaymentInvoicing(settings, InvoicePdfs(pool, settings)))
    return StepRuntime(
        function=function, settings=settings, graph=graph, deps=build_deps(settings, pool),
        threads=ThreadRepository(pool), outbox=outbox, receiver=qstash_receiver(settings),
        payments=payments, tracer=langsmith_client(settings), refunds=refunds,
    )


@cache
def step_runtime(function: str) -> StepRuntime:
    """The runtime of `function` in this instance (built once, reused while the instance is warm)."""
    return build_step_runtime(function, get_settings())
