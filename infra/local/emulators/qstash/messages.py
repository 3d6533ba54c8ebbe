"""Accepting messages: turning a publish (or enqueue, batch element, schedule firing) into a message row.

Every publish header is validated here, so a bad request fails with the 400 QStash would give
before anything is stored. Callback messages are built here too, from their parent's settings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from werkzeug.datastructures import Headers

from infra.local.emulators.qstash.errors import ApiError
from infra.local.emulators.qstash.headers import parse_bool, parse_duration
from infra.local.emulators.qstash.retry import evaluate_retry_delay
from infra.local.emulators.qstash.signing import random_id

DEFAULT_RETRIES = 3
DEDUP_WINDOW_SECONDS = 600.0
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"})
_SCHEME_ERROR = "invalid destination url: endpoint has invalid scheme, add http:// or https://"


@dataclass(frozen=True)
class Incoming:
    """One message as received by publish, enqueue or an element of batch."""

    destination: str
    headers: Headers
    body: bytes
    queue: str | None = None
    caller_ip: str | None = None


@dataclass(frozen=True)
class CallbackSettings:
    """How a callback or failure-callback message is sent, from `Upstash-[Failure-]Callback-*`."""

    method: str
    retries: int
    retry_delay: str | None
    timeout: float | None
    delay: float
    forward: dict[str, list[str]]


def callback_settings(config: dict[str, str], prefix: str, default_retries: int) -> CallbackSettings:
    """Parse the callback configuration headers (keys are what follows `prefix`)."""
    lowered = {k.lower(): v for k, v in config.items()}
    retries = _parse_retries(lowered.get("retries"), f"{prefix}Retries", default_retries)
    retry_delay = lowered.get("retry-delay")
    if retry_delay:
        _check_retry_delay(retry_delay, f"{prefix}Retry-Delay")
    timeout = lowered.get("timeout")
    delay = lowered.get("delay")
    forward: dict[str, list[str]] = {}
    for key, value in config.items():
        if key.lower().startswith("forward-"):
            forward.setdefault(key[len("forward-") :], []).append(value)
    return CallbackSettings(
        method=_parse_method(lowered.get("method"), f"{prefix}Method"),
        retries=retries,
        retry_delay=retry_delay or None,
        timeout=parse_duration(timeout, f"{prefix}Timeout") if timeout else None,
        delay=parse_duration(delay, f"{prefix}Delay") if delay else 0.0,
        forward=forward,
    )


def build_message(incoming: Incoming, now: float, duplicates: int) -> tuple[dict[str, Any], str | None]:
    """The message row for an incoming publish and its deduplication key (None if not deduplicated)."""
    h = incoming.headers
    url = check_destination(incoming.destination)
    header = _destination_headers(h)
    retries = _parse_retries(h.get("Upstash-Retries"), "Upstash-Retries", DEFAULT_RETRIES)
    retry_delay = h.get("Upstash-Retry-Delay") or None
    if retry_delay:
        _check_retry_delay(retry_delay, "Upstash-Retry-Delay")
    callback, callback_config = _callback_headers(h, "Upstash-Callback", retries)
    failure_callback, failure_config = _callback_headers(h, "Upstash-Failure-Callback", retries)
    flow = _flow_control(h)
    due_at = _due_at(h, now)
    timeout = h.get("Upstash-Timeout")
    message = {
        "id": "msg_" + random_id(28),
        "kind": "message",
        "source_message_id": None,
        "url": url,
        "method": _parse_method(h.get("Upstash-Method"), "Upstash-Method"),
        "body": incoming.body,
        "header": header,
        "callback": callback,
        "failure_callback": failure_callback,
        "callback_header": callback_config,
        "failure_callback_header": failure_config,
        "max_retries": retries,
        "retry_delay_expr": retry_delay,
        "timeout_s": parse_duration(timeout, "Upstash-Timeout") if timeout else None,
        "queue_name": incoming.queue,
        **flow,
        "label": h.get("Upstash-Label") or None,
        "caller_ip": incoming.caller_ip,
        "duplicates": _parse_duplicates(h.get("Upstash-Emulator-Duplicates"), duplicates),
        "schedule_id": None,
        "state": "CREATED",
        "created_at": now,
        "not_before": due_at,
        "due_at": due_at,
        "updated_at": now,
    }
    return message, _dedup_key(h, url, incoming.body, header)


def check_destination(destination: str) -> str:
    """The destination URL if QStash would accept it, else the matching 4xx."""
    scheme, sep, rest = destination.partition("://")
    if not sep:
        raise ApiError(404, f"url group {destination!r} not found (the emulator supports URL destinations only)")
    if scheme.lower() not in ("http", "https") or not rest or rest.startswith("/"):
        raise ApiError(400, _SCHEME_ERROR)
    return destination


def _destination_headers(h: Headers) -> dict[str, list[str]]:
    """Content-Type plus every `Upstash-Forward-*` header, prefix stripped, as `{name: [values]}`."""
    header: dict[str, list[str]] = {}
    if h.get("Content-Type"):
        header["Content-Type"] = [h["Content-Type"]]
    for name, value in _with_prefix(h, "Upstash-Forward-"):
        header.setdefault(name, []).append(value)
    return header


def _callback_headers(h: Headers, name: str, retries: int) -> tuple[str | None, dict[str, str]]:
    url = h.get(name) or None
    config = dict(_with_prefix(h, f"{name}-"))
    if url is not None:
        try:
            check_destination(url)
        except ApiError as exc:
            raise ApiError(400, f"invalid {name} url: {url!r}") from exc
        callback_settings(config, f"{name}-", retries)
    return url, config


def _with_prefix(h: Headers, prefix: str) -> Iterable[tuple[str, str]]:
    size = len(prefix)
    lowered = prefix.lower()
    for key, value in h.items():
        if key.lower().startswith(lowered) and len(key) > size:
            yield key[size:], value


def _parse_retries(value: str | None, header: str, default: int) -> int:
    if value is None or value.strip() == "":
        return default
    if not value.strip().isdigit():
        raise ApiError(400, f"invalid {header} header: {value!r}; expected a non-negative integer")
    return int(value)


def _parse_method(value: str | None, header: str) -> str:
    method = (value or "POST").strip().upper()
    if method not in _METHODS:
        raise ApiError(400, f"invalid {header} header: {value!r}; use one of {', '.join(sorted(_METHODS))}")
    return method


def _check_retry_delay(expression: str, header: str) -> None:
    try:
        evaluate_retry_delay(expression, 0)
    except ValueError as exc:
        raise ApiError(400, f"invalid {header} header: {expression!r}: {exc}") from exc


def _parse_duplicates(value: str | None, default: int) -> int:
    if value is None:
        return default
    if not value.strip().isdigit() or int(value) < 1:
        raise ApiError(400, f"invalid Upstash-Emulator-Duplicates header: {value!r}")
    return int(value)


def _due_at(h: Headers, now: float) -> float:
    """`Upstash-Not-Before` (unix seconds) wins over `Upstash-Delay`."""
    not_before = h.get("Upstash-Not-Before")
    if not_before:
        try:
            return float(not_before)
        except ValueError as exc:
            message = f"invalid Upstash-Not-Before header: {not_before!r}; expected unix seconds"
            raise ApiError(400, message) from exc
    delay = h.get("Upstash-Delay")
    return now + parse_duration(delay, "Upstash-Delay") if delay else now


def _flow_control(h: Headers) -> dict[str, Any]:
    """Columns for `Upstash-Flow-Control-Key/-Value` (`parallelism=2, rate=10, period=60s`)."""
    key = h.get("Upstash-Flow-Control-Key") or None
    settings: dict[str, Any] = {
        "flow_key": key,
        "flow_parallelism": None,
        "flow_rate": None,
        "flow_period_s": None,
    }
    value = h.get("Upstash-Flow-Control-Value") or ""
    if key is None:
        return settings
    for part in filter(None, (p.strip() for p in value.split(","))):
        name, _, raw = part.partition("=")
        name, raw = name.strip().lower(), raw.strip()
        if name in ("parallelism", "rate") and raw.isdigit() and int(raw) > 0:
            settings[f"flow_{name}"] = int(raw)
        elif name == "period" and raw:
            settings["flow_period_s"] = parse_duration(raw, "Upstash-Flow-Control-Value period")
        else:
            raise ApiError(400, f"invalid Upstash-Flow-Control-Value header: {value!r}")
    if settings["flow_rate"] is not None and settings["flow_period_s"] is None:
        settings["flow_period_s"] = 1.0
    return settings


def _dedup_key(h: Headers, url: str, body: bytes, header: dict[str, list[str]]) -> str | None:
    dedup_id = h.get("Upstash-Deduplication-Id")
    if dedup_id:
        return f"id:{dedup_id}"
    if not parse_bool(h.get("Upstash-Content-Based-Deduplication")):
        return None
    digest = hashlib.sha256()
    for part in (url.encode(), body, json.dumps(header, sort_keys=True).encode()):
        digest.update(len(part).to_bytes(8, "big") + part)
    return f"content:{digest.hexdigest()}"


def callback_message(
    parent: dict[str, Any], kind: str, url: str, config: dict[str, str], payload: dict[str, Any], now: float
) -> dict[str, Any]:
    """A new message row carrying `payload` to a callback URL, configured by `config`."""
    prefix = "Upstash-Callback-" if kind == "callback" else "Upstash-Failure-Callback-"
    settings = callback_settings(config, prefix, parent["max_retries"])
    due_at = now + settings.delay
    return {
        "id": "msg_" + random_id(28),
        "kind": kind,
        "source_message_id": parent["id"],
        "url": url,
        "method": settings.method,
        "body": json.dumps(payload).encode(),
        "header": {"Content-Type": ["application/json"], **settings.forward},
        "callback": None,
        "failure_callback": None,
        "callback_header": {},
        "failure_callback_header": {},
        "max_retries": settings.retries,
        "retry_delay_expr": settings.retry_delay,
        "timeout_s": settings.timeout,
        "queue_name": None,
        "flow_key": None,
        "flow_parallelism": None,
        "flow_rate": None,
        "flow_period_s": None,
        "label": parent["label"],
        "caller_ip": parent["caller_ip"],
        "duplicates": parent["duplicates"],
        "schedule_id": None,
        "state": "CREATED",
        "created_at": now,
        "not_before": due_at,
        "due_at": due_at,
        "updated_at": now,
    }
