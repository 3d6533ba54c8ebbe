"""Layer 2, the claims check: prohibited claims, unsupported superlatives, numbers without a source."""

from __future__ import annotations

from typing import Any

import pytest

from shared.brandkit import BrandKit
from shared.qa.claims import superlative_spans
from shared.qa.gate import check
from shared.qa.report import Finding

KIT = BrandKit.model_validate({
    "prohibited_claims": [{"id": "health", "description": "tea cures, treats or prevents illness",
                           "phrases": ["cures", "boosts immunity", "रोग प्रतिरोधक"]}],
    "approved_claims": ["India's first compostable tea pack"],
    "products": [{"name": "Festive Gift Box", "facts": ["Four 50 g tins", "Costs INR 1499"]},
                 {"name": "No. 1 Breakfast Blend"}],
})


def _claims(fields: dict[str, Any], *, sources: list[str] | None = None, content_type: str = "linkedin_post",
            language: str = "en") -> list[Finding]:
    report = check(content_type, fields, KIT, language=language, sources=sources or [], layers=("claims",))
    return report.findings()


class TestProhibitedClaims:
    def test_trigger_phrase(self) -> None:
        [finding] = _claims({"text": "Our tulsi green boosts immunity all winter."})
        assert finding.guideline == "prohibited_claims" and finding.evidence == "boosts immunity"
        assert "tea cures, treats or prevents illness" in finding.message and finding.blocking

    def test_in_hindi(self) -> None:
        [finding] = _claims({"text": "तुलसी चाय रोग प्रतिरोधक क्षमता के लिए"}, language="hi")
        assert finding.guideline == "prohibited_claims"

    def test_whole_words_only(self) -> None:
        assert _claims({"text": "We pick what the season secures."}) == []


class TestSuperlatives:
    @pytest.mark.parametrize("text", [
        "India's best chai.", "The finest leaves of Assam.", "Our freshest harvest yet.", "The most loved tea box.",
        "Guaranteed to delight.", "We are the #1 tea brand.", "Unmatched flavour.", "सबसे अच्छी चाय",
    ])
    def test_found(self, text: str) -> None:
        assert superlative_spans(text), text

    @pytest.mark.parametrize("text", [
        "Best wishes this Diwali.", "Our latest harvest is here.", "An honest cup of tea.", "All the best!",
        "The forest behind the garden.",
    ])
    def test_not_claims(self, text: str) -> None:
        assert superlative_spans(text) == [], text

    def test_unsupported_superlative(self) -> None:
        [finding] = _claims({"text": "India's finest tea, from Assam."})
        assert finding.guideline == "superlatives" and "India's finest tea" in finding.message

    def test_supported_by_a_source_with_the_word_it_qualifies(self) -> None:
        sources = ["A 2025 taste panel named it the finest tea of the season."]
        assert _claims({"text": "The finest tea of 2025, say tasters."}, sources=sources) == []
        [finding] = _claims({"text": "The finest gift of 2025."}, sources=sources)
        assert finding.guideline == "superlatives"

    def test_supported_by_an_approved_claim(self) -> None:
        assert _claims({"text": "Now in India's first compostable tea pack."}) == []
        [finding] = _claims({"text": "Now in India's first plastic-free tin."})
        assert finding.evidence == "India's first"

    def test_product_names_are_not_claims(self) -> None:
        assert _claims({"text": "Meet the No. 1 Breakfast Blend."}) == []


class TestNumbers:
    def test_number_in_a_kit_fact_any_notation(self) -> None:
        assert _claims({"text": "The Festive Gift Box: 4 tins for ₹1,499."}) == []

    def test_number_in_a_source(self) -> None:
        sources = ["Email subject lines naming the grower outperformed generic ones by 34 percent."]
        assert _claims({"text": "Naming the grower lifted opens 34%."}, sources=sources) == []

    def test_unsupported_numbers_each_reported(self) -> None:
        findings = _claims({"text": "Now ₹1,299, and 2x the flavour for 10 lakh fans."})
        assert [f.evidence for f in findings] == ["1,299", "2x", "10 lakh"]
        assert all(f.guideline == "numbers" and "no source or brand-kit fact" in f.message for f in findings)

    def test_percent_and_plain_numbers_do_not_stand_in_for_each_other(self) -> None:
        [finding] = _claims({"text": "Save 50% today."})
        assert finding.evidence == "50%"

    def test_hashtags_and_thread_markers_are_ignored(self) -> None:
        assert _claims({"posts": ["1/3 Our growers #Diwali2026"]}, content_type="x_thread") == []


def test_claims_are_tested_on_prose_fields_only() -> None:
    report = check("instagram_caption", {"caption": "Calm tea.", "hashtags": ["#best"]}, KIT, layers=("claims",))
    assert set(report.fields) == {"caption", "hashtags"}
    assert {g.id: g.tested_fields for g in report.guidelines} == {
        "prohibited_claims": ["caption", "hashtags"], "superlatives": ["caption"], "numbers": ["caption"],
        "dates": ["caption"]}
