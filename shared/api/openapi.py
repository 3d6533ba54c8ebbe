"""The OpenAPI 3.1 document of the frontend API, generated from the pydantic models.

It states what the API enforces, so that a request valid by the document is accepted and one invalid by
it refused: lengths, patterns, enums and bounds come from the models; rules one field cannot carry are a
`oneOf` (a decision's `feedback`/`edits` by `action`) or, when JSON Schema cannot say them (a brief's
window, an opaque cursor), the parameter's `format` and description. Every status the API sends is listed,
the edge's own (`spec.complete_operation`) included; Server-Sent Events are described by `CampaignEvent`.
Operations other functions serve are documented here too: the PhonePe webhook and chat's (`shared.api.chat`,
whose streams are described frame by frame in both encodings).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from shared.api import chat
from shared.api.listing import CAMPAIGN_KINDS, CAMPAIGN_STATUSES, DEFAULT_LIMIT, MAX_LIMIT
from shared.api.models import (
    IDEMPOTENCY_KEY_PATTERN,
    TEXT_PATTERN,
    CampaignAccepted,
    CampaignEvent,
    CampaignPage,
    CampaignView,
    Checkout,
    CreateCampaign,
    Decision,
    DecisionAccepted,
    ErrorBody,
    stripped_pattern,
)
from shared.api.modules import MODULES, paths
from shared.api.spec import (
    WORKSPACE_HEADER,
    complete_operation,
    errors,
    json_content,
    ref,
    uuid_path,
)
from shared.http import MAX_EVENT_ID

_MODELS = (CreateCampaign, CampaignAccepted, CampaignPage, Decision, DecisionAccepted, CampaignView, Checkout,
           CampaignEvent, ErrorBody)
_METHODS = ("get", "put", "post", "delete", "patch")
_LIMIT_PATTERN = "^(?:0*(?:[1-9][0-9]?|100))?$"
"""`limit` as `listing._limit` reads it: ASCII digits for 1 to 100 (MAX_LIMIT), or empty."""
_EVENT_ID = {"type": "integer", "minimum": 0, "maximum": MAX_EVENT_ID}


class _StatedSchema(GenerateJsonSchema):
    """Pydantic's JSON Schema plus what it leaves out: no string may hold a NUL byte (the edge refuses it),
    and a string pydantic strips is measured after stripping (a pattern states its length and non-blankness)."""

    def str_schema(self, schema: core_schema.StringSchema) -> JsonSchemaValue:
        json_schema = super().str_schema(schema)
        if "pattern" in json_schema:
            return json_schema
        shortest = schema.get("min_length") or 0
        if not schema.get("strip_whitespace") or shortest > 1:
            json_schema["pattern"] = TEXT_PATTERN
            return json_schema
        json_schema["pattern"] = stripped_pattern(schema.get("max_length"), required=shortest == 1)
        json_schema.pop("maxLength", None)
        return json_schema


def documented_models() -> tuple[type, ...]:
    """Every model the document describes (the campaign routes', every route module's and chat's)."""
    return _MODELS + tuple(m for module in MODULES for m in module.MODELS) + chat.MODELS


def _enum_list(name: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "style": "form", "explode": True,
            "schema": {"type": "array", "items": {"type": "string", "enum": [*allowed, ""]}},
            "description": f"Only these {name} values: repeat the parameter or separate values with commas "
                           "(an empty value filters nothing)."}


def _campaign_paths() -> dict[str, Any]:
    campaign_id = uuid_path("campaign_id")
    return {
        "/api/v1/campaigns": {"get": {
            "summary": "The workspace's campaigns, newest first, a page at a time",
            "parameters": [
                _enum_list("status", CAMPAIGN_STATUSES), _enum_list("kind", CAMPAIGN_KINDS),
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "string", "pattern": _LIMIT_PATTERN, "default": str(DEFAULT_LIMIT)},
                 "description": f"Page size, a whole number from 1 to {MAX_LIMIT} (empty: {DEFAULT_LIMIT})."},
                {"name": "cursor", "in": "query", "required": False,
                 "schema": {"type": "string", "format": "muse-cursor", "pattern": "^[A-Za-z0-9_-]*$"},
                 "description": "The `next_cursor` of the previous page, unchanged (opaque: any other value is "
                                "a 400; empty: the first page)."},
                WORKSPACE_HEADER,
            ],
            "responses": {"200": {"description": "A page of campaign summaries",
                                  "content": json_content(CampaignPage)}, **errors(400, 401, 404)},
        }, "post": {
            "summary": "Create a campaign or move from a brief",
            "description": "`brief.end_date` must not be before `brief.start_date` (a 400 otherwise). The same "
                           "`Idempotency-Key` with the same body answers the first campaign again; with a "
                           "different body it is a 422.",
            "parameters": [
                {"name": "Idempotency-Key", "in": "header", "required": False,
                 "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": IDEMPOTENCY_KEY_PATTERN},
                 "description": "1-200 printable ASCII characters, no leading or trailing space."},
                WORKSPACE_HEADER,
            ],
            "requestBody": {"required": True, "content": json_content(CreateCampaign)},
            "responses": {"202": {"description": "Accepted; the first step is queued",
                                  "content": json_content(CampaignAccepted)},
                          **errors(400, 401, 404, 413, 422, 503)},
        }},
        "/api/v1/campaigns/{campaign_id}": {"get": {
            "summary": "Status, current step, pending decision, artifacts and payment",
            "parameters": [campaign_id],
            "responses": {"200": {"description": "The campaign", "content": json_content(CampaignView)},
                          **errors(400, 401, 404)},
        }},
        "/api/v1/campaigns/{campaign_id}/decisions": {"post": {
            "summary": "Approve, reject with feedback, or edit the pending decision",
            "parameters": [campaign_id],
            "requestBody": {"required": True, "content": json_content(Decision)},
            "responses": {"202": {"description": "Recorded; the campaign resumes",
                                  "content": json_content(DecisionAccepted)}, **errors(400, 401, 404, 409, 503)},
        }},
        "/api/v1/campaigns/{campaign_id}/checkout": {"post": {
            "summary": "Create the PhonePe order funding the campaign",
            "parameters": [campaign_id],
            "responses": {"200": {"description": "Send the user to `redirect_url`", "content": json_content(Checkout)},
                          **errors(400, 401, 404, 409, 503)},
        }},
        "/api/v1/campaigns/{campaign_id}/events": {"get": {
            "summary": "Progress as Server-Sent Events; reconnect with Last-Event-ID",
            "parameters": [
                campaign_id,
                {"name": "Last-Event-ID", "in": "header", "required": False, "schema": _EVENT_ID,
                 "description": "Resume after this event id (what EventSource resends); ASCII digits only."},
                {"name": "last_event_id", "in": "query", "required": False, "schema": _EVENT_ID,
                 "description": "The same, for clients that cannot set headers; the header wins."},
            ],
            "responses": {"200": {
                "description": "`text/event-stream`: first `retry: 1000`, then one frame per event (`id: <event "
                               "id>`, `event: <type>`, `data: <CampaignEvent JSON>`) until the campaign ends or "
                               "MUSE_SSE_MAX_SECONDS pass; reconnect with `Last-Event-ID`.",
                "content": {"text/event-stream": {"schema": chat.sse_frame({"type": "string"}, ref(CampaignEvent)),
                                                  "x-sse-data": ref(CampaignEvent)}}},
                **errors(400, 401, 404)},
        }},
    }


def _webhook_paths() -> dict[str, Any]:
    return {"/webhooks/phonepe": {"post": {
        "summary": "PhonePe S2S webhook (Authorization: SHA256(username:password)); served by `phonepe_webhook`",
        "security": [],
        "parameters": [{"name": "Authorization", "in": "header", "required": True, "schema": {"type": "string"},
                        "description": "SHA256(username:password) in lowercase hex, optionally after `SHA256 `."}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["event", "payload"],
            "properties": {"event": {"type": "string"}, "payload": {
                "type": "object", "required": ["merchantOrderId"],
                "properties": {"merchantOrderId": {"type": "string", "minLength": 1, "pattern": TEXT_PATTERN},
                               "state": {"type": "string"}}}}}}}},
        "responses": {"200": {"description": "Received (and queued if the event is one Muse uses)",
                              "content": {"application/json": {"schema": {
                                  "type": "object", "required": ["received", "handled"],
                                  "properties": {"received": {"type": "boolean"}, "handled": {"type": "boolean"},
                                                 "reason": {"type": "string"}}}}}},
                      **errors(400, 401, 413, 503)},
    }}}


def _completed(items: dict[str, Any]) -> dict[str, Any]:
    done: dict[str, Any] = {}
    for path, item in items.items():
        done[path] = {method: complete_operation(op, secured=op.get("security") != []) if method in _METHODS else op
                      for method, op in item.items()}
    return done


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The document served at `/api/v1/openapi.json`."""
    _, schemas = models_json_schema([(m, "validation") for m in documented_models()],
                                    ref_template="#/components/schemas/{model}", schema_generator=_StatedSchema)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Muse API", "version": "1.0.0",
                 "description": "Campaigns researched, planned, approved, written, checked, funded and executed. "
                                "Every error is an `ErrorBody`. A method a path does not list is a 405 with "
                                "`Allow`; an unknown path a 404; a body over MUSE_API_MAX_BODY_BYTES a 413; "
                                "text holding a NUL byte, JSON nested deeper than MUSE_JSON_MAX_DEPTH, or a query "
                                "parameter the operation does not list, a 400."},
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"supabase": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "security": [{"supabase": []}],
        "paths": _completed({**_campaign_paths(), **paths(), **chat.PATHS, **_webhook_paths()}),
    }
