"""The OpenAPI 3.1 document of the frontend API, generated from the pydantic models."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic.json_schema import models_json_schema

from shared.api.brandkit import KitDocument, QACheck
from shared.api.listing import CAMPAIGN_KINDS, CAMPAIGN_STATUSES, DEFAULT_LIMIT, MAX_LIMIT
from shared.api.models import (
    CampaignAccepted,
    CampaignPage,
    CampaignView,
    Checkout,
    CreateCampaign,
    Decision,
    DecisionAccepted,
    ErrorBody,
)
from shared.brandkit import BrandKit
from shared.knowledge.models import ResourceAccepted, ResourceView, SearchResponse, TextResource
from shared.qa.report import QAReport

_MODELS = (CreateCampaign, CampaignAccepted, CampaignPage, Decision, DecisionAccepted, CampaignView, Checkout,
           ErrorBody, TextResource, ResourceAccepted, ResourceView, SearchResponse, BrandKit, KitDocument, QACheck,
           QAReport)


def _ref(model: type) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Malformed request (the message names the field and the fix)", 401: "Missing or invalid token",
            404: "No such campaign in your workspaces", 409: "Not possible in the campaign's current state",
            503: "A dependency is unavailable; retry"}
    return {str(c): {"description": text[c], "content": _json(ErrorBody)} for c in codes}


def _enum_list(name: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "style": "form", "explode": True,
            "schema": {"type": "array", "items": {"type": "string", "enum": list(allowed)}},
            "description": f"Only these {name} values: repeat the parameter or separate values with commas."}


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The document served at `/api/v1/openapi.json`."""
    _, schemas = models_json_schema([(m, "validation") for m in _MODELS],
                                    ref_template="#/components/schemas/{model}")
    campaign_id = {"name": "campaign_id", "in": "path", "required": True,
                   "schema": {"type": "string", "format": "uuid"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Muse API", "version": "1.0.0",
                 "description": "Campaigns researched, planned, approved, written, checked, funded and executed."},
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"supabase": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "security": [{"supabase": []}],
        "paths": {
            "/api/v1/campaigns": {"get": {
                "summary": "The workspace's campaigns, newest first, a page at a time",
                "parameters": [
                    _enum_list("status", CAMPAIGN_STATUSES), _enum_list("kind", CAMPAIGN_KINDS),
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}},
                    {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"},
                     "description": "The `next_cursor` of the previous page, unchanged."},
                    {"name": "X-Workspace-Id", "in": "header", "required": False, "schema": {"type": "string"}},
                ],
                "responses": {"200": {"description": "A page of campaign summaries", "content": _json(CampaignPage)},
                              **_errors(400, 401, 404)},
            }, "post": {
                "summary": "Create a campaign or move from a brief",
                "parameters": [
                    {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"}},
                    {"name": "X-Workspace-Id", "in": "header", "required": False, "schema": {"type": "string"}},
                ],
                "requestBody": {"required": True, "content": _json(CreateCampaign)},
                "responses": {"202": {"description": "Accepted; the first step is queued",
                                      "content": _json(CampaignAccepted)}, **_errors(400, 401, 404, 503)},
            }},
            "/api/v1/campaigns/{campaign_id}": {"get": {
                "summary": "Status, current step, pending decision, artifacts and payment",
                "parameters": [campaign_id],
                "responses": {"200": {"description": "The campaign", "content": _json(CampaignView)},
                              **_errors(400, 401, 404)},
            }},
            "/api/v1/campaigns/{campaign_id}/decisions": {"post": {
                "summary": "Approve, reject with feedback, or edit the pending decision",
                "parameters": [campaign_id],
                "requestBody": {"required": True, "content": _json(Decision)},
                "responses": {"202": {"description": "Recorded; the campaign resumes",
                                      "content": _json(DecisionAccepted)}, **_errors(400, 401, 404, 409, 503)},
            }},
            "/api/v1/campaigns/{campaign_id}/checkout": {"post": {
                "summary": "Create the PhonePe order funding the campaign",
                "parameters": [campaign_id],
                "responses": {"200": {"description": "Send the user to `redirect_url`", "content": _json(Checkout)},
                              **_errors(400, 401, 404, 409, 503)},
            }},
            "/api/v1/campaigns/{campaign_id}/events": {"get": {
                "summary": "Progress as Server-Sent Events; reconnect with Last-Event-ID",
                "parameters": [campaign_id, {"name": "Last-Event-ID", "in": "header", "required": False,
                                             "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "`text/event-stream`; each event has `id`, `event`, `data`",
                                      "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                              **_errors(400, 401, 404)},
            }},
            "/api/v1/knowledge": {"post": {
                "summary": "Add a resource (text, Markdown, HTML, URL as JSON; PDF etc. as multipart `file`)",
                "requestBody": {"required": True, "content": {
                    **_json(TextResource),
                    "multipart/form-data": {"schema": {"type": "object", "properties": {
                        "file": {"type": "string", "format": "binary"}, "title": {"type": "string"},
                        "kind": {"type": "string"}, "tags": {"type": "string"}}, "required": ["file"]}}}},
                "responses": {"202": {"description": "Accepted; ingestion runs as chained steps",
                                      "content": _json(ResourceAccepted)}, **_errors(400, 401, 503)},
            }},
            "/api/v1/knowledge/search": {"get": {
                "summary": "Hybrid (vector + full text, reciprocal rank fusion) search with citations",
                "parameters": [{"name": n, "in": "query", "required": n == "q", "schema": {"type": t}}
                               for n, t in (("q", "string"), ("k", "integer"), ("type", "string"),
                                            ("tags", "string"), ("mode", "string"))],
                "responses": {"200": {"description": "Chunks with citations", "content": _json(SearchResponse)},
                              **_errors(400, 401)},
            }},
            "/api/v1/knowledge/{document_id}": {"get": {
                "summary": "A whole resource and its ingestion status",
                "parameters": [{"name": "document_id", "in": "path", "required": True,
                                "schema": {"type": "string", "format": "uuid"}}],
                "responses": {"200": {"description": "The resource", "content": _json(ResourceView)},
                              **_errors(400, 401, 404)},
            }},
            "/api/v1/brand-kit": {
                "get": {"summary": "The workspace's brand kit and its version",
                        "responses": {"200": {"description": "The kit", "content": _json(KitDocument)},
                                      **_errors(401, 404)}},
                "put": {"summary": "Replace the brand kit (validated); bumps the version",
                        "requestBody": {"required": True, "content": _json(BrandKit)},
                        "responses": {"200": {"description": "The stored kit", "content": _json(KitDocument)},
                                      **_errors(400, 401, 409)}},
            },
            "/api/v1/qa/check": {"post": {
                "summary": "Run the QA gate on one piece of copy against the workspace's brand kit",
                "requestBody": {"required": True, "content": _json(QACheck)},
                "responses": {"200": {"description": "Score and per-field findings", "content": _json(QAReport)},
                              **_errors(400, 401)},
            }},
            "/webhooks/phonepe": {"post": {
                "summary": "PhonePe S2S webhook (Authorization: SHA256(username:password))",
                "security": [],
                "responses": {"200": {"description": "Received"}, **_errors(400, 401, 503)},
            }},
        },
    }
