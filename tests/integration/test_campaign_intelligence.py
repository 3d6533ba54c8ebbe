"""Campaign intelligence in-process: re-planning from findings, plan reuse, targeted QA rewrites, context."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from psycopg_pool import ConnectionPool

from shared.api.models import Decision
from shared.campaigns.festivals import campaign_festivals
from shared.campaigns.schemas import AdCopy, Plan, PlanReview
from shared.db.pool import connect
from shared.ports import Finding
from tests.integration.harness import Harness, make_settings


@pytest.fixture
def harness(pool: ConnectionPool, migrated_dsn: str) -> Iterator[Harness]:
    yield Harness(pool=pool, dsn=migrated_dsn, settings=make_settings(migrated_dsn))


def _events(h: Harness, campaign_id: object, type_: str) -> list[dict]:
    with connect(h.dsn) as conn:
        return [r["data"] for r in conn.execute(
            "SELECT data FROM public.campaign_events WHERE campaign_id = %s AND type = %s ORDER BY id",
            (campaign_id, type_))]


def _approve(h: Harness, principal: object, campaign_id: object) -> None:
    pending = h.row(campaign_id)["pending_decision"]
    h.api.decide(principal, campaign_id, Decision(decision_id=pending["id"], action="approve"))  # type: ignore[arg-type]
    h.pump()


class TestReplanning:
    def test_a_competitor_launch_in_the_findings_adds_a_competitor_scan(self, harness: Harness) -> None:
        harness.search.findings = [Finding(source_id="web:9", title="Rival Teas launches a Diwali hamper",
                                           content="Rival Teas launched a premium hamper this week.")]
        campaign_id = harness.create(harness.workspace())
        harness.pump()
        changes = _events(harness, campaign_id, "plan.changed")
        assert any(c.get("specialist") == "competitor_scan" and "launch" in c["reason"] for c in changes), changes
        ran = [e["specialist"] for e in _events(harness, campaign_id, "step.completed") if e["node"] == "specialist"]
        calendar = ["festival_calendar"] if campaign_festivals(harness.row(campaign_id)["brief"]) else []
        assert sorted(ran) == sorted(["competitor_scan", "knowledge_research", "web_research", *calendar])
        assert harness.row(campaign_id)["status"] == "awaiting_decision"

    def test_a_window_with_diwali_consults_the_calendar_unasked_and_adds_its_angle(self, harness: Harness) -> None:
        harness.model.script(PlanReview, {"changes": [], "angles": []})
        campaign_id = harness.create(harness.workspace(), start_date="2026-10-25", end_date="2026-11-15")
        harness.pump()
        ran = [e["specialist"] for e in _events(harness, campaign_id, "step.completed") if e["node"] == "specialist"]
        assert "festival_calendar" in ran
        changes = _events(harness, campaign_id, "plan.changed")
        angles = [c["angle"] for c in changes if c["action"] == "angle"]
        assert "Festival: Diwali (2026-11-08)" in angles, changes

    def test_a_rejection_is_a_change_of_course_with_its_reason(self, harness: Harness) -> None:
        principal = harness.workspace()
        campaign_id = harness.create(principal)
        harness.pump()
        pending = harness.row(campaign_id)["pending_decision"]
        harness.api.decide(principal, campaign_id, Decision(decision_id=pending["id"], action="reject",
                                                           feedback="Go premium"))
        harness.pump()
        assert any(c["action"] == "replan" and "Go premium" in c["reason"]
                   for c in _events(harness, campaign_id, "plan.changed"))


def test_a_proven_plan_is_reused_for_a_similar_task(harness: Harness) -> None:
    h = harness
    principal = h.workspace()
    first = h.create(principal, title="Diwali gifting push", objective="Sell gift boxes")
    h.pump()
    _approve(h, principal, first)
    assert h.row(first)["status"] == "awaiting_payment"
    h.pay(principal, first)
    assert h.row(first)["status"] == "completed"
    plans_before = len([c for c in h.model.calls if c[1] == "Plan"])
    second = h.create(principal, title="Diwali gifting push", objective="Sell gift boxes")
    h.pump()
    assert len([c for c in h.model.calls if c[1] == "Plan"]) == plans_before, "the planner model was called"
    reuse = [c for c in _events(h, second, "plan.changed") if c["action"] == "reuse"]
    assert reuse and "confidence" in reuse[0]["reason"]
    h.create(principal, title="Hiring drive for engineers", objective="Fill ten roles")
    h.pump(limit=1)
    assert len([c for c in h.model.calls if c[1] == "Plan"]) == plans_before + 1


class TestQualityGate:
    def test_qa_failure_rewrites_only_the_failing_field_then_passes(self, harness: Harness) -> None:
        principal = harness.workspace()
        with connect(harness.dsn) as conn:
            conn.execute("INSERT INTO public.brand_kits (workspace_id, kit) VALUES (%s, %s)",
                         (principal.requested_workspace, '{"banned_terms": {"cheap": "affordable"}}'))
        campaign_id = harness.create(principal, channels=["ad"])
        harness.pump()
        harness.model.script(AdCopy, {"headline": "Cheap tea gifts", "description": "Four teas, one calm box."},
                             {"headline": "Tea gifts", "description": "Completely different words here."})
        _approve(harness, principal, campaign_id)
        row = harness.row(campaign_id)
        assert row["status"] == "awaiting_payment", row
        prompts = [p for _, schema, p in harness.model.calls if schema == "AdCopy"]
        assert len(prompts) == 2 and "Rewrite ONLY these fields" in prompts[1] and "headline" in prompts[1]
        view = harness.api.get_campaign(principal, campaign_id)
        [ad] = view.artifacts
        assert ad.content == {"headline": "Tea gifts", "description": "Four teas, one calm box."}
        assert ad.revision == 2

    def test_qa_failing_past_the_limit_goes_to_a_human(self, harness: Harness) -> None:
        principal = harness.workspace(settings={"self_correction": {"max_iterations": 1}})
        with connect(harness.dsn) as conn:
            conn.execute("INSERT INTO public.brand_kits (workspace_id, kit) VALUES (%s, %s)",
                         (principal.requested_workspace, '{"banned_terms": {"cheap": "affordable"}}'))
        campaign_id = harness.create(principal, channels=["ad"])
        harness.pump()
        bad = {"headline": "Cheap tea gifts", "description": "Cheap and calm."}
        harness.model.script(AdCopy, bad, bad)
        _approve(harness, principal, campaign_id)
        row = harness.row(campaign_id)
        assert row["status"] == "awaiting_decision" and row["pending_decision"]["kind"] == "qa_review"
        assert any(c["action"] == "escalate" for c in _events(harness, campaign_id, "plan.changed"))


def test_writers_see_only_the_brief_and_variants_are_written(harness: Harness) -> None:
    """Tier 2 prompts carry the Tier 1 brief and nothing else of the research; A/B variants are stored."""
    principal = harness.workspace()
    campaign_id = harness.create(principal, channels=["email"], variants=2)
    harness.pump()
    _approve(harness, principal, campaign_id)
    prompts = [p for _, schema, p in harness.model.calls if schema == "EmailCopy"]
    assert len(prompts) == 2 and all(p.startswith("Write email copy from this brief alone.") for p in prompts)
    assert "Research:" not in prompts[0] and "variant B" in prompts[1]
    view = harness.api.get_campaign(principal, campaign_id)
    assert sorted((a.channel, a.variant) for a in view.artifacts) == [("email", "a"), ("email", "b")]
    briefs = [p for _, schema, p in harness.model.calls if schema == "ContentBrief"]
    assert briefs and "Canon for this content type" in briefs[0] and "AIDA" in briefs[0]
    assert Plan.model_fields["specialists"]


def test_adaptive_selection_picks_the_writer_variant_with_the_better_record(harness: Harness) -> None:
    h = harness
    principal = h.workspace()
    ws = str(principal.requested_workspace)
    for i in range(4):
        h.memory.selector.record(ws, "campaign", "writer", "storytelling", success=True, quality=0.95,
                                 run_key=f"s{i}")
        h.memory.selector.record(ws, "campaign", "writer", "concise", success=False, quality=0.4, run_key=f"c{i}")
    campaign_id = h.create(principal, channels=["ad"])
    h.pump()
    _approve(h, principal, campaign_id)
    prompts = [p for _, schema, p in h.model.calls if schema == "AdCopy"]
    assert prompts and "small human moment" in prompts[0]
    stats = {s.variant: s.runs for s in h.memory.selector.performance(ws, "campaign")}
    assert stats["storytelling"] == 5, stats


def test_specialists_search_through_the_tool_belt(harness: Harness) -> None:
    h = harness
    campaign_id = h.create(h.workspace())
    h.pump()
    events = [e for e in _events(h, campaign_id, "step.completed") if e["node"] == "specialist"]
    tools = [t for e in events for t in e["tools"]]
    assert {t["tool"] for t in tools} == {"web_search", "knowledge_search"} and all(t["ok"] for t in tools)
    assert all(t["latency_ms"] >= 0 and t["attempts"] == 1 for t in tools)


def test_landing_pages_and_video_scripts_are_written_and_checked(harness: Harness) -> None:
    """Every content type of the canon can be a campaign channel, briefed from its canon entry and gated."""
    principal = harness.workspace()
    campaign_id = harness.create(principal, channels=["landing_page", "video_script"])
    harness.pump()
    _approve(harness, principal, campaign_id)
    row = harness.row(campaign_id)
    qa = ((row["pending_decision"] or {}).get("payload") or {}).get("qa") or {}
    assert row["status"] == "awaiting_payment", qa.get("findings")
    briefs = [p for _, schema, p in harness.model.calls if schema == "ContentBrief"]
    assert any("Hero-Problem-Solution-Proof-CTA" in p for p in briefs)
    assert any("Hook-Story-Offer" in p for p in briefs)
    view = harness.api.get_campaign(principal, campaign_id)
    assert sorted(a.channel for a in view.artifacts) == ["landing_page", "video_script"]
