"""The brand kit model: strict validation with messages that name the value and the fix."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from shared import ports
from shared.brandkit import BrandKit, KitView, as_brand_kit, stored_kit_view
from shared.db.workspaces import brand_kit_from_json
from shared.errors import PermanentStepError

FULL: dict[str, Any] = {
    "voice": ["warm", "plain-spoken"],
    "tone": ["festive"],
    "do_examples": ["Tea from 40 growers you can name."],
    "dont_examples": ["CHEAPEST TEA EVER!!!"],
    "approved_terms": [{"term": "Chai Point Collective", "mistakes": ["ChaiPoint"]}],
    "banned_terms": [{"term": "cheap", "substitution": "affordable", "reason": "sounds low-quality"}],
    "required_terms": [{"term": "Chai Point Collective", "content_types": ["linkedin_post"]}],
    "prohibited_claims": [{"id": "health", "description": "tea cures illness", "phrases": ["cures"]}],
    "approved_claims": ["Sourced from 40 small growers"],
    "required_disclaimers": {"ad": ["T&C apply"]},
    "personas": [{"name": "Gifting professional", "description": "Urban, 25-40, buys thoughtful gifts",
                  "goals": ["a gift with a story"], "pains": ["generic hampers"]}],
    "products": [{"name": "Festive Gift Box", "description": "Four tins", "facts": ["Costs INR 1499"]}],
    "reading_level": {"max_grade": 8},
    "languages": ["en", "hi"],
    "guidelines": ["Name a grower or a region in every piece of copy."],
}


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        BrandKit.model_validate(data)
    return str(info.value)


def test_a_full_kit_round_trips_through_json() -> None:
    kit = BrandKit.model_validate(FULL)
    assert BrandKit.model_validate(kit.model_dump(mode="json")) == kit
    assert kit.required_terms_for("linkedin_post") == ["Chai Point Collective"]
    assert kit.required_terms_for("ad") == []
    assert kit.disclaimers_for("ad") == ["T&C apply"]


def test_the_empty_kit_is_valid() -> None:
    assert BrandKit.from_stored(None) == BrandKit()


@pytest.mark.parametrize(("data", "expected"), [
    ({"colour": "blue"}, "colour"),
    ({"banned_terms": [{"term": "cheap", "replacement": "x"}]}, "replacement"),
    ({"languages": ["klingon"]}, "languages.0"),
    ({"required_disclaimers": {"tiktok": "x"}}, "tiktok"),
    ({"reading_level": {"max_grade": 40}}, "max_grade"),
    ({"voice": ["warm", "Warm"]}, "'Warm' appears twice in voice"),
    ({"banned_terms": {"cheap": "affordable", "Cheap": "x"}}, "appears twice in banned_terms"),
    ({"approved_terms": [{"term": "cheap"}], "banned_terms": {"cheap": "affordable"}},
     "'cheap' is both banned and approved"),
    ({"banned_terms": {"cheap": "budget", "budget": "affordable"}}, "the substitution 'budget' for 'cheap' is itself"),
    ({"banned_terms": {"cheap": "affordable"}, "required_disclaimers": {"ad": "No cheap tricks"}},
     "contains the banned term 'cheap'"),
    ({"banned_terms": {"cheap": "affordable"}, "required_terms": [{"term": "cheap tea"}]},
     "required term 'cheap tea' contains the banned term"),
    ({"prohibited_claims": [{"id": "Health Claims", "description": "x"}]}, "prohibited_claims.0.id"),
    ({"approved_terms": [{"term": "Chai", "mistakes": ["Chai"]}]}, "lists itself as a mistake"),
    ({"voice": [""]}, "voice.0"),
])
def test_invalid_kits_name_the_field_or_value(data: dict[str, Any], expected: str) -> None:
    assert expected in _error(data)


def test_shorthands_of_earlier_kits_are_accepted() -> None:
    kit = BrandKit.model_validate({"banned_terms": {"cheap": "affordable", "hurry": ""},
                                   "required_disclaimers": {"ad": "T&C apply"}})
    assert [(t.term, t.substitution) for t in kit.banned_terms] == [("cheap", "affordable"), ("hurry", None)]
    assert kit.required_disclaimers == {"ad": ["T&C apply"]}


def test_port_view_carries_the_full_kit() -> None:
    kit = BrandKit.model_validate(FULL)
    view = kit.to_port()
    assert isinstance(view, ports.BrandKit) and isinstance(view, KitView)
    assert view.banned_terms == {"cheap": "affordable"}
    assert view.required_disclaimers == {"ad": "T&C apply"}
    assert view.voice == ["warm", "plain-spoken", "festive"]
    assert as_brand_kit(view) is kit


def test_a_bare_port_kit_converts() -> None:
    port = ports.BrandKit(voice=["warm"], banned_terms={"cheap": "affordable"}, required_disclaimers={"ad": "T&C"})
    kit = as_brand_kit(port)
    assert kit.voice == ["warm"] and kit.banned_terms[0].substitution == "affordable"
    assert kit.required_disclaimers == {"ad": ["T&C"]}


def test_the_workspace_store_reads_old_and_new_kits() -> None:
    legacy = brand_kit_from_json({"banned_terms": {"cheap": "affordable"}})
    assert legacy.banned_terms == {"cheap": "affordable"}
    assert brand_kit_from_json({}) == BrandKit().to_port()
    full = brand_kit_from_json(BrandKit.model_validate(FULL).model_dump(mode="json"))
    assert isinstance(full, KitView) and full.spec is not None and full.spec.reading_level is not None


def test_an_invalid_stored_kit_fails_the_step_permanently() -> None:
    with pytest.raises(PermanentStepError, match="PUT /api/v1/brand-kit"):
        stored_kit_view({"voice": "warm"})
