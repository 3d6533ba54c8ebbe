"""A brief's `language`, `channel_languages` and `target_states` through the served API: a bad value is a 400
naming the field and the values it takes; a good brief is accepted and keeps them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration import served_api
from tests.integration.served_api import Served

served = served_api.served
BRIEF = {"title": "Pongal gifting", "objective": "Sell gift boxes", "channels": ["email", "ad"]}
CODES = "'en', 'hi', 'mr', 'ne', 'bn', 'as', 'pa', 'gu', 'or', 'ta', 'te', 'kn', 'ml' or 'ur'"


def _error(served: Served, member: dict[str, str], brief: dict[str, Any]) -> dict[str, Any]:
    response = served.client().post("/api/v1/campaigns", json={"brief": {**BRIEF, **brief}}, headers=member)
    assert response.status_code == 400 and response.mimetype == "application/json", response.get_data(as_text=True)
    error: dict[str, Any] = response.get_json()["error"]
    return error


@pytest.fixture(scope="module")
def member(served: Served) -> dict[str, str]:
    return served.member()


@pytest.mark.parametrize(("brief", "field"), [
    ({"language": "tamil"}, "brief.language"),
    ({"language": "TA"}, "brief.language"),
    ({"channel_languages": {"email": "xx"}}, "brief.channel_languages.email"),
])
def test_a_language_outside_the_fourteen_is_a_400_naming_the_field_and_the_codes(
        served: Served, member: dict[str, str], brief: dict[str, Any], field: str) -> None:
    error = _error(served, member, brief)
    assert f"`{field}`" in error["message"] and CODES in error["message"], error
    assert [p["field"] for p in error["details"]["fields"]] == [field]


def test_a_channel_language_for_a_channel_the_brief_does_not_use_and_an_unknown_state(
        served: Served, member: dict[str, str]) -> None:
    error = _error(served, member, {"channel_languages": {"x_thread": "hi"}})
    assert "channel_languages names ['x_thread']" in error["message"], error
    error = _error(served, member, {"target_states": ["Tamil Nadu"]})
    assert "`brief.target_states.0`" in error["message"] and "'TN'" in error["message"], error


def test_a_tamil_brief_with_an_english_email_is_accepted_as_sent(served: Served, member: dict[str, str]) -> None:
    brief = {**BRIEF, "language": "ta", "channel_languages": {"email": "en"}, "target_states": ["TN", "PY"]}
    response = served.client().post("/api/v1/campaigns", json={"brief": brief}, headers=member)
    assert response.status_code == 202, response.get_data(as_text=True)
    view = served.client().get(f"/api/v1/campaigns/{response.get_json()['id']}", headers=member).get_json()
    assert {k: view["brief"][k] for k in ("language", "channel_languages", "target_states")} == {
        "language": "ta", "channel_languages": {"email": "en"}, "target_states": ["TN", "PY"]}
