"""SQL of the asset library (`public.assets`): uploads run as the member (row-level security), generated
images and picks as the service with the workspace named explicitly."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from shared.db.pool import Conn

_COLUMNS = """id::text AS id, workspace_id::text AS workspace_id, source, storage_path, content_type, byte_size,
    width, height, sha256, filename, tags, description, alt_text, generation_key, created_at"""


class AssetRow(TypedDict):
    """One asset as stored."""

    id: str
    workspace_id: str
    source: str
    storage_path: str
    content_type: str
    byte_size: int
    width: int
    height: int
    sha256: str
    filename: str | None
    tags: list[str]
    description: str
    alt_text: str
    generation_key: str | None
    created_at: datetime


class NewAsset(TypedDict):
    """What `insert_asset` stores."""

    id: str
    workspace_id: str
    created_by: str | None
    source: str
    storage_path: str
    content_type: str
    byte_size: int
    width: int
    height: int
    sha256: str
    filename: str | None
    tags: list[str]
    description: str
    alt_text: str
    generation_key: str | None
    prompt: str | None
    model: str | None


def insert_asset(conn: Conn, asset: NewAsset) -> AssetRow | None:
    """Store an asset; None when a generated one with the same key already exists in the workspace."""
    row = conn.execute(
        f"""INSERT INTO public.assets (id, workspace_id, created_by, source, storage_path, content_type, byte_size,
                width, height, sha256, filename, tags, description, alt_text, generation_key, prompt, model)
            VALUES (%(id)s, %(workspace_id)s, %(created_by)s, %(source)s, %(storage_path)s, %(content_type)s,
                %(byte_size)s, %(width)s, %(height)s, %(sha256)s, %(filename)s, %(tags)s, %(description)s,
                %(alt_text)s, %(generation_key)s, %(prompt)s, %(model)s)
            ON CONFLICT (workspace_id, generation_key) WHERE generation_key IS NOT NULL DO NOTHING
            RETURNING {_COLUMNS}""", dict(asset)).fetchone()
    return None if row is None else AssetRow(**row)  # type: ignore[typeddict-item]


def generated_for(conn: Conn, workspace_id: str, generation_key: str) -> AssetRow | None:
    """The asset generated under this key, if any."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM public.assets WHERE workspace_id = %s AND generation_key = %s",
                       (workspace_id, generation_key)).fetchone()
    return None if row is None else AssetRow(**row)  # type: ignore[typeddict-item]


def get_asset(conn: Conn, workspace_id: str, asset_id: str) -> AssetRow | None:
    """One asset of the workspace."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM public.assets WHERE workspace_id = %s AND id = %s",
                       (workspace_id, asset_id)).fetchone()
    return None if row is None else AssetRow(**row)  # type: ignore[typeddict-item]


def list_assets(conn: Conn, workspace_id: str, *, limit: int,
                after: tuple[datetime, str] | None = None) -> list[AssetRow]:
    """The workspace's assets, newest first, after the keyset cursor `(created_at, id)` when given."""
    params: dict[str, Any] = {"ws": workspace_id, "limit": limit, "at": None, "id": None}
    if after is not None:
        params["at"], params["id"] = after
    rows = conn.execute(
        f"""SELECT {_COLUMNS} FROM public.assets
            WHERE workspace_id = %(ws)s
              AND (%(at)s::timestamptz IS NULL OR (created_at, id) < (%(at)s::timestamptz, %(id)s::uuid))
            ORDER BY created_at DESC, id DESC LIMIT %(limit)s""", params).fetchall()
    return [AssetRow(**row) for row in rows]  # type: ignore[typeddict-item]


def recent_assets(conn: Conn, workspace_id: str, *, limit: int = 500) -> list[AssetRow]:
    """Candidates for picking an image for a post: the workspace's most recent assets."""
    return list_assets(conn, workspace_id, limit=limit)
