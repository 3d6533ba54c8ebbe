"""`/api/v1/conversations`: the workspace's chat conversations, one with its messages, its title, deleting one.

- `GET /api/v1/conversations`: most recently active first (`last_message_at`), `limit` and `cursor` as
  the campaign listing takes them (keyset: paging on never repeats or skips one).
- `GET /api/v1/conversations/{id}`: the conversation, its message count and a page of its messages,
  oldest first; `after_seq` (a page's `next_after_seq`) and `limit` page on.
- `PATCH /api/v1/conversations/{id}`: `{"title": "..."}` sets the title (1-200 characters after
  trimming), `{"title": null}` clears it.
- `DELETE /api/v1/conversations/{id}`: the conversation, its messages, its LangGraph checkpoints, its
  chat turns and events go in one transaction, audited (`conversation.deleted`); then its cached
  context is dropped (if the cache is unreachable, the entry expires with its TTL, and the report says
  so). A repeated DELETE is a 404 and changes nothing; while a turn of the conversation runs, a 409
  naming it (the turn would otherwise write checkpoints for a conversation that is gone), and a
  campaign's own history (`kind: campaign`) is a 409 too: it goes with the campaign.

Reads and the title run as the caller under row-level security: another workspace's conversation is a
404, whether it exists or not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Literal, Protocol
from uuid import UUID

import flask
from pydantic import BaseModel, ConfigDict, StringConstraints

from shared.api.listing import Cursor
from shared.api.spec import WORKSPACE_HEADER, errors, json_content, uuid_path
from shared.auth import Principal, choose_workspace, verify_token
from shared.caching.chat import ChatCaches, chat_caches
from shared.db import audit
from shared.db import conversations as db
from shared.db.campaigns import memberships
from shared.db.pool import Pool, as_runtime, as_user, create_pool
from shared.errors import Conflict, InvalidRequest, NotFound
from shared.http import Route, json_response, parse_body
from shared.settings import get_settings

_PREFIX = r"^(?:/api)?/v1"
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
DEFAULT_MESSAGES = 50
MAX_MESSAGES = 200
MAX_SEQ = 2**31 - 1
"""Message seqs are Postgres `integer`s."""
TITLE_LENGTH = 200
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_LENGTH)]


class ConversationSummary(BaseModel):
    """One conversation in a listing."""

    id: str
    kind: Literal["chat", "campaign"]
    """`chat`: a conversation of the chat; `campaign`: a campaign's own history."""
    campaign_id: str | None
    title: str | None
    created_at: datetime
    last_message_at: datetime


class ConversationPage(BaseModel):
    """A page of conversations; pass `next_cursor` as `cursor` for the next one (null: no more)."""

    workspace_id: str
    conversations: list[ConversationSummary]
    next_cursor: str | None


class MessageView(BaseModel):
    """One message; `seq` is its id and orders the conversation."""

    seq: int
    role: Literal["user", "assistant", "system"]
    content: str
    created_at: datetime


class ConversationView(ConversationSummary):
    """A conversation with a page of its messages, oldest first; pass `next_after_seq` as `after_seq` for the
    next page (null: no more)."""

    workspace_id: str
    message_count: int
    messages: list[MessageView]
    next_after_seq: int | None


class ConversationPatch(BaseModel):
    """`PATCH /api/v1/conversations/{id}`: the new title (trimmed; null clears it)."""

    model_config = ConfigDict(extra="forbid")

    title: Title | None


class ConversationDeleted(BaseModel):
    """What `DELETE /api/v1/conversations/{id}` removed."""

    id: str
    rows: dict[str, int]
    """Table → rows deleted (messages, checkpoint tables, chat turns and events, the conversation)."""
    context_cache: Literal["cleared", "expires"]
    """`expires`: the cache was unreachable, so the conversation's cached context lives out its TTL
    (`MUSE_CHAT_SESSION_CACHE_SECONDS`); nothing can read it, since the conversation is gone."""


class QueryArgs(Protocol):
    """What the query string must offer (Flask's `request.args` does)."""

    def getlist(self, key: str) -> list[str]: ...

    def keys(self) -> Iterable[str]: ...


@dataclass(frozen=True)
class ListQuery:
    """Validated page of a conversation listing."""

    limit: int = DEFAULT_LIMIT
    after: Cursor | None = None

    @classmethod
    def from_args(cls, args: QueryArgs) -> ListQuery:
        """Read `limit` and `cursor`; any other parameter is refused, naming it."""
        _only(args, ("limit", "cursor"))
        limit, cursor = _single(args, "limit"), _single(args, "cursor")
        return cls(limit=DEFAULT_LIMIT if limit is None else _number(limit, "limit", 1, MAX_LIMIT),
                   after=None if cursor is None else Cursor.decode(cursor))


@dataclass(frozen=True)
class MessagesQuery:
    """Validated page of a conversation's messages."""

    limit: int = DEFAULT_MESSAGES
    after_seq: int = -1

    @classmethod
    def from_args(cls, args: QueryArgs) -> MessagesQuery:
        """Read `limit` and `after_seq`; any other parameter is refused, naming it."""
        _only(args, ("limit", "after_seq"))
        limit, after = _single(args, "limit"), _single(args, "after_seq")
        return cls(limit=DEFAULT_MESSAGES if limit is None else _number(limit, "limit", 1, MAX_MESSAGES),
                   after_seq=-1 if after is None else _number(after, "after_seq", 0, MAX_SEQ))


def _only(args: QueryArgs, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(args.keys()) - set(allowed))
    if unknown:
        raise InvalidRequest(f"Unknown query parameter(s) {unknown}; use {', '.join(allowed)}.",
                             details={"field": unknown[0], "value": unknown, "allowed": list(allowed)})


def _single(args: QueryArgs, name: str) -> str | None:
    values = args.getlist(name)
    if len(values) > 1:
        raise InvalidRequest(f"Send `{name}` at most once; got {values!r}.", details={"field": name, "value": values})
    return values[0] if values and values[0] != "" else None


def _number(raw: str, name: str, low: int, high: int) -> int:
    if not (raw.isascii() and raw.isdigit() and low <= int(raw) <= high):
        raise InvalidRequest(f"`{name}` must be a whole number from {low} to {high}; got {raw!r}.",
                             details={"field": name, "value": raw})
    return int(raw)


def _conversation_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError as exc:
        raise InvalidRequest(f"`conversation_id` {raw!r} is not a conversation id; conversation ids are UUIDs.",
                             details={"field": "conversation_id", "value": raw}) from exc


def _missing(conversation_id: UUID) -> NotFound:
    return NotFound(f"Conversation {conversation_id} does not exist in your workspaces.")


@dataclass
class ConversationsApi:
    """The conversation operations, independent of HTTP."""

    pool: Pool
    caches: ChatCaches

    def page(self, principal: Principal, workspace: str | None, query: ListQuery) -> ConversationPage:
        """One page of the caller's workspace's conversations, most recently active first."""
        with as_user(self.pool, principal.claims) as conn:
            workspace_id = choose_workspace(memberships(conn), principal, workspace)
            rows = db.list_conversations(conn, workspace_id, after=query.after, limit=query.limit + 1)
        shown = rows[:query.limit]
        more = len(rows) > query.limit
        return ConversationPage(
            workspace_id=workspace_id, conversations=[ConversationSummary.model_validate(dict(r)) for r in shown],
            next_cursor=Cursor(shown[-1]["last_message_at"], UUID(shown[-1]["id"])).encode() if more else None)

    def get(self, principal: Principal, conversation_id: UUID, query: MessagesQuery) -> ConversationView:
        """The conversation and a page of its messages, if the caller's workspaces hold it."""
        with as_user(self.pool, principal.claims) as conn:
            row = db.get_conversation(conn, conversation_id)
            if row is None:
                raise _missing(conversation_id)
            count = db.message_count(conn, conversation_id)
            messages = db.messages_page(conn, conversation_id, after_seq=query.after_seq, limit=query.limit + 1)
        shown = messages[:query.limit]
        return ConversationView(**row, message_count=count,
                                messages=[MessageView.model_validate(dict(m)) for m in shown],
                                next_after_seq=shown[-1]["seq"] if len(messages) > query.limit else None)

    def retitle(self, principal: Principal, conversation_id: UUID, title: str | None) -> ConversationSummary:
        """Set or clear the title."""
        with as_user(self.pool, principal.claims) as conn:
            row = db.retitle(conn, conversation_id, title)
        if row is None:
            raise _missing(conversation_id)
        return ConversationSummary.model_validate(dict(row))

    def delete(self, principal: Principal, conversation_id: UUID) -> ConversationDeleted:
        """Delete everything of the conversation in one audited transaction, then its cached context."""
        with as_user(self.pool, principal.claims) as conn:
            row = db.get_conversation(conn, conversation_id)
            if row is None:
                raise _missing(conversation_id)
            if row["kind"] != "chat":
                raise Conflict(f"Conversation {conversation_id} is a campaign's own history; it goes when the "
                               "campaign's data is erased, not on its own.", details={"kind": row["kind"]})
            as_runtime(conn)
            if not db.lock_conversation(conn, conversation_id):
                raise _missing(conversation_id)
            running = db.running_turn(conn, conversation_id)
            if running is not None:
                raise Conflict(f"Conversation {conversation_id} has a running turn ({running}); wait for its `done` "
                               "or `error` event, then delete.", details={"turn_id": running})
            rows = db.delete_conversation(conn, conversation_id)
            audit.record(conn, workspace_id=row["workspace_id"], actor=str(principal.user_id),
                         action="conversation.deleted", target_type="conversation", target_id=str(conversation_id),
                         details={"messages": rows["conversation_messages"]},
                         key=f"conversation.deleted:{conversation_id}")
        cleared = self.caches.forget_conversation(row["workspace_id"], str(conversation_id))
        return ConversationDeleted(id=str(conversation_id), rows=rows,
                                   context_cache="cleared" if cleared else "expires")


@lru_cache(maxsize=1)
def service() -> ConversationsApi:
    """This instance's conversations API: its own small pool (opened lazily) and the chat caches."""
    settings = get_settings()
    pool = create_pool(settings.database_url, max_size=2)
    return ConversationsApi(pool=pool, caches=chat_caches(settings, pool))


def _principal(request: flask.Request) -> Principal:
    return verify_token(request.headers.get("Authorization"), get_settings())


def list_conversations(request: flask.Request) -> flask.Response:
    """`GET /api/v1/conversations`."""
    principal = _principal(request)
    query = ListQuery.from_args(request.args)
    page = service().page(principal, request.headers.get("X-Workspace-Id"), query)
    return json_response(page.model_dump(mode="json"))


def get_conversation(request: flask.Request, conversation_id: str) -> flask.Response:
    """`GET /api/v1/conversations/{id}`."""
    principal = _principal(request)
    parsed = _conversation_id(conversation_id)
    view = service().get(principal, parsed, MessagesQuery.from_args(request.args))
    return json_response(view.model_dump(mode="json"))


def patch_conversation(request: flask.Request, conversation_id: str) -> flask.Response:
    """`PATCH /api/v1/conversations/{id}`."""
    principal = _principal(request)
    parsed = _conversation_id(conversation_id)
    body = parse_body(request, ConversationPatch)
    return json_response(service().retitle(principal, parsed, body.title).model_dump(mode="json"))


def delete_conversation(request: flask.Request, conversation_id: str) -> flask.Response:
    """`DELETE /api/v1/conversations/{id}`."""
    principal = _principal(request)
    parsed = _conversation_id(conversation_id)
    return json_response(service().delete(principal, parsed).model_dump(mode="json"))


_ONE = _PREFIX + r"/conversations/(?P<conversation_id>[^/]+)/?$"
ROUTES: list[Route] = [
    ("GET", re.compile(_PREFIX + r"/conversations/?$"), list_conversations),
    ("GET", re.compile(_ONE), get_conversation),
    ("PATCH", re.compile(_ONE), patch_conversation),
    ("DELETE", re.compile(_ONE), delete_conversation),
]


def _limit(default: int, highest: int) -> dict[str, Any]:
    return {"name": "limit", "in": "query", "required": False,
            "schema": {"type": "string", "pattern": _digits_pattern(highest), "default": str(default)},
            "description": f"Page size, a whole number from 1 to {highest} (empty: {default})."}


def _digits_pattern(highest: int) -> str:
    """1 to `highest` (100 or 200) as ASCII digits, leading zeros allowed, or empty."""
    return {100: "^(?:0*(?:[1-9][0-9]?|100))?$", 200: "^(?:0*(?:[1-9][0-9]?|1[0-9][0-9]|200))?$"}[highest]


_CONVERSATION = uuid_path("conversation_id")
PATHS: dict[str, Any] = {
    "/api/v1/conversations": {"get": {
        "summary": "The workspace's conversations, most recently active first, a page at a time",
        "parameters": [
            _limit(DEFAULT_LIMIT, MAX_LIMIT),
            {"name": "cursor", "in": "query", "required": False,
             "schema": {"type": "string", "format": "muse-cursor", "pattern": "^[A-Za-z0-9_-]*$"},
             "description": "The `next_cursor` of the previous page, unchanged (opaque: any other value is a 400; "
                            "empty: the first page)."},
            WORKSPACE_HEADER],
        "responses": {"200": {"description": "A page of conversations", "content": json_content(ConversationPage)},
                      **errors(400, 401, 404)},
    }},
    "/api/v1/conversations/{conversation_id}": {
        "get": {
            "summary": "A conversation with a page of its messages, oldest first",
            "parameters": [
                _CONVERSATION, _limit(DEFAULT_MESSAGES, MAX_MESSAGES),
                {"name": "after_seq", "in": "query", "required": False,
                 "schema": {"type": "string", "pattern": "^[0-9]{0,9}$"},
                 "description": "Messages after this seq (a page's `next_after_seq`); empty: from the first. "
                                f"A whole number from 0 to {MAX_SEQ}."}],
            "responses": {"200": {"description": "The conversation", "content": json_content(ConversationView)},
                          **errors(400, 401, 404)},
        },
        "patch": {
            "summary": "Set (or clear, with null) the conversation's title",
            "parameters": [_CONVERSATION],
            "requestBody": {"required": True, "content": json_content(ConversationPatch)},
            "responses": {"200": {"description": "The conversation", "content": json_content(ConversationSummary)},
                          **errors(400, 401, 404)},
        },
        "delete": {
            "summary": "Delete the conversation: messages, checkpoints, chat turns and events, cached context "
                       "(audited; a repeated DELETE is a 404)",
            "parameters": [_CONVERSATION],
            "responses": {"200": {"description": "What was deleted", "content": json_content(ConversationDeleted)},
                          **errors(400, 401, 404, 409)},
        },
    },
}
MODELS: tuple[type, ...] = (ConversationPage, ConversationSummary, ConversationView, MessageView, ConversationPatch,
                            ConversationDeleted)
