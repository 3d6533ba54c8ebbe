"""Where and when a released artifact is published: targets, default slots in the workspace's timezone, the hash."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.publishing.engine import _ceil_second
from shared.publishing.messages import PublishMessage
from shared.publishing.scheduling import TARGETS, content_hash, next_slot, post_text, waits, workspace_zone

IST = ZoneInfo("Asia/Kolkata")


def test_publishable_channels_and_their_targets() -> None:
    assert {c: [(t.provider, t.required) for t in ts] for c, ts in TARGETS.items()} == {
        "email": [("email", True), ("whatsapp", False)], "linkedin_post": [("linkedin", True)],
        "x_thread": [("x", True)], "instagram_caption": [("instagram", True), ("facebook", False)]}
    assert not {"ad", "landing_page", "video_script"} & TARGETS.keys()


@pytest.mark.parametrize(("now_ist", "provider", "expected_ist"), [
    (datetime(2026, 12, 1, 8, 0), "linkedin", datetime(2026, 12, 1, 9, 30)),    # Tuesday morning: today
    (datetime(2026, 12, 3, 9, 30), "linkedin", datetime(2026, 12, 8, 9, 30)),   # Thursday at the slot: next Tuesday
    (datetime(2026, 12, 5, 23, 0), "linkedin", datetime(2026, 12, 8, 9, 30)),   # Saturday night
    (datetime(2026, 12, 1, 11, 59, 30), "x", datetime(2026, 12, 2, 12, 0)),     # inside the minute's lead
    (datetime(2026, 12, 1, 18, 0), "instagram", datetime(2026, 12, 1, 19, 0)),
    (datetime(2026, 12, 1, 10, 0, 1), "email", datetime(2026, 12, 2, 10, 0)),
])
def test_next_default_slot_in_ist(now_ist: datetime, provider: str, expected_ist: datetime) -> None:
    now = now_ist.replace(tzinfo=IST).astimezone(UTC)
    assert next_slot(provider, IST, now=now) == expected_ist.replace(tzinfo=IST)  # type: ignore[arg-type]


def test_the_brief_start_date_and_the_workspace_timezone() -> None:
    now = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
    assert next_slot("email", IST, now=now, not_before_day=date(2026, 12, 20)) == datetime(2026, 12, 20, 10, 0,
                                                                                             tzinfo=IST)
    london = workspace_zone({"timezone": "Europe/London"})
    assert next_slot("x", london, now=now).utcoffset() == timedelta(0)
    assert workspace_zone({}) == IST and workspace_zone({"timezone": "Mars/Olympus"}) == IST
    assert next_slot("x", IST, now=now, not_before_day=date(2020, 1, 1)) > now


def test_content_hash_is_stable_under_whitespace_and_changes_with_media() -> None:
    text = post_text("x_thread", {"posts": ["Diwali  gift boxes", "Order by\nFriday"]})
    assert text == "Diwali  gift boxes\n\nOrder by\nFriday"
    assert content_hash(text, []) == content_hash("Diwali gift boxes Order by Friday ", [])
    assert content_hash(text, []) != content_hash(text, ["asset-1"])
    assert len(content_hash(text, [])) == 64
    assert post_text("instagram_caption", {"caption": "Light", "hashtags": ["#a", "#b"]}) == "Light\n\n#a #b"


def test_waits_say_what_the_campaign_waits_for() -> None:
    at = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)
    rows = [
        {"provider": "linkedin", "status": "waiting", "error": "linkedin needs reconnect: token revoked",
         "attempts": 1, "next_attempt_at": at},
        {"provider": "x", "status": "scheduled", "error": "Too Many Requests", "attempts": 1, "next_attempt_at": at},
        {"provider": "email", "status": "published", "error": None, "attempts": 1, "next_attempt_at": at},
    ]
    assert waits(rows) == ["waiting: linkedin needs reconnect: token revoked",
                           "scheduled: x at 2026-12-02T04:00:00+00:00 (retry 2: Too Many Requests)"]


def test_delays_round_up_to_whole_seconds_and_messages_dedup_per_attempt() -> None:
    at = datetime(2026, 12, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    assert _ceil_second(at) == datetime(2026, 12, 1, 12, 0, 1, tzinfo=UTC)
    assert _ceil_second(at.replace(microsecond=0)) == at.replace(microsecond=0)
    first = PublishMessage(publication_id="0190a6b8-0000-7000-8000-000000000001", version=1)  # type: ignore[arg-type]
    assert first.dedup_id() == "pub-0190a6b8-0000-7000-8000-000000000001-v1-a0-fire"
    assert first.model_copy(update={"attempt": 1}).dedup_id() != first.dedup_id()
    assert first.model_copy(update={"purpose": "watch"}).dedup_id() != first.dedup_id()
