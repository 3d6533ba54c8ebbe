"""Integration fixtures: a real Postgres with Supabase's bootstrap, the checkpointer tables and migrations."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from psycopg_pool import ConnectionPool

from infra.local.stack import BOOTSTRAP_SQL
from shared.db.migrate import setup_database
from shared.db.pool import create_pool


@pytest.fixture(scope="session")
def migrated_dsn(fresh_database_dsn: str) -> str:
    """A database with everything the setup step creates."""
    setup_database(fresh_database_dsn, bootstrap_sql=BOOTSTRAP_SQL)
    return fresh_database_dsn


@pytest.fixture
def pool(migrated_dsn: str) -> Iterator[ConnectionPool]:
    """A pooler-safe connection pool, closed after the test."""
    p = create_pool(migrated_dsn, max_size=6)
    try:
        yield p
    finally:
        p.close()
