"""What the LinkedIn, X and Resend emulators share: OAuth codes and tokens, posts, media and fault knobs.

Each emulator keeps its state in its own Postgres schema (as the PhonePe emulator does), so a restarted
stack still accepts the tokens a connection stored and still lists what was posted. The tables are the
same for every platform; what differs (wire shapes, error bodies, ids) stays in the emulator's module.

Fault knobs (`POST /__emu/faults`), one shape for every emulator:
- `{"route": "POST /2/tweets", "mode": "timeout_after_create", "times": 1, "hold_seconds": 3}`: the create
  is performed and committed, then the answer is held back longer than the client waits;
- `{"route": ..., "mode": "500_after_create"}`: the create is performed and committed, then answered 500;
- `{"route": ..., "mode": "429", "times": 1, "retry_after_seconds": 60}`: answered 429 with the platform's
  rate-limit headers, nothing performed;
- `{"mode": "token_expired"}` / `{"mode": "token_revoked"}`: applied at once to every token (or to those of
  `"account_id"`): expired access tokens answer 401 and refresh works; revoked ones answer 401 and their
  refresh tokens are refused.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import urlencode, urlsplit, urlunsplit

import flask
import psycopg
from psycopg.types.json import Jsonb

from infra.local.emulators.pgschema import SchemaDatabase

FaultMode = Literal["timeout_after_create", "500_after_create", "429", "token_expired", "token_revoked"]
ROUTE_FAULTS = ("timeout_after_create", "500_after_create", "429")
TOKEN_FAULTS = ("token_expired", "token_revoked")
DEFAULT_HOLD_SECONDS = 3.0
DEFAULT_RETRY_AFTER_SECONDS = 60


def _ddl(schema: str) -> str:
    return f"""
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.codes (
    code text PRIMARY KEY,
    client_id text NOT NULL,
    redirect_uri text NOT NULL,
    scope text NOT NULL,
    account_id text NOT NULL,
    code_challenge text,
    challenge_method text,
    issued_at double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS {schema}.tokens (
    token text PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('access', 'refresh')),
    account_id text NOT NULL,
    client_id text NOT NULL,
    scope text NOT NULL,
    issued_at double precision NOT NULL,
    expires_at double precision,
    revoked boolean NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS {schema}.posts (
    seq bigserial NOT NULL,
    id text PRIMARY KEY,
    account_id text NOT NULL,
    created_at double precision NOT NULL,
    document jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS {schema}.media (
    id text PRIMARY KEY,
    account_id text NOT NULL,
    created_at double precision NOT NULL,
    document jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS {schema}.faults (
    id bigserial PRIMARY KEY,
    route text NOT NULL,
    mode text NOT NULL,
    remaining integer NOT NULL,
    params jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS {schema}.idempotency (
    scope text NOT NULL,
    key text NOT NULL,
    request_hash text NOT NULL,
    created_at double precision NOT NULL,
    response jsonb NOT NULL,
    PRIMARY KEY (scope, key)
);
"""


class EmulatorError(Exception):
    """An answer other than success, with the platform's own body and headers."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body
        self.headers = headers or {}


@dataclass(frozen=True)
class Token:
    """A token the emulator issued."""

    token: str
    kind: Literal["access", "refresh"]
    account_id: str
    client_id: str
    scope: str
    expires_at: float | None
    revoked: bool

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= time.time()


@dataclass(frozen=True)
class Fault:
    """A fault taken for one request."""

    mode: FaultMode
    params: dict[str, Any]

    @property
    def hold_seconds(self) -> float:
        return float(self.params.get("hold_seconds", DEFAULT_HOLD_SECONDS))

    @property
    def retry_after_seconds(self) -> int:
        return int(self.params.get("retry_after_seconds", DEFAULT_RETRY_AFTER_SECONDS))


class SocialStore:
    """One emulator's state in its Postgres schema, one short transaction per call."""

    def __init__(self, database_url: str, *, schema: str, lock: int,
                 missing: Callable[[], Exception]) -> None:
        self.schema = schema
        self.db = SchemaDatabase(database_url, ddl=_ddl(schema), lock=lock, missing=missing)

    def tx(self) -> AbstractContextManager[psycopg.Connection[dict[str, Any]]]:
        """A transaction on the emulator's database."""
        return self.db.transaction(wait_for_flush=False)

    def issue_code(self, *, client_id: str, redirect_uri: str, scope: str, account_id: str,
                   code_challenge: str | None, challenge_method: str | None) -> str:
        """A new single-use authorization code."""
        code = secrets.token_urlsafe(24)
        with self.tx() as conn:
            conn.execute(
                f"""INSERT INTO {self.schema}.codes (code, client_id, redirect_uri, scope, account_id,
                    code_challenge, challenge_method, issued_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
                (code, client_id, redirect_uri, scope, account_id, code_challenge, challenge_method, time.time()))
        return code

    def take_code(self, code: str) -> dict[str, Any] | None:
        """The code's grant, consumed (a second exchange of the same code finds nothing)."""
        with self.tx() as conn:
            return conn.execute(f"DELETE FROM {self.schema}.codes WHERE code = %s RETURNING *", (code,)).fetchone()

    def issue_token(self, *, kind: Literal["access", "refresh"], account_id: str, client_id: str, scope: str,
                    ttl_seconds: float | None, prefix: str = "") -> Token:
        """A new token valid for `ttl_seconds` (None: until revoked)."""
        now = time.time()
        token = Token(token=prefix + secrets.token_urlsafe(32), kind=kind, account_id=account_id,
                      client_id=client_id, scope=scope,
                      expires_at=None if ttl_seconds is None else now + ttl_seconds, revoked=False)
        with self.tx() as conn:
            conn.execute(
                f"""INSERT INTO {self.schema}.tokens (token, kind, account_id, client_id, scope, issued_at,
                    expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s)""",
                (token.token, kind, account_id, client_id, scope, now, token.expires_at))
        return token

    def token(self, value: str, kind: Literal["access", "refresh"]) -> Token | None:
        """The token of that kind, or None when it was never issued."""
        with self.tx() as conn:
            row = conn.execute(
                f"""SELECT token, kind, account_id, client_id, scope, expires_at, revoked
                    FROM {self.schema}.tokens WHERE token = %s AND kind = %s""", (value, kind)).fetchone()
        return None if row is None else Token(**row)

    def known_token(self, value: str, *, account_id: str) -> Token:
        """The token `value`, first recorded as a never-expiring access token of `account_id` (an API key
        the platform issued outside the emulator)."""
        with self.tx() as conn:
            conn.execute(
                f"""INSERT INTO {self.schema}.tokens (token, kind, account_id, client_id, scope, issued_at)
                    VALUES (%s, 'access', %s, '', '', %s) ON CONFLICT (token) DO NOTHING""",
                (value, account_id, time.time()))
        token = self.token(value, "access")
        assert token is not None
        return token

    def revoke_token(self, value: str) -> None:
        """Revoke one token (a rotated refresh token)."""
        with self.tx() as conn:
            conn.execute(f"UPDATE {self.schema}.tokens SET revoked = true WHERE token = %s", (value,))

    def apply_token_fault(self, mode: FaultMode, account_id: str | None) -> int:
        """Expire every live access token, or revoke every token, of `account_id` (all when None)."""
        with self.tx() as conn:
            if mode == "token_expired":
                sql = f"""UPDATE {self.schema}.tokens SET expires_at = %(now)s WHERE kind = 'access'
                          AND NOT revoked AND (expires_at IS NULL OR expires_at > %(now)s)"""
            else:
                sql = f"UPDATE {self.schema}.tokens SET revoked = true WHERE NOT revoked"
            if account_id is not None:
                sql += " AND account_id = %(account)s"
            return conn.execute(sql, {"now": time.time(), "account": account_id}).rowcount

    def add_post(self, post_id: str, account_id: str, document: dict[str, Any]) -> None:
        """Store a post."""
        with self.tx() as conn:
            conn.execute(f"INSERT INTO {self.schema}.posts (id, account_id, created_at, document) "
                         "VALUES (%s, %s, %s, %s)", (post_id, account_id, time.time(), Jsonb(document)))

    def next_seq(self) -> int:
        """A number that grows with every call (for ids)."""
        with self.tx() as conn:
            row = conn.execute(f"SELECT nextval('{self.schema}.posts_seq_seq') AS n").fetchone()
        assert row is not None
        return int(row["n"])

    def post(self, post_id: str) -> dict[str, Any] | None:
        """One post's document."""
        with self.tx() as conn:
            row = conn.execute(f"SELECT document FROM {self.schema}.posts WHERE id = %s", (post_id,)).fetchone()
        return None if row is None else cast(dict[str, Any], row["document"])

    def posts(self, account_id: str | None = None, *, newest_first: bool = False) -> list[dict[str, Any]]:
        """Every post (of `account_id`), in creation order."""
        order = "DESC" if newest_first else "ASC"
        with self.tx() as conn:
            rows = conn.execute(
                f"""SELECT document FROM {self.schema}.posts WHERE %(account)s::text IS NULL
                    OR account_id = %(account)s ORDER BY seq {order}""", {"account": account_id}).fetchall()
        return [row["document"] for row in rows]

    def add_media(self, media_id: str, account_id: str, document: dict[str, Any]) -> None:
        """Store (or replace) an uploaded media item's description."""
        with self.tx() as conn:
            conn.execute(
                f"""INSERT INTO {self.schema}.media (id, account_id, created_at, document) VALUES (%s, %s, %s, %s)
                    ON CONFLICT (id) DO UPDATE SET document = excluded.document""",
                (media_id, account_id, time.time(), Jsonb(document)))

    def media(self, media_id: str) -> dict[str, Any] | None:
        """An uploaded media item's description."""
        with self.tx() as conn:
            row = conn.execute(f"SELECT document FROM {self.schema}.media WHERE id = %s", (media_id,)).fetchone()
        return None if row is None else cast(dict[str, Any], row["document"])

    def add_fault(self, route: str, mode: FaultMode, times: int, params: dict[str, Any]) -> None:
        """Arm a fault for the next `times` requests to `route`."""
        with self.tx() as conn:
            conn.execute(f"INSERT INTO {self.schema}.faults (route, mode, remaining, params) VALUES (%s, %s, %s, %s)",
                         (route, mode, times, Jsonb(params)))

    def take_fault(self, route: str) -> Fault | None:
        """The oldest armed fault of `route`, counted as used."""
        with self.tx() as conn:
            row = conn.execute(
                f"""UPDATE {self.schema}.faults SET remaining = remaining - 1 WHERE id = (
                        SELECT id FROM {self.schema}.faults WHERE route = %s AND remaining > 0
                        ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
                    RETURNING mode, params""", (route,)).fetchone()
        return None if row is None else Fault(mode=row["mode"], params=row["params"])

    def faults(self) -> list[dict[str, Any]]:
        """Faults still armed."""
        with self.tx() as conn:
            return conn.execute(f"SELECT route, mode, remaining, params FROM {self.schema}.faults "
                                "WHERE remaining > 0 ORDER BY id").fetchall()

    def clear_faults(self) -> None:
        """Disarm every fault."""
        with self.tx() as conn:
            conn.execute(f"DELETE FROM {self.schema}.faults")

    def remember(self, conn: psycopg.Connection[dict[str, Any]], scope: str, key: str, request_hash: str,
                 window_seconds: float) -> dict[str, Any] | None:
        """Claim an idempotency key inside the caller's transaction: None when it is new (the caller then
        stores its answer with `answer`), else the stored row (`request_hash`, `response`). A concurrent
        request with the same key waits here until the first one commits, then sees its row."""
        now = time.time()
        conn.execute(f"DELETE FROM {self.schema}.idempotency WHERE scope = %s AND key = %s AND created_at < %s",
                     (scope, key, now - window_seconds))
        inserted = conn.execute(
            f"""INSERT INTO {self.schema}.idempotency (scope, key, request_hash, created_at, response)
                VALUES (%s, %s, %s, %s, 'null') ON CONFLICT DO NOTHING RETURNING key""",
            (scope, key, request_hash, now)).fetchone()
        if inserted is not None:
            return None
        return conn.execute(f"SELECT request_hash, response FROM {self.schema}.idempotency "
                            "WHERE scope = %s AND key = %s", (scope, key)).fetchone()

    def answer(self, conn: psycopg.Connection[dict[str, Any]], scope: str, key: str,
               response: dict[str, Any]) -> None:
        """Store the answer of a claimed idempotency key (same transaction as `remember`)."""
        conn.execute(f"UPDATE {self.schema}.idempotency SET response = %s WHERE scope = %s AND key = %s",
                     (Jsonb(response), scope, key))


def register_emulator_routes(app: flask.Flask, store: SocialStore, *, routes: tuple[str, ...],
                             account_of: Callable[[dict[str, Any]], str] | None = None) -> None:
    """`GET /__emu/posts` (what was posted, oldest first; `?account_id=`) and the fault knobs."""

    @app.get("/__emu/posts")
    def emu_posts() -> Any:
        posts = store.posts(flask.request.args.get("account_id"))
        return {"posts": posts, "count": len(posts)}

    @app.get("/__emu/faults")
    def emu_faults() -> Any:
        return {"faults": store.faults()}

    @app.delete("/__emu/faults")
    def emu_clear_faults() -> Any:
        store.clear_faults()
        return {"faults": []}

    @app.post("/__emu/faults")
    def emu_add_fault() -> Any:
        body = flask.request.get_json(silent=True)
        if not isinstance(body, dict):
            return _control_error("expected a JSON object such as {\"route\": ..., \"mode\": ..., \"times\": 1}")
        mode = body.get("mode")
        if mode in TOKEN_FAULTS:
            account_id = body.get("account_id")
            changed = store.apply_token_fault(mode, str(account_id) if account_id is not None else None)
            return {"mode": mode, "tokens": changed}
        if mode not in ROUTE_FAULTS:
            return _control_error(f"mode must be one of {[*ROUTE_FAULTS, *TOKEN_FAULTS]}, not {mode!r}")
        route = body.get("route")
        if route not in routes:
            return _control_error(f"route must be one of {list(routes)}, not {route!r}")
        times = body.get("times", 1)
        if not isinstance(times, int) or isinstance(times, bool) or times < 1:
            return _control_error("times must be a positive integer")
        params = {name: body[name] for name in ("hold_seconds", "retry_after_seconds") if name in body}
        store.add_fault(route, mode, times, params)
        return {"faults": store.faults()}


def _control_error(message: str) -> flask.Response:
    response = flask.jsonify({"error": message})
    response.status_code = 400
    return response


def bearer_token(store: SocialStore) -> tuple[Token | None, str]:
    """The request's live access token, or None with why it is refused:
    `missing`, `unknown`, `expired` or `revoked`."""
    scheme, _, value = flask.request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None, "missing"
    token = store.token(value.strip(), "access")
    if token is None:
        return None, "unknown"
    if token.revoked:
        return None, "revoked"
    if token.expired:
        return None, "expired"
    return token, ""


def pkce_matches(verifier: str, challenge: str, method: str) -> bool:
    """RFC 7636: `S256` compares base64url(sha256(verifier)) without padding; `plain` compares as is."""
    if method == "S256":
        digest = hashlib.sha256(verifier.encode()).digest()
        return secrets.compare_digest(base64.urlsafe_b64encode(digest).decode().rstrip("="), challenge)
    return method == "plain" and secrets.compare_digest(verifier, challenge)


def with_query(url: str, **params: str) -> str:
    """`url` with `params` added to its query string."""
    parts = urlsplit(url)
    query = "&".join(part for part in (parts.query, urlencode(params)) if part)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def error_response(error: EmulatorError) -> flask.Response:
    """The platform's error answer."""
    response = flask.jsonify(error.body)
    response.status_code = error.status
    response.headers.update(error.headers)
    return response
