"""The campaign graph's memory adapter over the in-memory memory library."""

from __future__ import annotations

from shared.campaigns.memory import MemoryPlans
from shared.memory.extract import ExtractedFacts, FactExtractor
from shared.memory.fakes import fake_memory
from shared.testing.fakes import ScriptedModel

WS = "3f1f0c8e-5d1e-4b5c-9a55-1e2d3c4b5a69"
PLAN = {"objective": "Sell gift boxes", "audience": "Tea lovers", "channels": ["email"], "kpis": ["orders"],
        "research_queries": ["diwali"], "specialists": ["web_research"], "angles": ["Festival: Diwali"]}


def _plans(model: ScriptedModel) -> MemoryPlans:
    memory = fake_memory()
    return MemoryPlans(router=memory.router, semantic=memory.semantic, episodic=memory.episodic,
                       selector=memory.selector, extractor=FactExtractor(model))


def test_outcomes_and_facts_are_recalled_for_the_next_plan() -> None:
    model = ScriptedModel()
    model.script(ExtractedFacts, {"facts": ["The Festive Gift Box costs INR 1499"]})
    plans = _plans(model)
    plans.remember(WS, "campaign", "campaign: Diwali push. Sell gift boxes", plan=PLAN, success=True, quality=0.9,
                   campaign_id="c1")
    usage = plans.learn_from_artifacts(WS, {"email": {"subject": "Gift box at INR 1499"}}, campaign_id="c1")
    assert usage and usage[0]["node"] == "memory:email"
    lines = plans.recall(WS, "Diwali gift box campaign")
    assert any(line.startswith("Fact: The Festive Gift Box costs INR 1499") for line in lines), lines
    assert any(line.startswith("Before:") and "Festival: Diwali" in line for line in lines), lines
    reused = plans.lookup(WS, "campaign", "campaign: Diwali push. Sell gift boxes")
    assert reused is not None and reused.plan["specialists"] == ["web_research"] and reused.confidence > 0.8


def test_rejections_teach_nothing_and_critiques_are_kept() -> None:
    plans = _plans(ScriptedModel())
    assert plans.learn_from_decision(WS, kind="strategy_approval", action="reject", payload={}, campaign_id="c",
                                     decision_id="d") == []
    plans.record_critiques(WS, [{"draft": "ad", "field": "headline", "rule": "banned_terms",
                                 "message": "uses banned term 'cheap'"}], campaign_id="c", iteration=0)
    [episode] = plans.episodic.recall(WS, "banned term cheap", 5, kinds=["critique"])
    assert "ad.headline" in episode.text
