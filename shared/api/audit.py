"""`GET /api/v1/audit`: the workspace's audit log, newest first, filtered and paged with a cursor.

Query parameters: `action` (repeated or comma-separated, from the closed vocabulary), `actor` (a user
id, `system` or `function:<name>`), `target_type`, `target_id`, `since` / `until` (ISO 8601 with a time
zone; `since` inclusive, `until` exclusive: an empty range is an empty page), `limit` (1–100, default
50) and `cursor` (a page's `next_cursor`, passed back unchanged). Members read their workspace's log
under row-level security.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

import flask
from pydantic import BaseModel

from shared.api.listing import QueryArgs
from shared.api.spec import errors, json_content
from shared.auth import Principal, choose_workspace, verify_token
from shared.db import audit as db
from shared.db.campaigns import memberships
from shared.db.pool import Pool, as_user, create_pool
from shared.errors import InvalidRequest
from shared.http import Route, json_response
from shared.settings import get_settings

_PREFIX = r"^(?:/api)?/v1"
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
_ACTOR = re.compile(r"^(system|function:[a-z_]{1,40}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                    r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$")
_PARAMS = ("action", "actor", "target_type", "target_id", "since", "until", "limit", "cursor")


class AuditEntryView(BaseModel):
    """One audit entry: who (`actor`) did what (`action`) to which `target`, when, with a few details."""

    id: int
    actor: str
    """A user id, `system`, or `function:<name>` for a change a function made on its own."""
    action: db.AuditAction
    target_type: db.AuditTarget
    target_id: str | None
    details: dict[str, Any]
    created_at: datetime


class AuditPage(BaseModel):
    """A page of the audit log; pass `next_cursor` as `cursor` for the next one (null: no more)."""

    workspace_id: str
    entries: list[AuditEntryView]
    next_cursor: str | None


class AuditCursor(NamedTuple):
    """The last entry shown, by its sort key (`created_at DESC, id DESC`)."""

    created_at: datetime
    id: int

    def encode(self) -> str:
        """The opaque form clients pass back as `cursor`."""
        raw = json.dumps({"c": self.created_at.isoformat(), "i": self.id}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> AuditCursor:
        """Parse a cursor made by `encode`, or raise `InvalidRequest` naming `cursor`."""
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            created_at = datetime.fromisoformat(data["c"])
            if created_at.tzinfo is None or not isinstance(data["i"], int) or isinstance(data["i"], bool):
                raise ValueError("not a cursor")
            return cls(created_at, data["i"])
        except (binascii.Error, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InvalidRequest(f"`cursor` {token!r} is not a cursor this API issued; pass a page's "
                                 "`next_cursor` back unchanged.", details={"field": "cursor", "value": token}) from exc


@dataclass(frozen=True)
class AuditQuery:
    """Validated filters and page of an audit listing."""

    actions: tuple[str, ...] = ()
    actor: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = DEFAULT_LIMIT
    after: AuditCursor | None = None

    @classmethod
    def from_args(cls, args: QueryArgs) -> AuditQuery:
        """Read the query string; every bad value is an `InvalidRequest` naming the parameter and the fix."""
        actions: list[str] = []
        for value in (part.strip() for raw in args.getlist("action") if raw for part in raw.split(",")):
            if value not in db.AUDIT_ACTIONS:
                raise _bad("action", value, f"is not one of {', '.join(db.AUDIT_ACTIONS)}",
                           allowed=list(db.AUDIT_ACTIONS))
            if value not in actions:
                actions.append(value)
        actor = _single(args, "actor")
        if actor is not None and not _ACTOR.match(actor):
            raise _bad("actor", actor, "must be a user id (UUID), `system` or `function:<name>`")
        target_type = _single(args, "target_type")
        if target_type is not None and target_type not in db.AUDIT_TARGETS:
            raise _bad("target_type", target_type, f"is not one of {', '.join(db.AUDIT_TARGETS)}",
                       allowed=list(db.AUDIT_TARGETS))
        target_id = _single(args, "target_id")
        if target_id is not None and (len(target_id) > 200 or "\x00" in target_id):
            raise _bad("target_id", target_id, "must be at most 200 characters with no NUL")
        since, until = _moment(args, "since"), _moment(args, "until")
        limit_raw = _single(args, "limit")
        if limit_raw is not None and not (limit_raw.isascii() and limit_raw.isdigit()
                                          and 1 <= int(limit_raw) <= MAX_LIMIT):
            raise _bad("limit", limit_raw, f"must be a whole number from 1 to {MAX_LIMIT}")
        cursor = _single(args, "cursor")
        return cls(actions=tuple(actions), actor=actor.lower() if actor else None, target_type=target_type,
                   target_id=target_id, since=since, until=until,
                   limit=DEFAULT_LIMIT if limit_raw is None else int(limit_raw),
                   after=None if cursor is None else AuditCursor.decode(cursor))


def _bad(name: str, value: str, problem: str, **extra: Any) -> InvalidRequest:
    return InvalidRequest(f"`{name}` {value!r} {problem}.", details={"field": name, "value": value, **extra})


def _single(args: QueryArgs, name: str) -> str | None:
    values = args.getlist(name)
    if len(values) > 1:
        raise InvalidRequest(f"Send `{name}` at most once; got {values!r}.", details={"field": name, "value": values})
    if values and values[0] == "":
        raise _bad(name, "", "is empty; leave the parameter out instead")
    return values[0] if values else None


def _moment(args: QueryArgs, name: str) -> datetime | None:
    raw = _single(args, name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _bad(name, raw, "must be an ISO 8601 time with a time zone, e.g. 2026-12-01T10:00:00Z")
    return moment


@dataclass
class AuditApi:
    """Reading the audit log, independent of HTTP."""

    pool: Pool

    def page(self, principal: Principal, workspace: str | None, query: AuditQuery) -> AuditPage:
        """One page of the caller's workspace log (newest first)."""
        with as_user(self.pool, principal.claims) as conn:
            workspace_id = choose_workspace(memberships(conn), principal, workspace)
            rows = db.list_entries(conn, workspace_id, actions=query.actions, actor=query.actor,
                                   target_type=query.target_type, target_id=query.target_id, since=query.since,
                                   until=query.until, after=query.after, limit=query.limit + 1)
        shown = rows[:query.limit]
        more = len(rows) > query.limit
        return AuditPage(workspace_id=workspace_id,
                         entries=[AuditEntryView.model_validate(dict(r)) for r in shown],
                         next_cursor=AuditCursor(shown[-1]["created_at"], shown[-1]["id"]).encode() if more else None)


@lru_cache(maxsize=1)
def service() -> AuditApi:
    """This instance's audit API: its own small pool, opened lazily."""
    settings = get_settings()
    return AuditApi(pool=create_pool(settings.database_url, max_size=2))


def list_audit(request: flask.Request) -> flask.Response:
    """`GET /api/v1/audit`."""
    principal = verify_token(request.headers.get("Authorization"), get_settings())
    query = AuditQuery.from_args(request.args)
    page = service().page(principal, request.headers.get("X-Workspace-Id"), query)
    return json_response(page.model_dump(mode="json"))


ROUTES: list[Route] = [
    ("GET", re.compile(_PREFIX + r"/audit/?$"), list_audit),
]

_PARAM_SCHEMAS: dict[str, dict[str, Any]] = {
    "action": {"type": "array", "items": {"type": "string", "enum": list(db.AUDIT_ACTIONS)}},
    "actor": {"type": "string", "pattern": _ACTOR.pattern},
    "target_type": {"type": "string", "enum": list(db.AUDIT_TARGETS)},
    "target_id": {"type": "string", "minLength": 1, "maxLength": 200},
    "since": {"type": "string", "format": "date-time"},
    "until": {"type": "string", "format": "date-time"},
    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    "cursor": {"type": "string", "minLength": 1},
}
PATHS: dict[str, Any] = {
    "/api/v1/audit": {"get": {
        "summary": "The workspace's audit log (append-only), newest first, filtered, cursor-paged",
        "parameters": [{"name": name, "in": "query", "required": False, "schema": _PARAM_SCHEMAS[name],
                        **({"style": "form", "explode": False} if name == "action" else {})} for name in _PARAMS],
        "responses": {"200": {"description": "A page of entries", "content": json_content(AuditPage)},
                      **errors(400, 401, 404)},
    }},
}
MODELS: tuple[type, ...] = (AuditPage, AuditEntryView)
