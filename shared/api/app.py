"""Routing of the API function: path → operation of `shared.api.service`, errors → JSON."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from uuid import UUID

import flask

from shared.api.listing import CampaignQuery
from shared.api.models import IDEMPOTENCY_KEY_PATTERN, CreateCampaign, Decision
from shared.api.modules import routes
from shared.api.openapi import openapi_document
from shared.api.plan import limit_api_requests
from shared.api.service import Api
from shared.auth import Principal, verify_token
from shared.db.pool import create_pool
from shared.errors import InvalidRequest
from shared.http import (
    QueryRule,
    Route,
    documented_queries,
    handle_errors,
    json_response,
    last_event_id,
    parse_body,
    refuse_undocumented_query,
    route,
)
from shared.integrations.cache import upstash_cache
from shared.integrations.phonepe import PhonePeClient, phonepe_client
from shared.queue import qstash_queue
from shared.settings import get_settings
from shared.tracing import langsmith_client

_ID = r"(?P<campaign_id>[^/]+)"
_PREFIX = r"^(?:/api)?/v1"


@lru_cache(maxsize=1)
def api() -> Api:
    """This instance's API dependencies (built on first request)."""
    settings = get_settings()

    def phonepe() -> PhonePeClient:
        return phonepe_client(settings, upstash_cache(settings))

    return Api(settings=settings, pool=create_pool(settings.database_url, max_size=settings.database_pool_max),
               queue=qstash_queue(settings), phonepe_factory=phonepe, tracer=langsmith_client(settings))


def _campaign_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError as exc:
        raise InvalidRequest(f"{raw!r} is not a campaign id; campaign ids are UUIDs.") from exc


def _principal(request: flask.Request) -> Principal:
    return verify_token(request.headers.get("Authorization"), get_settings())


def create_campaign(request: flask.Request) -> flask.Response:
    principal = _principal(request)
    body = parse_body(request, CreateCampaign)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not re.fullmatch(IDEMPOTENCY_KEY_PATTERN, key):
        raise InvalidRequest(f"`Idempotency-Key` must be 1-200 printable ASCII characters without leading or "
                             f"trailing spaces; got {key!r}.", details={"field": "Idempotency-Key"})
    accepted, _ = api().create_campaign(principal, body, idempotency_key=key,
                                        workspace=request.headers.get("X-Workspace-Id"))
    return json_response(accepted.model_dump(mode="json"), 202)


def list_campaigns(request: flask.Request) -> flask.Response:
    principal = _principal(request)
    query = CampaignQuery.from_args(request.args)
    page = api().list_campaigns(principal, query, workspace=request.headers.get("X-Workspace-Id"))
    return json_response(page.model_dump(mode="json"))


def get_campaign(request: flask.Request, campaign_id: str) -> flask.Response:
    view = api().get_campaign(_principal(request), _campaign_id(campaign_id))
    return json_response(view.model_dump(mode="json"))


def post_decision(request: flask.Request, campaign_id: str) -> flask.Response:
    principal = _principal(request)
    decision = parse_body(request, Decision)
    accepted = api().decide(principal, _campaign_id(campaign_id), decision)
    return json_response(accepted.model_dump(mode="json"), 202)


def checkout(request: flask.Request, campaign_id: str) -> flask.Response:
    result = api().checkout(_principal(request), _campaign_id(campaign_id))
    return json_response(result.model_dump(mode="json"))


def events(request: flask.Request, campaign_id: str) -> flask.Response:
    principal = _principal(request)
    stream = api().events(principal, _campaign_id(campaign_id), last_event_id(request))
    first = next(stream)
    body = flask.stream_with_context(_chain(first, stream))
    return flask.Response(body, mimetype="text/event-stream",
                          headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@lru_cache(maxsize=1)
def _documented_queries() -> list[QueryRule]:
    """The query parameters of every operation of the document."""
    return documented_queries(openapi_document()["paths"])


def edge_checks(request: flask.Request) -> None:
    """Before every operation: undocumented query parameters (400), then the plan's requests per minute (429)."""
    refuse_undocumented_query(request, _documented_queries())
    limit_api_requests(request, api().plans)


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def openapi(request: flask.Request) -> flask.Response:
    return json_response(openapi_document())


ROUTES: list[Route] = [
    ("POST", re.compile(_PREFIX + r"/campaigns/?$"), create_campaign),
    ("GET", re.compile(_PREFIX + r"/campaigns/?$"), list_campaigns),
    ("GET", re.compile(_PREFIX + rf"/campaigns/{_ID}/?$"), get_campaign),
    ("POST", re.compile(_PREFIX + rf"/campaigns/{_ID}/decisions/?$"), post_decision),
    ("POST", re.compile(_PREFIX + rf"/campaigns/{_ID}/checkout/?$"), checkout),
    ("GET", re.compile(_PREFIX + rf"/campaigns/{_ID}/events/?$"), events),
    ("GET", re.compile(_PREFIX + r"/openapi.json$"), openapi),
]
ROUTES += routes()


@handle_errors
def dispatch(request: flask.Request) -> flask.Response:
    """Serve one API request: route it, refuse text Postgres cannot store, then run the operation."""
    return route(request, ROUTES, request.path, before=edge_checks,
                 not_found=f"No route for {request.method} {request.path}; see /api/v1/openapi.json.")
