"""Reading QStash header values: durations (`30s`, `1d10h30m`), Go durations and the SDK's booleans."""

from __future__ import annotations

import re

from infra.local.emulators.qstash.errors import ApiError

_DURATION_PART = re.compile(r"(\d+)([smhd])")
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}


def parse_duration(value: str, header: str) -> float:
    """Seconds in a QStash duration such as `30s` or `1d10h30m` (a bare integer means seconds)."""
    text = value.strip()
    if text.isdigit():
        return float(text)
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ApiError(400, f"invalid {header} header: {value!r}; use e.g. 30s, 10m, 1d10h30m")
    return sum(int(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def parse_bool(value: str | None) -> bool:
    """QStash booleans; the Python SDK sends `True`/`False`."""
    return (value or "").strip().lower() == "true"


def parse_go_duration(text: str) -> float | None:
    parts = _GO_DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
