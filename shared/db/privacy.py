"""A workspace's personal-data policy (`workspace_privacy`): read by whatever stores text for it, changed by members.

Reads work on any connection (the service's, or a caller's under row-level security, where a workspace the
caller is not a member of reads as the default). No row means the default policy: everything redacted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict
from uuid import UUID

from psycopg.types.json import Jsonb

from shared.db.pool import Conn, one
from shared.safety.pii import PiiPolicy

_GET = "SELECT mode, overrides, version, updated_by, updated_at FROM public.workspace_privacy WHERE workspace_id = %s"
_PUT = """
INSERT INTO public.workspace_privacy (workspace_id, mode, overrides, updated_by) VALUES (%s, %s, %s, %s)
ON CONFLICT (workspace_id) DO UPDATE SET mode = EXCLUDED.mode, overrides = EXCLUDED.overrides,
    updated_by = EXCLUDED.updated_by, version = workspace_privacy.version + 1, updated_at = now()
RETURNING mode, overrides, version, updated_by, updated_at
"""


class StoredPrivacy(TypedDict):
    """A workspace's stored policy and its version (0 and no author: never changed, the default applies)."""

    policy: PiiPolicy
    version: int
    updated_by: UUID | None
    updated_at: datetime | None


def _stored(row: Any) -> StoredPrivacy:
    return StoredPrivacy(policy=PiiPolicy(mode=row["mode"], overrides=row["overrides"]), version=row["version"],
                         updated_by=row["updated_by"], updated_at=row["updated_at"])


def get_privacy(conn: Conn, workspace_id: str, *, lock: bool = False) -> StoredPrivacy:
    """The workspace's policy with its version; the default (redact everything) at version 0 if never set.

    With `lock`, the row stays locked until the transaction ends, so concurrent changes serialize.
    """
    row = conn.execute(_GET + (" FOR UPDATE" if lock else ""), (workspace_id,)).fetchone()
    if row is None:
        return StoredPrivacy(policy=PiiPolicy(), version=0, updated_by=None, updated_at=None)
    return _stored(row)


def policy_of(conn: Conn, workspace_id: str) -> PiiPolicy:
    """The policy to apply to text stored for the workspace."""
    return get_privacy(conn, workspace_id)["policy"]


def save_privacy(conn: Conn, workspace_id: str, policy: PiiPolicy, *, updated_by: UUID) -> StoredPrivacy:
    """Store `policy` for the workspace and bump its version (1 for the first)."""
    return _stored(one(conn.execute(_PUT, (workspace_id, policy.mode, Jsonb(dict(policy.overrides)), updated_by))))
