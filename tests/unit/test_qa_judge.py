"""Layer 3, the model judge: one fast-tier call per guideline, findings per field, a score that counts them."""

from __future__ import annotations

import pytest

from shared.brandkit import BrandKit
from shared.errors import UpstreamUnavailable
from shared.qa.correction import SelfCorrectionConfig
from shared.qa.gate import check, review
from shared.qa.judge import JudgeVerdict, guidelines
from shared.testing.fakes import ScriptedModel
from shared.testing.qa_fakes import GuidelineJudge

KIT = BrandKit.model_validate({
    "voice": ["warm"], "tone": ["festive"],
    "prohibited_claims": [{"id": "health", "description": "tea cures illness"}],
    "guidelines": ["Name a grower or a region."],
    "do_examples": ["Tea from growers you can name."], "dont_examples": ["BUY NOW!!!"],
    "personas": [{"name": "Gifting professional", "description": "Urban, buys thoughtful gifts"}],
})
ONE_ASPECT = SelfCorrectionConfig(critique_aspects=["clarity"])
AD = {"headline": "The Diwali tea gift", "description": "Four Assam teas in one box."}
ORDER = ["voice:warm", "tone:festive", "claim:health", "guideline:1", "aspect:clarity"]


def test_guidelines_come_from_the_kit_and_the_aspects() -> None:
    assert [g.id for g in guidelines(KIT, ["clarity"])] == ORDER
    assert [g.id for g in guidelines(BrandKit(), ["clarity", "call_to_action"])] == [
        "aspect:clarity", "aspect:call_to_action"]


def test_one_fast_call_per_guideline_with_the_scripted_model() -> None:
    """Sequential judge calls consume the ScriptedModel's answers in guideline order."""
    model = ScriptedModel()
    model.script(JudgeVerdict, {"violations": []},
                 {"violations": [{"item": "ad", "field": "headline", "evidence": "The Diwali tea gift",
                                  "fix": "Add a festive greeting."}]},
                 {"violations": []}, {"violations": []}, {"violations": []})
    report = check("ad", AD, KIT, model=model, config=ONE_ASPECT, layers=("judge",), judge_workers=1)
    assert [(tier, schema) for tier, schema, _ in model.calls] == [("fast", "JudgeVerdict")] * 5
    assert [p.split("\n", 1)[0] for _, _, p in model.calls] == [f"Guideline id: {g}" for g in ORDER]
    [finding] = report.findings()
    assert (finding.field, finding.guideline, finding.layer, finding.blocking) == (
        "headline", "tone:festive", "judge", False)
    assert finding.suggestion == "Add a festive greeting." and finding.evidence == "The Diwali tea gift"
    assert report.fields["headline"].tested == 5 and report.fields["headline"].met == 4
    assert report.tested == 10 and report.score == 0.9
    assert report.passed, "judge findings lower the score but do not block above the minimum"
    assert len(report.usage) == 5 and report.usage[0]["node"] == "qa:judge:voice:warm"


def test_the_prompt_carries_the_brand_context_and_the_copy() -> None:
    judge = GuidelineJudge()
    check("ad", AD, KIT, model=judge, config=ONE_ASPECT, layers=("judge",))
    prompt = dict(judge.calls)["voice:warm"]
    for text in ("Guideline: The copy's voice is warm.", "Tea from growers you can name.", "BUY NOW!!!",
                 "Gifting professional", "Copy language: English (en)", "Four Assam teas in one box."):
        assert text in prompt


def test_a_low_judge_score_fails_without_blocking() -> None:
    judge = GuidelineJudge()
    for guideline in ORDER:
        judge.script(guideline, [{"item": "ad", "field": "description", "evidence": "Four", "fix": "Rework."}])
    report = check("ad", AD, KIT, model=judge, config=ONE_ASPECT, layers=("judge",))
    assert report.score == 0.5 and report.blocking == 0 and not report.passed


def test_review_judges_every_channel_in_one_call_per_guideline() -> None:
    judge = GuidelineJudge()
    judge.script("voice:warm", [{"item": "x_thread", "field": "posts[1]", "evidence": "Buy.", "fix": "Warm up."},
                                {"item": "ad", "field": "tagline", "evidence": "?", "fix": "Unknown field."}])
    drafts = {"ad": AD, "x_thread": {"posts": ["Our growers.", "Buy."]}}
    gate = review(drafts, KIT, model=judge, config=ONE_ASPECT, layers=("judge",))
    assert judge.guidelines_asked == sorted(ORDER)
    [thread_finding] = gate.items["x_thread"].findings()
    assert (thread_finding.field, thread_finding.path) == ("posts", "posts[1]")
    [ad_finding] = gate.items["ad"].findings()
    assert (ad_finding.field, ad_finding.path) == ("description", "tagline"), "unknown fields land on the anchor"
    assert gate.tested == 5 * 3 and gate.met == 13


def test_model_failures_propagate_for_a_retry() -> None:
    judge = GuidelineJudge()
    judge.script("tone:festive", UpstreamUnavailable("Gemini answered 503"))
    with pytest.raises(UpstreamUnavailable):
        check("ad", AD, KIT, model=judge, config=ONE_ASPECT)


def test_without_a_model_the_judge_is_skipped() -> None:
    report = check("ad", AD, KIT)
    assert {g.layer for g in report.guidelines} == {"lint", "claims"}
