"""What the PhonePe emulator's checkout and subscription routes share: PhonePe-shaped ids, the webhook
`Authorization` header, and how a pay or approval page reads its parameters."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any, TypeGuard

import flask


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id(prefix: str) -> str:
    """An id shaped like PhonePe's (`OMO2407021511185686967711`): prefix, timestamp digits, random digits."""
    return f"{prefix}{time.strftime('%y%m%d%H%M%S', time.gmtime())}{secrets.randbelow(10**10):010d}"


def is_int(value: Any) -> TypeGuard[int]:
    """A JSON integer (a bool is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def webhook_authorization(username: str, password: str) -> str:
    """The `Authorization` header PhonePe sends: lowercase hex SHA-256 of `username:password`, no scheme."""
    return hashlib.sha256(f"{username}:{password}".encode()).hexdigest()


def param(name: str) -> str | None:
    """A page parameter from the form, the query string or a JSON body, so scripts need no HTML."""
    request = flask.request
    value = request.form.get(name) or request.args.get(name)
    if value is None and request.is_json:
        body = request.get_json(silent=True)
        if isinstance(body, dict) and body.get(name) is not None:
            value = str(body[name])
    return value
