"""Workspaces, their brand kits and runtime policies."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from shared.brandkit import stored_kit_view
from shared.db.pool import Conn, Pool, one
from shared.ports import BrandKit, CampaignContext, WorkspacePolicy

_KIT = "SELECT kit FROM public.brand_kits WHERE workspace_id = %s"
_CONTEXT = """
SELECT w.settings, k.kit FROM public.workspaces w LEFT JOIN public.brand_kits k ON k.workspace_id = w.id
WHERE w.id = %s
"""
_SETTINGS = "SELECT settings FROM public.workspaces WHERE id = %s"
_ENSURE_WORKSPACE = """
INSERT INTO public.workspaces (slug, name, settings) VALUES (%s, %s, %s)
ON CONFLICT (slug) DO UPDATE SET slug = EXCLUDED.slug
RETURNING id
"""
_ENSURE_MEMBER = """
INSERT INTO public.workspace_members (workspace_id, user_id, role) VALUES (%s, %s, 'owner')
ON CONFLICT DO NOTHING
"""
_OWNER = "SELECT user_id FROM public.workspace_members WHERE workspace_id = %s ORDER BY created_at LIMIT 1"
_PUT_KIT = """
INSERT INTO public.brand_kits (workspace_id, kit) VALUES (%s, %s)
ON CONFLICT (workspace_id) DO UPDATE SET kit = EXCLUDED.kit, version = brand_kits.version + 1, updated_at = now()
"""


def brand_kit_from_json(kit: dict[str, Any]) -> BrandKit:
    """The port view of a stored brand kit; the full validated kit rides along as `.spec` (`shared.brandkit`)."""
    return stored_kit_view(kit)


def policy_from_json(settings: dict[str, Any]) -> WorkspacePolicy:
    """A workspace's runtime rules from its `settings` JSON (defaults for what is missing)."""
    defaults = WorkspacePolicy()
    return WorkspacePolicy(
        decision_timeout_seconds=int(settings.get("decision_timeout_seconds", defaults.decision_timeout_seconds)),
        auto_approve_max_budget_inr=settings.get("auto_approve_max_budget_inr"),
        qa_max_revisions=int(settings.get("qa_max_revisions", defaults.qa_max_revisions)),
    )


def campaign_context(workspace_id: str, settings: dict[str, Any] | None, kit_json: dict[str, Any] | None, *,
                     user_id: str | None = None) -> CampaignContext:
    """The typed context of a campaign from its workspace's settings and brand kit JSON."""
    settings = settings or {}
    kit_json = kit_json or {}
    personas = kit_json.get("personas") or kit_json.get("icps") or []
    return CampaignContext(
        workspace_id=workspace_id, user_id=user_id, brand=brand_kit_from_json(kit_json),
        policy=policy_from_json(settings),
        icps=[p if isinstance(p, str) else p.get("name", str(p)) for p in personas],
        preferences=dict(settings.get("preferences") or {}),
        quality_thresholds={"min_quality_score": float(settings.get("min_quality_score", 0.8))},
        budget_constraints={k: settings[k] for k in ("max_budget_inr", "auto_approve_max_budget_inr")
                            if k in settings},
        settings=dict(settings),
    )


class PostgresWorkspaceStore:
    """`WorkspaceStore` over Postgres."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def brand_kit(self, workspace_id: str) -> BrandKit:
        with self.pool.connection() as conn:
            row = conn.execute(_KIT, (workspace_id,)).fetchone()
        return brand_kit_from_json(row["kit"] if row else {})

    def policy(self, workspace_id: str) -> WorkspacePolicy:
        with self.pool.connection() as conn:
            row = conn.execute(_SETTINGS, (workspace_id,)).fetchone()
        return policy_from_json(row["settings"] if row else {})

    def context(self, workspace_id: str, user_id: str | None = None) -> CampaignContext:
        """Brand kit, policy and preferences of the workspace, in one query."""
        with self.pool.connection() as conn:
            row = conn.execute(_CONTEXT, (workspace_id,)).fetchone()
        return campaign_context(workspace_id, (row or {}).get("settings"), (row or {}).get("kit"), user_id=user_id)


def ensure_workspace(conn: Conn, *, slug: str, name: str, user_id: str,
                     settings: dict[str, Any] | None = None) -> str:
    """Create the workspace `slug` (if new) with `user_id` as a member; returns its id. Admin use only."""
    workspace_id = one(conn.execute(_ENSURE_WORKSPACE, (slug, name, Jsonb(settings or {}))))["id"]
    conn.execute(_ENSURE_MEMBER, (workspace_id, user_id))
    return str(workspace_id)


def workspace_owner(conn: Conn, workspace_id: str) -> str | None:
    """The first member of a workspace (admin use)."""
    row = conn.execute(_OWNER, (workspace_id,)).fetchone()
    return str(row["user_id"]) if row else None


def put_brand_kit(conn: Conn, workspace_id: str, kit: dict[str, Any]) -> None:
    """Store a brand kit (validated upstream)."""
    conn.execute(_PUT_KIT, (workspace_id, Jsonb(kit)))


_SEED_KIT = "INSERT INTO public.brand_kits (workspace_id, kit) VALUES (%s, %s) ON CONFLICT (workspace_id) DO NOTHING"


def ensure_brand_kit(conn: Conn, workspace_id: str, kit: dict[str, Any]) -> None:
    """Store `kit` only if the workspace has no brand kit yet (seeding never overwrites edits)."""
    conn.execute(_SEED_KIT, (workspace_id, Jsonb(kit)))


def workspace_timezone(conn: Conn, workspace_id: str) -> str | None:
    """The IANA timezone the workspace set (`settings.timezone`), if any: schedules and publishing slots use it."""
    row = conn.execute("SELECT settings ->> 'timezone' AS tz FROM public.workspaces WHERE id = %s",
                       (workspace_id,)).fetchone()
    return row["tz"] if row else None
