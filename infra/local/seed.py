"""Seed data of the local stack: a demo workspace with a brand kit and a few knowledge documents."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import psycopg

from shared.db.knowledge import PgVectorKnowledge, workspace_has_documents
from shared.db.pool import connect, create_pool
from shared.db.workspaces import ensure_brand_kit, ensure_workspace
from shared.integrations.embeddings import embedder_from_settings
from shared.settings import Settings

log = logging.getLogger("muse.seed")
USER_NAMESPACE = uuid.UUID("6f0c7c1e-8d7e-4f5a-9d0e-6a1b2c3d4e5f")

DEMO_BRAND_KIT: dict[str, Any] = {
    "voice": ["warm", "confident", "plain-spoken"],
    "banned_terms": {"cheap": "affordable", "guaranteed": "designed to", "best in india": "loved across India"},
    "required_disclaimers": {"ad": "T&C apply"},
}
DEMO_SETTINGS: dict[str, Any] = {"decision_timeout_seconds": 86_400, "auto_approve_max_budget_inr": 25_000,
                                 "qa_max_revisions": 2}
DEMO_DOCUMENTS = [
    ("Brand story: Chai Point Collective",
     "Chai Point Collective sells single-origin Assam and Darjeeling teas direct to consumers across India. "
     "Founded in Guwahati in 2019, it works with 40 small growers and ships in compostable packs. "
     "Customers are urban professionals aged 25-40 who value provenance and calm morning rituals."),
    ("Past campaign: Monsoon Mornings 2025",
     "The Monsoon Mornings campaign ran on Instagram and email in July 2025 with a budget of INR 180000. "
     "It reached 1.2 million people, converted at 2.1 percent and the email subject lines that named the grower "
     "outperformed generic ones by 34 percent. Festive gift boxes sold out in the last week."),
    ("Product sheet: Festive Gift Box",
     "The Festive Gift Box holds four 50 g tins (Assam breakfast, Darjeeling first flush, masala chai, tulsi green) "
     "and costs INR 1499. Free shipping above INR 999. Best positioned for Diwali and Raksha Bandhan gifting."),
]


def local_user_id(slug: str) -> str:
    """The deterministic local user that owns workspace `slug`."""
    return str(uuid.uuid5(USER_NAMESPACE, f"muse-local:{slug}"))


def ensure_local_workspace(database_url: str, slug: str, *, settings: dict[str, Any] | None = None) -> tuple[str, str]:
    """Create workspace `slug` and its owner if new; returns (workspace id, user id)."""
    user_id = local_user_id(slug)
    with connect(database_url) as conn, conn.transaction():
        workspace_id = ensure_workspace(conn, slug=slug, name=slug.replace("-", " ").title(), user_id=user_id,
                                        settings=settings)
    return workspace_id, user_id


def seed_demo(env: dict[str, str], *, attempts: int = 50) -> str:
    """Seed the demo workspace (idempotent); waits for the emulators to serve embeddings."""
    settings = Settings(**env)  # type: ignore[arg-type]
    workspace_id, _ = ensure_local_workspace(settings.database_url, "demo", settings=DEMO_SETTINGS)
    with connect(settings.database_url) as conn:
        ensure_brand_kit(conn, workspace_id, DEMO_BRAND_KIT)
        if workspace_has_documents(conn, workspace_id):
            return workspace_id
    embedder = embedder_from_settings(settings)
    pool = create_pool(settings.database_url, max_size=1)
    try:
        knowledge = PgVectorKnowledge(pool=pool, embedder=embedder)
        for attempt in range(attempts):
            try:
                with connect(settings.database_url) as conn, conn.transaction():
                    for title, text in DEMO_DOCUMENTS:
                        knowledge.add_document(conn, workspace_id=workspace_id, title=title, content=text,
                                               tags=["demo"])
                break
            except (psycopg.Error, OSError, Exception) as exc:  # emulators may still be starting
                if attempt == attempts - 1:
                    raise
                log.debug("seed retry: %s", exc)
                time.sleep(0.2)
    finally:
        pool.close()
    log.info("seeded demo workspace %s", workspace_id)
    return workspace_id
