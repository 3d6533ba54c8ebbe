"""Self-correction: the config of seed 003, the targeted-rewrite planner, and the loop it drives."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from shared.brandkit import BrandKit
from shared.campaigns.schemas import EmailCopy
from shared.qa.correction import (
    CorrectionPlan,
    SelfCorrectionConfig,
    critique,
    merge_rewrite,
    plan_correction,
    rewrite_instructions,
)
from shared.qa.gate import review
from shared.qa.report import GateReport
from shared.testing.fakes import ScriptedModel
from shared.testing.qa_fakes import GuidelineJudge

KIT = BrandKit.model_validate({
    "voice": ["warm"],
    "banned_terms": {"cheap": "affordable"},
    "required_disclaimers": {"email": "Unsubscribe anytime."},
})
CONFIG = SelfCorrectionConfig(critique_aspects=["clarity"], max_iterations=2)
GOOD = {"subject": "A gift with a story", "preheader": "From growers you can name",
        "body": "Tea worth giving. Unsubscribe anytime.", "cta": "Shop the box"}


def _gate(drafts: dict[str, Any], judge: GuidelineJudge | None = None) -> GateReport:
    return review(drafts, KIT, model=judge or GuidelineJudge(), config=CONFIG)


class TestConfig:
    def test_defaults_follow_seed_003(self) -> None:
        config = SelfCorrectionConfig()
        assert (config.max_iterations, config.min_quality_score, config.improvement_threshold,
                config.store_failures) == (3, 0.8, 0.1, True)
        assert len(config.critique_aspects) == 5 and {"clarity", "persuasiveness", "brand_alignment"} <= set(
            config.critique_aspects)

    def test_from_workspace_settings(self) -> None:
        config = SelfCorrectionConfig.from_settings({"self_correction": {"max_iterations": 1,
                                                                         "critique_aspects": ["clarity"]}})
        assert config.max_iterations == 1 and config.critique_aspects == ["clarity"]
        assert SelfCorrectionConfig.from_settings({}) == SelfCorrectionConfig()

    @pytest.mark.parametrize("bad", [{"min_quality_score": 1.5}, {"critique_aspects": ["vibes"]},
                                     {"max_iterations": -1}, {"retries": 2}])
    def test_rejects_what_it_cannot_honour(self, bad: dict[str, Any]) -> None:
        with pytest.raises(ValidationError):
            SelfCorrectionConfig.model_validate(bad)


class TestPlanner:
    def test_passing_copy_needs_nothing(self) -> None:
        plan = plan_correction(_gate({"email": GOOD}), CONFIG, iteration=0)
        assert plan.action == "pass" and plan.rewrites == {}

    def test_only_failing_fields_are_rewritten_with_their_own_critique(self) -> None:
        judge = GuidelineJudge()
        judge.script("voice:warm", [{"item": "email", "field": "cta", "evidence": "Shop the box",
                                     "fix": "Invite, do not order."}])
        gate = _gate({"email": {**GOOD, "subject": "Cheap gifts", "body": "Tea worth giving."}}, judge)
        plan = plan_correction(gate, CONFIG, iteration=0)
        assert plan.action == "rewrite"
        assert plan.fields_of("email") == ["subject", "body", "cta"]
        assert plan.rewrites["email"]["subject"] == [
            "`subject` uses the banned term 'Cheap'; write 'affordable' instead."]
        assert "Unsubscribe anytime." in plan.rewrites["email"]["body"][0]
        assert "Invite, do not order." in plan.rewrites["email"]["cta"][0]
        assert plan.store_failure and {f["guideline"] for f in plan.failures} == {
            "banned_terms", "required_disclaimers", "voice:warm"}

    def test_blocking_critique_comes_first(self) -> None:
        judge = GuidelineJudge()
        judge.script("aspect:clarity", [{"item": "email", "field": "subject", "evidence": "x", "fix": "Clarify."}])
        gate = _gate({"email": {**GOOD, "subject": "Cheap gifts"}}, judge)
        assert critique(gate.items["email"])["subject"][0].startswith("`subject` uses the banned term")

    def test_past_the_limit_a_human_decides(self) -> None:
        gate = _gate({"email": {**GOOD, "subject": "Cheap gifts"}})
        plan = plan_correction(gate, CONFIG, iteration=2, previous_score=0.5)
        assert plan.action == "human" and "after 2 rewrite(s)" in plan.reason
        assert plan.rewrites == {"email": {"subject": [
            "`subject` uses the banned term 'Cheap'; write 'affordable' instead."]}}

    def test_a_rewrite_that_does_not_improve_goes_to_a_human(self) -> None:
        gate = _gate({"email": {**GOOD, "subject": "Cheap gifts"}})
        plan = plan_correction(gate, CONFIG, iteration=1, previous_score=gate.score)
        assert plan.action == "human" and "closing 0% of the gap" in plan.reason

    def test_improvement_is_the_share_of_the_gap_closed(self) -> None:
        gate = _gate({"email": {**GOOD, "subject": "Cheap gifts"}})
        previous = 1 - 2 * (1 - gate.score)
        assert plan_correction(gate, CONFIG, iteration=1, previous_score=previous).action == "rewrite"

    def test_failures_are_not_kept_when_store_failures_is_off(self) -> None:
        gate = _gate({"email": {**GOOD, "subject": "Cheap gifts"}})
        config = CONFIG.model_copy(update={"store_failures": False})
        plan = plan_correction(gate, config, iteration=0)
        assert not plan.store_failure and plan.failures == []


class TestRewriteHelpers:
    PLAN = CorrectionPlan(action="rewrite", reason="", iteration=0, score=0.9,
                          rewrites={"email": {"subject": ["Use 'affordable'."]}})

    def test_instructions_name_the_fields_to_change_and_to_keep(self) -> None:
        text = rewrite_instructions(self.PLAN, "email", GOOD)
        assert text.startswith("Rewrite only these fields: subject.")
        assert "Return every other field (preheader, body, cta) exactly as it is now." in text
        assert "Fix in `subject`:\n- Use 'affordable'." in text and '"cta": "Shop the box"' in text
        assert rewrite_instructions(self.PLAN, "ad", {"headline": "x"}) == ""

    def test_merge_keeps_untargeted_fields_verbatim(self) -> None:
        rewritten = {**GOOD, "subject": "An affordable gift", "body": "The writer changed this too."}
        merged = merge_rewrite(GOOD, rewritten, ["subject"])
        assert merged == {**GOOD, "subject": "An affordable gift"}


def test_qa_fail_then_targeted_rewrite_then_pass() -> None:
    """The loop as the content and QA nodes run it, with a scripted writer and judge."""
    writer = ScriptedModel()
    writer.script(EmailCopy, {**GOOD, "subject": "Cheap gifts, warm hearts"},
                  {**GOOD, "subject": "Affordable gifts, warm hearts", "body": "Rewritten body the gate never saw."})
    judge = GuidelineJudge()
    drafts = {"email": writer.generate(tier="fast", system="", prompt="write", schema=EmailCopy).value.model_dump()}
    first = review(drafts, KIT, model=judge, config=CONFIG)
    plan = plan_correction(first, CONFIG, iteration=0)
    assert plan.action == "rewrite" and plan.fields_of("email") == ["subject"]
    prompt = rewrite_instructions(plan, "email", drafts["email"])
    rewritten = writer.generate(tier="fast", system="", prompt=prompt, schema=EmailCopy).value.model_dump()
    drafts["email"] = merge_rewrite(drafts["email"], rewritten, plan.fields_of("email"))
    assert drafts["email"]["body"] == GOOD["body"]
    second = review(drafts, KIT, model=judge, config=CONFIG)
    final = plan_correction(second, CONFIG, iteration=1, previous_score=first.score)
    assert final.action == "pass" and second.passed and second.score == 1.0
    assert "Rewrite only these fields: subject." in writer.calls[1][2]


def test_qa_failing_past_the_limit_goes_to_a_human() -> None:
    """A writer that never fixes the banned term: rewrite, rewrite, then a human (max_iterations=2)."""
    bad = {"email": {**GOOD, "subject": "Cheap gifts"}}
    actions, previous = [], None
    for iteration in range(3):
        gate = _gate(bad)
        plan = plan_correction(gate, CONFIG.model_copy(update={"improvement_threshold": 0.0}),
                               iteration=iteration, previous_score=previous)
        actions.append(plan.action)
        previous = gate.score
    assert actions == ["rewrite", "rewrite", "human"]
