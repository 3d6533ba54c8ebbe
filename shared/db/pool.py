"""Connections that work through Supabase's transaction pooler.

Supavisor in transaction mode rejects prepared statements and session state, so every connection
disables preparing (`prepare_threshold=None`), runs in autocommit and never uses pipeline mode;
per-request role and claims are set with `SET LOCAL` inside an explicit transaction.
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias

import psycopg
from psycopg import Cursor
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

CONNECTION_KWARGS: dict[str, Any] = {"autocommit": True, "prepare_threshold": None, "row_factory": dict_row}

Conn: TypeAlias = psycopg.Connection[DictRow]
"""A connection whose rows are dicts (column → value): every connection Muse opens is one."""
Pool: TypeAlias = ConnectionPool[Conn]
"""A pool of `Conn`s, as `create_pool` makes."""


class MissingRow(LookupError):
    """A statement that always returns a row (an aggregate, an unconditional `RETURNING`) returned none."""


def one(cursor: Cursor[DictRow]) -> DictRow:
    """The row of a statement that always returns one; raises `MissingRow` otherwise."""
    row = cursor.fetchone()
    if row is None:
        raise MissingRow("The statement returned no row.")
    return row


CHECK_AFTER_IDLE_SECONDS = 5.0
"""A pooled connection idle longer than this is checked with a round trip before reuse."""
_returned_at: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = weakref.WeakKeyDictionary()


def _note_return(conn: psycopg.Connection[Any]) -> None:
    """The pool's `reset` hook: remember when the connection came back."""
    _returned_at[conn] = time.monotonic()


def check_if_idle(conn: psycopg.Connection[Any]) -> None:
    """The pool's `check`: a round trip only for a connection that sat idle for a while.

    A connection used moments ago is almost always alive; checking it anyway costs a round trip on
    every checkout (several per step). One that broke since fails its statement, the step is retried,
    and the pool replaces it; one known broken is refused here without a round trip.
    """
    if conn.closed:
        raise psycopg.OperationalError("the connection is closed")
    returned = _returned_at.get(conn)
    if returned is None or time.monotonic() - returned > CHECK_AFTER_IDLE_SECONDS:
        ConnectionPool.check_connection(conn)


def create_pool(dsn: str, *, max_size: int = 4, min_size: int = 0) -> Pool:
    """A pool for one function instance; connections are opened lazily and checked before reuse if idle."""
    return ConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        kwargs=CONNECTION_KWARGS,
        check=check_if_idle,
        reset=_note_return,
        max_idle=300,
        max_lifetime=1800,
        open=True,
        name="muse",
    )


def connect(dsn: str) -> Conn:
    """One pooler-safe connection, for setup jobs and scripts."""
    return psycopg.connect(dsn, **CONNECTION_KWARGS)


@contextmanager
def as_user(pool: Pool, claims: dict[str, Any]) -> Iterator[Conn]:
    """A transaction running as Supabase's `authenticated` role with the caller's JWT claims.

    Row-level security then scopes every statement to the caller's workspaces, exactly as
    PostgREST would. Role and claims are transaction-local, so the pooled connection is clean after.
    """
    with pool.connection() as conn, conn.transaction():
        conn.execute("SET LOCAL ROLE authenticated")
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
        yield conn


@contextmanager
def as_service(pool: Pool) -> Iterator[Conn]:
    """A transaction with the service's own privileges; callers filter by workspace explicitly."""
    with pool.connection() as conn, conn.transaction():
        yield conn


def as_runtime(conn: Conn) -> None:
    """Leave the caller's role for the rest of this `as_user` transaction.

    For the runtime's own rows (events, outbox) that must commit atomically with a change the caller
    was allowed to make (RLS already checked it); `SET LOCAL ROLE NONE` returns to the session user.
    """
    conn.execute("SET LOCAL ROLE NONE")
