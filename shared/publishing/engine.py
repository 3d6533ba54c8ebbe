"""The publishing engine: each publication reaches its platform at its time, exactly once.

Scheduling (the execute node, `Publisher.schedule`): one publication per (artifact, target, variant),
at the brief's start date or the channel's next default slot in the workspace's timezone, and a delayed
QStash message (`not_before`) to the `publish` function written to the outbox in the same transaction.
A target whose channel is not connected is `waiting` (visible on the campaign; a trigger re-queues it,
with its message in the outbox, when the channel connects); a visual target gets its image from the asset
library at scheduling time.

Firing (`Publisher.fire`, one verified delivery of a `PublishMessage`):
1. the row must be `scheduled` at exactly the message's version and attempt and be due; anything else
   (a duplicate, a reschedule's old message, a cancelled row) changes nothing;
2. `sending`, the attempt's start, its content hash and a watch message (due when the call is presumed
   dead) commit BEFORE the platform call: a conditional UPDATE, so one delivery wins;
3. one create call through the adapter, then by the outcome's kind: `published`; `retryable` back to
   `scheduled` with backoff and a new delayed message (up to `max_attempts`, then `failed`); `reconnect`
   refreshes the credentials once and repeats the call (rejected before any effect), else the connection
   is marked `needs_reconnect` and the publication `waiting`; `permanent` fails with the platform's
   message; `ambiguous` stays `sending` and is reconciled shortly;
4. a delivery that finds a `sending` row past its watch time (a crash mid-call, or an ambiguous outcome)
   takes the reconciliation over: the adapter looks the post up by its content hash; found → `published`,
   not found → one more create once a lookup is conclusive (`lookup_settles_seconds` after the attempt
   started, when the adapter declares it); another unknown outcome ends `unconfirmed` (the marketer
   checks the account; never a blind second post).

A campaign whose execution scheduled publications stays `running` at step `publishing` until none is left
to fire; the transition that settles the last one completes it in the same transaction (and a watch
message arriving later completes it if that transition ran before execution committed `publishing`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, Protocol
from uuid import UUID

from shared.db import outbox as outbox_db
from shared.db import publications as db
from shared.db.pool import Conn, Pool, as_service
from shared.domain import OutboxItem, OutboxRow
from shared.errors import MuseError, UpstreamUnavailable
from shared.outbox import Outbox, item
from shared.publishing.messages import PublishMessage
from shared.publishing.ports import (
    CONNECTION_OF,
    ConnectionProvider,
    Credentials,
    Media,
    PlatformError,
    PostRequest,
    PostResult,
    Provider,
    PublishingAdapter,
)
from shared.publishing.scheduling import TARGETS, content_hash, next_slot, post_text, workspace_zone
from shared.queue import StepQueue

log = logging.getLogger("muse.publishing")

FUNCTION = "publish"
VISUAL: frozenset[str] = frozenset({"instagram", "facebook"})


class NotConnected(MuseError):
    """The workspace has no usable connection for a provider (never connected, or deleted)."""

    code = "not_connected"
    http_status = 409


class CredentialsSource(Protocol):
    """Decrypted connection credentials, refreshed before expiry (`shared.publishing.connections`)."""

    def credentials_for(self, workspace_id: str, provider: ConnectionProvider) -> Credentials:
        """Usable credentials; `NotConnected` when there is no connection, `PlatformError(kind="reconnect")`
        when it needs a reconnect."""
        ...

    def refreshed(self, credentials: Credentials) -> Credentials | None:
        """New credentials after the platform refused `credentials` as expired; None when they cannot be
        refreshed (no refresh token, or it was revoked)."""
        ...

    def mark_needs_reconnect(self, connection_id: str, reason: str) -> None:
        """Record the platform's reason; the channel shows `needs_reconnect` until it is connected again."""
        ...


class AssetSource(Protocol):
    """The workspace's asset library (`shared.assets`)."""

    def pick(self, workspace_id: str, *, channel: str, text: str) -> str:
        """The id of a fitting asset for a visual post, generated and stored when none fits."""
        ...

    def media(self, workspace_id: str, asset_id: str) -> Media:
        """The asset's bytes and public URL, as the adapter attaches them."""
        ...


@dataclass(frozen=True)
class PublishPolicy:
    """Timing and limits of firing (settings `MUSE_PUBLISH_*`)."""

    max_attempts: int = 5
    """Create calls a retryable failure may take before the publication fails."""
    backoff_seconds: float = 60.0
    """First retry delay; doubled per attempt (or the platform's `Retry-After` when longer)."""
    max_backoff_seconds: float = 3600.0
    call_timeout_seconds: float = 120.0
    """After this long in `sending`, the call is presumed dead and its post is reconciled."""
    settle_seconds: float = 10.0
    """After an ambiguous outcome, how long to wait before looking the post up."""
    early_tolerance_seconds: float = 1.0
    """A delivery this close to its time fires (QStash delays are whole seconds)."""
    max_recreates: int = 1
    """Creates after an attempt whose post a lookup could not find; then `unconfirmed`."""


@dataclass(frozen=True)
class Publisher:
    """The engine's one seam: every field is required (production wiring: `shared.publishing.wiring`)."""

    pool: Pool
    adapters: Callable[[Provider], PublishingAdapter]
    credentials: CredentialsSource
    assets: AssetSource
    clock: Callable[[], datetime]
    queue: StepQueue
    policy: PublishPolicy

    @property
    def outbox(self) -> Outbox:
        return Outbox(pool=self.pool, queue=self.queue)

    # -- scheduling ---------------------------------------------------------------------------------------

    def schedule(self, *, campaign_id: str, workspace_id: str, draft_keys: list[str], brief: dict[str, Any],
                 workspace_settings: dict[str, Any]) -> dict[str, Any]:
        """One publication per (released artifact, target, variant) and its delayed message, idempotently."""
        now = self.clock()
        zone = workspace_zone(workspace_settings)
        start = _date(brief.get("start_date"))
        with as_service(self.pool) as conn:
            released = db.released_artifacts(conn, campaign_id)
            contents = db.artifact_contents(conn, list(released.values()))
        plans: list[db.NewPublication] = []
        for key in sorted(draft_keys):
            channel, _, variant = key.partition("#")
            variant = variant or "a"
            artifact_id = released.get((channel, variant))
            if artifact_id is None or channel not in TARGETS:
                continue
            for target in TARGETS[channel]:
                plan = self._plan(workspace_id, artifact_id, channel, variant, target.provider, target.required,
                                  when=next_slot(target.provider, zone, now=now, not_before_day=start))
                if plan is not None:
                    plans.append(self._with_asset(workspace_id, plan, post_text(channel, contents[artifact_id])))
        rows: list[OutboxRow] = []
        with as_service(self.pool) as conn:
            for plan in plans:
                row = db.insert(conn, plan)
                if row is None or row["status"] != "scheduled":
                    continue
                rows += outbox_db.add(conn, row["campaign_id"], [self._fire_item(row)])
        self.outbox.publish(rows)
        with as_service(self.pool) as conn:
            waiting_on = db.unsettled(conn, UUID(campaign_id))
        return {"pending": len(waiting_on),
                "publications": [{"channel": p["channel"], "provider": p["provider"], "variant": p["variant"],
                                  "status": p["status"], "scheduled_at": p["scheduled_at"].isoformat()}
                                 for p in plans]}

    def _plan(self, workspace_id: str, artifact_id: str, channel: str, variant: str, provider: Provider,
              required: bool, *, when: datetime) -> db.NewPublication | None:
        base: db.NewPublication = {"artifact_id": artifact_id, "channel": channel, "provider": provider,
                                   "variant": variant, "status": "scheduled", "waiting_reason": None,
                                   "scheduled_at": when, "asset_id": None, "connection_id": None, "error": None}
        try:
            credentials = self.credentials.credentials_for(workspace_id, CONNECTION_OF[provider])
        except NotConnected as exc:
            if not required:
                return None
            return base | {"status": "waiting", "waiting_reason": "not_connected", "error": exc.message}
        except PlatformError as exc:
            if exc.kind in ("retryable", "ambiguous"):
                raise UpstreamUnavailable(f"{provider} credentials could not be read: {exc.message}") from exc
            if not required:
                return None
            return base | {"status": "waiting", "waiting_reason": "needs_reconnect",
                           "error": _reconnect_reason(provider, exc.message)}
        missing = _missing_account(provider, credentials)
        if missing is not None:
            if not required:
                return None
            return base | {"status": "waiting", "waiting_reason": "not_connected", "error": missing,
                           "connection_id": credentials.connection_id}
        return base | {"connection_id": credentials.connection_id}

    def _with_asset(self, workspace_id: str, plan: db.NewPublication, text: str) -> db.NewPublication:
        """A visual target's image, picked (or generated) now; when that fails for good, it is tried again
        when the publication fires."""
        if plan["provider"] not in VISUAL or plan["status"] != "scheduled":
            return plan
        try:
            return plan | {"asset_id": self.assets.pick(workspace_id, channel=plan["channel"], text=text)}
        except MuseError as exc:
            if exc.retryable:
                raise
            log.warning("no asset for %s yet: %s", plan["channel"], exc.message)
            return plan

    def _fire_item(self, row: db.PublicationRow, *, purpose: Literal["fire", "watch"] = "fire",
                   at: datetime | None = None, suffix: str = "") -> OutboxItem:
        """The delayed message that fires `row` at `at` (its `next_attempt_at`), or watches its attempt."""
        message = PublishMessage(publication_id=row["id"], version=row["version"], attempt=row["attempts"],
                                 purpose=purpose)
        return item(FUNCTION, message, not_before=_ceil_second(at or row["next_attempt_at"]), dedup_suffix=suffix)

    # -- firing -------------------------------------------------------------------------------------------

    def fire(self, message: PublishMessage) -> dict[str, Any]:
        """Apply one delivery of a publish message, at most once (see module docstring)."""
        now = self.clock()
        with as_service(self.pool) as conn:
            row = db.get(conn, message.publication_id)
        if row is None:
            return {"status": "ignored", "reason": f"publication {message.publication_id} does not exist"}
        if row["version"] != message.version:
            return {"status": "stale", "reason": "the publication was rescheduled or cancelled since"}
        if row["status"] == "sending":
            if row["next_attempt_at"] > now:
                return {"status": "in_flight", "attempt": row["attempts"]}
            return self._reconcile(row, now)
        if row["status"] != "scheduled" or row["attempts"] != message.attempt or message.purpose == "watch":
            completed = message.purpose == "watch" and row["status"] in db.SETTLED_STATUSES and self._settle_late(row)
            return {"status": "duplicate", "publication": row["status"], "campaign_completed": completed,
                    "campaign_id": str(row["campaign_id"])}
        if row["next_attempt_at"] > now + timedelta(seconds=self.policy.early_tolerance_seconds):
            self.outbox.send(row["campaign_id"], [self._fire_item(row, suffix=f"-early{int(now.timestamp())}")])
            return {"status": "early", "due": row["next_attempt_at"].isoformat()}
        return self._attempt(row, now)

    def _attempt(self, row: db.FiringRow, now: datetime) -> dict[str, Any]:
        provider = _provider(row["provider"])
        credentials = self._credentials(row, now)
        if not isinstance(credentials, Credentials):
            return credentials
        try:
            post = self._post(row, credentials)
        except MuseError as exc:
            if exc.retryable:
                raise
            return self._end(row, "failed", f"The {provider} post could not be prepared: {exc.message}")
        watch_at = now + timedelta(seconds=self.policy.call_timeout_seconds)
        with as_service(self.pool) as conn:
            claimed = db.claim(conn, row["id"], version=row["version"], attempt=row["attempts"], now=now,
                               due_by=now + timedelta(seconds=self.policy.early_tolerance_seconds),
                               content_hash=post.content_hash, watch_at=watch_at,
                               connection_id=credentials.connection_id)
            if claimed is None:
                return {"status": "duplicate", "reason": "another delivery claimed this attempt"}
            watch = outbox_db.add(conn, row["campaign_id"], [self._fire_item(claimed, purpose="watch")])
        self.outbox.publish(watch)
        return self._call(claimed, self._saving_parts(post, claimed), credentials, provider)

    def _call(self, row: db.PublicationRow, post: PostRequest, credentials: Credentials,
              provider: Provider) -> dict[str, Any]:
        """One create call (two when an expired token is refreshed) and what its outcome makes of the row."""
        adapter = self.adapters(provider)
        refreshed = False
        while True:
            try:
                result = adapter.publish(credentials, post)
            except PlatformError as exc:
                if exc.kind == "reconnect" and not refreshed:
                    fresh = self.credentials.refreshed(credentials)
                    if fresh is not None:
                        credentials, refreshed = fresh, True
                        continue
                return self._failed_call(row, exc, credentials)
            except MuseError as exc:
                return self._failed_call(row, PlatformError(exc.message, kind="ambiguous", provider=provider),
                                         credentials)
            return self._published(row, result)

    def _failed_call(self, row: db.PublicationRow, exc: PlatformError, credentials: Credentials) -> dict[str, Any]:
        now = self.clock()
        attempt = row["attempts"]
        if exc.kind == "retryable":
            if attempt >= self.policy.max_attempts:
                return self._end(row, "failed", f"Gave up after {attempt} attempts: {exc.message}")
            delay = min(self.policy.backoff_seconds * 2 ** (attempt - 1), self.policy.max_backoff_seconds)
            due = now + timedelta(seconds=max(delay, float(exc.retry_after_seconds or 0)))
            with as_service(self.pool) as conn:
                if not db.retry(conn, row["id"], attempt=attempt, at=due, error=exc.message, now=now):
                    return {"status": "duplicate"}
                again = outbox_db.add(conn, row["campaign_id"], [self._fire_item(row, at=due)])
            self.outbox.publish(again)
            return {"status": "retrying", "attempt": attempt, "due": due.isoformat(), "error": exc.message}
        if exc.kind == "reconnect":
            reason = _reconnect_reason(_provider(row["provider"]), exc.message)
            self.credentials.mark_needs_reconnect(credentials.connection_id, exc.message)
            return self._wait(row, "needs_reconnect", reason, credentials.connection_id, attempt=attempt)
        if exc.kind == "permanent":
            return self._end(row, "failed", exc.message)
        at = now + timedelta(seconds=self.policy.settle_seconds)
        with as_service(self.pool) as conn:
            if not db.watch(conn, row["id"], attempt=attempt, at=at, now=now, error=f"Unknown outcome: {exc.message}"):
                return {"status": "duplicate"}
            rows = outbox_db.add(conn, row["campaign_id"], [self._fire_item(
                row, purpose="watch", at=at, suffix=f"-settle{int(at.timestamp())}")])
        self.outbox.publish(rows)
        return {"status": "reconciling", "at": at.isoformat(), "error": exc.message}

    def _reconcile(self, seen: db.FiringRow, now: datetime) -> dict[str, Any]:
        """A `sending` row past its watch time: look its post up before anything else."""
        watch_at = now + timedelta(seconds=self.policy.call_timeout_seconds)
        with as_service(self.pool) as conn:
            row = db.take_over(conn, seen["id"], attempt=seen["attempts"], seen=seen["next_attempt_at"], now=now,
                               watch_at=watch_at)
            if row is None:
                return {"status": "duplicate", "reason": "another delivery is reconciling this attempt"}
            watch = outbox_db.add(conn, row["campaign_id"], [self._fire_item(
                row, purpose="watch", suffix=f"-r{int(now.timestamp())}")])
        self.outbox.publish(watch)
        provider = _provider(row["provider"])
        credentials = self._credentials(seen, now, attempt=row["attempts"])
        if not isinstance(credentials, Credentials):
            return credentials
        try:
            post = self._saving_parts(self._post(seen, credentials, stored_hash=row["content_hash"]), row)
        except MuseError as exc:
            if exc.retryable:
                raise
            return self._end(row, "unconfirmed", f"The post could not be looked up ({exc.message}); check the "
                             "account before posting it again.")
        adapter = self.adapters(provider)
        started = row["attempt_started_at"] or now
        try:
            found = adapter.reconcile(credentials, post, started - timedelta(minutes=1))
        except PlatformError as exc:
            if exc.kind == "reconnect":
                return self._failed_call(row, exc, credentials)
            if exc.kind == "permanent":
                return self._end(row, "unconfirmed", f"The post could not be looked up ({exc.message}); check the "
                                 "account before posting it again.")
            return {"status": "reconciling", "error": exc.message, "at": watch_at.isoformat()}
        if found is not None:
            return self._published(row, found)
        conclusive_at = started + timedelta(seconds=float(getattr(adapter, "lookup_settles_seconds", 0)))
        if conclusive_at > now:
            with as_service(self.pool) as conn:
                db.watch(conn, row["id"], attempt=row["attempts"], at=conclusive_at, now=now, error=row["error"])
                rows = outbox_db.add(conn, row["campaign_id"], [self._fire_item(
                    row, purpose="watch", at=conclusive_at, suffix=f"-c{int(conclusive_at.timestamp())}")])
            self.outbox.publish(rows)
            return {"status": "reconciling", "at": conclusive_at.isoformat()}
        if row["recreates"] >= self.policy.max_recreates:
            return self._end(row, "unconfirmed", "The platform did not confirm the post and a lookup did not find "
                             f"it ({row['error'] or 'the call did not return'}); check the account before posting "
                             "it again.")
        with as_service(self.pool) as conn:
            again = db.recreate(conn, row["id"], attempt=row["attempts"], now=now, watch_at=watch_at)
            if again is None:
                return {"status": "duplicate"}
            watch = outbox_db.add(conn, again["campaign_id"], [self._fire_item(again, purpose="watch")])
        self.outbox.publish(watch)
        post = replace(post, posted_parts=tuple(again["parts"]))
        return self._call(again, self._saving_parts(post, again), credentials, provider)

    def _credentials(self, row: db.FiringRow, now: datetime, *,
                     attempt: int | None = None) -> Credentials | dict[str, Any]:
        """The connection's credentials, or what moving the row to `waiting` did."""
        provider = _provider(row["provider"])
        at = row["attempts"] if attempt is None else attempt
        try:
            credentials = self.credentials.credentials_for(str(row["workspace_id"]), CONNECTION_OF[provider])
        except NotConnected as exc:
            return self._wait(row, "not_connected", exc.message, None, attempt=at)
        except PlatformError as exc:
            if exc.kind in ("retryable", "ambiguous"):
                raise UpstreamUnavailable(f"{provider} credentials could not be read: {exc.message}") from exc
            return self._wait(row, "needs_reconnect", _reconnect_reason(provider, exc.message), None, attempt=at)
        missing = _missing_account(provider, credentials)
        if missing is not None:
            return self._wait(row, "not_connected", missing, credentials.connection_id, attempt=at)
        return credentials

    def _post(self, row: db.FiringRow, credentials: Credentials, *, stored_hash: str | None = None) -> PostRequest:
        provider = _provider(row["provider"])
        text = post_text(row["channel"], row["content"])
        media: tuple[Media, ...] = ()
        if provider in VISUAL:
            asset_id = row["asset_id"] or self.assets.pick(str(row["workspace_id"]), channel=row["channel"], text=text)
            if row["asset_id"] is None:
                with as_service(self.pool) as conn:
                    db.set_asset(conn, row["id"], asset_id)
            media = (self.assets.media(str(row["workspace_id"]), asset_id),)
        return PostRequest(publication_id=str(row["id"]), provider=provider, channel=row["channel"],
                           content=row["content"], posted_parts=tuple(row["parts"]),
                           content_hash=stored_hash or content_hash(text, [m.asset_id for m in media]),
                           media=media)

    def _saving_parts(self, post: PostRequest, row: db.PublicationRow) -> PostRequest:
        """`post` with a callback that saves each accepted part of a multi-part post (an X thread, a
        WhatsApp recipient) before the next is sent, so a later attempt resumes after them."""
        def save(parts: tuple[str, ...]) -> None:
            with as_service(self.pool) as conn:
                db.save_parts(conn, row["id"], attempt=row["attempts"], parts=list(parts), now=self.clock())

        return replace(post, on_part=save)

    # -- transitions that settle --------------------------------------------------------------------------

    def _published(self, row: db.PublicationRow, result: PostResult) -> dict[str, Any]:
        now = self.clock()
        with as_service(self.pool) as conn:
            db.lock_campaign(conn, row["campaign_id"])
            if not db.published(conn, row["id"], attempt=row["attempts"], external_id=result.external_id,
                                url=result.url, parts=list(result.parts), published_at=result.published_at, now=now):
                return {"status": "duplicate"}
            db.event(conn, row["campaign_id"], row["workspace_id"], "publication.published", _event(
                row, status="published", external_id=result.external_id, url=result.url))
            completed = self._settle(conn, row["campaign_id"])
        return {"status": "published", "external_id": result.external_id, "url": result.url,
                "campaign_id": str(row["campaign_id"]), "campaign_completed": completed}

    def _end(self, row: db.PublicationRow, status: Literal["failed", "unconfirmed"], error: str) -> dict[str, Any]:
        with as_service(self.pool) as conn:
            db.lock_campaign(conn, row["campaign_id"])
            if not db.end(conn, row["id"], attempt=row["attempts"], status=status, error=error, now=self.clock()):
                return {"status": "duplicate"}
            db.event(conn, row["campaign_id"], row["workspace_id"], f"publication.{status}",
                     _event(row, status=status, error=error))
            completed = self._settle(conn, row["campaign_id"])
        log.warning("publication %s %s: %s", row["id"], status, error)
        return {"status": status, "error": error, "campaign_id": str(row["campaign_id"]),
                "campaign_completed": completed}

    def _wait(self, row: db.PublicationRow, reason: db.WaitingReason, error: str, connection_id: str | None, *,
              attempt: int) -> dict[str, Any]:
        with as_service(self.pool) as conn:
            db.lock_campaign(conn, row["campaign_id"])
            if not db.wait(conn, row["id"], attempt=attempt, reason=reason, error=error, connection_id=connection_id,
                           now=self.clock()):
                return {"status": "duplicate"}
            db.event(conn, row["campaign_id"], row["workspace_id"], "publication.waiting",
                     _event(row, status="waiting", error=error))
            completed = self._settle(conn, row["campaign_id"])
        return {"status": "waiting", "reason": reason, "error": error, "campaign_id": str(row["campaign_id"]),
                "campaign_completed": completed}

    def _settle_late(self, row: db.PublicationRow) -> bool:
        """A watch message arriving after its publication settled completes the campaign if nothing else is
        left: it heals a publication that settled before execution's step committed the campaign's
        `publishing` (the settle it ran then found the campaign not yet waiting)."""
        with as_service(self.pool) as conn:
            db.lock_campaign(conn, row["campaign_id"])
            return self._settle(conn, row["campaign_id"])

    def _settle(self, conn: Conn, campaign_id: UUID) -> bool:
        summary: dict[str, int] = {}
        for p in db.of_campaign(conn, campaign_id):
            summary[p["status"]] = summary.get(p["status"], 0) + 1
        return db.settle_campaign(conn, campaign_id, {"publications": summary})

    # -- the API's operations -----------------------------------------------------------------------------

    def reschedule(self, conn: Conn, publication_id: UUID,
                   at: datetime) -> tuple[db.PublicationRow | None, list[OutboxRow]]:
        """A new time in the caller's transaction, with its message (publish the rows after commit); the row is
        None when the publication already fired."""
        row = db.reschedule(conn, publication_id, at=at, now=self.clock())
        if row is None or row["status"] != "scheduled":
            return row, []
        return row, outbox_db.add(conn, row["campaign_id"], [self._fire_item(row)])

    def cancel(self, conn: Conn, publication_id: UUID) -> db.PublicationRow | None:
        """Cancel in the caller's transaction (the campaign may complete with it); None when it already fired."""
        found = db.get(conn, publication_id)
        if found is None:
            return None
        db.lock_campaign(conn, found["campaign_id"])
        row = db.cancel(conn, publication_id, now=self.clock())
        if row is not None:
            db.event(conn, row["campaign_id"], row["workspace_id"], "publication.cancelled",
                     _event(row, status="cancelled"))
            self._settle(conn, row["campaign_id"])
        return row


def _event(row: db.PublicationRow, **fields: Any) -> dict[str, Any]:
    return {"id": str(row["id"]), "channel": row["channel"], "provider": row["provider"], "variant": row["variant"],
            **fields}


def _provider(name: str) -> Provider:
    if name not in CONNECTION_OF:
        raise MuseError(f"Unknown publishing provider {name!r}.")
    return name


def _reconnect_reason(provider: Provider, message: str) -> str:
    return f"{provider} needs reconnect: {message}"


def _missing_account(provider: Provider, credentials: Credentials) -> str | None:
    """Why a connection cannot serve `provider` (a Meta connection without an Instagram account), if so."""
    if provider == "instagram" and not credentials.settings.get("instagram_account_id"):
        return "The Meta connection has no Instagram business account linked to its Page."
    if provider == "facebook" and not credentials.account_id:
        return "The Meta connection has no Facebook Page."
    return None


def _date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _ceil_second(at: datetime) -> datetime:
    """QStash takes whole seconds: round up so a delivery is never early."""
    whole = at.replace(microsecond=0)
    return whole if whole == at else whole + timedelta(seconds=1)


def utc_now() -> datetime:
    """The production clock."""
    return datetime.now(UTC)
