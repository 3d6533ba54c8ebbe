"""Indian festivals whose marketing window overlaps a campaign: national ones, and regional ones by target state.

The dates come from the `holidays` package (national public and optional holidays, plus each target
state's own calendar via `subdiv`), and from a small table of what it lacks: festivals derived from its
dates (Navratri starts nine days before Dussehra; Durga Puja is celebrated from Mahasaptami in the eastern
states) and fixed or weekday-rule marketing days (Valentine's Day, Mother's Day...). `holidays` carries Hindu
lunisolar dates only from 2001 to 2035 and estimates Islamic ones after 2026 ("(estimated)" in the name).

A festival counts when its marketing window, the `lead_days` before it up to the day itself, overlaps the
campaign window: a campaign in October sells into Diwali in early November. Festivals the national calendar
lists but only a region keeps (Pongal, Onam, Bihu, Gudi Padwa...) count only when the brief targets one of
their states.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, get_args
from uuid import UUID
from zoneinfo import ZoneInfo

from shared.lazy import lazy_module
from shared.tracing import campaign_started_at

if TYPE_CHECKING:
    import holidays
else:
    holidays = lazy_module("holidays")

StateCode = Literal["AN", "AP", "AR", "AS", "BR", "CG", "CH", "DH", "DL", "GA", "GJ", "HP", "HR", "JH", "JK", "KA",
                    "KL", "LA", "LD", "MH", "ML", "MN", "MP", "MZ", "NL", "OD", "PB", "PY", "RJ", "SK", "TN", "TR",
                    "TS", "UK", "UP", "WB"]
"""States and union territories as the `holidays` package codes them (ISO 3166-2:IN; Telangana TS, Odisha OD)."""
STATE_CODES: tuple[str, ...] = get_args(StateCode)

REGIONAL: dict[str, tuple[str, ...]] = {
    "Pongal": ("TN", "PY"), "Onam": ("KL",), "Magh Bihu": ("AS",), "Bahag Bihu": ("AS",), "Gudi Padwa": ("MH", "GA"),
    "Ugadi": ("KA", "AP", "TS"), "Cheti Chand": ("GJ", "RJ"), "Vishu": ("KL",), "Vaisakhi": ("PB", "HR", "CH"),
    "Meshadi (Tamil New Year's Day)": ("TN", "PY"), "Chhath": ("BR", "JH", "UP"), "Dolyatra": ("WB", "OD"),
    "Rath Yatra": ("OD",), "Karaka Chaturthi (Karwa Chouth)": ("DL", "HR", "PB", "RJ", "UP", "MP", "CH"),
    "Parsi New Year": ("MH", "GJ"), "Guru Ravi Das's Birthday": ("PB",), "Durga Puja": ("WB", "AS", "OD", "TR", "JH",
                                                                                          "BR"),
}
"""Festivals on the national optional list that only some states keep (name prefix → states)."""
LEAD_DAYS: dict[str, int] = {
    "Diwali": 21, "Durga Puja": 14, "Navratri": 7, "Dussehra": 10, "Onam": 14, "Pongal": 10, "Magh Bihu": 10,
    "Bahag Bihu": 10, "Eid al-Fitr": 10, "Eid al-Adha": 7, "Christmas": 14, "Raksha Bandhan": 10,
    "Ganesh Chaturthi": 10, "Holi": 7, "Gudi Padwa": 7, "Ugadi": 7, "Valentine's Day": 10, "Mother's Day": 7,
}
"""Days of selling before a festival (its marketing window); others get `DEFAULT_LEAD_DAYS`."""
DEFAULT_LEAD_DAYS = 3
IST = ZoneInfo("Asia/Kolkata")
YEARS = range(2001, 2100)
"""Years the calendar answers for (`holidays` has lunisolar dates 2001-2035, fixed-date ones after); a window
outside them has no festivals, and one longer than `MAX_WINDOW_DAYS` is read up to that many days."""
MAX_WINDOW_DAYS = 400


@dataclass(frozen=True)
class Festival:
    """A festival on one day, where it is kept, and the window in which campaigns sell into it."""

    name: str
    day: date
    states: tuple[str, ...]
    """Empty: national."""
    source: Literal["holidays", "table"]
    lead_days: int

    @property
    def window_start(self) -> date:
        """First day of its marketing window."""
        return self.day - timedelta(days=self.lead_days)

    @property
    def scope(self) -> str:
        """`national`, or the states that keep it."""
        return "national" if not self.states else "regional: " + ", ".join(self.states)

    def as_dict(self) -> dict[str, Any]:
        """JSON for state, events and the strategy."""
        return {"name": self.name, "date": self.day.isoformat(), "scope": self.scope, "states": list(self.states),
                "source": self.source, "window_start": self.window_start.isoformat()}


def _lead(name: str) -> int:
    return next((days for prefix, days in LEAD_DAYS.items() if name.startswith(prefix)), DEFAULT_LEAD_DAYS)


def _regional_states(name: str) -> tuple[str, ...] | None:
    return next((states for prefix, states in REGIONAL.items() if name.startswith(prefix)), None)


@cache
def _calendar(year: int, state: str | None) -> tuple[tuple[date, str], ...]:
    """(day, single festival name) pairs of one year's national or state calendar (public and optional)."""
    days = holidays.country_holidays("IN", subdiv=state, years=year, categories=("public", "optional"))
    return tuple(sorted((day, name.strip()) for day, names in days.items() for name in names.split(";")))


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _table(year: int, national: tuple[tuple[date, str], ...]) -> list[Festival]:
    """What `holidays` lacks: days derived from its dates, and marketing days by fixed date or weekday rule."""
    out = [Festival("Valentine's Day", date(year, 2, 14), (), "table", _lead("Valentine's Day")),
           Festival("Mother's Day", _nth_weekday(year, 5, calendar.SUNDAY, 2), (), "table", _lead("Mother's Day")),
           Festival("Father's Day", _nth_weekday(year, 6, calendar.SUNDAY, 3), (), "table", _lead("Father's Day")),
           Festival("Friendship Day", _nth_weekday(year, 8, calendar.SUNDAY, 1), (), "table", _lead("Friendship")),
           Festival("Children's Day", date(year, 11, 14), (), "table", _lead("Children's Day"))]
    for day, name in national:
        if name == "Dussehra":
            out.append(Festival("Navratri (begins)", day - timedelta(days=9), (), "table", _lead("Navratri")))
        elif name == "Dussehra (Saptami)":
            out.append(Festival("Durga Puja (Mahasaptami)", day, REGIONAL["Durga Puja"], "table", _lead("Durga Puja")))
    return out


def festivals_for(year: int, states: tuple[str, ...] = ()) -> list[Festival]:
    """Every festival of `year` kept nationally or in one of `states` (regional ones only for their states)."""
    national = _calendar(year, None)
    seen = {(day, name) for day, name in national}
    found: dict[tuple[date, str], Festival] = {}
    for day, name in national:
        regional = _regional_states(name)
        if regional is None:
            found[(day, name)] = Festival(name, day, (), "holidays", _lead(name))
        elif set(regional) & set(states):
            found[(day, name)] = Festival(name, day, tuple(s for s in regional if s in states), "holidays",
                                          _lead(name))
    for state in states:
        for day, name in _calendar(year, state):
            if (day, name) in seen:
                continue
            known = found.get((day, name))
            kept = (*known.states, state) if known else (state,)
            found[(day, name)] = Festival(name, day, kept, "holidays", _lead(name))
    for festival in _table(year, national):
        if not festival.states:
            found.setdefault((festival.day, festival.name), festival)
        elif set(festival.states) & set(states):
            kept = tuple(s for s in festival.states if s in states)
            found[(festival.day, festival.name)] = Festival(festival.name, festival.day, kept, "table",
                                                           festival.lead_days)
    return sorted(found.values(), key=lambda f: (f.day, f.name))


def festivals_overlapping(start: date, end: date, states: tuple[str, ...] = ()) -> list[Festival]:
    """Festivals whose marketing window overlaps the campaign window `start`..`end` (inclusive), by date."""
    out: list[Festival] = []
    if start.year not in YEARS:
        return out
    end = min(end, start + timedelta(days=MAX_WINDOW_DAYS))
    for year in range(start.year, min(end.year + 2, YEARS.stop)):
        out += [f for f in festivals_for(year, tuple(sorted(set(states))))
                if f.window_start <= end and f.day >= start]
    return sorted(out, key=lambda f: (f.day, f.name))


def festivals_between(start: date, end: date) -> list[tuple[date, str]]:
    """National festivals and holidays from `start` to `end` inclusive, in date order."""
    return [(f.day, f.name) for f in festivals_overlapping(start, end) if start <= f.day <= end]


_COMMEMORATION = re.compile(r"Birthday|Anniversary|Martyr|Election|Death", re.IGNORECASE)
DEFAULT_WINDOW_DAYS = 45
"""A brief without an end date runs this many days from its start (or from today)."""


def campaign_day(campaign_id: str | None) -> date:
    """The day (India time) a campaign was created, from its UUIDv7 id; today for ids that carry no time. A brief
    without dates is read from this day, so every step of the campaign sees the same window."""
    try:
        started = campaign_started_at(UUID(campaign_id)) if campaign_id else None
    except ValueError:
        started = None
    return (started or datetime.now(UTC)).astimezone(IST).date()


def campaign_window(brief: Mapping[str, Any], *, today: date | None = None) -> tuple[date, date]:
    """The brief's window: its dates, else from `today` (or its start) for `DEFAULT_WINDOW_DAYS`."""
    start = _as_date(brief.get("start_date")) or today or date.today()
    end = _as_date(brief.get("end_date")) or min(start, date.max - timedelta(days=DEFAULT_WINDOW_DAYS)) + timedelta(
        days=DEFAULT_WINDOW_DAYS)
    return start, end


def _as_date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    return date.fromisoformat(value) if isinstance(value, str) and value else None


def anchored(brief: Mapping[str, Any], campaign_id: str | None) -> dict[str, Any]:
    """`brief` with its window's start fixed to the campaign's creation day when it names none (what the research
    specialists receive, so they read the same window as every other step)."""
    return {**brief, "start_date": brief.get("start_date") or campaign_day(campaign_id).isoformat()}


def campaign_festivals(brief: Mapping[str, Any], *, today: date | None = None) -> list[Festival]:
    """Festivals whose window overlaps the brief's, national and of its `target_states`."""
    start, end = campaign_window(brief, today=today)
    return festivals_overlapping(start, end, tuple(brief.get("target_states") or ()))


def headline_festivals(festivals: Sequence[Festival], *, limit: int = 5) -> list[Festival]:
    """The festivals a strategy builds on: major marketing festivals (those with their own lead time) and the
    target states' regional ones, one per festival (Dussehra's Saptami and Mahanavami are Dussehra), by date.
    A state's commemorations (a leader's birthday, a death anniversary, martyrs' day) and election days are
    holidays, not festivals to sell into; religious ones the `REGIONAL` table names (Guru Ravi Das's Birthday)
    stay."""
    picked: dict[str, Festival] = {}
    for festival in festivals:
        base = festival.name.split(" (")[0]
        if festival.lead_days <= DEFAULT_LEAD_DAYS and not festival.states:
            continue
        if _COMMEMORATION.search(festival.name) and _regional_states(festival.name) is None:
            continue
        current = picked.get(base)
        if current is None or (festival.name == base and current.name != base):
            picked[base] = festival
    return sorted(picked.values(), key=lambda f: (f.day, f.name))[:limit]
