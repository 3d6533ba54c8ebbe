"""Memory on a real Postgres with the real local embedder (multilingual-e5-small): dedup, retention, routing,
selection, re-embedding, and row-level security between workspaces."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from shared.db.pool import as_service, as_user
from shared.db.workspaces import ensure_workspace
from shared.integrations.embeddings import LocalE5Embedder
from shared.memory import FactSource, PgMemory, build_memory, reembed_memory
from shared.memory.fakes import HASHING_CALIBRATION, HashingEmbedder
from shared.memory.pg import PgEpisodicMemory, PgSemanticMemory
from shared.memory.policy import CALIBRATIONS, match_score

STEPS = ["web_research", "knowledge_research", "strategy", "email"]


@dataclass(frozen=True)
class Member:
    workspace_id: str
    user_id: str

    @property
    def claims(self) -> dict[str, Any]:
        return {"sub": self.user_id, "role": "authenticated"}


def _member(pool: ConnectionPool) -> Member:
    user_id = str(uuid.uuid4())
    with as_service(pool) as conn:
        workspace_id = ensure_workspace(conn, slug=f"mem-{uuid.uuid4().hex[:10]}", name="Chai Co", user_id=user_id)
    return Member(workspace_id, user_id)


@pytest.fixture(scope="module")
def embedder() -> LocalE5Embedder:
    return LocalE5Embedder()


@pytest.fixture
def memory(pool: ConnectionPool, embedder: LocalE5Embedder) -> PgMemory:
    return build_memory(pool, embedder)


def _cosines(embedder: LocalE5Embedder, pairs: list[tuple[str, str]]) -> list[float]:
    vectors = embedder.embed([text for pair in pairs for text in pair])
    return [sum(a * b for a, b in zip(vectors[i], vectors[i + 1], strict=True)) for i in range(0, len(vectors), 2)]


def test_the_e5_calibration_separates_reworded_tasks_from_unrelated_ones(embedder: LocalE5Embedder) -> None:
    calibration = CALIBRATIONS["multilingual-e5-small"]
    same = _cosines(embedder, [
        ("Diwali email campaign for our tea gift boxes", "Email campaign for Diwali promoting the tea gift boxes"),
        ("LinkedIn launch posts for the new green tea range", "Announce the new green tea range on LinkedIn"),
        ("Instagram captions for the monsoon chai sale", "Monsoon chai sale Instagram captions"),
    ])
    unrelated = _cosines(embedder, [
        ("Diwali email campaign for our tea gift boxes", "Recruit interns for the finance team"),
        ("Instagram captions for the monsoon chai sale", "Quarterly investor update on revenue"),
        ("Create a blog post about AI trends", "Diwali email campaign for our tea gift boxes"),
    ])
    assert all(match_score(c, calibration) >= 0.75 for c in same), same
    assert all(match_score(c, calibration) <= 0.1 for c in unrelated), unrelated


def test_paraphrased_facts_merge_and_distinct_ones_stay_apart(memory: PgMemory, pool: ConnectionPool) -> None:
    ws = _member(pool).workspace_id
    first = memory.semantic.learn(ws, [
        "Our teas are sourced from single estates in Darjeeling.",
        "We never use artificial flavouring",
        "The brand voice is warm and playful",
    ], FactSource(kind="artifact", ref="artifact-1", campaign_id="c-1"))
    assert [r.action for r in first] == ["added"] * 3

    second = memory.semantic.learn(ws, [
        "All our tea comes from single-estate gardens in Darjeeling",
        "No artificial flavours are ever added to our products",
        "Our tone of voice is playful and warm",
        "  our teas are sourced from single estates in darjeeling ",
        "Our teas are packed in recyclable tins",
    ], FactSource(kind="decision", ref="decision-7"))
    assert [r.action for r in second] == ["merged", "merged", "merged", "confirmed", "added"]
    assert [r.fact_id for r in second[:3]] == [r.fact_id for r in first]
    assert second[0].superseded == "Our teas are sourced from single estates in Darjeeling."
    assert all(r.similarity is not None and r.similarity >= 0.92 for r in second[:3])

    with as_service(pool) as conn:
        rows = conn.execute("SELECT fact, source, confirmations, sources, history FROM public.memory_facts "
                            "WHERE workspace_id = %s ORDER BY id", (ws,)).fetchall()
    assert len(rows) == 4
    darjeeling = rows[0]
    assert (darjeeling["fact"], darjeeling["source"], darjeeling["confirmations"]) == (
        "All our tea comes from single-estate gardens in Darjeeling", "decision", 3)
    assert [s.get("ref") for s in darjeeling["sources"]] == ["artifact-1", "decision-7", "decision-7"]
    assert darjeeling["history"][0]["fact"] == "Our teas are sourced from single estates in Darjeeling."

    [weaker] = memory.semantic.learn(ws, ["Our teas come from single-estate gardens in Darjeeling"],
                                     FactSource(kind="artifact"))
    assert (weaker.action, weaker.fact) == ("merged", "All our tea comes from single-estate gardens in Darjeeling")

    recalled = memory.semantic.recall(ws, "Where is the tea grown?", k=2)
    assert recalled[0].fact == "All our tea comes from single-estate gardens in Darjeeling"
    assert recalled[0].confirmations == 4 and recalled[0].similarity > recalled[1].similarity


def test_members_recall_only_their_own_workspaces_memory(memory: PgMemory, pool: ConnectionPool) -> None:
    tea, coffee = _member(pool), _member(pool)
    memory.semantic.learn(tea.workspace_id, ["Our teas come from Darjeeling"], FactSource(kind="manual"))
    memory.semantic.learn(coffee.workspace_id, ["Our coffee comes from Coorg"], FactSource(kind="manual"))
    memory.episodic.record(tea.workspace_id, "outcome", "Diwali tea campaign: 4.1% click rate")
    memory.episodic.record(coffee.workspace_id, "outcome", "Diwali coffee campaign: 2.3% click rate")
    memory.router.store_outcome(coffee.workspace_id, task_type="campaign", description="Diwali coffee email",
                                steps=STEPS, success=True, quality=0.95)
    memory.selector.record(coffee.workspace_id, "campaign", "copywriter", "pro", success=True, quality=0.9)

    with as_user(pool, tea.claims) as conn:
        assert [f.fact for f in memory.semantic.recall_in(conn, tea.workspace_id, "origin", k=5)] == [
            "Our teas come from Darjeeling"]
        assert memory.semantic.recall_in(conn, coffee.workspace_id, "origin", k=5) == []
        assert memory.episodic.recall_in(conn, coffee.workspace_id, "Diwali campaign", k=5) == []
        assert [e.text for e in memory.episodic.recall_in(conn, tea.workspace_id, "Diwali campaign", k=5)] == [
            "Diwali tea campaign: 4.1% click rate"]
        route = memory.router.route_in(conn, coffee.workspace_id, "campaign", "Diwali coffee email")
        assert (route.action, route.candidates) == ("plan", [])
        for table in ("memory_facts", "memory_episodes", "memory_tasks", "memory_specialist_stats"):
            count = conn.execute(f"SELECT count(*) AS n FROM public.{table} WHERE workspace_id = %s",
                                 (coffee.workspace_id,)).fetchone()["n"]
            assert count == 0, table

    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"), \
            as_user(pool, tea.claims) as conn:
        memory.semantic.learn_in(conn, coffee.workspace_id, ["Planted fact"], FactSource(kind="manual"))

    with as_user(pool, coffee.claims) as conn:
        assert [f.fact for f in memory.semantic.recall_in(conn, coffee.workspace_id, "origin")] == [
            "Our coffee comes from Coorg"]
        assert memory.router.route_in(conn, coffee.workspace_id, "campaign", "Diwali coffee email").action == "reuse"
    assert [f.fact for f in memory.semantic.recall(coffee.workspace_id, "origin")] == ["Our coffee comes from Coorg"]


def test_expired_critiques_and_task_history_are_not_recalled_and_are_purged(memory: PgMemory,
                                                                            pool: ConnectionPool) -> None:
    ws = _member(pool).workspace_id
    now = datetime.now(UTC)
    old_critique = memory.episodic.record(ws, "critique", "Email subject used the banned word 'cheap'",
                                          {"field": "subject", "aspect": "brand_alignment"},
                                          at=now - timedelta(days=8))
    new_critique = memory.episodic.record(ws, "critique", "Email body missed the GST disclaimer",
                                          at=now - timedelta(days=6))
    old_task = memory.router.store_outcome(ws, task_type="campaign", description="Diwali email campaign",
                                           steps=STEPS, success=True, quality=0.95, at=now - timedelta(days=31))
    outcome = memory.episodic.record(ws, "outcome", "Holi campaign doubled repeat orders",
                                     at=now - timedelta(days=400))

    critiques = memory.episodic.recall(ws, "email critique", k=10, kinds=["critique"])
    assert [e.id for e in critiques] == [new_critique]
    assert critiques[0].expires_at is not None
    assert abs(critiques[0].expires_at - (now + timedelta(days=1))) < timedelta(seconds=1)
    assert memory.router.route(ws, "campaign", "Diwali email campaign").action == "plan"

    report = memory.episodic.purge_expired()
    assert report.episodes >= 2
    with as_service(pool) as conn:
        left = {r["id"] for r in conn.execute("SELECT id FROM public.memory_episodes WHERE workspace_id = %s", (ws,))}
        tasks = conn.execute("SELECT count(*) AS n FROM public.memory_tasks WHERE episode_id = %s",
                             (old_task,)).fetchone()["n"]
    assert left == {new_critique, outcome} and old_critique not in left and tasks == 0


def test_a_reworded_task_reuses_the_proven_sequence_and_an_unrelated_one_plans(memory: PgMemory,
                                                                               pool: ConnectionPool) -> None:
    ws = _member(pool).workspace_id
    plan = {"objective": "Sell Diwali gift boxes", "channels": ["email"], "specialists": ["web_research"]}
    proven = memory.router.store_outcome(ws, task_type="campaign", steps=STEPS, success=True, quality=0.92,
                                         description="Diwali email campaign for our tea gift boxes", plan=plan,
                                         campaign_id=str(uuid.uuid4()), key="campaign-1")
    assert memory.router.store_outcome(ws, task_type="campaign", steps=["email"], success=False, quality=0.1,
                                       description="Diwali email campaign for our tea gift boxes",
                                       key="campaign-1") == proven
    memory.router.store_outcome(ws, task_type="campaign", steps=["email"], success=False, quality=0.3,
                                description="LinkedIn posts about supply chain transparency")

    reuse = memory.router.route(ws, "campaign", "Email campaign for Diwali promoting the tea gift boxes")
    assert reuse.action == "reuse" and reuse.confidence > 0.8, reuse.reason
    assert (reuse.steps, reuse.plan) == (STEPS, plan)
    assert reuse.match is not None and reuse.match.task_id == proven and reuse.match.quality == pytest.approx(0.92)

    unrelated = memory.router.route(ws, "campaign", "Recruit interns for the finance team")
    assert unrelated.action == "plan" and unrelated.confidence < 0.2, unrelated.reason
    assert len(unrelated.candidates) == 2

    failed = memory.router.route(ws, "campaign", "LinkedIn posts about supply chain transparency")
    assert failed.action == "plan" and "failed" in failed.reason
    assert memory.router.route(ws, "move", "Diwali email campaign for our tea gift boxes").action == "plan"

    related = memory.router.store_outcome(ws, task_type="campaign", steps=[*STEPS, "festival_calendar"],
                                          success=True, quality=0.9, reused_from=proven,
                                          description="Email campaign for Diwali promoting the tea gift boxes")
    with as_service(pool) as conn:
        row = conn.execute("SELECT reused_from, steps FROM public.memory_tasks WHERE episode_id = %s",
                           (related,)).fetchone()
    assert row == {"reused_from": proven, "steps": [*STEPS, "festival_calendar"]}


def test_the_selector_prefers_the_variant_with_the_better_record(memory: PgMemory, pool: ConnectionPool) -> None:
    ws = _member(pool).workspace_id
    selector = memory.selector
    first = selector.pick(ws, "campaign", "copywriter", ["gemini-2.5-flash", "gemini-2.5-pro"], "gemini-2.5-flash")
    assert (first.variant, first.reason) == ("gemini-2.5-flash", "no_history")

    for i in range(4):
        assert selector.record(ws, "campaign", "copywriter", "gemini-2.5-pro", success=True, quality=0.9,
                               run_key=f"campaign-{i}:copywriter")
        selector.record(ws, "campaign", "copywriter", "gemini-2.5-flash", success=i % 2 == 0, quality=0.6)
    assert not selector.record(ws, "campaign", "copywriter", "gemini-2.5-pro", success=False, quality=0.0,
                               run_key="campaign-0:copywriter")

    choice = selector.pick(ws, "campaign", "copywriter", ["gemini-2.5-flash", "gemini-2.5-pro"], "gemini-2.5-flash")
    assert (choice.variant, choice.reason) == ("gemini-2.5-pro", "best_score")
    pro = choice.scores["gemini-2.5-pro"]
    assert (pro.runs, pro.successes) == (4, 4) and pro.quality_sum == pytest.approx(3.6)
    assert pro.score == pytest.approx((5 / 6) * (4.6 / 6))
    assert selector.pick(ws, "move", "copywriter", ["gemini-2.5-flash", "gemini-2.5-pro"],
                         "gemini-2.5-flash").reason == "no_history"
    assert {(s.variant, s.runs) for s in selector.performance(ws, "campaign")} == {
        ("gemini-2.5-flash", 4), ("gemini-2.5-pro", 4)}


def test_switching_the_embedding_model_reembeds_without_touching_the_schema(memory: PgMemory,
                                                                              pool: ConnectionPool) -> None:
    ws = _member(pool).workspace_id
    memory.semantic.learn(ws, ["Our teas come from Darjeeling", "Free shipping above 999 rupees"],
                          FactSource(kind="manual"))
    memory.episodic.record(ws, "outcome", "Diwali campaign sold out the gift boxes")
    hashing = HashingEmbedder()
    calibrations = {"hashing": HASHING_CALIBRATION}
    semantic = PgSemanticMemory(pool, hashing, calibrations)
    assert semantic.recall(ws, "teas Darjeeling") == []

    assert reembed_memory(pool, hashing, workspace_id=ws, batch=2) == 3
    assert semantic.recall(ws, "teas Darjeeling")[0].fact == "Our teas come from Darjeeling"
    episodes = PgEpisodicMemory(pool, hashing, calibrations).recall(ws, "Diwali gift boxes")
    assert [e.text for e in episodes] == ["Diwali campaign sold out the gift boxes"]
    assert memory.semantic.recall(ws, "Where do the teas come from?") == []


def test_concurrent_learners_never_add_the_same_fact_twice(memory: PgMemory, pool: ConnectionPool) -> None:
    ws = _member(pool).workspace_id
    wordings = ["Our teas are sourced from single estates in Darjeeling",
                "All our tea comes from single-estate gardens in Darjeeling",
                "Our teas are sourced from single estates in Darjeeling.",
                "OUR TEAS ARE SOURCED FROM SINGLE ESTATES IN DARJEELING"]
    with ThreadPoolExecutor(max_workers=4) as executor:
        results = list(executor.map(lambda text: memory.semantic.learn(ws, [text], FactSource(kind="edit"))[0],
                                    wordings))
    assert len({r.fact_id for r in results}) == 1
    assert sorted(r.action for r in results).count("added") == 1
    with as_service(pool) as conn:
        row = conn.execute("SELECT count(*) AS n, max(confirmations) AS c FROM public.memory_facts "
                           "WHERE workspace_id = %s", (ws,)).fetchone()
    assert (row["n"], row["c"]) == (1, 4)
