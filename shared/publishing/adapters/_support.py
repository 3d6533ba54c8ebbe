"""Pieces the LinkedIn, X and email adapters share: timeouts without retries, rate-limit waits, text matching."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter

_URL = re.compile(r"https?://\S+")
_SPACE = re.compile(r"\s+")
DEFAULT_RETRY_AFTER_SECONDS = 60


class TimeoutAdapter(HTTPAdapter):
    """A `requests` transport that never retries and never waits longer than `timeout` seconds.

    Mounted on an SDK's own session (per client instance), it gives SDKs that send without a timeout
    (xdk) one, and makes sure no create is re-sent by the transport.
    """

    def __init__(self, timeout: float) -> None:
        super().__init__(max_retries=0)
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, *args, **kwargs)


def bounded_session(session: requests.Session, timeout: float) -> requests.Session:
    """`session` with `TimeoutAdapter` mounted for every scheme."""
    adapter = TimeoutAdapter(timeout)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def request_was_sent(error: requests.RequestException) -> bool:
    """Whether a failed `requests` call may have reached the server: only a refused or timed-out connect
    is known not to have."""
    if isinstance(error, requests.ConnectTimeout):
        return False
    if isinstance(error, requests.ConnectionError):
        text = repr(error)
        return not any(marker in text for marker in ("NewConnectionError", "NameResolutionError",
                                                     "Connection refused"))
    return True


def retry_after_seconds(headers: Mapping[str, str], *, reset_header: str | None = None) -> int:
    """Seconds until a throttled call may be tried again: `Retry-After` (seconds), else the epoch-seconds
    `reset_header` (X's `x-rate-limit-reset`), else a minute."""
    lowered = {name.lower(): value for name, value in headers.items()}
    value = lowered.get("retry-after")
    if value is not None and value.strip().isdigit():
        return max(1, int(value))
    if reset_header is not None:
        reset = lowered.get(reset_header.lower())
        if reset is not None and reset.strip().isdigit():
            return max(1, int(reset) - int(time.time()))
    return DEFAULT_RETRY_AFTER_SECONDS


def comparable_text(text: str) -> str:
    """Text as two copies of one post compare equal: platforms rewrite links (t.co) and escape HTML
    entities, so links become one token, entities are decoded and whitespace is collapsed."""
    return _SPACE.sub(" ", _URL.sub("<link>", html.unescape(text))).strip()


def utc_now() -> datetime:
    return datetime.now(UTC)
