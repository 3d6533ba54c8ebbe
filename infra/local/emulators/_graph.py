"""What the Meta Graph emulators (`meta`, `whatsapp`) share: Graph's error body, the access token as Graph
reads it, and a Postgres store of objects, tokens and fault knobs in the emulator's own schema.

Graph errors are `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}` with an HTTP status
(reference `publishing-apis.md` §4e). Faults are armed with `POST /__emu/faults`
`{"route": "media_publish", "mode": "timeout_after_create", "times": 1, "seconds": 3}`; a fault whose route
is `*` matches every call. Modes: `timeout_after_create` (the object is created, then the answer is held
back `seconds`, longer than the client waits), `429` (throttled, nothing created), `500` (an unknown error
before anything is created), `expired` (the token expires now: code 190, subcode 463) and `revoked` (every
token of the emulator is revoked: code 190, subcode 458).
"""

from __future__ import annotations

import secrets
import time
from contextlib import AbstractContextManager
from typing import Any, Literal, cast

import flask
import psycopg
from psycopg.types.json import Jsonb

from infra.local.emulators.pgschema import SchemaDatabase

FaultMode = Literal["timeout_after_create", "429", "500", "expired", "revoked"]
FAULT_MODES: tuple[FaultMode, ...] = ("timeout_after_create", "429", "500", "expired", "revoked")


class GraphError(Exception):
    """An answer in Graph's error shape."""

    def __init__(self, status: int, code: int, message: str, *, subcode: int | None = None,
                 kind: str = "OAuthException") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.subcode, self.kind = status, code, message, subcode, kind

    def response(self) -> flask.Response:
        """The error as Graph sends it."""
        body: dict[str, Any] = {"message": self.message, "type": self.kind, "code": self.code,
                                "fbtrace_id": secrets.token_urlsafe(9)}
        if self.subcode is not None:
            body["error_subcode"] = self.subcode
        answer = flask.jsonify({"error": body})
        answer.status_code = self.status
        return answer


def bad_parameter(message: str, *, subcode: int | None = None) -> GraphError:
    """Graph's `(#100)` invalid-parameter error."""
    return GraphError(400, 100, f"(#100) {message}", subcode=subcode)


def expired_token() -> GraphError:
    return GraphError(401, 190, "Error validating access token: Session has expired.", subcode=463)


def revoked_token() -> GraphError:
    return GraphError(401, 190, "Error validating access token: The user has not authorized application.",
                      subcode=458)


def throttled() -> GraphError:
    return GraphError(429, 4, "(#4) Application request limit reached", kind="OAuthException")


def unknown_error() -> GraphError:
    return GraphError(500, 1, "An unknown error occurred", kind="OAuthException")


def request_token() -> str:
    """The access token as Graph reads it: `access_token` in the query or form (facebook-business), or Bearer."""
    request = flask.request
    token = request.args.get("access_token") or request.form.get("access_token")
    if not token:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else ""
    return token


def params() -> dict[str, Any]:
    """A call's parameters: form-encoded (facebook-business), JSON (pywa, httpx `json=`) or the query string."""
    request = flask.request
    found: dict[str, Any] = dict(request.args.items())
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise bad_parameter("The request body must be a JSON object")
        found.update(body)
    else:
        found.update(request.form.items())
    found.pop("access_token", None)
    return found


def new_token(prefix: str) -> str:
    return f"{prefix}{secrets.token_urlsafe(32)}"


def _ddl(schema: str) -> str:
    return f"""
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.tokens (
    token text PRIMARY KEY,
    kind text NOT NULL,
    subject text NOT NULL,
    expires_at bigint,
    revoked boolean NOT NULL DEFAULT false,
    document jsonb NOT NULL DEFAULT '{{}}'
);
CREATE TABLE IF NOT EXISTS {schema}.objects (
    seq bigserial UNIQUE,
    id text PRIMARY KEY,
    kind text NOT NULL,
    owner text NOT NULL,
    created_at double precision NOT NULL,
    document jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_owner ON {schema}.objects (owner, kind, seq);
CREATE TABLE IF NOT EXISTS {schema}.faults (
    id bigserial PRIMARY KEY,
    route text NOT NULL,
    mode text NOT NULL,
    remaining integer NOT NULL,
    seconds double precision NOT NULL
);
"""


class GraphStore:
    """Objects (posts, containers, messages), tokens and faults of one emulator, one short transaction each."""

    def __init__(self, database_url: str, *, schema: str, lock: int) -> None:
        self.schema = schema
        self.db = SchemaDatabase(database_url, ddl=_ddl(schema), lock=lock,
                                 missing=lambda: GraphError(500, 1, f"The {schema} has no database_url configured"))

    def _tx(self) -> AbstractContextManager[psycopg.Connection[dict[str, Any]]]:
        return self.db.transaction(wait_for_flush=False)

    def add_token(self, token: str, *, kind: str, subject: str, expires_at: int | None,
                  document: dict[str, Any] | None = None) -> None:
        with self._tx() as conn:
            conn.execute(f"INSERT INTO {self.schema}.tokens (token, kind, subject, expires_at, document) "
                         "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (token) DO NOTHING",
                         (token, kind, subject, expires_at, Jsonb(document or {})))

    def token(self, token: str) -> dict[str, Any] | None:
        """The token's row (kind, subject, expires_at, revoked, document), or None if never issued."""
        with self._tx() as conn:
            return conn.execute(f"SELECT * FROM {self.schema}.tokens WHERE token = %s", (token,)).fetchone()

    def take_token(self, token: str, kind: str) -> dict[str, Any] | None:
        """Consume a single-use token (an authorization code); None if unknown or used."""
        with self._tx() as conn:
            return conn.execute(f"DELETE FROM {self.schema}.tokens WHERE token = %s AND kind = %s RETURNING *",
                                (token, kind)).fetchone()

    def expire_token(self, token: str) -> None:
        with self._tx() as conn:
            conn.execute(f"UPDATE {self.schema}.tokens SET expires_at = %s WHERE token = %s",
                         (int(time.time()) - 1, token))

    def revoke_all(self) -> None:
        with self._tx() as conn:
            conn.execute(f"UPDATE {self.schema}.tokens SET revoked = true")

    def add(self, kind: str, owner: str, document: dict[str, Any], *, id_base: int,
            prefix: str = "") -> dict[str, Any]:
        """Store a new object; its id is `prefix` and `id_base` plus the store's sequence (deterministic,
        snowflake-like)."""
        with self._tx() as conn:
            seq = conn.execute(f"SELECT nextval(pg_get_serial_sequence('{self.schema}.objects', 'seq')) AS n"
                               ).fetchone()
            assert seq is not None
            object_id = f"{prefix}{id_base + int(seq['n'])}"
            now = time.time()
            stored = {**document, "id": object_id, "created_at": now}
            conn.execute(f"INSERT INTO {self.schema}.objects (seq, id, kind, owner, created_at, document) "
                         "VALUES (%s, %s, %s, %s, %s, %s)", (seq["n"], object_id, kind, owner, now, Jsonb(stored)))
        return stored

    def get(self, object_id: str) -> dict[str, Any] | None:
        with self._tx() as conn:
            row = conn.execute(f"SELECT kind, document FROM {self.schema}.objects WHERE id = %s",
                               (object_id,)).fetchone()
        return None if row is None else {**row["document"], "_kind": row["kind"]}

    def update(self, object_id: str, changes: dict[str, Any], *, expect: dict[str, Any] | None = None) -> bool:
        """Merge `changes` into the object when its document contains `expect`; False if it did not."""
        with self._tx() as conn:
            row = conn.execute(
                f"UPDATE {self.schema}.objects SET document = document || %s WHERE id = %s AND document @> %s "
                "RETURNING id", (Jsonb(changes), object_id, Jsonb(expect or {}))).fetchone()
        return row is not None

    def listing(self, kinds: tuple[str, ...], owner: str | None = None, *, since: float = 0.0,
                limit: int = 100) -> list[dict[str, Any]]:
        """Objects of these kinds (of one owner), newest first."""
        with self._tx() as conn:
            rows = conn.execute(
                f"""SELECT kind, document FROM {self.schema}.objects
                    WHERE kind = ANY(%(kinds)s) AND (%(owner)s::text IS NULL OR owner = %(owner)s)
                      AND created_at >= %(since)s ORDER BY seq DESC LIMIT %(limit)s""",
                {"kinds": list(kinds), "owner": owner, "since": since, "limit": limit}).fetchall()
        return [{**row["document"], "_kind": row["kind"]} for row in rows]

    def arm(self, route: str, mode: FaultMode, times: int, seconds: float) -> dict[str, Any]:
        with self._tx() as conn:
            row = conn.execute(f"INSERT INTO {self.schema}.faults (route, mode, remaining, seconds) "
                               "VALUES (%s, %s, %s, %s) RETURNING *", (route, mode, times, seconds)).fetchone()
        assert row is not None
        return dict(row)

    def faults(self) -> list[dict[str, Any]]:
        with self._tx() as conn:
            return conn.execute(f"SELECT * FROM {self.schema}.faults ORDER BY id").fetchall()

    def clear_faults(self) -> None:
        with self._tx() as conn:
            conn.execute(f"DELETE FROM {self.schema}.faults")

    def fire(self, route: str) -> dict[str, Any] | None:
        """The oldest armed fault for `route` (or `*`), used up by one; None when none is armed."""
        with self._tx() as conn:
            row = conn.execute(
                f"""UPDATE {self.schema}.faults SET remaining = remaining - 1
                    WHERE id = (SELECT id FROM {self.schema}.faults WHERE route IN (%s, '*') AND remaining > 0
                                ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
                    RETURNING *""", (route,)).fetchone()
            conn.execute(f"DELETE FROM {self.schema}.faults WHERE remaining <= 0")
        return None if row is None else dict(row)


def parse_fault(body: Any) -> tuple[str, FaultMode, int, float]:
    """`{"route", "mode", "times"?, "seconds"?}` from `POST /__emu/faults`."""
    if not isinstance(body, dict):
        raise bad_parameter("Send a JSON object {route, mode, times, seconds}")
    route, mode = body.get("route"), body.get("mode")
    if not isinstance(route, str) or not route:
        raise bad_parameter("`route` names the call to fail (e.g. media_publish, feed, messages) or `*`")
    if mode not in FAULT_MODES:
        raise bad_parameter(f"`mode` must be one of {', '.join(FAULT_MODES)}")
    times, seconds = body.get("times", 1), body.get("seconds", 3.0)
    if not isinstance(times, int) or isinstance(times, bool) or times < 1:
        raise bad_parameter("`times` must be a positive integer")
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds <= 120:
        raise bad_parameter("`seconds` must be a number between 0 and 120")
    return route, cast(FaultMode, mode), times, float(seconds)


def before_call(store: GraphStore, route: str, token: str) -> dict[str, Any] | None:
    """Check the token and apply an armed fault that acts before anything is created.

    Returns a `timeout_after_create` fault for the caller to apply once the object exists, else None.
    """
    row = store.token(token) if token else None
    if row is None:
        raise GraphError(400, 190, "Invalid OAuth access token - Cannot parse access token")
    if row["revoked"]:
        raise revoked_token()
    if row["expires_at"] is not None and row["expires_at"] <= time.time():
        raise expired_token()
    fault = store.fire(route)
    if fault is None:
        return None
    if fault["mode"] == "429":
        raise throttled()
    if fault["mode"] == "500":
        raise unknown_error()
    if fault["mode"] == "expired":
        store.expire_token(token)
        raise expired_token()
    if fault["mode"] == "revoked":
        store.revoke_all()
        raise revoked_token()
    return fault


def hold_back(fault: dict[str, Any] | None) -> None:
    """After the object was created: hold the answer back when a `timeout_after_create` fault fired."""
    if fault is not None and fault["mode"] == "timeout_after_create":
        time.sleep(float(fault["seconds"]))


def register_control_routes(app: flask.Flask, store: GraphStore) -> None:
    """`/__emu/faults` (GET lists, POST arms, DELETE clears)."""

    @app.get("/__emu/faults")
    def list_faults() -> Any:
        return {"faults": store.faults()}

    @app.post("/__emu/faults")
    def arm_fault() -> Any:
        route, mode, times, seconds = parse_fault(flask.request.get_json(silent=True))
        return store.arm(route, mode, times, seconds), 201

    @app.delete("/__emu/faults")
    def clear_faults() -> Any:
        store.clear_faults()
        return {"faults": []}

    @app.errorhandler(GraphError)
    def _graph_error(error: GraphError) -> flask.Response:
        return error.response()
