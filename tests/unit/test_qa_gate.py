"""The gate over a campaign's drafts: variants, kit forms, and the state it leaves for the graph."""

from __future__ import annotations

import pytest

from shared import ports
from shared.brandkit import BrandKit
from shared.qa.gate import review

KIT = BrandKit.model_validate({"banned_terms": {"cheap": "affordable"}, "required_disclaimers": {"ad": "T&C apply"}})
GOOD_AD = {"headline": "Affordable tea gifts", "description": "Four garden teas in one box. T&C apply"}


def test_variants_are_gated_as_their_content_type() -> None:
    gate = review({"ad": GOOD_AD, "ad#b": {**GOOD_AD, "headline": "Cheap tea gifts"}}, KIT)
    assert gate.items["ad#b"].content_type == "ad" and gate.failing_items == ["ad#b"]
    assert not gate.passed and gate.score == round(gate.met / gate.tested, 4)
    state = gate.as_state()
    assert state["failing_channels"] == ["ad"] and state["failing_drafts"] == ["ad#b"]
    [finding] = state["findings"]
    assert (finding["draft"], finding["channel"], finding["rule"], finding["field"]) == (
        "ad#b", "ad", "banned_terms", "headline")
    assert "write 'affordable' instead" in finding["message"]
    assert set(state["items"]) == {"ad", "ad#b"}


def test_the_legacy_port_kit_still_gates() -> None:
    port = ports.BrandKit(banned_terms={"cheap": "affordable"})
    gate = review({"ad": {**GOOD_AD, "headline": "Cheap tea gifts"}}, port)
    assert [f.guideline for f in gate.items["ad"].findings()] == ["banned_terms"]


def test_non_text_values_of_a_draft_are_ignored() -> None:
    gate = review({"instagram_caption": {"caption": "Gift calm.", "hashtags": ["#calm", 7], "image": None}}, KIT)
    assert gate.passed


@pytest.mark.parametrize(("drafts", "language", "message"), [
    ({"tiktok": {"text": "x"}}, "en", "'tiktok' is not a content type"),
    ({"ad": GOOD_AD}, "fr", "'fr' is not a supported language"),
])
def test_unknown_content_types_and_languages_are_refused(drafts: dict, language: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        review(drafts, KIT, language=language)
