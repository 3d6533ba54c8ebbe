"""Recurring schedules in the API: `POST/GET /api/v1/schedules`, `GET/DELETE /api/v1/schedules/{id}`,
`POST /api/v1/schedules/{id}/pause` and `/resume` (see `shared.api.recurring`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import flask
from qstash import QStash

from shared.api.listing import DEFAULT_LIMIT, MAX_LIMIT
from shared.api.recurring import ScheduleCreate, SchedulePage, Schedules, ScheduleView
from shared.api.service import Api
from shared.api.spec import WORKSPACE_HEADER, errors, json_content
from shared.auth import Principal, verify_token
from shared.db.pool import create_pool
from shared.delivery import Reply
from shared.errors import InvalidRequest
from shared.http import Route, json_response, parse_body
from shared.integrations.cache import upstash_cache
from shared.integrations.phonepe import phonepe_client
from shared.queue import qstash_queue, qstash_receiver
from shared.settings import get_settings
from shared.tracing import langsmith_client

_PREFIX = r"^(?:/api)?/v1"
_ID = r"(?P<schedule_id>[^/]+)"


@lru_cache(maxsize=1)
def service() -> Schedules:
    """This instance's schedules: campaigns start as `POST /api/v1/campaigns` starts them (its own small pool)."""
    settings = get_settings()
    runtime = Api(settings=settings, pool=create_pool(settings.database_url, max_size=2), queue=qstash_queue(settings),
                  phonepe_factory=lambda: phonepe_client(settings, upstash_cache(settings)),
                  tracer=langsmith_client(settings))
    return Schedules(api=runtime, qstash=QStash(settings.qstash_token.get_secret_value(), base_url=settings.qstash_url),
                     receiver=qstash_receiver(settings))


def _principal(request: flask.Request) -> Principal:
    return verify_token(request.headers.get("Authorization"), get_settings())


def _now() -> datetime:
    return datetime.now(UTC)


def _single(request: flask.Request, name: str) -> str | None:
    values = request.args.getlist(name)
    if len(values) > 1:
        raise InvalidRequest(f"Send `{name}` at most once; got {values!r}.", details={"field": name})
    return values[0] if values else None


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_LIMIT):
        raise InvalidRequest(f"`limit` must be a whole number from 1 to {MAX_LIMIT}; got {raw!r}.",
                             details={"field": "limit", "value": raw})
    return int(raw)


def post_schedule(request: flask.Request) -> flask.Response:
    """`POST /api/v1/schedules`."""
    principal = _principal(request)
    body = parse_body(request, ScheduleCreate)
    view = service().create(principal, body, workspace=request.headers.get("X-Workspace-Id"), now=_now())
    return json_response(view.model_dump(mode="json"), 201, {"Location": f"/api/v1/schedules/{view.id}"})


def list_schedules(request: flask.Request) -> flask.Response:
    """`GET /api/v1/schedules`."""
    principal = _principal(request)
    page = service().list(principal, workspace=request.headers.get("X-Workspace-Id"),
                          limit=_limit(_single(request, "limit")), cursor=_single(request, "cursor"), now=_now())
    return json_response(page.model_dump(mode="json"))


def get_schedule(request: flask.Request, schedule_id: str) -> flask.Response:
    """`GET /api/v1/schedules/{id}`."""
    return json_response(service().get(_principal(request), schedule_id, now=_now()).model_dump(mode="json"))


def pause_schedule(request: flask.Request, schedule_id: str) -> flask.Response:
    """`POST /api/v1/schedules/{id}/pause`."""
    view = service().set_status(_principal(request), schedule_id, "paused", now=_now())
    return json_response(view.model_dump(mode="json"))


def resume_schedule(request: flask.Request, schedule_id: str) -> flask.Response:
    """`POST /api/v1/schedules/{id}/resume`."""
    view = service().set_status(_principal(request), schedule_id, "active", now=_now())
    return json_response(view.model_dump(mode="json"))


def delete_schedule(request: flask.Request, schedule_id: str) -> flask.Response:
    """`DELETE /api/v1/schedules/{id}`."""
    service().delete(_principal(request), schedule_id)
    return flask.Response(status=204)


def tick(request: flask.Request) -> Reply:
    """The `scheduler` function's work: one QStash-delivered tick of a schedule (not an API route)."""
    return service().handle_tick(request.get_data(), request.headers.get("Upstash-Signature"),
                                 message_id=request.headers.get("Upstash-Message-Id"), now=_now())


ROUTES: list[Route] = [
    ("POST", re.compile(_PREFIX + r"/schedules/?$"), post_schedule),
    ("GET", re.compile(_PREFIX + r"/schedules/?$"), list_schedules),
    ("GET", re.compile(_PREFIX + rf"/schedules/{_ID}/?$"), get_schedule),
    ("DELETE", re.compile(_PREFIX + rf"/schedules/{_ID}/?$"), delete_schedule),
    ("POST", re.compile(_PREFIX + rf"/schedules/{_ID}/pause/?$"), pause_schedule),
    ("POST", re.compile(_PREFIX + rf"/schedules/{_ID}/resume/?$"), resume_schedule),
]

_PATH_ID = {"name": "schedule_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
_ONE = {"200": {"description": "The schedule", "content": json_content(ScheduleView)}}
PATHS: dict[str, Any] = {
    "/api/v1/schedules": {
        "post": {
            "summary": "Create a recurring schedule: a cron in the workspace's timezone and a move brief template",
            "description": "Each tick starts one move from the template (acting as you), which pauses for approval "
                           "as usual; e.g. `0 9 * * 1` with timezone Asia/Kolkata: every Monday 09:00 IST. A tick "
                           "the plan refuses starts nothing and shows in `last_error`.",
            "parameters": [WORKSPACE_HEADER],
            "requestBody": {"required": True, "content": json_content(ScheduleCreate)},
            "responses": {"201": {"description": "Created", "content": json_content(ScheduleView)},
                          **errors(400, 401, 404, 503)},
        },
        "get": {
            "summary": "The workspace's schedules, newest first",
            "parameters": [
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
                {"name": "cursor", "in": "query", "required": False, "description": "A page's `next_cursor`",
                 "schema": {"type": "string", "minLength": 1}},
                WORKSPACE_HEADER],
            "responses": {"200": {"description": "A page", "content": json_content(SchedulePage)},
                          **errors(400, 401, 404)},
        },
    },
    "/api/v1/schedules/{schedule_id}": {
        "get": {"summary": "One schedule, with its next runs and last tick", "parameters": [_PATH_ID],
                "responses": {**_ONE, **errors(400, 401, 404)}},
        "delete": {"summary": "Delete a schedule (no later tick starts anything)", "parameters": [_PATH_ID],
                   "responses": {"204": {"description": "Deleted"}, **errors(400, 401, 404, 503)}},
    },
    "/api/v1/schedules/{schedule_id}/pause": {
        "post": {"summary": "Pause a schedule (idempotent)", "parameters": [_PATH_ID],
                 "responses": {**_ONE, **errors(400, 401, 404, 503)}},
    },
    "/api/v1/schedules/{schedule_id}/resume": {
        "post": {"summary": "Resume a paused schedule (idempotent)", "parameters": [_PATH_ID],
                 "responses": {**_ONE, **errors(400, 401, 404, 503)}},
    },
}
MODELS: tuple[type, ...] = (ScheduleCreate, ScheduleView, SchedulePage)
