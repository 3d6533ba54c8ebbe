"""The HTTP edge of the chat function: `POST /api/v1/chat/stream` and `GET /api/v1/chat/{id}/events`.

Both answer Server-Sent Events, in the SSE contract or, when the request says `?protocol=ag-ui` or
sends AG-UI's Accept media type, in AG-UI. Errors before the stream starts (a bad body, another
workspace's conversation, a running turn) are JSON like every other Muse error.

Paths are matched with the mount prefix included (`request.script_root + request.path`), so the
function answers the same whether it is served at `/` (its own Cloud Run service) or mounted under
`/api/v1/chat` (the local stack).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from uuid import UUID

import flask

from shared.api.chat import PATHS, ChatRequest
from shared.api.plan import limit_api_requests
from shared.api.plan import service as plan_gate
from shared.auth import Principal, verify_token
from shared.chat.encoding import choose_protocol, renderer_for
from shared.chat.service import ChatService
from shared.conversations import compile_chat_graph
from shared.db.pool import create_pool
from shared.errors import InvalidRequest
from shared.http import (
    Route,
    documented_queries,
    handle_errors,
    last_event_id,
    parse_body,
    refuse_undocumented_query,
    route,
)
from shared.runtime.checkpointer import create_checkpointer
from shared.settings import get_settings
from shared.tracing import langsmith_client

_PREFIX = r"^(?:/api)?/v1/chat"
MIN_POOL = 8
"""Connections this instance may hold at least: its running turns emit, checkpoint and renew leases from
worker threads concurrently, and a lease renewal starved of a connection would let a live turn look dead."""
_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@lru_cache(maxsize=1)
def chat() -> ChatService:
    """This instance's chat service (built on first request)."""
    settings = get_settings()
    pool = create_pool(settings.database_url, max_size=max(settings.database_pool_max, MIN_POOL))
    return ChatService(settings=settings, pool=pool, graph=compile_chat_graph(create_checkpointer(pool)),
                       tracer=langsmith_client(settings))


def _principal(request: flask.Request) -> Principal:
    return verify_token(request.headers.get("Authorization"), get_settings())


def _sse(body: Iterator[str], headers: dict[str, str] | None = None) -> flask.Response:
    return flask.Response(flask.stream_with_context(body), mimetype="text/event-stream",
                          headers={**_STREAM_HEADERS, **(headers or {})})


def stream(request: flask.Request) -> flask.Response:
    """Start a turn and stream its events until `done` or `error` (the turn goes on if the client leaves)."""
    principal = _principal(request)
    protocol = choose_protocol(request.args.get("protocol"), request.headers.get("Accept"))
    body = parse_body(request, ChatRequest)
    started = chat().start(principal, body, workspace=request.headers.get("X-Workspace-Id"))
    return _sse(chat().stream_turn(started, renderer_for(protocol)),
                {"X-Conversation-Id": started.conversation_id, "X-Turn-Id": started.turn_id,
                 "X-Chat-Protocol": protocol})


def events(request: flask.Request, conversation_id: str) -> flask.Response:
    """Replay the conversation's events after `Last-Event-ID` (or `?last_event_id=`), then tail its running turn."""
    principal = _principal(request)
    protocol = choose_protocol(request.args.get("protocol"), request.headers.get("Accept"))
    try:
        conversation = UUID(conversation_id)
    except ValueError as exc:
        raise InvalidRequest(f"{conversation_id!r} is not a conversation id; conversation ids are UUIDs.",
                             details={"field": "conversationId"}) from exc
    body = chat().events(principal, conversation, last_event_id(request), renderer_for(protocol))
    return _sse(body, {"X-Chat-Protocol": protocol})


_QUERIES = documented_queries(PATHS)
"""The query parameters the chat operations document (`shared.api.chat.PATHS`)."""


def edge_checks(request: flask.Request) -> None:
    """Before every operation, as the API's edge: undocumented query parameters (400), then the plan's
    requests per minute (429), counted in the same per-workspace window as the API's requests."""
    refuse_undocumented_query(request, _QUERIES, request.script_root + request.path)
    limit_api_requests(request, plan_gate())


ROUTES: list[Route] = [
    ("POST", re.compile(_PREFIX + r"/stream/?$"), stream),
    ("GET", re.compile(_PREFIX + r"/(?P<conversation_id>[^/]+)/events/?$"), events),
]


@handle_errors
def dispatch(request: flask.Request) -> flask.Response:
    """Serve one chat request: route it, refuse text Postgres cannot store and undocumented query parameters,
    count it against the plan's rate, then run the operation."""
    path = request.script_root + request.path
    return route(request, ROUTES, path, before=edge_checks,
                 not_found=f"No chat route for {request.method} {path}; the chat function serves "
                           "POST /api/v1/chat/stream and GET /api/v1/chat/{conversationId}/events.")
