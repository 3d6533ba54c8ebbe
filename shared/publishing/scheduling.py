"""When and where a released artifact is published: its targets, its default slot, its reconcile hash.

Pure functions and the protocol the execute node schedules through (`Deps.publishing`), so the graph
imports no platform SDK and no queue.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.publishing.ports import Provider

DEFAULT_TIMEZONE = "Asia/Kolkata"
"""A workspace's timezone unless its settings name one (`settings.timezone`, an IANA name)."""


@dataclass(frozen=True)
class Target:
    """A provider a channel's copy goes to; an optional one only when its connection exists."""

    provider: Provider
    required: bool
    visual: bool = False
    """Needs an image from the asset library (picked or generated at scheduling time)."""


TARGETS: dict[str, tuple[Target, ...]] = {
    "email": (Target("email", True), Target("whatsapp", False)),
    "linkedin_post": (Target("linkedin", True),),
    "x_thread": (Target("x", True),),
    "instagram_caption": (Target("instagram", True, visual=True), Target("facebook", False, visual=True)),
}
"""Publishable channels; `ad`, `landing_page` and `video_script` stay exportable drafts."""


@dataclass(frozen=True)
class Slot:
    """A channel's default posting time in the workspace's timezone, on the listed weekdays (Monday = 0)."""

    at: time
    weekdays: frozenset[int] = frozenset(range(7))


DEFAULT_SLOTS: dict[Provider, Slot] = {
    "linkedin": Slot(time(9, 30), frozenset({1, 2, 3})),
    "x": Slot(time(12, 0)),
    "instagram": Slot(time(19, 0)),
    "facebook": Slot(time(19, 0)),
    "email": Slot(time(10, 0)),
    "whatsapp": Slot(time(10, 0)),
}


def workspace_zone(settings: dict[str, Any]) -> ZoneInfo:
    """The workspace's timezone (IST when unset or unknown)."""
    name = settings.get("timezone") if isinstance(settings.get("timezone"), str) else None
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def next_slot(provider: Provider, zone: ZoneInfo, *, now: datetime, not_before_day: date | None = None,
              lead: timedelta = timedelta(minutes=1)) -> datetime:
    """The provider's first default slot at least `lead` after `now`, on or after `not_before_day` (local)."""
    slot = DEFAULT_SLOTS[provider]
    earliest = now + lead
    day = max(earliest.astimezone(zone).date(), not_before_day or date.min)
    for _ in range(15):
        if day.weekday() in slot.weekdays:
            candidate = datetime.combine(day, slot.at, tzinfo=zone)
            if candidate >= earliest:
                return candidate
        day += timedelta(days=1)
    raise ValueError(f"no slot for {provider} within two weeks of {day}")


def post_text(channel: str, content: dict[str, Any]) -> str:
    """The words a post carries, in order (what the reconcile hash and the asset picker read)."""
    if channel == "email":
        parts = [content.get(k, "") for k in ("subject", "preheader", "body", "cta")]
    elif channel == "x_thread":
        parts = list(content.get("posts") or [])
    elif channel == "instagram_caption":
        parts = [content.get("caption", ""), " ".join(content.get("hashtags") or [])]
    else:
        parts = [content.get("text", "")]
    return "\n\n".join(str(p) for p in parts if p)


_SPACE = re.compile(r"\s+")


def content_hash(text: str, media_ids: list[str]) -> str:
    """sha256 of the normalised text (NFC, whitespace collapsed) and the media ids: the reconcile key."""
    normal = _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()
    return hashlib.sha256(f"{normal}\n{','.join(media_ids)}".encode()).hexdigest()


class PublicationScheduler(Protocol):
    """What the execute node schedules through: one publication per (artifact, target, variant)."""

    def schedule(self, *, campaign_id: str, workspace_id: str, draft_keys: list[str], brief: dict[str, Any],
                 workspace_settings: dict[str, Any]) -> dict[str, Any]:
        """Schedule every publishable draft of the campaign (idempotent); returns `{"pending": n, ...}`:
        how many publications the campaign now waits for."""
        ...


def waits(publications: list[Any]) -> list[str]:
    """What a campaign still waits for, one line per publication not yet settled (and each channel that is
    not connected), e.g. `waiting: linkedin needs reconnect: <the platform's reason>`."""
    lines: list[str] = []
    for p in publications:
        if p["status"] == "waiting":
            lines.append(f"waiting: {p['error'] or p['provider'] + ' is not connected'}")
        elif p["status"] == "scheduled":
            lines.append(f"scheduled: {p['provider']} at {p['next_attempt_at'].isoformat()}"
                         + (f" (retry {p['attempts'] + 1}: {p['error']})" if p["attempts"] and p["error"] else ""))
        elif p["status"] == "sending":
            lines.append(f"sending: {p['provider']}")
    return lines
