"""The festival calendar: national festivals, regional ones by target state, marketing windows before each."""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import UUID

import pytest

from shared.campaigns.festivals import anchored, campaign_festivals, festivals_overlapping, headline_festivals
from shared.campaigns.nodes.planner import with_calendar


def _names(brief: dict[str, object]) -> list[str]:
    return [f.name for f in headline_festivals(campaign_festivals(brief))]


def test_a_bengaluru_campaign_in_october_sells_into_the_diwali_window() -> None:
    brief = {"start_date": "2026-10-01", "end_date": "2026-10-31", "target_states": ["KA"]}
    festivals = {f.name: f for f in campaign_festivals(brief)}
    diwali = festivals["Diwali"]
    assert diwali.day == date(2026, 11, 8) and diwali.scope == "national"
    assert diwali.window_start == date(2026, 10, 18)
    assert festivals["Karnataka Rajyotsava"].scope == "regional: KA"
    assert "Diwali" in _names(brief) and "Pongal" not in festivals


def test_pongal_in_tamil_nadu_in_january_and_not_without_the_state() -> None:
    tamil_nadu = {"start_date": "2027-01-05", "end_date": "2027-01-20", "target_states": ["TN"]}
    assert _names(tamil_nadu)[:3] == ["Pongal", "Thiruvalluvar Day", "Uzhavar Thirunal"]
    assert "Pongal" not in [f.name for f in campaign_festivals({**tamil_nadu, "target_states": []})]


@pytest.mark.parametrize(("state", "start", "end", "festival"), [
    ("KL", "2026-08-10", "2026-08-30", "Onam"),
    ("WB", "2026-10-01", "2026-10-20", "Durga Puja (Mahasaptami)"),
    ("AS", "2026-01-05", "2026-01-16", "Magh Bihu"),
    ("MH", "2026-03-10", "2026-03-25", "Gudi Padwa"),
])
def test_regional_festivals_come_with_their_state(state: str, start: str, end: str, festival: str) -> None:
    with_state = {f.name: f for f in festivals_overlapping(date.fromisoformat(start), date.fromisoformat(end),
                                                           (state,))}
    assert festival in with_state and with_state[festival].states == (state,)
    other = "DL" if state != "DL" else "KA"
    assert festival not in {f.name for f in festivals_overlapping(date.fromisoformat(start),
                                                                  date.fromisoformat(end), (other,))}


def test_the_calendar_joins_every_plan_whose_window_overlaps_a_festival() -> None:
    october = {"start_date": "2026-10-01", "end_date": "2026-10-31"}
    assert with_calendar(["web_research", "knowledge_research"], "move", october) == [
        "web_research", "knowledge_research", "festival_calendar"]
    assert with_calendar(["web_research", "knowledge_research", "festival_calendar"], "campaign", october).count(
        "festival_calendar") == 1


def test_a_brief_without_dates_is_read_from_the_campaigns_creation_day_in_india() -> None:
    created = datetime(2026, 10, 31, 20, 0, tzinfo=UTC)
    campaign_id = UUID(int=(int(created.timestamp() * 1000) << 80) | (7 << 76) | (2 << 62) | 12345)
    assert campaign_id.version == 7
    brief = anchored({"title": "Diwali"}, str(campaign_id))
    assert brief["start_date"] == "2026-11-01"
    assert anchored({"start_date": "2026-10-02"}, str(campaign_id))["start_date"] == "2026-10-02"
    assert "Diwali" in [f.name for f in campaign_festivals(brief)]


@pytest.mark.parametrize(("start", "end"), [("0001-01-01", "9999-12-31"), ("9999-12-31", None), ("2026-01-01",
                                                                                                  "2999-12-31")])
def test_any_window_a_brief_can_state_is_answered_quickly(start: str, end: str | None) -> None:
    festivals = campaign_festivals({"start_date": start, "end_date": end, "target_states": ["TN"]})
    assert all(f.day.year < 2100 for f in festivals)


def test_a_states_commemorations_are_holidays_not_festivals_to_sell_into() -> None:
    december = {"start_date": "2026-12-01", "end_date": "2026-12-31", "target_states": ["UP"]}
    holidays_kept = {f.name for f in campaign_festivals(december)}
    assert "Chaudhary Charan Singh's Birthday" in holidays_kept
    assert _names(december) == ["Christmas Eve", "Christmas"]
