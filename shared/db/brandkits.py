"""Brand kits and QA settings as the API reads and writes them: always on a caller's RLS connection.

Row-level security (`brand_kits_member`) limits every statement to the caller's workspaces, so a
workspace the caller is not a member of reads as "no kit" and cannot be written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from psycopg.types.json import Jsonb

from shared.db.pool import Conn, one

_GET = "SELECT kit, version, updated_at FROM public.brand_kits WHERE workspace_id = %s"
_LOCK = "SELECT version FROM public.brand_kits WHERE workspace_id = %s FOR UPDATE"
_PUT = """
INSERT INTO public.brand_kits (workspace_id, kit) VALUES (%s, %s)
ON CONFLICT (workspace_id) DO UPDATE SET kit = EXCLUDED.kit, version = brand_kits.version + 1, updated_at = now()
RETURNING version, updated_at
"""
_SETTINGS = "SELECT settings FROM public.workspaces WHERE id = %s"


class StoredKit(TypedDict):
    """A stored kit and its version."""

    kit: dict[str, Any]
    version: int
    updated_at: datetime


def get_kit(conn: Conn, workspace_id: str) -> StoredKit | None:
    """The workspace's kit, or None if none was saved."""
    row = conn.execute(_GET, (workspace_id,)).fetchone()
    return None if row is None else StoredKit(kit=row["kit"], version=row["version"], updated_at=row["updated_at"])


def current_version(conn: Conn, workspace_id: str) -> int:
    """The kit's version, locked until the transaction ends (0: no kit yet)."""
    row = conn.execute(_LOCK, (workspace_id,)).fetchone()
    return 0 if row is None else int(row["version"])


def save_kit(conn: Conn, workspace_id: str, kit: dict[str, Any]) -> tuple[int, datetime]:
    """Store a validated kit; returns its new version (1 for the first) and when it was saved."""
    row = one(conn.execute(_PUT, (workspace_id, Jsonb(kit))))
    return int(row["version"]), row["updated_at"]


def workspace_settings(conn: Conn, workspace_id: str) -> dict[str, Any]:
    """The workspace's settings JSON (empty if unreadable)."""
    row = conn.execute(_SETTINGS, (workspace_id,)).fetchone()
    return dict(row["settings"] or {}) if row else {}
