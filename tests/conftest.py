"""Fixtures shared by every test tier: environment isolation and one real Postgres per session."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator

import psycopg
import pytest

pytest_plugins = ["tests.integration.gemini_fixtures"]


@pytest.fixture(autouse=True)
def _restore_environ() -> Iterator[None]:
    """Every test leaves `os.environ` exactly as it found it."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def postgres_server_dsn() -> Iterator[str]:
    """A DSN for a real PostgreSQL with pgvector: `DATABASE_URL` if set, else an embedded `pgserver`."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    import pgserver

    with tempfile.TemporaryDirectory(prefix="muse-pg-") as data_dir:
        server = pgserver.get_server(data_dir, cleanup_mode="stop")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


@pytest.fixture(scope="session")
def fresh_database_dsn(postgres_server_dsn: str) -> Iterator[str]:
    """A new, empty database on the session's server, dropped at the end of the session."""
    name = f"muse_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = psycopg.conninfo.make_conninfo(postgres_server_dsn, dbname=name)
    try:
        yield dsn
    finally:
        with psycopg.connect(postgres_server_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
