"""The QA gate in the copy's language: script, language identity within a script, per-language kit terms,
code-mixing, platform lengths as each platform counts them, dates as sourced facts, the judge's language."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from shared.brandkit import BrandKit
from shared.campaigns.nodes.content import with_disclaimer
from shared.campaigns.nodes.qa import campaign_sources
from shared.ports import Generated, Usage
from shared.qa.correction import SelfCorrectionConfig
from shared.qa.gate import check, review
from shared.qa.judge import JudgeVerdict
from shared.writing.dates import mentions
from shared.writing.text import grapheme_length, x_length

HINDI = "इस दिवाली अपने परिवार के साथ खुशियाँ बाँटें और आज ही ऑर्डर करें।"
MARATHI = "या दिवाळीत आपल्या माणसांना खास भेट द्या आणि आजच ऑर्डर करा."
NEPALI = "यो दशैंमा आफ्नो परिवारलाई विशेष उपहार दिनुहोस् र घर उज्यालो बनाउनुहोस्।"
ASSAMESE = "এই বিহুত আপোনাৰ পৰিয়ালক বিশেষ উপহাৰ দিয়ক আৰু আনন্দ কৰক।"
BENGALI = "এই পুজোয় আপনার পরিবারকে বিশেষ উপহার দিন আর আনন্দ করুন।"
TAMIL = "இந்த பொங்கலுக்கு உங்கள் குடும்பத்துடன் மகிழ்ச்சியைப் பகிருங்கள்."
ENGLISH = "Share the joy of the festival with your family and order your gift box today."


def _findings(fields: dict[str, Any], language: str, *, content_type: str = "linkedin_post",
              kit: BrandKit | None = None, sources: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    report = check(content_type, fields, kit or BrandKit(), language=language, sources=sources,
                   layers=("lint", "claims"))
    return [(f.guideline, f.message) for f in report.findings()]


def _rules(fields: dict[str, Any], language: str, **kwargs: Any) -> set[str]:
    return {rule for rule, _ in _findings(fields, language, **kwargs)}


class TestScriptAndLanguage:
    @pytest.mark.parametrize(("language", "text"), [("hi", HINDI), ("mr", MARATHI), ("ne", NEPALI),
                                                    ("as", ASSAMESE), ("bn", BENGALI), ("ta", TAMIL),
                                                    ("en", ENGLISH)])
    def test_copy_in_its_language_passes(self, language: str, text: str) -> None:
        assert _findings({"text": text}, language) == []

    def test_english_under_a_hindi_brief_is_sent_back_naming_the_script(self) -> None:
        (finding,) = _findings({"text": ENGLISH}, "hi")
        assert finding[0] == "script"
        assert "Latin" in finding[1] and "Hindi ('hi')" in finding[1] and "Devanagari" in finding[1]

    @pytest.mark.parametrize(("language", "text", "reads_as"), [
        ("hi", MARATHI, "Marathi"), ("mr", HINDI, "Hindi"), ("hi", NEPALI, "Nepali"), ("bn", ASSAMESE, "Assamese")])
    def test_a_same_script_language_is_told_apart(self, language: str, text: str, reads_as: str) -> None:
        (finding,) = _findings({"text": text}, language)
        assert finding[0] == "language" and f"reads as {reads_as}" in finding[1], finding

    def test_assamese_is_told_by_its_letters_and_hindi_by_its_function_words(self) -> None:
        (assamese,) = _findings({"text": ASSAMESE}, "bn")
        assert "the letters ৰ" in assamese[1]
        (hindi,) = _findings({"text": HINDI}, "mr")
        assert "words such as" in hindi[1]

    def test_brand_names_keep_their_latin_form_inside_indic_copy(self) -> None:
        kit = BrandKit.model_validate({"approved_terms": [{"term": "Chai Point Festive Gift Box"}]})
        text = "Chai Point Festive Gift Box के साथ मनाएं, Chai Point Festive Gift Box दें।"
        assert _findings({"text": text}, "hi", kit=kit) == []
        assert _rules({"text": text}, "hi") == {"script"}

    def test_code_mixed_hinglish_only_when_the_kit_allows_it(self) -> None:
        hinglish = "Is Diwali apne family ke saath celebrate karo, gift box आज ही order करें!"
        assert _rules({"text": hinglish}, "hi") == {"script"}
        assert _findings({"text": hinglish}, "hi", kit=BrandKit(code_mixing=True)) == []
        assert _rules({"text": TAMIL}, "hi", kit=BrandKit(code_mixing=True)) == {"script"}


class TestTermsPerLanguage:
    KIT = BrandKit.model_validate({
        "banned_terms": [{"term": "सस्ता", "substitution": "किफ़ायती", "language": "hi"},
                         {"term": "cheap", "substitution": "affordable"}],
        "required_terms": [{"term": "चाय", "language": "hi"}, {"term": "tea", "language": "en"}],
    })

    def test_a_hindi_banned_term_is_flagged_in_hindi_copy(self) -> None:
        found = _findings({"text": "यह सस्ता चाय का डिब्बा आपके अपनों के लिए है।"}, "hi", kit=self.KIT)
        assert [rule for rule, _ in found] == ["banned_terms"] and "किफ़ायती" in found[0][1]

    def test_required_terms_are_those_of_the_copys_language(self) -> None:
        assert _rules({"text": "यह तोहफा आपके अपनों के लिए है और सबको पसंद आएगा।"}, "hi",
                      kit=self.KIT) == {"required_terms"}
        assert _findings({"text": "A warm cup of tea for everyone you love this season."}, "en", kit=self.KIT) == []


class TestLengths:
    def test_x_weighs_devanagari_letters_and_signs_one_each_as_twitter_text_v3(self) -> None:
        assert x_length("नमस्ते") == 6
        assert x_length("नमस्ते 👨‍👩‍👧 https://example.com/a/very/long/path") == 6 + 1 + 2 + 1 + 23
        assert x_length("日本") == 4
        assert [x_length(emoji) for emoji in ("1️⃣", "🇮🇳", "👍🏽", "❤️")] == [2, 2, 2, 2]

    def test_a_hindi_post_within_280_weighted_passes_and_one_past_it_is_cut(self) -> None:
        fits = ("आज ही ऑर्डर करें और अपनों के साथ त्योहार मनाएं। " * 5).strip()
        assert 200 < x_length(fits) <= 280 < 2 * len(fits)
        assert "length" not in _rules({"posts": [fits]}, "hi", content_type="x_thread")
        too_long = fits + " हर घूँट में घर का स्वाद है और यह तोहफा आपके अपनों के लिए है।"
        (finding,) = [m for rule, m in _findings({"posts": [too_long]}, "hi", content_type="x_thread")
                      if rule == "length"]
        assert f"is {x_length(too_long)} weighted characters as X counts them" in finding

    def test_an_email_subject_counts_what_the_inbox_shows(self) -> None:
        subject = "दिवाली की शुभकामनाएँ, अपनों के लिए खास तोहफा"
        assert grapheme_length(subject) < len(subject)
        assert "length" not in _rules({"subject": subject, "preheader": "अपनों के लिए खास तोहफा",
                                       "body": HINDI, "cta": "ऑर्डर करें"}, "hi", content_type="email")


class TestDates:
    ORDER_BY = {"text": "Order by 28 October for delivery before Diwali, and share the joy with your family."}

    def test_a_date_from_a_source_is_not_a_claim(self) -> None:
        assert _findings(self.ORDER_BY, "en", sources=("brief\nLast order date 2026-10-28",)) == []

    def test_a_date_no_source_gives_is_flagged_as_a_date(self) -> None:
        (finding,) = _findings(self.ORDER_BY, "en", sources=("Diwali falls on 08 November 2026.",))
        assert finding[0] == "dates" and "'28 October'" in finding[1]

    def test_a_hindi_date_matches_an_english_source_and_a_kit_fact_gives_a_time(self) -> None:
        kit = BrandKit.model_validate({"products": [{"name": "Gift Box", "facts": [
            "Orders placed before 6 PM ship the same day."]}]})
        text = "28 अक्टूबर तक शाम 6 PM से पहले ऑर्डर करें और अपनों को खुश करें।"
        assert _findings({"text": text}, "hi", kit=kit, sources=("Order by 28 October",)) == []
        assert _rules({"text": text.replace("6 PM", "8 PM")}, "hi", kit=kit,
                      sources=("Order by 28 October",)) == {"dates"}

    def test_prices_and_offers_from_the_brief_are_sourced(self) -> None:
        text = {"text": "Get 20% off the ₹999 gift box until 2 November, with free delivery for your family."}
        brief = "brief\nFestive offer: 20% off the ₹999 box, valid till 02/11/2026."
        assert _findings(text, "en", sources=(brief,)) == []
        assert {rule for rule, _ in _findings(text, "en")} == {"numbers", "dates"}

    def test_dates_in_every_notation_and_language_read_the_same(self) -> None:
        keys = {m.date for text in ("28 October", "October 28th", "28 अक्टूबर", "அக்டோபர் 28", "२८ ऑक्टोबरपर्यंत",
                                    "28/10/2026", "2026-10-28") for m in mentions(text)}
        assert {(k[0], k[1]) for k in keys if k} == {(10, 28)}
        assert [m.time for m in mentions("by 6:30 p.m. or 18:30 IST")] == [(18, 30), (18, 30)]


class _LanguageJudge:
    """A fake fast tier that records each judge call's system instruction and finds nothing."""

    def __init__(self) -> None:
        self.systems: list[str] = []
        self._lock = threading.Lock()

    def generate(self, *, tier: str, system: str, prompt: str, schema: type[Any]) -> Generated[Any]:
        with self._lock:
            self.systems.append(system)
        return Generated(value=JudgeVerdict(), usage=Usage(model="fake-flash"))


def test_the_judge_is_prompted_in_each_drafts_language() -> None:
    judge = _LanguageJudge()
    report = review({"email": {"subject": "चाय", "preheader": "चाय", "body": HINDI, "cta": "ऑर्डर करें"},
                     "linkedin_post": {"text": TAMIL}}, BrandKit(), languages={"linkedin_post": "ta"},
                    language="hi", model=judge, config=SelfCorrectionConfig(critique_aspects=["clarity"]),  # type: ignore[arg-type]
                    layers=("judge",))
    assert sorted(report.items["email"].language + report.items["linkedin_post"].language) == sorted("hita")
    assert len(judge.systems) == 2
    assert any("The copy is in Hindi" in s and "Write in: Hindi (hi), Devanagari script." in s for s in judge.systems)
    assert any("The copy is in Tamil" in s and "write every fix in Tamil" in s for s in judge.systems)


def test_a_required_disclaimer_appended_to_tamil_copy_never_cuts_a_word() -> None:
    description = "ஒவ்வொரு மிடறிலும் வீட்டின் சுவை. இந்தப் பரிசு உங்கள் அன்புக்குரியவர்களுக்காக, இன்றே ஆர்டர் செய்யுங்கள்."
    fitted = with_disclaimer("ad", {"headline": "பண்டிகை மகிழ்ச்சி", "description": description}, "T&C apply")
    text = fitted["description"]
    assert len(text) <= 90 and text.endswith(" T&C apply")
    assert all(word in description.split() for word in text.removesuffix(" T&C apply").split())


def test_a_campaign_gates_dates_against_its_brief_plan_and_festival_calendar() -> None:
    state: Any = {"campaign_id": "0b6f7a52-3f0e-4d8a-9c1e-2f6a1d7e9b10",
                  "brief": {"title": "Diwali hampers", "objective": "Last orders on 2026-10-30",
                            "start_date": "2026-10-05", "end_date": "2026-10-31", "target_states": ["KA"]},
                  "plan": {"objective": "Sell hampers", "audience": "families", "kpis": [], "angles": []}}
    texts = [f"{s['title']}\n{s['content']}" for s in campaign_sources(state)]
    sourced = {"text": "Order by 30 October, Diwali is on 8 November and Rajyotsava on 1 November: gift your family."}
    assert _findings(sourced, "en", sources=tuple(texts)) == []
    unsourced = {"text": "Order by 3 November and share the joy of the festival with your family this season."}
    assert _rules(unsourced, "en", sources=tuple(texts)) == {"dates"}
