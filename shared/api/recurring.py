"""Recurring work: a cron in the workspace's timezone starts a move from a brief template at each tick.

Each schedule is a row (`public.recurring_schedules`) and a QStash schedule whose id derives from the row's
(`muse-schedule-<id>`), with `CRON_TZ=<timezone>` in front of its cron, delivering `ScheduleTick` to the
`scheduler` function. A tick starts its move through the same path as `POST /api/v1/campaigns`, acting as the
member who created the schedule (so their membership, the plan's limits and the AI-spend caps all apply), keyed
by the tick's QStash message id: a redelivered or duplicated tick starts one move. A tick the plan refuses (starts
per day, credits) starts nothing and is recorded on the schedule (`last_error`); the next tick tries again.

The row and the QStash schedule change in one transaction: QStash is called before the commit, so a refused
QStash call leaves no row, and a commit that fails after the call leaves a QStash schedule whose ticks find no
row and start nothing.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from qstash import QStash, Receiver
from qstash.errors import QStashError

from shared.api.models import CreateCampaign
from shared.api.service import Api
from shared.auth import Principal, choose_workspace
from shared.campaigns.schemas import Brief, CampaignKind
from shared.db import audit
from shared.db import campaigns as campaigns_db
from shared.db import schedules as db
from shared.db.pool import Conn, as_runtime, as_service, as_user
from shared.db.workspaces import workspace_timezone
from shared.delivery import FailureCallback, Reply, deliver
from shared.errors import Forbidden, InvalidRequest, MuseError, NotFound, PermanentStepError, UpstreamUnavailable

log = logging.getLogger("muse.schedules")

DEFAULT_TIMEZONE = "Asia/Kolkata"
QSTASH_ID_PREFIX = "muse-schedule-"
TICK_RETRIES = 3


class ScheduleTick(BaseModel):
    """What each tick of a schedule's QStash schedule delivers to the `scheduler` function."""

    model_config = ConfigDict(extra="forbid")

    schedule_id: uuid.UUID


class ScheduleCreate(BaseModel):
    """`POST /api/v1/schedules`: when (cron + timezone) and what (a move's brief template)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120, pattern=r"^[^\x00]*\S[^\x00]*$")
    cron: str = Field(min_length=9, max_length=120, pattern=r"^[^\x00]*$",
                      description="Five fields (minute hour day-of-month month day-of-week) in `timezone`, "
                                  "e.g. `0 9 * * 1` for every Monday 09:00.")
    timezone: str | None = Field(default=None, max_length=64, pattern=r"^[^\x00]*$",
                                 description="IANA timezone of the cron; default the workspace's (Asia/Kolkata).")
    kind: CampaignKind = "move"
    brief: Brief = Field(description="The template each tick starts; its `start_date` is the tick's day, so the "
                                     "template carries no dates.")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 5 or "CRON_TZ" in value.upper() or "TZ=" in value.upper():
            raise ValueError(f"{value!r} is not a five-field cron (minute hour day month weekday, e.g. `0 9 * * 1`); "
                             "put the timezone in `timezone`, not in the cron.")
        if not croniter.is_valid(" ".join(fields)):
            raise ValueError(f"{value!r} is not a valid cron expression (e.g. `0 9 * * 1`: Mondays 09:00).")
        return " ".join(fields)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA timezone (e.g. `Asia/Kolkata`).") from exc
        return value

    @field_validator("brief")
    @classmethod
    def _undated(cls, value: Brief) -> Brief:
        if value.start_date is not None or value.end_date is not None:
            raise ValueError("A schedule's brief carries no `start_date`/`end_date`: each tick's move starts on the "
                             "tick's day. Remove them.")
        return value


class ScheduleView(BaseModel):
    """A schedule as the API shows it."""

    id: str
    workspace_id: str
    name: str
    cron: str
    timezone: str
    kind: CampaignKind
    brief: dict[str, Any]
    status: Literal["active", "paused"]
    next_runs: list[datetime] = Field(description="The next three ticks (empty while paused), with the offset of "
                                                  "the schedule's timezone.")
    ticks: int = Field(description="Moves started so far.")
    last_tick_at: datetime | None
    last_campaign_id: str | None
    last_error: dict[str, Any] | None = Field(description="Why the last tick started nothing (e.g. the plan's "
                                                          "`campaign_starts_per_day`); null after a tick that did.")
    created_at: datetime
    created_by: str


class SchedulePage(BaseModel):
    """One page of the workspace's schedules, newest first."""

    items: list[ScheduleView]
    next_cursor: str | None


def next_runs(cron: str, timezone: str, *, after: datetime, count: int = 3) -> list[datetime]:
    """The next `count` times `cron` fires in `timezone` after `after`."""
    runs = croniter(cron, after.astimezone(ZoneInfo(timezone)))
    return [runs.get_next(datetime) for _ in range(count)]


def qstash_schedule_id(schedule_id: uuid.UUID | str) -> str:
    return f"{QSTASH_ID_PREFIX}{schedule_id}"


def _view(row: dict[str, Any], now: datetime) -> ScheduleView:
    return ScheduleView(
        id=str(row["id"]), workspace_id=str(row["workspace_id"]), name=row["name"], cron=row["cron"],
        timezone=row["timezone"], kind=row["kind"], brief=row["brief"], status=row["status"],
        next_runs=next_runs(row["cron"], row["timezone"], after=now) if row["status"] == "active" else [],
        ticks=row["ticks"], last_tick_at=row["last_tick_at"],
        last_campaign_id=str(row["last_campaign_id"]) if row["last_campaign_id"] else None,
        last_error=row["last_error"], created_at=row["created_at"], created_by=str(row["created_by"]))


def _schedule_uuid(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise InvalidRequest(f"{raw!r} is not a schedule id; schedule ids are UUIDs.",
                             details={"field": "schedule_id"}) from exc


@dataclass(frozen=True)
class Schedules:
    """The schedules API and the tick handler of one instance."""

    api: Api
    qstash: QStash
    receiver: Receiver

    def _qstash(self, what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except QStashError as exc:
            raise UpstreamUnavailable(f"QStash refused to {what}: {exc}. Nothing was changed; retry.") from exc

    def _workspace(self, conn: Conn, principal: Principal, requested: str | None) -> str:
        return choose_workspace(campaigns_db.memberships(conn), principal, requested)

    def create(self, principal: Principal, body: ScheduleCreate, *, workspace: str | None,
               now: datetime) -> ScheduleView:
        """Create the schedule and its QStash schedule (one transaction; audited)."""
        schedule_id = uuid.uuid4()
        with as_user(self.api.pool, principal.claims) as conn:
            workspace_id = self._workspace(conn, principal, workspace)
            timezone = body.timezone or workspace_timezone(conn, workspace_id) or DEFAULT_TIMEZONE
            row = db.insert(conn, schedule_id=schedule_id, workspace_id=workspace_id,
                            created_by=str(principal.user_id), name=body.name.strip(), cron=body.cron,
                            timezone=timezone, kind=body.kind,
                            brief=body.brief.model_dump(mode="json", exclude_none=True))
            as_runtime(conn)
            audit.record(conn, workspace_id=workspace_id, actor=str(principal.user_id), action="schedule.created",
                         target_type="schedule", target_id=str(schedule_id),
                         details={"cron": body.cron, "timezone": timezone, "kind": body.kind})
            self._qstash("create the schedule", self.qstash.schedule.create_json,
                         destination=self.api.settings.function_url("scheduler"),
                         cron=f"CRON_TZ={timezone} {body.cron}",
                         body=ScheduleTick(schedule_id=schedule_id).model_dump(mode="json"),
                         schedule_id=qstash_schedule_id(schedule_id), retries=TICK_RETRIES)
        return _view(row, now)

    def list(self, principal: Principal, *, workspace: str | None, limit: int, cursor: str | None,
             now: datetime) -> SchedulePage:
        """The workspace's schedules, newest first."""
        before = _cursor(cursor)
        with as_user(self.api.pool, principal.claims) as conn:
            workspace_id = self._workspace(conn, principal, workspace)
            rows = db.page(conn, workspace_id, limit=limit, before=before)
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1] if more and rows else None
        return SchedulePage(items=[_view(r, now) for r in rows],
                            next_cursor=f"{last['created_at'].isoformat()}|{last['id']}" if last else None)

    def get(self, principal: Principal, raw_id: str, *, now: datetime) -> ScheduleView:
        schedule_id = _schedule_uuid(raw_id)
        with as_user(self.api.pool, principal.claims) as conn:
            row = db.get(conn, schedule_id)
        if row is None:
            raise NotFound(f"Schedule {schedule_id} does not exist in your workspaces.")
        return _view(row, now)

    def set_status(self, principal: Principal, raw_id: str, status: Literal["active", "paused"], *,
                   now: datetime) -> ScheduleView:
        """Pause or resume (idempotent: pausing a paused schedule changes nothing)."""
        schedule_id = _schedule_uuid(raw_id)
        with as_user(self.api.pool, principal.claims) as conn:
            current = db.get(conn, schedule_id, lock=True)
            if current is None:
                raise NotFound(f"Schedule {schedule_id} does not exist in your workspaces.")
            row = db.set_status(conn, schedule_id, status)
            if row is None:
                raise NotFound(f"Schedule {schedule_id} does not exist in your workspaces.")
            if current["status"] != status:
                as_runtime(conn)
                audit.record(conn, workspace_id=str(row["workspace_id"]), actor=str(principal.user_id),
                             action="schedule.paused" if status == "paused" else "schedule.resumed",
                             target_type="schedule", target_id=str(schedule_id), details={})
                verb = self.qstash.schedule.pause if status == "paused" else self.qstash.schedule.resume
                self._qstash(f"{'pause' if status == 'paused' else 'resume'} the schedule", verb,
                             qstash_schedule_id(schedule_id))
        return _view(row, now)

    def delete(self, principal: Principal, raw_id: str) -> None:
        """Delete the schedule and its QStash schedule; a tick already in flight finds no row and does nothing."""
        schedule_id = _schedule_uuid(raw_id)
        with as_user(self.api.pool, principal.claims) as conn:
            row = db.get(conn, schedule_id, lock=True)
            if row is None:
                raise NotFound(f"Schedule {schedule_id} does not exist in your workspaces.")
            db.delete(conn, schedule_id)
            as_runtime(conn)
            audit.record(conn, workspace_id=str(row["workspace_id"]), actor=str(principal.user_id),
                         action="schedule.deleted", target_type="schedule", target_id=str(schedule_id),
                         details={"cron": row["cron"], "timezone": row["timezone"]})
            self._qstash("delete the schedule", self.qstash.schedule.delete, qstash_schedule_id(schedule_id))

    def handle_tick(self, body: bytes, signature: str | None, *, message_id: str | None, now: datetime) -> Reply:
        """One verified tick → at most one move (keyed by the tick's QStash message id)."""
        return deliver(self.receiver, url=self.api.settings.function_url("scheduler"), body=body,
                       signature=signature, on_message=lambda raw: self._tick(raw, message_id, now),
                       on_failure=_ignore_failure)

    def _tick(self, raw: Any, message_id: str | None, now: datetime) -> Reply:
        try:
            tick = ScheduleTick.model_validate(raw)
        except ValidationError as exc:
            raise PermanentStepError(f"Invalid schedule tick: {exc.errors(include_url=False)}") from exc
        with as_service(self.api.pool) as conn:
            row = db.get(conn, tick.schedule_id)
            member = row is not None and db.creator_is_member(conn, tick.schedule_id)
        if row is None:
            return Reply(200, {"status": "ignored", "reason": "the schedule was deleted"})
        if row["status"] != "active":
            return Reply(200, {"status": "ignored", "reason": "the schedule is paused"})
        if not member:
            return self._skip(tick.schedule_id, now, Forbidden(
                f"Schedule {tick.schedule_id} acts as its creator {row['created_by']}, who is no longer a member of "
                f"workspace {row['workspace_id']}; a current member should create it again (and delete this one)."))
        zone = ZoneInfo(row["timezone"])
        tick_key = message_id or now.astimezone(zone).strftime("%Y%m%dT%H%M")
        brief = {**row["brief"], "start_date": now.astimezone(zone).date().isoformat()}
        principal = Principal(user_id=row["created_by"], claims={
            "sub": str(row["created_by"]), "role": "authenticated", "aud": "authenticated",
            "app_metadata": {"workspace_id": str(row["workspace_id"])}})
        try:
            accepted, created = self.api.create_campaign(
                principal, CreateCampaign(kind=row["kind"], brief=Brief.model_validate(brief)),
                idempotency_key=f"schedule-{tick.schedule_id}-{tick_key}", workspace=str(row["workspace_id"]))
        except MuseError as exc:
            if exc.http_status >= 500:
                raise
            return self._skip(tick.schedule_id, now, exc)
        except ValidationError as exc:
            raise PermanentStepError(f"The schedule's brief no longer validates: {exc.errors(include_url=False)}") \
                from exc
        with as_service(self.api.pool) as conn:
            db.record_tick(conn, tick.schedule_id, campaign_id=accepted.id, error=None, counted=created)
        return Reply(200, {"status": "started" if created else "duplicate", "campaign_id": str(accepted.id)})


    def _skip(self, schedule_id: uuid.UUID, now: datetime, reason: MuseError) -> Reply:
        """A tick that starts nothing: say why on the schedule; QStash need not retry (the next tick tries again)."""
        with as_service(self.api.pool) as conn:
            db.record_tick(conn, schedule_id, campaign_id=None, counted=False,
                           error={"code": reason.code, "message": reason.message, "at": now.isoformat()})
        log.info("schedule %s tick started nothing: %s", schedule_id, reason.code)
        return Reply(200, {"status": "skipped", "reason": reason.code})


def _ignore_failure(callback: FailureCallback) -> Reply:
    return Reply(200, {"status": "ignored", "reason": "the next tick runs anyway"})


def _cursor(raw: str | None) -> tuple[datetime, uuid.UUID] | None:
    if raw is None:
        return None
    stamp, _, ident = raw.partition("|")
    try:
        return datetime.fromisoformat(stamp), uuid.UUID(ident)
    except ValueError as exc:
        raise InvalidRequest(f"{raw!r} is not a cursor this API gave; send `next_cursor` from the previous page.",
                             details={"field": "cursor"}) from exc

