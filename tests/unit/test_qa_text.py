"""The text primitives under the deterministic layers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shared.qa import langid
from shared.writing.text import find_phrase, numbers, readability, script_shares, syllables, x_length


class TestFindPhrase:
    def test_whole_words_only(self) -> None:
        assert find_phrase("Cheap tea", "cheap") == [(0, 5)]
        assert find_phrase("Cheapest tea", "cheap") == []
        assert find_phrase("a cheap-ish tea", "cheap") == [(2, 7)]

    def test_spaces_and_hyphens_are_interchangeable(self) -> None:
        assert len(find_phrase("Best-in-India chai", "best in india")) == 1
        assert len(find_phrase("best  in\nindia", "best in india")) == 1

    def test_case_sensitivity_is_opt_in(self) -> None:
        assert find_phrase("CHEAP", "cheap") == [(0, 5)]
        assert find_phrase("CHEAP", "cheap", case_sensitive=True) == []

    def test_curly_apostrophes_match_straight_ones(self) -> None:
        assert len(find_phrase("India’s first", "india's first")) == 1

    def test_devanagari_marks_are_part_of_the_word(self) -> None:
        """'गोरा' must not match inside 'गोरापन' nor 'चाय' inside 'चायवाला'."""
        assert find_phrase("गोरापन पाएँ", "गोरा") == []
        assert find_phrase("यह गोरा रंग", "गोरा") == [(3, 7)]
        assert find_phrase("चायवाला", "चाय") == []

    def test_symbols_at_the_edges(self) -> None:
        assert len(find_phrase("We are #1 in tea", "#1")) == 1
        assert find_phrase("We are #10 in tea", "#1") == []


class TestXLength:
    def test_plain_text_counts_characters(self) -> None:
        assert x_length("hello") == 5

    def test_urls_count_23(self) -> None:
        assert x_length("see https://example.com/a/very/long/path/that/goes/on/and/on") == 4 + 23

    def test_devanagari_counts_one_and_cjk_and_emoji_two(self) -> None:
        assert x_length("चाय") == 3
        assert x_length("茶") == 2
        assert x_length("🎉") == 2


class TestReadability:
    def test_syllables(self) -> None:
        assert [syllables(w) for w in ("tea", "gift", "festive", "celebrate", "organisation")] == [1, 1, 2, 3, 5]

    def test_simple_text_reads_easier_than_dense_text(self) -> None:
        simple = readability("We grow tea. You drink it. It tastes good. Buy a box today.")
        dense = readability("Our multidimensional organisational transformation methodology operationalises "
                            "comprehensive sustainability considerations throughout international supply "
                            "infrastructures, consequently revolutionising procurement.")
        assert simple.sentences == 4 and simple.words == 13
        assert simple.grade < 2 < 20 < dense.grade


class TestNumbers:
    @pytest.mark.parametrize(("text", "value", "percent"), [
        ("₹1,499 only", Decimal(1499), False),
        ("INR 1499", Decimal(1499), False),
        ("Rs. 1,23,456", Decimal(123456), False),
        ("34% off", Decimal(34), True),
        ("34 percent", Decimal(34), True),
        ("1.2 million people", Decimal(1_200_000), False),
        ("12 lakh people", Decimal(1_200_000), False),
        ("10k followers", Decimal(10_000), False),
        ("₹५०० की छूट", Decimal(500), False),
        ("50 g tins", Decimal(50), False),
    ])
    def test_values(self, text: str, value: Decimal, percent: bool) -> None:
        [found] = numbers(text)
        assert found.key == (value, percent)

    def test_what_is_not_a_quantity(self) -> None:
        assert numbers("1/5 Our 2nd flush for B2B and #Diwali2026 at https://x.co/a1 24/7") == []


class TestScripts:
    def test_shares(self) -> None:
        letters, shares = script_shares("चाय tea")
        assert letters == 6 and shares == {"Devanagari": 0.5, "Latin": 0.5}


class TestLanguageDetection:
    def test_bundled_model_tells_indic_languages_apart_offline(self) -> None:
        """The lite model ships in the wheel: Hindi vs Marathi (same script), Tamil, English."""
        assert langid.detect("इस दिवाली अपनों को चाय का तोहफ़ा दें")[0].lang == "hi"
        assert langid.detect("या दिवाळीत आपल्या माणसांना चहाची भेट द्या")[0].lang == "mr"
        assert langid.detect("இந்த தீபாவளிக்கு தேநீர் பரிசு கொடுங்கள்")[0].lang == "ta"
        assert langid.detect("Ship invoices in minutes, not days.")[0].lang == "en"


def test_structural_labels_are_not_quantities() -> None:
    """Scene numbers, list markers and timecodes in scripts are structure, not claims to source."""
    from shared.writing.text import numbers

    script = "HOOK (0-3s): Calm.\nSCENE 1 - Visual: tin / VO: steeped at 0:15\n2. Pour\nSave 40% today"
    assert [n.text for n in numbers(script)] == ["40%"]
