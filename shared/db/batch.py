"""Several statements in one round trip, without pipeline mode (which the transaction pooler refuses).

The statements are bound client-side (`ClientCursor.mogrify`: values quoted with libpq's escaping,
typed with casts) and sent as one simple query. Inside an open transaction they join it; outside
one, Postgres runs them as one implicit transaction, so `SET LOCAL` applies to its commit. Values
travel as text: meant for ids, JSON and short strings, not for large binary payloads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

from psycopg import ClientCursor, Connection

Params: TypeAlias = Sequence[Any] | Mapping[str, Any] | None

ASYNC_COMMIT: tuple[str, Params] = ("SET LOCAL synchronous_commit = off", None)
"""First statement of a batch whose commit need not wait for the WAL flush: only for writes that a
server crash may lose harmlessly (the batch must run outside an explicit transaction)."""


def execute_batch(conn: Connection[Any], statements: Sequence[tuple[str, Params]]) -> list[list[Any]]:
    """Run `statements` in order in one round trip; the rows of each (empty for a statement without rows).

    The first failing statement raises, and Postgres skips the rest (inside a transaction, the
    transaction is then aborted: the caller rolls back).
    """
    cur = ClientCursor(conn)
    cur.execute(";\n".join(cur.mogrify(sql, params) for sql, params in statements))
    results: list[list[Any]] = []
    while True:
        results.append(cur.fetchall() if cur.description is not None else [])
        if not cur.nextset():
            return results
