"""Indian festivals and public holidays inside a campaign window (from the `holidays` package's data)."""

from __future__ import annotations

from datetime import date
from functools import cache
from typing import TYPE_CHECKING

from shared.lazy import lazy_module

if TYPE_CHECKING:
    import holidays
else:
    holidays = lazy_module("holidays")


@cache
def _calendar(year: int) -> dict[date, str]:
    return dict(holidays.country_holidays("IN", years=year, categories=("public", "optional")).items())


def festivals_between(start: date, end: date) -> list[tuple[date, str]]:
    """Festivals and holidays from `start` to `end` inclusive, in date order."""
    days: dict[date, str] = {}
    for year in range(start.year, end.year + 1):
        days |= {d: name for d, name in _calendar(year).items() if start <= d <= end}
    return sorted(days.items())
