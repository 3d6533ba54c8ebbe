"""The in-memory memory ports behave like the Postgres ones: dedup, retention, routing, selection."""

from __future__ import annotations

import inspect
from datetime import timedelta

import pytest
from pydantic import ValidationError

from shared.memory.fakes import (
    FakeMemory,
    InMemoryEpisodicMemory,
    InMemorySemanticMemory,
    InMemorySpecialistSelector,
    InMemoryTaskRouter,
    fake_memory,
)
from shared.memory.models import FactSource
from shared.memory.pg import PgEpisodicMemory, PgMemory, PgSemanticMemory, PgSpecialistSelector, PgTaskRouter
from shared.memory.ports import EpisodicMemory, MemoryStores, SemanticMemory, SpecialistSelector, TaskRouter

WS = "7b0c1c52-0d0e-4a7e-9d7e-3f8a1d2b4c5e"
OTHER = "0f9e8d7c-6b5a-4c3d-8e1f-2a3b4c5d6e7f"
STEPS = ["web_research", "strategy", "content"]


@pytest.fixture
def memory() -> FakeMemory:
    return fake_memory()


def _members(cls: type) -> dict[str, inspect.Signature | None]:
    """Public methods (with their signatures) and data members a class or Protocol declares."""
    members: dict[str, inspect.Signature | None] = dict.fromkeys(getattr(cls, "__annotations__", {}))
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        members[name] = inspect.signature(value) if inspect.isfunction(value) else None
    return members


def _parameters(signature: inspect.Signature) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


@pytest.mark.parametrize(("port", "implementation"), [
    (SemanticMemory, InMemorySemanticMemory), (SemanticMemory, PgSemanticMemory),
    (EpisodicMemory, InMemoryEpisodicMemory), (EpisodicMemory, PgEpisodicMemory),
    (TaskRouter, InMemoryTaskRouter), (TaskRouter, PgTaskRouter),
    (SpecialistSelector, InMemorySpecialistSelector), (SpecialistSelector, PgSpecialistSelector),
    (MemoryStores, FakeMemory), (MemoryStores, PgMemory),
])
def test_the_fakes_and_postgres_declare_every_member_of_their_port(port: type, implementation: type) -> None:
    """Fakes stand in for Postgres only while both match the port: same methods, parameters, kinds and defaults."""
    declared = _members(implementation)
    for name, signature in _members(port).items():
        assert name in declared or hasattr(implementation, name), f"{implementation.__name__} lacks `{name}`"
        if signature is not None:
            assert declared.get(name) is not None, f"{implementation.__name__}.{name} is not a method"
            assert _parameters(declared[name]) == _parameters(signature), \
                f"{implementation.__name__}.{name}{declared[name]} differs from {port.__name__}.{name}{signature}"


def test_identical_facts_are_confirmed_and_near_duplicates_merged(memory: FakeMemory) -> None:
    first = memory.semantic.learn(WS, ["Our teas come from Darjeeling estates.", "Free shipping above 999 rupees"],
                                  FactSource(kind="artifact", ref="artifact-1"))
    assert [r.action for r in first] == ["added", "added"]

    again = memory.semantic.learn(WS, ["our teas come from darjeeling estates",
                                       "Our teas come from Darjeeling tea estates"], FactSource(kind="edit"))
    assert [r.action for r in again] == ["confirmed", "merged"]
    assert again[1].superseded == "Our teas come from Darjeeling estates." and again[1].similarity is not None
    assert again[1].fact_id == first[0].fact_id

    [fact] = [f for f in memory.semantic.facts if f.id == first[0].fact_id]
    assert (fact.text, fact.source, fact.confirmations) == ("Our teas come from Darjeeling tea estates", "edit", 3)
    assert [s["kind"] for s in fact.sources] == ["artifact", "edit", "edit"]
    assert fact.history[0]["fact"] == "Our teas come from Darjeeling estates."
    assert len(memory.semantic.facts) == 2


def test_a_weaker_source_confirms_a_fact_without_rewording_it(memory: FakeMemory) -> None:
    memory.semantic.learn(WS, ["Our teas come from Darjeeling tea estates"], FactSource(kind="edit"))
    [result] = memory.semantic.learn(WS, ["Our teas come from Darjeeling estates"], FactSource(kind="artifact"))
    assert (result.action, result.fact, result.superseded) == ("merged", "Our teas come from Darjeeling tea estates",
                                                               None)


def test_facts_are_recalled_by_similarity_within_their_workspace(memory: FakeMemory) -> None:
    memory.semantic.learn(WS, ["Our teas come from Darjeeling estates", "Free shipping above 999 rupees"],
                          FactSource(kind="decision"))
    memory.semantic.learn(OTHER, ["Our coffee comes from Coorg estates"], FactSource(kind="decision"))
    recalled = memory.semantic.recall(WS, "where do the teas come from", k=5)
    assert recalled[0].fact == "Our teas come from Darjeeling estates"
    assert all("Coorg" not in f.fact for f in recalled) and len(recalled) == 2
    assert memory.semantic.recall(OTHER, "teas", k=5)[0].fact == "Our coffee comes from Coorg estates"


def test_critiques_expire_after_7_days_and_task_history_after_30(memory: FakeMemory) -> None:
    critique = memory.episodic.record(WS, "critique", "Subject line uses a banned term", {"field": "subject"})
    task = memory.episodic.record(WS, "task", "Diwali email campaign", {"steps": STEPS})
    outcome = memory.episodic.record(WS, "outcome", "Diwali campaign: 4.1% click rate")

    memory.clock.now += timedelta(days=7, seconds=1)
    assert {e.id for e in memory.episodic.recall(WS, "Diwali campaign subject", k=10)} == {task, outcome}
    assert memory.episodic.purge_expired().episodes == 1

    memory.clock.now += timedelta(days=23)
    assert {e.id for e in memory.episodic.recall(WS, "Diwali", k=10)} == {outcome}
    assert memory.episodic.purge_expired().episodes == 1
    assert [e.id for e in memory.episodic.episodes] == [outcome] and critique != outcome


def test_episodes_are_recalled_by_kind_and_recorded_once_per_key(memory: FakeMemory) -> None:
    first = memory.episodic.record(WS, "interaction", "The founder prefers a calm tone", key="chat-1:4")
    assert memory.episodic.record(WS, "interaction", "The founder prefers a calm tone", key="chat-1:4") == first
    memory.episodic.record(WS, "critique", "The tone was too loud for the founder")
    kinds = [e.kind for e in memory.episodic.recall(WS, "founder tone", kinds=["critique"])]
    assert kinds == ["critique"]
    with pytest.raises(ValidationError, match="kind"):
        memory.episodic.record(WS, "dream", "x")  # type: ignore[arg-type]


def test_a_proven_task_is_reused_and_anything_else_planned(memory: FakeMemory) -> None:
    task_id = memory.router.store_outcome(WS, task_type="campaign", steps=STEPS, success=True, quality=0.9,
                                          description="Diwali email campaign for tea gift boxes",
                                          plan={"channels": ["email"]})
    memory.router.store_outcome(WS, task_type="campaign", description="Holi Instagram captions for chai sale",
                                steps=["content"], success=False, quality=0.2)

    reuse = memory.router.route(WS, "campaign", "Diwali email campaign for tea gift boxes")
    assert (reuse.action, reuse.steps, reuse.plan) == ("reuse", STEPS, {"channels": ["email"]})
    assert reuse.match is not None and reuse.match.task_id == task_id and reuse.confidence > 0.8

    assert memory.router.route(WS, "campaign", "Recruit interns for the finance team").action == "plan"
    assert memory.router.route(WS, "campaign", "Holi Instagram captions for chai sale").action == "plan"
    assert memory.router.route(WS, "move", "Diwali email campaign for tea gift boxes").action == "plan"
    assert memory.router.route(OTHER, "campaign", "Diwali email campaign for tea gift boxes").candidates == []

    memory.clock.now += timedelta(days=31)
    assert memory.router.route(WS, "campaign", "Diwali email campaign for tea gift boxes").action == "plan"


def test_storing_an_outcome_twice_with_a_key_keeps_the_first(memory: FakeMemory) -> None:
    ids = {memory.router.store_outcome(WS, task_type="campaign", description="Diwali email", steps=STEPS,
                                       success=True, quality=q, key="campaign-1") for q in (0.9, 0.1)}
    assert len(ids) == 1
    assert memory.router.route(WS, "campaign", "Diwali email").action == "reuse"


def test_the_selector_prefers_the_better_record_and_counts_a_keyed_run_once(memory: FakeMemory) -> None:
    selector = memory.selector
    assert selector.pick(WS, "campaign", "copywriter", ["flash", "pro"], "flash").reason == "no_history"
    for i in range(3):
        assert selector.record(WS, "campaign", "copywriter", "pro", success=True, quality=0.9, run_key=f"c{i}:pro")
        selector.record(WS, "campaign", "copywriter", "flash", success=i == 0, quality=0.5)
    assert not selector.record(WS, "campaign", "copywriter", "pro", success=False, quality=0.0, run_key="c0:pro")

    choice = selector.pick(WS, "campaign", "copywriter", ["flash", "pro"], "flash")
    assert (choice.variant, choice.reason) == ("pro", "best_score")
    assert choice.scores["pro"].runs == 3 and choice.scores["pro"].score > choice.scores["flash"].score
    assert selector.pick(OTHER, "campaign", "copywriter", ["flash", "pro"], "flash").variant == "flash"
    assert selector.pick(WS, "move", "copywriter", ["flash", "pro"], "flash").variant == "flash"
    assert [(s.variant, s.runs) for s in selector.performance(WS)] == [("flash", 3), ("pro", 3)]


def test_a_superseded_wording_confirms_the_fact_instead_of_rewording_it_back(memory: FakeMemory) -> None:
    [added] = memory.semantic.learn(WS, ["Our teas come from Darjeeling estates"], FactSource(kind="edit"))
    memory.semantic.learn(WS, ["Our teas come from Darjeeling tea estates"], FactSource(kind="edit"))
    [again] = memory.semantic.learn(WS, ["our teas come from darjeeling estates."], FactSource(kind="edit"))
    assert (again.action, again.fact_id, again.fact) == ("confirmed", added.fact_id,
                                                         "Our teas come from Darjeeling tea estates")
