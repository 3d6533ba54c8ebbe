"""The setup step: migrations and checkpointer tables, run once per deploy — never at cold start."""

from __future__ import annotations

from pathlib import Path

from langgraph.checkpoint.postgres import PostgresSaver

from shared.db.pool import connect

REPO_ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS_DIR = REPO_ROOT / "supabase" / "migrations"

_CREATE_HISTORY = """
CREATE SCHEMA IF NOT EXISTS supabase_migrations;
CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations (
    version text PRIMARY KEY, name text, statements text[]
)
"""
_APPLIED = "SELECT version FROM supabase_migrations.schema_migrations"
_RECORD = "INSERT INTO supabase_migrations.schema_migrations (version, name) VALUES (%s, %s)"


def apply_sql_file(dsn: str, path: Path) -> None:
    """Run one SQL file in a single transaction."""
    with connect(dsn) as conn, conn.transaction():
        conn.execute(path.read_text())


def apply_migrations(dsn: str, migrations_dir: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending `supabase/migrations/<version>_<name>.sql` files in order, as the Supabase CLI does.

    Returns the versions applied by this call. History is kept in the same table the Supabase CLI
    uses, so a project can switch between this runner and `supabase db push`.
    """
    applied_now: list[str] = []
    with connect(dsn) as conn:
        conn.execute(_CREATE_HISTORY)
        done = {row["version"] for row in conn.execute(_APPLIED)}
        for path in sorted(migrations_dir.glob("*.sql")):
            version, _, name = path.stem.partition("_")
            if version in done:
                continue
            with conn.transaction():
                conn.execute(path.read_text())
                conn.execute(_RECORD, (version, name))
            applied_now.append(version)
    return applied_now


def setup_checkpointer(dsn: str) -> None:
    """Create LangGraph's checkpoint tables (needs autocommit: it builds indexes concurrently)."""
    with connect(dsn) as conn:
        PostgresSaver(conn).setup()


def setup_database(dsn: str, *, bootstrap_sql: Path | None = None) -> list[str]:
    """The whole setup step: optional Supabase bootstrap, checkpointer tables, then migrations."""
    if bootstrap_sql is not None:
        apply_sql_file(dsn, bootstrap_sql)
    setup_checkpointer(dsn)
    return apply_migrations(dsn)
