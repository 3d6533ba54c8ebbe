"""One short Postgres transaction per request for an emulator whose state lives in its own schema.

The schema is created on first use (under an advisory lock, so concurrent emulators create it once),
and a missing `database_url` raises the emulator's own error, answered the way its service answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row


class SchemaDatabase:
    """Transactions on `database_url` with `ddl` applied once per process."""

    def __init__(self, database_url: str, *, ddl: str, lock: int, missing: Callable[[], Exception]) -> None:
        self.database_url = database_url
        self.ddl = ddl
        self.lock = lock
        self.missing = missing
        self._ready = False

    @contextmanager
    def transaction(self, *, wait_for_flush: bool = True) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """A connection inside one transaction; `wait_for_flush=False` commits without waiting for the WAL
        flush (a crashed emulator loses nothing; only an OS crash could drop the last fraction of a second)."""
        if not self.database_url:
            raise self.missing()
        with psycopg.connect(self.database_url, autocommit=True, row_factory=dict_row,
                             prepare_threshold=None) as conn:
            if not self._ready:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (self.lock,))
                    conn.execute(self.ddl)
                self._ready = True
            with conn.transaction():
                if not wait_for_flush:
                    conn.execute("SET LOCAL synchronous_commit = off")
                yield conn
