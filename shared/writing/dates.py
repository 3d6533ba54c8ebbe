"""Dates and times stated in copy or in its sources, in any of the gate's languages, in comparable form.

"Order by 28 October", "October 28th", "28 अक्टूबर तक", "அக்டோபர் 28", "२८ ऑक्टोबरपर्यंत", "2026-10-28" and
"28/10/2026" all state 28 October; "6 PM", "6:00 p.m." and "18:00 IST" all state 18:00. Month names come
from CLDR (Babel's locale data) for the 14 languages, wide and abbreviated, so a date written in one
language matches a source written in another. Days are read day-first (Indian usage) when all-numeric.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import TYPE_CHECKING

from shared.lazy import lazy_module
from shared.writing.specs import LANGUAGES

if TYPE_CHECKING:
    import babel.dates as babel_dates
else:
    babel_dates = lazy_module("babel.dates")

Span = tuple[int, int]
DateKey = tuple[int, int, int | None]
"""(month, day, year or None when the text gives none)."""
TimeKey = tuple[int, int]
"""(hour 0-23, minute)."""

_EXTRA_MONTHS = {"sept": 9, "sep": 9}
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?:,?\s*(?P<year>\d{4})(?!\d))?"
_TIME = re.compile(
    r"(?<![\w:.])(?P<hour>\d{1,2})(?:[:.](?P<minute>\d{2}))?\s*(?P<half>a\.?\s?m\.?|p\.?\s?m\.?)(?![A-Za-z])"
    r"|(?<![\w:])(?P<hour24>[01]?\d|2[0-3]):(?P<minute24>[0-5]\d)\s*(?:hrs|hours|IST)\b",
    re.IGNORECASE)
_ISO = re.compile(r"(?<!\d)(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})(?!\d)")
_NUMERIC = re.compile(r"(?<![\d/.])(?P<day>\d{1,2})[/.](?P<month>\d{1,2})[/.](?P<year>\d{4}|\d{2})(?![\d/])")


@dataclass(frozen=True)
class Mention:
    """A date or time as written, where, and its comparable key."""

    text: str
    span: Span
    date: DateKey | None = None
    time: TimeKey | None = None


@cache
def _month_names() -> dict[str, tuple[int, bool]]:
    """Lower-cased month name → (month, whether it is only an abbreviation)."""
    names: dict[str, tuple[int, bool]] = {name: (number, True) for name, number in _EXTRA_MONTHS.items()}
    for width in ("wide", "abbreviated"):
        for language in LANGUAGES:
            for context in ("format", "stand-alone"):
                for number, name in babel_dates.get_month_names(width, context, locale=language).items():
                    cleaned = name.strip().rstrip(".").rstrip("\u0970").strip().lower()
                    if len(cleaned) >= 3:
                        names.setdefault(cleaned, (number, width == "abbreviated"))
    return names


def _glued(text: str, end: int) -> bool:
    """Whether a letter or combining mark follows `end` (an abbreviation inside a longer word)."""
    return end < len(text) and unicodedata.category(text[end])[0] in "LM"


@cache
def _patterns() -> tuple[re.Pattern[str], ...]:
    names = sorted(_month_names(), key=len, reverse=True)
    month = "(?P<month>" + "|".join(re.escape(n) for n in names) + r")\.?(?![A-Za-z])"
    before = r"(?<![^\W\d_])"
    return (
        re.compile(before + r"(?P<first>\d{1,2})(?:st|nd|rd|th)?\s*(?:-|–|to)\s*" + _DAY + r"\s+(?:of\s+)?"
                   + month + _YEAR, re.IGNORECASE),
        re.compile(before + _DAY + r"\s*(?:of\s+)?" + month + _YEAR, re.IGNORECASE),
        re.compile(before + month + r"\s*" + _DAY + r"(?!\d)" + _YEAR, re.IGNORECASE),
    )


def _number(raw: str) -> int:
    return int("".join(str(int(ch)) for ch in raw))


def _valid(month: int, day: int, year: int | None) -> bool:
    try:
        date(year or 2024, month, day)
    except ValueError:
        return False
    return True


def mentions(text: str) -> list[Mention]:
    """Every date and time stated in `text`, in order, without overlaps (the longest reading wins)."""
    found: list[Mention] = []
    for match in _ISO.finditer(text):
        year, month, day = _number(match["year"]), _number(match["month"]), _number(match["day"])
        if _valid(month, day, year):
            found.append(Mention(match.group(0), match.span(), date=(month, day, year)))
    for match in _NUMERIC.finditer(text):
        day, month = _number(match["day"]), _number(match["month"])
        year = _number(match["year"])
        year = year + 2000 if year < 100 else year
        if _valid(month, day, year):
            found.append(Mention(match.group(0), match.span(), date=(month, day, year)))
    months = _month_names()
    for pattern in _patterns():
        for match in pattern.finditer(text):
            name = match["month"].lower()
            if name not in months:
                continue
            month, abbreviation = months[name]
            if abbreviation and _glued(text, match.end("month")):
                continue
            stated_year = _number(match["year"]) if match["year"] else None
            days = [_number(match["day"])]
            if "first" in pattern.groupindex and match["first"]:
                days.insert(0, _number(match["first"]))
            for day in days:
                if _valid(month, day, stated_year):
                    found.append(Mention(match.group(0), match.span(), date=(month, day, stated_year)))
    for match in _TIME.finditer(text):
        if match["hour24"] is not None:
            key = (_number(match["hour24"]), _number(match["minute24"]))
        else:
            hour, minute = _number(match["hour"]), _number(match["minute"] or "0")
            if not 1 <= hour <= 12 or minute > 59:
                continue
            pm = match["half"].lower().startswith("p")
            key = ((hour % 12) + (12 if pm else 0), minute)
        found.append(Mention(match.group(0), match.span(), time=key))
    return _longest(found)


def _longest(found: list[Mention]) -> list[Mention]:
    """Drop mentions inside a longer one; keep every key of mentions sharing a span (a range's two days)."""
    kept: list[Mention] = []
    for mention in sorted(found, key=lambda m: (m.span[0], -(m.span[1] - m.span[0]))):
        if kept and mention.span[0] < kept[-1].span[1] and mention.span != kept[-1].span:
            if not any(k.span[0] <= mention.span[0] and mention.span[1] <= k.span[1] for k in kept):
                kept.append(mention)
            continue
        kept.append(mention)
    return kept


def date_supported(key: DateKey, known: frozenset[DateKey]) -> bool:
    """Whether a source gives this day: same month and day, and the same year when both state one."""
    month, day, year = key
    return any(m == month and d == day and (year is None or y is None or y == year) for m, d, y in known)
