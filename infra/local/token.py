"""`make token [WORKSPACE=<name>]`: print a bearer token for a local workspace (created on first use)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jwt

from infra.local.embedded import postgres_of
from infra.local.seed import DEMO_BRAND_KIT, DEMO_SETTINGS, ensure_local_workspace
from infra.local.stack import DEFAULT_DATA_DIR, LocalSecrets, setup_database
from shared.db.pool import connect
from shared.db.workspaces import ensure_brand_kit


def mint(secret: str, *, user_id: str, workspace_id: str, slug: str, issuer: str, hours: float = 24) -> str:
    """An HS256 Supabase-shaped access token for `user_id` in `workspace_id`."""
    now = int(time.time())
    claims = {
        "iss": issuer, "sub": user_id, "aud": "authenticated", "role": "authenticated",
        "iat": now, "exp": now + int(hours * 3600), "email": f"owner@{slug}.local",
        "app_metadata": {"provider": "email", "workspace_id": workspace_id}, "user_metadata": {},
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def token_for(workspace: str, data_dir: Path = DEFAULT_DATA_DIR) -> str:
    """A token for the local `workspace` (created on first use; `demo` gets its brand kit and settings)."""
    slug = workspace.lower()
    with postgres_of(data_dir) as database_url:
        setup_database(database_url)
        settings = DEMO_SETTINGS if slug == "demo" else None
        workspace_id, user_id = ensure_local_workspace(database_url, slug, settings=settings)
        if slug == "demo":
            with connect(database_url) as conn:
                ensure_brand_kit(conn, workspace_id, DEMO_BRAND_KIT)
    local = LocalSecrets.load_or_create(data_dir)
    return mint(local.jwt_secret, user_id=user_id, workspace_id=workspace_id, slug=slug,
                issuer="http://127.0.0.1/auth/v1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workspace", default="demo")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args(argv)
    print(token_for(args.workspace, args.data_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
