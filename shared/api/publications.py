"""`/api/v1/publications/{id}`: move a publication to another time, or cancel it, before it fires.

- `PATCH /api/v1/publications/{id}` `{"scheduled_at": "2026-12-03T09:30:00+05:30"}`: a new time (with an
  offset, in the future, within a year). The publication's version moves on, so the message for the old
  time does nothing when it arrives, and a new delayed message for the new time is written in the same
  transaction. A `waiting` publication keeps the new time for when its channel is connected.
- `DELETE /api/v1/publications/{id}`: `cancelled`; its messages do nothing. The campaign completes when
  that was the last publication it waited for.

Both are audited (`publication.rescheduled`, `publication.cancelled`) and a 409 once the publication is
sending or has fired (published, failed, unconfirmed) or was cancelled; another workspace's publication is a
404. A campaign's publications are listed by `GET /api/v1/campaigns/{id}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from uuid import UUID

import flask
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from shared.api.models import PublicationView
from shared.api.spec import errors, json_content, uuid_path
from shared.auth import Principal, verify_token
from shared.db import audit
from shared.db import publications as db
from shared.db.pool import as_runtime, as_user, create_pool
from shared.errors import Conflict, InvalidRequest, NotFound
from shared.http import Route, json_response, parse_body
from shared.outbox import Outbox
from shared.publishing.engine import Publisher
from shared.publishing.wiring import build_publisher
from shared.settings import get_settings

_PREFIX = r"^(?:/api)?/v1"
MAX_AHEAD = timedelta(days=365)


class PublicationPatch(BaseModel):
    """`PATCH /api/v1/publications/{id}`: when to publish instead."""

    model_config = ConfigDict(extra="forbid")

    scheduled_at: AwareDatetime = Field(description="An ISO 8601 time with its offset, in the future and at most "
                                                    "a year ahead.")

    @field_validator("scheduled_at")
    @classmethod
    def _ahead(cls, value: datetime) -> datetime:
        now = datetime.now(UTC)
        if value <= now or value > now + MAX_AHEAD:
            raise ValueError(f"`scheduled_at` {value.isoformat()} must be in the future and at most a year from now "
                             f"({now.isoformat()}).")
        return value


@dataclass
class PublicationsApi:
    """The publication operations, independent of HTTP."""

    publisher: Publisher

    def reschedule(self, principal: Principal, publication_id: UUID, at: datetime) -> PublicationView:
        """A new time for a publication that has not fired."""
        now = self.publisher.clock()
        if at <= now or at > now + MAX_AHEAD:
            raise InvalidRequest(f"`scheduled_at` {at.isoformat()} must be in the future and at most a year from now "
                                 f"({now.isoformat()}).", details={"field": "scheduled_at"})
        with as_user(self.publisher.pool, principal.claims) as conn:
            seen = self._visible(conn, publication_id)
            as_runtime(conn)
            row, rows = self.publisher.reschedule(conn, publication_id, at)
            if row is None:
                raise _fired(seen)
            audit.record(conn, workspace_id=str(row["workspace_id"]), actor=str(principal.user_id),
                         action="publication.rescheduled", target_type="publication", target_id=str(row["id"]),
                         details={"provider": row["provider"], "campaign_id": str(row["campaign_id"]),
                                  "from": seen["scheduled_at"].isoformat(), "to": at.isoformat()},
                         key=f"publication.rescheduled:{row['id']}:v{row['version']}")
        Outbox(pool=self.publisher.pool, queue=self.publisher.queue).publish(rows)
        return PublicationView.model_validate(dict(row))

    def cancel(self, principal: Principal, publication_id: UUID) -> PublicationView:
        """Cancel a publication that has not fired."""
        with as_user(self.publisher.pool, principal.claims) as conn:
            seen = self._visible(conn, publication_id)
            as_runtime(conn)
            row = self.publisher.cancel(conn, publication_id)
            if row is None:
                raise _fired(seen)
            audit.record(conn, workspace_id=str(row["workspace_id"]), actor=str(principal.user_id),
                         action="publication.cancelled", target_type="publication", target_id=str(row["id"]),
                         details={"provider": row["provider"], "campaign_id": str(row["campaign_id"]),
                                  "scheduled_at": row["scheduled_at"].isoformat()},
                         key=f"publication.cancelled:{row['id']}")
        return PublicationView.model_validate(dict(row))

    @staticmethod
    def _visible(conn: Any, publication_id: UUID) -> db.PublicationRow:
        row = db.visible(conn, publication_id)
        if row is None:
            raise NotFound(f"Publication {publication_id} does not exist in your workspaces.")
        return row


def _fired(row: db.PublicationRow) -> Conflict:
    return Conflict(f"Publication {row['id']} is {row['status']}: only a scheduled or waiting publication can be "
                    "rescheduled or cancelled.", details={"status": row["status"]})


@lru_cache(maxsize=1)
def service() -> PublicationsApi:
    """This instance's publications API: its own small pool (opened lazily) and the deployment's queue."""
    settings = get_settings()
    return PublicationsApi(publisher=build_publisher(settings, create_pool(settings.database_url, max_size=2)))


def _principal(request: flask.Request) -> Principal:
    return verify_token(request.headers.get("Authorization"), get_settings())


def _publication_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError as exc:
        raise InvalidRequest(f"`publication_id` {raw!r} is not a publication id; publication ids are UUIDs.",
                             details={"field": "publication_id", "value": raw}) from exc


def patch_publication(request: flask.Request, publication_id: str) -> flask.Response:
    """`PATCH /api/v1/publications/{id}`."""
    principal = _principal(request)
    parsed = _publication_id(publication_id)
    body = parse_body(request, PublicationPatch)
    return json_response(service().reschedule(principal, parsed, body.scheduled_at).model_dump(mode="json"))


def delete_publication(request: flask.Request, publication_id: str) -> flask.Response:
    """`DELETE /api/v1/publications/{id}`."""
    principal = _principal(request)
    parsed = _publication_id(publication_id)
    return json_response(service().cancel(principal, parsed).model_dump(mode="json"))


_ONE = _PREFIX + r"/publications/(?P<publication_id>[^/]+)/?$"
ROUTES: list[Route] = [
    ("PATCH", re.compile(_ONE), patch_publication),
    ("DELETE", re.compile(_ONE), delete_publication),
]

_PUBLICATION = uuid_path("publication_id")
PATHS: dict[str, Any] = {
    "/api/v1/publications/{publication_id}": {
        "patch": {
            "summary": "Reschedule a publication that has not fired (the old time's message then does nothing)",
            "parameters": [_PUBLICATION],
            "requestBody": {"required": True, "content": json_content(PublicationPatch)},
            "responses": {"200": {"description": "The publication", "content": json_content(PublicationView)},
                          **errors(400, 401, 404, 409)},
        },
        "delete": {
            "summary": "Cancel a publication before it fires",
            "parameters": [_PUBLICATION],
            "responses": {"200": {"description": "The cancelled publication",
                                  "content": json_content(PublicationView)},
                          **errors(400, 401, 404, 409)},
        },
    },
}
MODELS: tuple[type, ...] = (PublicationView, PublicationPatch)
