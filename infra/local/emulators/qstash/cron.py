"""Cron expressions of QStash schedules, and the (optionally compressed) clock that fires them.

QStash takes standard 5-field cron (`minute hour day-of-month month day-of-week`), evaluated in
UTC unless prefixed with `CRON_TZ=<zone> `, at one-minute resolution. Each field accepts `*`,
numbers, lists (`1,15`), ranges (`1-5`) and steps (`*/15`, `0-30/10`, `5/20`); months and
weekdays also accept three-letter names, day-of-week 7 means Sunday, and `?` reads as `*`. The
`@yearly`, `@monthly`, `@weekly`, `@daily`, `@midnight` and `@hourly` macros are understood. As in
classic cron, when both day fields are restricted a day matching either one fires.

`CronClock` lets tests and chaos runs compress time: with `seconds_per_minute=N` every N real
seconds count as one cron minute, so `* * * * *` fires every N seconds and `*/5 * * * *` every
5N seconds. With the default 60 it is the wall clock.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

REAL_SECONDS_PER_MINUTE = 60.0
_SEARCH_YEARS = 5

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTH_NAMES = {
    name: n
    for n, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1
    )
}
_DAY_NAMES = {name: n for n, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}


class CronError(ValueError):
    """An expression QStash would refuse; the message says what is wrong."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, _MONTH_NAMES),
    _Field("day-of-week", 0, 7, _DAY_NAMES),
)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed expression: the allowed values of each field, and the zone it is read in."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 = Sunday … 6 = Saturday (a 7 in the expression is folded into 0)."""
    days_restricted: bool
    weekdays_restricted: bool
    zone: ZoneInfo | None = None

    def matches(self, moment: datetime) -> bool:
        """Whether the wall-clock minute `moment` (naive, in the schedule's zone) fires."""
        return (
            moment.minute in self.minutes
            and moment.hour in self.hours
            and moment.month in self.months
            and self._day_matches(moment)
        )

    def next_after(self, instant: float) -> float:
        """The first firing strictly after the unix time `instant`, as unix seconds (a whole minute)."""
        zone: tzinfo = self.zone or UTC
        start = datetime.fromtimestamp(math.floor(instant / 60) * 60, zone).replace(tzinfo=None)
        candidate = start + timedelta(minutes=1)
        limit = candidate + timedelta(days=366 * _SEARCH_YEARS)
        while candidate < limit:
            if candidate.month not in self.months:
                candidate = _first_of_next_month(candidate)
            elif not self._day_matches(candidate):
                candidate = datetime(candidate.year, candidate.month, candidate.day) + timedelta(days=1)
            elif candidate.hour not in self.hours:
                later = [h for h in self.hours if h > candidate.hour]
                day = datetime(candidate.year, candidate.month, candidate.day)
                candidate = day + timedelta(hours=min(later)) if later else day + timedelta(days=1)
            elif candidate.minute not in self.minutes:
                later = [m for m in self.minutes if m > candidate.minute]
                hour = candidate.replace(minute=0)
                candidate = hour + timedelta(minutes=min(later)) if later else hour + timedelta(hours=1)
            else:
                fired = _instant(candidate, zone)
                if fired is not None and fired > instant:
                    return fired
                candidate += timedelta(minutes=1)
        raise CronError(f"{self.expression!r} never fires")

    def _day_matches(self, moment: datetime) -> bool:
        day_ok = moment.day in self.days
        weekday_ok = (moment.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return day_ok or weekday_ok
        return day_ok and weekday_ok


@functools.lru_cache(maxsize=256)
def parse_cron(expression: str) -> CronSchedule:
    """Parse an `Upstash-Cron` value; raises CronError (with QStash's wording) when invalid."""
    text = expression.strip()
    if not text:
        raise CronError("Invalid cron expression empty spec string")
    zone: ZoneInfo | None = None
    if text.startswith(("CRON_TZ=", "TZ=")):
        spec, _, text = text.partition(" ")
        name = spec.partition("=")[2]
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise CronError(f"Invalid cron expression: unknown time zone {name!r}") from exc
        text = text.strip()
    text = _MACROS.get(text.lower(), text)
    parts = text.split()
    if len(parts) != len(_FIELDS):
        raise CronError(f"Invalid cron expression {expression!r}: expected 5 fields, found {len(parts)}")
    values = [_parse_field(part, spec) for part, spec in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(v % 7 for v in values[4])
    schedule = CronSchedule(
        expression=expression,
        minutes=values[0],
        hours=values[1],
        days=values[2],
        months=values[3],
        weekdays=weekdays,
        days_restricted=not _is_wildcard(parts[2]),
        weekdays_restricted=not _is_wildcard(parts[4]),
        zone=zone,
    )
    try:
        schedule.next_after(time.time())
    except CronError as exc:
        raise CronError(f"Invalid cron expression {expression!r}: it never fires") from exc
    return schedule


def _is_wildcard(part: str) -> bool:
    return part in ("*", "?")


def _parse_field(part: str, spec: _Field) -> frozenset[int]:
    values: set[int] = set()
    for item in part.split(","):
        values |= _parse_item(item, spec)
    return frozenset(values)


def _parse_item(item: str, spec: _Field) -> set[int]:
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) == 0:
            raise CronError(f"Invalid cron expression: bad step {item!r} in the {spec.name} field")
        step = int(step_text)
    if base in ("*", "?"):
        low, high = spec.low, spec.high
    elif "-" in base:
        first, _, last = base.partition("-")
        low, high = _value(first, item, spec), _value(last, item, spec)
        if low > high:
            raise CronError(f"Invalid cron expression: range {item!r} of the {spec.name} field is backwards")
    else:
        low = _value(base, item, spec)
        high = spec.high if slash else low
    return set(range(low, high + 1, step))


def _value(text: str, item: str, spec: _Field) -> int:
    if spec.names and text.lower() in spec.names:
        return spec.names[text.lower()]
    if not text.isdigit():
        raise CronError(f"Invalid cron expression: {item!r} is not valid in the {spec.name} field")
    value = int(text)
    if not spec.low <= value <= spec.high:
        raise CronError(
            f"Invalid cron expression: {value} is out of range {spec.low}-{spec.high} in the {spec.name} field"
        )
    return value


def _first_of_next_month(moment: datetime) -> datetime:
    if moment.month == 12:
        return datetime(moment.year + 1, 1, 1)
    return datetime(moment.year, moment.month + 1, 1)


def _instant(wall: datetime, zone: tzinfo) -> float | None:
    """Unix seconds of a naive wall-clock time in `zone`; None when the time does not exist (DST gap)."""
    aware = wall.replace(tzinfo=zone)
    back = datetime.fromtimestamp(aware.timestamp(), zone).replace(tzinfo=None)
    return aware.timestamp() if back == wall else None


class CronClock:
    """Maps real time to cron time; `seconds_per_minute` real seconds make one cron minute.

    The two clocks agree at `anchor` (a whole real minute, reset whenever the speed changes), so
    a compressed cron time stays close to the real date and the cron minutes begin at real times
    `anchor + k * seconds_per_minute`.
    """

    def __init__(self, seconds_per_minute: float = REAL_SECONDS_PER_MINUTE, now: float | None = None) -> None:
        self._lock = threading.Lock()
        self._seconds_per_minute = REAL_SECONDS_PER_MINUTE
        self._anchor = 0.0
        self.set_speed(seconds_per_minute, now)

    @property
    def seconds_per_minute(self) -> float:
        with self._lock:
            return self._seconds_per_minute

    def set_speed(self, seconds_per_minute: float, now: float | None = None) -> None:
        """Make every `seconds_per_minute` real seconds one cron minute from now on."""
        if not math.isfinite(seconds_per_minute) or seconds_per_minute <= 0:
            raise ValueError("seconds_per_minute must be a positive number")
        current = time.time() if now is None else now
        with self._lock:
            self._seconds_per_minute = float(seconds_per_minute)
            self._anchor = math.floor(current / 60) * 60

    def next_fire(self, schedule: CronSchedule, after: float) -> float:
        """The real unix time of the schedule's first firing strictly after real time `after`."""
        with self._lock:
            anchor, speed = self._anchor, self._seconds_per_minute
        ratio = REAL_SECONDS_PER_MINUTE / speed
        cron_now = round(anchor + (after - anchor) * ratio, 3)
        cron_next = schedule.next_after(cron_now)
        return anchor + (cron_next - anchor) / ratio
