"""SQL of publications (issue 11): one row per (artifact, provider, variant), fired exactly once.

Every transition is a conditional UPDATE on the state the caller saw (status, version, attempt), so two
deliveries of one message can never both act. Transitions that can end a publication lock the campaign
row first: the last publication of a campaign to settle then sees every other one settled and completes
the campaign in the same transaction (`settle_campaign`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypedDict, cast
from uuid import UUID

from psycopg.types.json import Jsonb

from shared.db.pool import Conn

PublicationStatus = Literal["scheduled", "sending", "published", "failed", "unconfirmed", "cancelled", "waiting"]
WaitingReason = Literal["not_connected", "needs_reconnect"]
SETTLED_STATUSES: frozenset[str] = frozenset({"published", "failed", "unconfirmed", "cancelled"})
"""Statuses no delivery moves a publication out of (a `waiting` one moves when its channel is connected)."""


class PublicationRow(TypedDict):
    """A `publications` row."""

    id: UUID
    workspace_id: UUID
    campaign_id: UUID
    artifact_id: UUID
    channel: str
    provider: str
    variant: str
    status: PublicationStatus
    waiting_reason: WaitingReason | None
    scheduled_at: datetime
    next_attempt_at: datetime
    version: int
    attempts: int
    recreates: int
    reconcile_first: bool
    attempt_started_at: datetime | None
    content_hash: str | None
    asset_id: str | None
    connection_id: str | None
    external_id: str | None
    url: str | None
    parts: list[str]
    published_at: datetime | None
    error: str | None
    created_at: datetime
    updated_at: datetime


class FiringRow(PublicationRow):
    """A publication with its artifact's copy, as the engine fires it."""

    content: dict[str, Any]


class NewPublication(TypedDict):
    """What the execute node schedules for one (artifact, provider, variant)."""

    artifact_id: str
    channel: str
    provider: str
    variant: str
    status: Literal["scheduled", "waiting"]
    waiting_reason: WaitingReason | None
    scheduled_at: datetime
    asset_id: str | None
    connection_id: str | None
    error: str | None


_COLUMNS = """id, workspace_id, campaign_id, artifact_id, channel, provider, variant, status, waiting_reason,
    scheduled_at, next_attempt_at, version, attempts, recreates, reconcile_first, attempt_started_at, content_hash,
    asset_id, connection_id, external_id, url, parts, published_at, error, created_at, updated_at"""
_ARTIFACTS = """
SELECT id::text AS id, channel, variant FROM public.artifacts
WHERE campaign_id = %s AND status = 'published'
"""
_INSERT = f"""
INSERT INTO public.publications (workspace_id, campaign_id, artifact_id, channel, provider, variant, status,
    waiting_reason, scheduled_at, next_attempt_at, asset_id, connection_id, error)
SELECT a.workspace_id, a.campaign_id, a.id, %(channel)s, %(provider)s, %(variant)s, %(status)s, %(waiting_reason)s,
    %(scheduled_at)s, %(scheduled_at)s, %(asset_id)s, %(connection_id)s, %(error)s
FROM public.artifacts a WHERE a.id = %(artifact_id)s AND a.status = 'published'
ON CONFLICT (artifact_id, provider, variant) DO NOTHING
RETURNING {_COLUMNS}
"""
"""Only an artifact execution released (it checked the completed payment) gets publications; a second
scheduling of the same one inserts nothing, so it writes no second message either."""
_GET = f"""
SELECT {", ".join("p." + c.strip() for c in _COLUMNS.split(","))}, a.content
FROM public.publications p JOIN public.artifacts a ON a.id = p.artifact_id
WHERE p.id = %s
"""
_OF_CAMPAIGN = f"""
SELECT {_COLUMNS} FROM public.publications WHERE campaign_id = %s ORDER BY scheduled_at, channel, provider, variant
"""
_CONTENTS = "SELECT id::text AS id, content FROM public.artifacts WHERE id = ANY(%s::uuid[])"
_SET_ASSET = "UPDATE public.publications SET asset_id = %s WHERE id = %s AND asset_id IS NULL"
_SAVE_PARTS = """
UPDATE public.publications SET parts = %(parts)s, updated_at = %(now)s
WHERE id = %(id)s AND status = 'sending' AND attempts = %(attempt)s
"""
_VISIBLE = f"SELECT {_COLUMNS} FROM public.publications WHERE id = %s"
_LOCK_CAMPAIGN = "SELECT id FROM public.campaigns WHERE id = %s FOR UPDATE"
_CLAIM = f"""
UPDATE public.publications SET status = 'sending', attempts = attempts + 1, attempt_started_at = %(now)s,
    content_hash = %(hash)s, next_attempt_at = %(watch_at)s, connection_id = %(connection)s, error = NULL,
    reconcile_first = false, updated_at = %(now)s
WHERE id = %(id)s AND status = 'scheduled' AND version = %(version)s AND attempts = %(attempt)s
    AND next_attempt_at <= %(due_by)s
RETURNING {_COLUMNS}
"""
_RECREATE = f"""
UPDATE public.publications SET attempts = attempts + 1, recreates = recreates + 1, attempt_started_at = %(now)s,
    next_attempt_at = %(watch_at)s, reconcile_first = false, updated_at = %(now)s
WHERE id = %(id)s AND status = 'sending' AND attempts = %(attempt)s
RETURNING {_COLUMNS}
"""
_TAKE_OVER = f"""
UPDATE public.publications SET next_attempt_at = %(watch_at)s, reconcile_first = true, updated_at = %(now)s
WHERE id = %(id)s AND status = 'sending' AND attempts = %(attempt)s AND next_attempt_at = %(seen)s
    AND next_attempt_at <= %(now)s
RETURNING {_COLUMNS}
"""
"""A delivery that finds a `sending` row past its watch time takes the reconciliation over; a second one
then sees the new watch time and does nothing."""
_WATCH = """
UPDATE public.publications SET next_attempt_at = %(at)s, error = %(error)s, reconcile_first = true,
    updated_at = %(now)s
WHERE id = %(id)s AND status = 'sending' AND attempts = %(attempt)s
RETURNING version
"""
_PUBLISHED = """
UPDATE public.publications SET status = 'published', external_id = %(external_id)s, url = %(url)s,
    parts = %(parts)s, published_at = %(published_at)s, error = NULL, updated_at = %(now)s
WHERE id = %(id)s AND status = 'sending' AND attempts = %(attempt)s
RETURNING campaign_id
"""
_END = """
UPDATE public.publications SET status = %(status)s, error = %(error)s, updated_at = %(now)s
WHERE id = %(id)s AND status IN ('scheduled', 'sending') AND attempts = %(attempt)s
RETURNING campaign_id
"""
_RETRY = """
UPDATE public.publications SET status = 'scheduled', next_attempt_at = %(at)s, error = %(error)s,
    reconcile_first = false, updated_at = %(now)s
WHERE id = %(id)s AND status = 'sending' AND attempts = %(attempt)s
RETURNING version
"""
_WAIT = """
UPDATE public.publications SET status = 'waiting', waiting_reason = %(reason)s, error = %(error)s,
    connection_id = coalesce(%(connection)s, connection_id), updated_at = %(now)s
WHERE id = %(id)s AND status IN ('scheduled', 'sending') AND attempts = %(attempt)s
RETURNING campaign_id
"""
_RESCHEDULE = f"""
UPDATE public.publications SET scheduled_at = %(at)s,
    next_attempt_at = CASE WHEN status = 'scheduled' THEN %(at)s ELSE next_attempt_at END,
    version = version + 1, updated_at = %(now)s
WHERE id = %(id)s AND status IN ('scheduled', 'waiting')
RETURNING {_COLUMNS}
"""
_CANCEL = f"""
UPDATE public.publications SET status = 'cancelled', waiting_reason = NULL, version = version + 1,
    updated_at = %(now)s
WHERE id = %(id)s AND status IN ('scheduled', 'waiting')
RETURNING {_COLUMNS}
"""
_UNSETTLED = """
SELECT provider, status, waiting_reason, error, scheduled_at FROM public.publications
WHERE campaign_id = %s AND (status IN ('scheduled', 'sending') OR waiting_reason = 'needs_reconnect')
ORDER BY scheduled_at, provider
"""
_COMPLETE = """
UPDATE public.campaigns SET status = 'completed', current_step = NULL, updated_at = now()
WHERE id = %(id)s AND status = 'running' AND current_step = 'publishing'
    AND NOT EXISTS (SELECT 1 FROM public.publications p WHERE p.campaign_id = campaigns.id
                    AND (p.status IN ('scheduled', 'sending') OR p.waiting_reason = 'needs_reconnect'))
    AND EXISTS (SELECT 1 FROM public.payments p WHERE p.campaign_id = campaigns.id AND p.state = 'completed'
                AND p.amount_paise = campaigns.amount_due_paise)
RETURNING workspace_id
"""
_TOUCH_CAMPAIGN = """
UPDATE public.campaigns SET current_step = 'publishing', updated_at = now()
WHERE id = %s AND status = 'running' AND current_step = 'publishing'
"""
_EVENT = "INSERT INTO public.campaign_events (campaign_id, workspace_id, type, data) VALUES (%s, %s, %s, %s)"


def released_artifacts(conn: Conn, campaign_id: str) -> dict[tuple[str, str], str]:
    """The campaign's artifacts released for publishing, by (channel, variant)."""
    return {(r["channel"], r["variant"]): r["id"] for r in conn.execute(_ARTIFACTS, (campaign_id,)).fetchall()}


def artifact_contents(conn: Conn, artifact_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The copy of each artifact."""
    return {r["id"]: r["content"] for r in conn.execute(_CONTENTS, (artifact_ids,)).fetchall()}


def set_asset(conn: Conn, publication_id: UUID, asset_id: str) -> None:
    """Keep the image picked when the publication fired (when scheduling could not pick one)."""
    conn.execute(_SET_ASSET, (asset_id, publication_id))


def insert(conn: Conn, new: NewPublication) -> PublicationRow | None:
    """Schedule one publication; None when it already exists (or its artifact was not released)."""
    return cast(PublicationRow | None, conn.execute(_INSERT, dict(new)).fetchone())


def get(conn: Conn, publication_id: UUID) -> FiringRow | None:
    """One publication with its artifact's copy."""
    return cast(FiringRow | None, conn.execute(_GET, (publication_id,)).fetchone())


def visible(conn: Conn, publication_id: UUID) -> PublicationRow | None:
    """One publication, if the caller's row-level security lets them see it."""
    return cast(PublicationRow | None, conn.execute(_VISIBLE, (publication_id,)).fetchone())


def of_campaign(conn: Conn, campaign_id: UUID) -> list[PublicationRow]:
    """A campaign's publications, by time (under the caller's row-level security when run as a user)."""
    return cast(list[PublicationRow], conn.execute(_OF_CAMPAIGN, (campaign_id,)).fetchall())


def lock_campaign(conn: Conn, campaign_id: UUID) -> None:
    """Serialize the transitions of one campaign's publications (see module docstring)."""
    conn.execute(_LOCK_CAMPAIGN, (campaign_id,))


def claim(conn: Conn, publication_id: UUID, *, version: int, attempt: int, now: datetime, due_by: datetime,
          content_hash: str, watch_at: datetime, connection_id: str) -> PublicationRow | None:
    """`scheduled` → `sending` for exactly the version and attempt a delivery names, once it is due."""
    return cast(PublicationRow | None, conn.execute(_CLAIM, {
        "id": publication_id, "version": version, "attempt": attempt, "now": now, "due_by": due_by,
        "hash": content_hash, "watch_at": watch_at, "connection": connection_id}).fetchone())


def recreate(conn: Conn, publication_id: UUID, *, attempt: int, now: datetime,
             watch_at: datetime) -> PublicationRow | None:
    """A new create attempt of a `sending` row whose earlier attempt reconciled to nothing."""
    return cast(PublicationRow | None, conn.execute(_RECREATE, {
        "id": publication_id, "attempt": attempt, "now": now, "watch_at": watch_at}).fetchone())


def take_over(conn: Conn, publication_id: UUID, *, attempt: int, seen: datetime, now: datetime,
              watch_at: datetime) -> PublicationRow | None:
    """Claim the reconciliation of a `sending` row whose call is presumed dead."""
    return cast(PublicationRow | None, conn.execute(_TAKE_OVER, {
        "id": publication_id, "attempt": attempt, "seen": seen, "now": now, "watch_at": watch_at}).fetchone())


def watch(conn: Conn, publication_id: UUID, *, attempt: int, at: datetime, now: datetime,
          error: str | None) -> bool:
    """Keep a `sending` row whose outcome is unknown, to be reconciled at `at`."""
    return conn.execute(_WATCH, {"id": publication_id, "attempt": attempt, "at": at, "now": now,
                                 "error": error}).fetchone() is not None


def save_parts(conn: Conn, publication_id: UUID, *, attempt: int, parts: list[str], now: datetime) -> None:
    """The parts of a multi-part post accepted so far (saved before the next part is sent)."""
    conn.execute(_SAVE_PARTS, {"id": publication_id, "attempt": attempt, "parts": Jsonb(parts), "now": now})


def published(conn: Conn, publication_id: UUID, *, attempt: int, external_id: str, url: str, parts: list[str],
              published_at: datetime, now: datetime) -> bool:
    """`sending` → `published` with the platform's id and URL."""
    return conn.execute(_PUBLISHED, {"id": publication_id, "attempt": attempt, "external_id": external_id,
                                     "url": url, "parts": Jsonb(parts), "published_at": published_at,
                                     "now": now}).fetchone() is not None


def end(conn: Conn, publication_id: UUID, *, attempt: int, status: Literal["failed", "unconfirmed"], error: str,
        now: datetime) -> bool:
    """`sending` (or a `scheduled` one that cannot be built) → `failed` or `unconfirmed`, with the reason."""
    return conn.execute(_END, {"id": publication_id, "attempt": attempt, "status": status, "error": error[:2000],
                               "now": now}).fetchone() is not None


def retry(conn: Conn, publication_id: UUID, *, attempt: int, at: datetime, error: str, now: datetime) -> bool:
    """`sending` → `scheduled` again, due at `at` (the platform did not perform the call)."""
    return conn.execute(_RETRY, {"id": publication_id, "attempt": attempt, "at": at, "error": error[:2000],
                                 "now": now}).fetchone() is not None


def wait(conn: Conn, publication_id: UUID, *, attempt: int, reason: WaitingReason, error: str,
         connection_id: str | None, now: datetime) -> bool:
    """→ `waiting` until its channel is (re)connected."""
    return conn.execute(_WAIT, {"id": publication_id, "attempt": attempt, "reason": reason, "error": error[:2000],
                                "connection": connection_id, "now": now}).fetchone() is not None


def reschedule(conn: Conn, publication_id: UUID, *, at: datetime, now: datetime) -> PublicationRow | None:
    """A new time (and version) for a publication that has not fired; None when it has."""
    return cast(PublicationRow | None, conn.execute(_RESCHEDULE, {"id": publication_id, "at": at,
                                                                  "now": now}).fetchone())


def cancel(conn: Conn, publication_id: UUID, *, now: datetime) -> PublicationRow | None:
    """`cancelled`, unless it already fired; the version moves on, so its messages do nothing."""
    return cast(PublicationRow | None, conn.execute(_CANCEL, {"id": publication_id, "now": now}).fetchone())


def unsettled(conn: Conn, campaign_id: UUID) -> list[dict[str, Any]]:
    """What the campaign still waits for: publications to fire, and channels that need a reconnect."""
    return conn.execute(_UNSETTLED, (campaign_id,)).fetchall()


def settle_campaign(conn: Conn, campaign_id: UUID, summary: dict[str, Any]) -> bool:
    """Complete a publishing campaign once nothing is left to fire (call with the campaign row locked)."""
    row = conn.execute(_COMPLETE, {"id": campaign_id}).fetchone()
    if row is None:
        conn.execute(_TOUCH_CAMPAIGN, (campaign_id,))
        return False
    conn.execute(_EVENT, (campaign_id, row["workspace_id"], "campaign.completed", Jsonb(summary)))
    return True


def event(conn: Conn, campaign_id: UUID, workspace_id: UUID, kind: str, data: dict[str, Any]) -> None:
    """A campaign event (`publication.*`), committed with the transition it reports."""
    conn.execute(_EVENT, (campaign_id, workspace_id, kind, Jsonb(data)))
