"""Layer 1, the deterministic lint: one test class per rule, and the score it feeds."""

from __future__ import annotations

from typing import Any

import pytest

from shared.brandkit import BrandKit
from shared.qa.gate import check
from shared.qa.report import Finding, QAReport


def _kit(**data: Any) -> BrandKit:
    return BrandKit.model_validate(data)


def _lint(content_type: str, fields: dict[str, Any], kit: BrandKit | None = None, *, language: str = "en",
          ) -> QAReport:
    return check(content_type, fields, kit or BrandKit(), language=language, layers=("lint",))


def _only(report: QAReport, guideline: str) -> list[Finding]:
    return [f for f in report.findings() if f.guideline == guideline]


AD = {"headline": "The Diwali tea gift", "description": "Single-origin teas in one calm box."}


class TestCompleteness:
    def test_blank_required_field(self) -> None:
        [finding] = _only(_lint("ad", {**AD, "headline": "  "}), "completeness")
        assert finding.field == "headline" and "empty" in finding.message

    def test_optional_field_may_be_blank(self) -> None:
        report = _lint("instagram_caption", {"caption": "Gift calm this Diwali.", "hashtags": []})
        assert report.findings() == []


class TestLength:
    def test_over_the_platform_limit_says_by_how_much(self) -> None:
        [finding] = _only(_lint("ad", {**AD, "headline": "A" * 35}), "length")
        assert finding.path == "headline" and "35 characters" in finding.message and "cut 5" in finding.message

    def test_at_the_limit_passes(self) -> None:
        assert _lint("ad", {**AD, "headline": "A" * 30}).findings() == []

    def test_x_posts_use_the_weighted_count(self) -> None:
        url = "https://chaipoint.example/diwali/" + "x" * 200
        ok = _lint("x_thread", {"posts": ["Our Diwali box is here: " + url]})
        assert ok.findings() == []
        [finding] = _only(_lint("x_thread", {"posts": ["Short first post.", "茶" * 141]}), "length")
        assert finding.path == "posts[1]" and "282 weighted" in finding.message

    def test_too_many_items(self) -> None:
        tags = [f"#tag{i}" for i in range(31)]
        [finding] = _only(_lint("instagram_caption", {"caption": "Gift calm.", "hashtags": tags}), "length")
        assert finding.field == "hashtags" and "31 items" in finding.message


class TestHashtags:
    def test_a_hashtag_is_one_word_with_a_hash(self) -> None:
        report = _lint("instagram_caption", {"caption": "Gift calm.", "hashtags": ["#diwali", "diwali gifts"]})
        [finding] = _only(report, "hashtags")
        assert finding.path == "hashtags[1]" and finding.suggestion == "#diwaligifts"


class TestBannedTerms:
    KIT = _kit(banned_terms=[{"term": "cheap", "substitution": "affordable", "reason": "sounds low-quality"},
                             {"term": "hurry"}, {"term": "TEA", "case_sensitive": True}],
               approved_terms=[{"term": "Cheap Thrills Tea"}])

    def test_names_the_substitution_and_reason(self) -> None:
        [finding] = _only(_lint("ad", {**AD, "headline": "Cheap tea gifts"}, self.KIT), "banned_terms")
        assert finding.evidence == "Cheap" and finding.suggestion == "affordable"
        assert "write 'affordable' instead" in finding.message and "sounds low-quality" in finding.message

    def test_without_substitution_asks_to_rephrase(self) -> None:
        [finding] = _only(_lint("ad", {**AD, "description": "Hurry, boxes are going."}, self.KIT), "banned_terms")
        assert "remove it or rephrase" in finding.message and finding.suggestion is None

    def test_every_occurrence_in_every_item(self) -> None:
        report = _lint("x_thread", {"posts": ["cheap and cheerful", "still cheap"]}, self.KIT)
        assert [f.path for f in _only(report, "banned_terms")] == ["posts[0]", "posts[1]"]

    def test_case_sensitive_term(self) -> None:
        assert _only(_lint("ad", {**AD, "headline": "Tea for TEA lovers"}, self.KIT), "banned_terms")[0].evidence \
            == "TEA"
        assert _only(_lint("ad", {**AD, "headline": "Tea for tea lovers"}, self.KIT), "banned_terms") == []

    def test_approved_names_shield_their_words(self) -> None:
        assert _only(_lint("ad", {**AD, "headline": "Cheap Thrills Tea is here"}, self.KIT), "banned_terms") == []


class TestApprovedTerms:
    KIT = _kit(approved_terms=[{"term": "Chai Point Collective", "mistakes": ["ChaiPoint"]},
                               {"term": "tulsi", "case_sensitive": False}])

    def test_known_mistake(self) -> None:
        [finding] = _only(_lint("ad", {**AD, "description": "From ChaiPoint, with love."}, self.KIT),
                          "approved_terms")
        assert finding.suggestion == "Chai Point Collective" and finding.evidence == "ChaiPoint"

    def test_wrong_capitalisation(self) -> None:
        [finding] = _only(_lint("ad", {**AD, "description": "From chai point collective."}, self.KIT),
                          "approved_terms")
        assert "exactly as 'Chai Point Collective'" in finding.message

    def test_case_insensitive_term_takes_any_case(self) -> None:
        assert _lint("ad", {**AD, "description": "Tulsi green, from Chai Point Collective."}, self.KIT).findings() \
            == []


class TestRequiredTermsAndDisclaimers:
    KIT = _kit(required_terms=[{"term": "Chai Point Collective", "content_types": ["linkedin_post"]}],
               required_disclaimers={"ad": ["T&C apply."], "email": "Unsubscribe anytime."})

    def test_missing_disclaimer_lands_on_the_primary_field(self) -> None:
        [finding] = _only(_lint("ad", AD, self.KIT), "required_disclaimers")
        assert finding.field == "description" and finding.suggestion == "T&C apply."

    def test_disclaimer_anywhere_in_the_copy_counts(self) -> None:
        assert _lint("ad", {**AD, "headline": "Tea gifts. T&C apply."}, self.KIT).findings() == []

    def test_disclaimer_match_ignores_case_and_spacing(self) -> None:
        fields = {"subject": "A gift", "preheader": "Calm tea", "body": "Tea.\nunsubscribe  ANYTIME.", "cta": "Shop"}
        assert _lint("email", fields, self.KIT).findings() == []

    def test_required_term_only_for_its_content_types(self) -> None:
        [finding] = _only(_lint("linkedin_post", {"text": "Our growers, our story."}, self.KIT), "required_terms")
        assert finding.field == "text" and "'Chai Point Collective'" in finding.message
        assert _only(_lint("x_thread", {"posts": ["Our growers."]}, self.KIT), "required_terms") == []


class TestLanguageRules:
    def test_language_outside_the_kit(self) -> None:
        kit = _kit(languages=["en", "hi"])
        report = _lint("ad", {"headline": "தீபாவளி பரிசு", "description": "இந்த தீபாவளிக்கு தேநீர் பரிசு கொடுங்கள்"},
                       kit, language="ta")
        [finding] = report.findings()
        assert finding.guideline == "kit_language" and "add 'ta' to the kit" in finding.message

    def test_wrong_script(self) -> None:
        report = _lint("ad", {"headline": "दिवाली का तोहफ़ा", "description": "Gift calm tea this Diwali season."},
                       language="hi")
        [finding] = report.findings()
        assert finding.guideline == "script" and finding.field == "description"
        assert "Latin" in finding.message and "Devanagari" in finding.message

    def test_names_and_disclaimers_do_not_count_against_the_script(self) -> None:
        kit = _kit(products=[{"name": "Festive Gift Box"}], required_disclaimers={"ad": "T&C apply"})
        fields = {"headline": "दिवाली का तोहफ़ा", "description": "Festive Gift Box अब उपलब्ध है। T&C apply"}
        assert _lint("ad", fields, kit, language="hi").findings() == []

    def test_same_script_other_language(self) -> None:
        fields = {"headline": "दिवाली का तोहफ़ा", "description": "या दिवाळीत आपल्या माणसांना चहाची भेट द्या"}
        [finding] = _lint("ad", fields, language="hi").findings()
        assert finding.guideline == "language" and "'mr'" in finding.message

    def test_short_or_uncertain_text_is_not_judged(self) -> None:
        assert _lint("ad", {"headline": "Book a demo", "description": "Hello"}).findings() == []


class TestReadingLevel:
    KIT = _kit(reading_level={"max_grade": 8})
    DENSE = ("Our comprehensive organisational methodology operationalises sustainability considerations "
             "throughout international procurement infrastructures, consequently transforming "
             "intergenerational agricultural livelihoods across northeastern India. Subsequently, "
             "consumers experience unprecedented organoleptic differentiation.")

    def test_too_hard(self) -> None:
        fields = {"subject": "A gift", "preheader": "Calm tea", "body": self.DENSE, "cta": "Shop"}
        [finding] = _lint("email", fields, self.KIT).findings()
        assert finding.guideline == "reading_level" and finding.field == "body" and "grade 8" in finding.message

    def test_plain_copy_passes_and_short_fields_are_skipped(self) -> None:
        body = ("We buy tea from small farms in Assam. Each tin names the grower. The leaves are picked by hand. "
                "You can taste the care in every cup.")
        report = _lint("email", {"subject": "Reimagined intergenerational sustainability", "preheader": "Calm tea",
                                 "body": body, "cta": "Shop"}, self.KIT)
        assert report.findings() == []

    def test_only_for_english(self) -> None:
        fields = {"subject": "x", "preheader": "y", "body": self.DENSE, "cta": "z"}
        report = check("email", fields, self.KIT, language="hi", layers=("lint",))
        assert not _only(report, "reading_level")


class TestScore:
    def test_guidelines_passed_over_guidelines_tested_per_field(self) -> None:
        kit = _kit(banned_terms={"cheap": "affordable"})
        report = _lint("ad", {"headline": "Cheap tea gifts for you", "description": "Single-origin teas."}, kit)
        headline = report.fields["headline"]
        assert headline.tested == 5 and headline.met == 4 and headline.score == 0.8
        description = report.fields["description"]
        assert description.score == 1.0 and description.tested == 4, "too short for the language rule"
        assert report.tested == 9 and report.met == 8 and report.score == 0.8889
        assert report.blocking == 1 and not report.passed
        banned = next(g for g in report.guidelines if g.id == "banned_terms")
        assert banned.tested_fields == ["headline", "description"] and banned.failed_fields == ["headline"]

    def test_clean_copy_passes(self) -> None:
        report = _lint("ad", AD, _kit(banned_terms={"cheap": "affordable"}))
        assert report.passed and report.score == 1.0


@pytest.mark.parametrize("content_type", ["email", "linkedin_post", "x_thread", "instagram_caption", "ad",
                                          "landing_page", "video_script"])
def test_every_content_type_lints(content_type: str) -> None:
    from shared.writing.specs import CONTENT_SPECS
    spec = CONTENT_SPECS[content_type]
    fields = {f.name: (["#calm"] if f.hashtags else ["Calm tea."]) if f.kind == "list" else "Calm tea."
              for f in spec.fields}
    assert _lint(content_type, fields).findings() == []
