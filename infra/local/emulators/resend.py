"""Resend emulator: `POST /emails`, `POST /emails/batch` with idempotency keys, `GET /emails/{id}`.

Wire shapes as the `resend` SDK sends and parses them (reference `publishing-apis.md` §6):
- `Authorization: Bearer re_…`; a missing key is 401 `missing_api_key`, a revoked one 403 `invalid_api_key`.
- `Idempotency-Key` (at most 256 characters, kept 24 hours per API key): the same key with the same body
  answers the first answer again without sending anything; with another body it is 409
  `invalid_idempotent_request`. Concurrent requests with one key are serialised on the key (the second one
  waits for the first and replays it).
- `POST /emails` → `{"id"}`; `POST /emails/batch` (at most 100 emails) → `{"data": [{"id"}, …]}`; invalid
  emails are 422 `validation_error` naming the field; errors are `{statusCode, name, message}`.

State (emails, idempotency keys, revoked keys, faults) lives in the stack's Postgres, schema
`resend_emulator`. Control: `GET /__emu/posts` (every email sent, oldest first) and `POST /__emu/faults`:
`timeout_after_create`, `500_after_create` and `429` on `POST /emails` or `POST /emails/batch`, and
`token_revoked` (every key used so far); `token_expired` changes nothing, since Resend's keys do not expire.
A key is known by a hash.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from typing import Any

import flask
from psycopg.types.json import Jsonb

from infra.local.emulators._social import (
    EmulatorError,
    SocialStore,
    error_response,
    register_emulator_routes,
)
from infra.local.emulators.config import EmulatorConfig

SCHEMA = "resend_emulator"
_SCHEMA_LOCK = 0x05_7A_50_0D
IDEMPOTENCY_WINDOW_SECONDS = 86400
MAX_IDEMPOTENCY_KEY = 256
MAX_BATCH = 100
MAX_RECIPIENTS = 50
ROUTES = ("POST /emails", "POST /emails/batch")
_ADDRESS = re.compile(r"^(?:[^<>]*<)?([^@\s<>]+@[^@\s<>]+\.[^@\s<>]+)>?$")


def _error(status: int, name: str, message: str, headers: dict[str, str] | None = None) -> EmulatorError:
    return EmulatorError(status, {"statusCode": status, "name": name, "message": message}, headers)


def create_app(config: EmulatorConfig) -> flask.Flask:
    """Build the Resend emulator; its state lives in `config.database_url` and outlives the app."""
    app = flask.Flask(__name__)
    store = SocialStore(config.database_url, schema=SCHEMA, lock=_SCHEMA_LOCK,
                        missing=lambda: _error(500, "internal_server_error", "The Resend emulator has no database_url"))
    app.extensions["resend_emulator"] = store
    register_emulator_routes(app, store, routes=ROUTES)
    app.register_error_handler(EmulatorError, error_response)

    @app.post("/emails")
    def send() -> Any:
        api_key = _require(store)
        return _send(store, api_key, "POST /emails", [flask.request.get_json(silent=True)], single=True)

    @app.post("/emails/batch")
    def batch() -> Any:
        api_key = _require(store)
        body = flask.request.get_json(silent=True)
        if not isinstance(body, list) or not 1 <= len(body) <= MAX_BATCH:
            raise _error(422, "validation_error", f"The batch must be a JSON array of 1 to {MAX_BATCH} emails")
        return _send(store, api_key, "POST /emails/batch", body, single=False)

    @app.get("/emails/<email_id>")
    def get_email(email_id: str) -> Any:
        _require(store)
        email = store.post(email_id)
        if email is None:
            raise _error(404, "not_found", "Email not found")
        return {key: value for key, value in email.items() if key != "api_key_hash"} | {"object": "email"}

    return app


def _key_hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


def _require(store: SocialStore) -> str:
    scheme, _, api_key = flask.request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not api_key.strip() or api_key.strip() == "None":
        raise _error(401, "missing_api_key", "Missing API key in the authorization header. Include the following "
                                             "header Authorization: Bearer YOUR_API_KEY in the request.")
    api_key = api_key.strip()
    if not api_key.startswith("re_"):
        raise _error(403, "invalid_api_key", "API key is invalid")
    key = store.known_token(_key_hash(api_key), account_id=_key_hash(api_key))
    if key.revoked:
        raise _error(403, "invalid_api_key", "API key is invalid")
    return api_key


def _address(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _ADDRESS.match(value.strip()):
        raise _error(422, "validation_error", f"Invalid `{field}` field. The email address needs to follow the "
                                              "`email@example.com` or `Name <email@example.com>` format.")
    return value.strip()


def _validate(email: Any, index: int | None) -> dict[str, Any]:
    where = "" if index is None else f"[{index}]"
    if not isinstance(email, dict):
        raise _error(422, "validation_error", f"Email{where} must be a JSON object")
    _address(email.get("from"), f"{where}from".lstrip("."))
    to = email.get("to")
    recipients = [to] if isinstance(to, str) else to
    if not isinstance(recipients, list) or not 1 <= len(recipients) <= MAX_RECIPIENTS:
        raise _error(422, "validation_error", f"Invalid `{where}to` field: 1 to {MAX_RECIPIENTS} addresses")
    for recipient in recipients:
        _address(recipient, f"{where}to")
    if not isinstance(email.get("subject"), str) or not email["subject"].strip():
        raise _error(422, "missing_required_field", f"Missing `{where}subject` field.")
    if not (email.get("html") or email.get("text")):
        raise _error(422, "validation_error", f"Email{where} needs `html` or `text`.")
    return email | {"to": recipients}


def _send(store: SocialStore, api_key: str, route: str, emails: list[Any], *, single: bool) -> Any:
    fault = store.take_fault(route)
    if fault is not None and fault.mode == "429":
        raise _error(429, "rate_limit_exceeded", "Too many requests. You can only make 2 requests per second. See "
                                                 "rate limit response headers for more information.",
                     {"ratelimit-limit": "2", "ratelimit-remaining": "0",
                      "ratelimit-reset": str(fault.retry_after_seconds),
                      "retry-after": str(fault.retry_after_seconds)})
    valid = [_validate(email, None if single else index) for index, email in enumerate(emails)]
    key = flask.request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise _error(400, "invalid_idempotency_key", f"The key must be between 1-{MAX_IDEMPOTENCY_KEY} characters.")
    request_hash = hashlib.sha256(f"{route}\n{json.dumps(valid, sort_keys=True)}".encode()).hexdigest()
    key_hash = _key_hash(api_key)
    with store.tx() as conn:
        seen = (store.remember(conn, key_hash, key, request_hash, IDEMPOTENCY_WINDOW_SECONDS)
                if key is not None else None)
        if seen is not None:
            if seen["request_hash"] != request_hash:
                raise _error(409, "invalid_idempotent_request", "Same idempotency key used with a different request "
                                                                "payload. Change your idempotency key or payload.")
            return seen["response"]
        now = time.time()
        ids = []
        for email in valid:
            email_id = str(uuid.uuid4())
            document = email | {"id": email_id, "created_at": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)),
                                "last_event": "delivered", "idempotency_key": key, "api_key_hash": key_hash}
            conn.execute(f"INSERT INTO {SCHEMA}.posts (id, account_id, created_at, document) VALUES (%s, %s, %s, %s)",
                         (email_id, key_hash, now, Jsonb(document)))
            ids.append(email_id)
        answer: dict[str, Any] = {"id": ids[0]} if single else {"data": [{"id": email_id} for email_id in ids]}
        if key is not None:
            store.answer(conn, key_hash, key, answer)
    if fault is not None and fault.mode == "timeout_after_create":
        time.sleep(fault.hold_seconds)
    if fault is not None and fault.mode == "500_after_create":
        raise _error(500, "internal_server_error", "An unexpected error occurred.")
    return answer
