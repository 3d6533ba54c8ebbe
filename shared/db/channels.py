"""SQL of channel connections, OAuth states and workspace keys (issue 11).

Secret columns hold `shared.security.envelope.SealedSecret` objects only; this module never sees a
plaintext. Reads that return sealed columns (`live_connection`, `lock_connection`, `workspace_key`) run on
a service connection: members' column grants leave the sealed columns out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypedDict, cast

from psycopg.types.json import Jsonb

from shared.db.pool import Conn, one

Sealed = Mapping[str, Any]
"""A sealed secret (`shared.security.envelope.SealedSecret`) as stored; opaque here."""


class ConnectionRow(TypedDict):
    """A connection as members may see it: no sealed column."""

    id: str
    workspace_id: str
    provider: str
    status: str
    status_reason: str | None
    account_id: str
    account_name: str
    scopes: list[str]
    settings: dict[str, Any]
    expires_at: datetime | None
    connected_at: datetime
    refreshed_at: datetime | None
    updated_at: datetime


class SealedConnection(ConnectionRow):
    """A connection with its sealed secrets, for the service's own use."""

    access_token: Sealed | None
    refresh_token: Sealed | None


class StateRow(TypedDict):
    """A consumed OAuth state."""

    workspace_id: str
    user_id: str
    provider: str
    code_verifier: Sealed | None
    expired: bool


_PUBLIC = """id::text AS id, workspace_id::text AS workspace_id, provider, status, status_reason, account_id,
    account_name, scopes, settings, expires_at, connected_at, refreshed_at, updated_at"""
_SEALED = _PUBLIC + ", access_token, refresh_token"

_PURGE_STATES = "DELETE FROM public.oauth_states WHERE expires_at < now() - interval '1 day'"
_INSERT_STATE = """
INSERT INTO public.oauth_states (state_hash, workspace_id, user_id, provider, code_verifier, expires_at)
VALUES (%s, %s, %s, %s, %s, now() + make_interval(secs => %s))
"""
_CONSUME_STATE = """
WITH found AS (
    SELECT state_hash, code_verifier FROM public.oauth_states WHERE state_hash = %s AND used_at IS NULL FOR UPDATE
)
UPDATE public.oauth_states s SET used_at = now(), code_verifier = NULL
FROM found WHERE s.state_hash = found.state_hash
RETURNING s.workspace_id::text AS workspace_id, s.user_id::text AS user_id, s.provider, found.code_verifier,
    s.expires_at <= now() AS expired
"""
_STATE_USED = "SELECT used_at FROM public.oauth_states WHERE state_hash = %s"
_LOCK_PROVIDER = "SELECT pg_advisory_xact_lock(hashtextextended('channel:' || %s || ':' || %s, 0))"
_LIVE_ID = """
SELECT id::text AS id FROM public.channel_connections
WHERE workspace_id = %s AND provider = %s AND status <> 'revoked'
"""
_INSERT = f"""
INSERT INTO public.channel_connections (id, workspace_id, provider, status, account_id, account_name, scopes, settings,
    access_token, refresh_token, expires_at, connected_by)
VALUES (%(id)s, %(workspace_id)s, %(provider)s, 'connected', %(account_id)s, %(account_name)s, %(scopes)s,
    %(settings)s, %(access_token)s, %(refresh_token)s, %(expires_at)s, %(connected_by)s)
RETURNING {_PUBLIC}
"""
_REPLACE = f"""
UPDATE public.channel_connections
SET status = 'connected', status_reason = NULL, account_id = %(account_id)s, account_name = %(account_name)s,
    scopes = %(scopes)s, settings = %(settings)s, access_token = %(access_token)s, refresh_token = %(refresh_token)s,
    expires_at = %(expires_at)s, connected_by = %(connected_by)s, connected_at = now(), refreshed_at = NULL,
    updated_at = now()
WHERE id = %(id)s
RETURNING {_PUBLIC}
"""
_LIVE = f"""
SELECT {_SEALED} FROM public.channel_connections
WHERE workspace_id = %s AND provider = %s AND status <> 'revoked'
"""
_LOCK = f"SELECT {_SEALED} FROM public.channel_connections WHERE id = %s FOR UPDATE"
_BY_ID = f"SELECT {_PUBLIC} FROM public.channel_connections WHERE id = %s"
_LIST = f"""
SELECT {_PUBLIC} FROM public.channel_connections WHERE workspace_id = %s
ORDER BY (status = 'revoked'), provider, connected_at DESC
"""
_TOKENS = """
UPDATE public.channel_connections
SET access_token = %(access_token)s, refresh_token = %(refresh_token)s, expires_at = %(expires_at)s,
    refreshed_at = CASE WHEN %(refreshed)s THEN now() ELSE refreshed_at END, updated_at = now()
WHERE id = %(id)s AND status <> 'revoked'
"""
_STATUS = f"""
UPDATE public.channel_connections SET status = %(status)s, status_reason = %(reason)s, updated_at = now()
WHERE id = %(id)s AND status = ANY(%(from)s::text[])
RETURNING {_PUBLIC}
"""
_REVOKE = f"""
UPDATE public.channel_connections
SET status = 'revoked', status_reason = %(reason)s, access_token = NULL, refresh_token = NULL, updated_at = now()
WHERE id = %(id)s AND status <> 'revoked'
RETURNING {_PUBLIC}
"""
_PUT_KEY = """
INSERT INTO public.workspace_keys (workspace_id, service, secret, updated_by, updated_at)
VALUES (%s, %s, %s, %s, now())
ON CONFLICT (workspace_id, service) DO UPDATE SET secret = EXCLUDED.secret, updated_by = EXCLUDED.updated_by,
    updated_at = now()
RETURNING updated_at
"""
_GET_KEY = "SELECT secret FROM public.workspace_keys WHERE workspace_id = %s AND service = %s"
_SET_KEY = "UPDATE public.workspace_keys SET secret = %s WHERE workspace_id = %s AND service = %s"
_DELETE_KEY = "DELETE FROM public.workspace_keys WHERE workspace_id = %s AND service = %s RETURNING service"
_LIST_KEYS = """
SELECT service, updated_at FROM public.workspace_keys WHERE workspace_id = %s ORDER BY service
"""


def _jsonb(sealed: Sealed | None) -> Jsonb | None:
    return None if sealed is None else Jsonb(dict(sealed))


def put_state(conn: Conn, *, state_hash: bytes, workspace_id: str, user_id: str, provider: str,
              code_verifier: Sealed | None, ttl_seconds: int) -> None:
    """Store a connect's state (by its hash; the state itself travels only through the browser), dropping
    states that expired a day ago."""
    conn.execute(_PURGE_STATES)
    conn.execute(_INSERT_STATE, (state_hash, workspace_id, user_id, provider, _jsonb(code_verifier), ttl_seconds))


def consume_state(conn: Conn, state_hash: bytes) -> StateRow | None:
    """Mark the state used (its verifier erased) and return what it held (`expired` says whether it was still
    valid); None when it was never issued or is already used. Two concurrent callbacks cannot both get it."""
    row = conn.execute(_CONSUME_STATE, (state_hash,)).fetchone()
    return None if row is None else cast(StateRow, row)


def state_was_used(conn: Conn, state_hash: bytes) -> bool:
    """Whether the state was issued and already used (a replay), as opposed to never issued."""
    return conn.execute(_STATE_USED, (state_hash,)).fetchone() is not None


def lock_provider(conn: Conn, workspace_id: str, provider: str) -> str | None:
    """Serialize connects of one workspace's provider for this transaction; the live connection's id, if any."""
    conn.execute(_LOCK_PROVIDER, (workspace_id, provider))
    row = conn.execute(_LIVE_ID, (workspace_id, provider)).fetchone()
    return None if row is None else str(row["id"])


def save_connection(conn: Conn, *, connection_id: str, replace: bool, workspace_id: str, provider: str,
                    account_id: str, account_name: str, scopes: list[str], settings: dict[str, Any],
                    access_token: Sealed, refresh_token: Sealed | None, expires_at: datetime | None,
                    connected_by: str | None) -> ConnectionRow:
    """Insert the connection, or (`replace`) reconnect the live one with id `connection_id` (after `lock_provider`)."""
    params = {"id": connection_id, "workspace_id": workspace_id, "provider": provider, "account_id": account_id,
              "account_name": account_name, "scopes": scopes, "settings": Jsonb(settings),
              "access_token": _jsonb(access_token), "refresh_token": _jsonb(refresh_token),
              "expires_at": expires_at, "connected_by": connected_by}
    return cast(ConnectionRow, one(conn.execute(_REPLACE if replace else _INSERT, params)))


def live_connection(conn: Conn, workspace_id: str, provider: str) -> SealedConnection | None:
    """The workspace's connected or needs-reconnect connection of `provider`, with its sealed secrets."""
    row = conn.execute(_LIVE, (workspace_id, provider)).fetchone()
    return None if row is None else cast(SealedConnection, row)


def lock_connection(conn: Conn, connection_id: str) -> SealedConnection | None:
    """The connection, row-locked until the transaction ends (one refresher at a time)."""
    row = conn.execute(_LOCK, (connection_id,)).fetchone()
    return None if row is None else cast(SealedConnection, row)


def connection(conn: Conn, connection_id: str) -> ConnectionRow | None:
    """One connection as its members see it (RLS applies on a caller's connection)."""
    row = conn.execute(_BY_ID, (connection_id,)).fetchone()
    return None if row is None else cast(ConnectionRow, row)


def list_connections(conn: Conn, workspace_id: str) -> list[ConnectionRow]:
    """The workspace's connections, live ones first."""
    return [ConnectionRow(**r) for r in conn.execute(_LIST, (workspace_id,))]  # type: ignore[typeddict-item]


def store_tokens(conn: Conn, connection_id: str, *, access_token: Sealed, refresh_token: Sealed | None,
                 expires_at: datetime | None, refreshed: bool) -> None:
    """Replace a live connection's sealed tokens (a refresh, or a re-wrap under the active key)."""
    conn.execute(_TOKENS, {"id": connection_id, "access_token": _jsonb(access_token),
                           "refresh_token": _jsonb(refresh_token), "expires_at": expires_at, "refreshed": refreshed})


def set_status(conn: Conn, connection_id: str, *, status: str, reason: str | None,
               from_statuses: tuple[str, ...]) -> ConnectionRow | None:
    """Move a connection to `status` with `reason` if it is in one of `from_statuses`; the row, else None."""
    row = conn.execute(_STATUS, {"id": connection_id, "status": status, "reason": reason,
                                 "from": list(from_statuses)}).fetchone()
    return None if row is None else cast(ConnectionRow, row)


def revoke(conn: Conn, connection_id: str, *, reason: str) -> ConnectionRow | None:
    """Disconnect: status `revoked` and both sealed tokens erased; None if already revoked or absent."""
    row = conn.execute(_REVOKE, {"id": connection_id, "reason": reason}).fetchone()
    return None if row is None else cast(ConnectionRow, row)


def put_workspace_key(conn: Conn, *, workspace_id: str, service: str, secret: Sealed,
                      updated_by: str | None) -> datetime:
    """Store (or replace) the workspace's sealed key for `service`; when it was stored."""
    row = one(conn.execute(_PUT_KEY, (workspace_id, service, Jsonb(dict(secret)), updated_by)))
    stored: datetime = row["updated_at"]
    return stored


def workspace_key(conn: Conn, workspace_id: str, service: str) -> Sealed | None:
    """The workspace's sealed key for `service`, or None."""
    row = conn.execute(_GET_KEY, (workspace_id, service)).fetchone()
    return None if row is None else dict(row["secret"])


def rewrap_workspace_key(conn: Conn, workspace_id: str, service: str, secret: Sealed) -> None:
    """Store the key re-wrapped under the active KEK."""
    conn.execute(_SET_KEY, (Jsonb(dict(secret)), workspace_id, service))


def delete_workspace_key(conn: Conn, workspace_id: str, service: str) -> bool:
    """Remove the workspace's key for `service`; whether there was one."""
    return conn.execute(_DELETE_KEY, (workspace_id, service)).fetchone() is not None


def list_workspace_keys(conn: Conn, workspace_id: str) -> list[tuple[str, datetime]]:
    """(service, updated_at) of each key the workspace set."""
    return [(r["service"], r["updated_at"]) for r in conn.execute(_LIST_KEYS, (workspace_id,))]
