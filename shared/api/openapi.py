"""The OpenAPI 3.1 document of the frontend API, generated from the pydantic models."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic.json_schema import models_json_schema

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
from shared.api.modules import MODULES, paths
from shared.api.spec import errors, json_content

_MODELS = (CreateCampaign, CampaignAccepted, CampaignPage, Decision, DecisionAccepted, CampaignView, Checkout,
           ErrorBody)


def _enum_list(name: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "style": "form", "explode": True,
            "schema": {"type": "array", "items": {"type": "string", "enum": list(allowed)}},
            "description": f"Only these {name} values: repeat the parameter or separate values with commas."}


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The document served at `/api/v1/openapi.json`."""
    models = _MODELS + tuple(m for module in MODULES for m in module.MODELS)
    _, schemas = models_json_schema([(m, "validation") for m in models],
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
                "responses": {"200": {"description": "A page of campaign summaries",
                                      "content": json_content(CampaignPage)},
                              **errors(400, 401, 404)},
            }, "post": {
                "summary": "Create a campaign or move from a brief",
                "parameters": [
                    {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"}},
                    {"name": "X-Workspace-Id", "in": "header", "required": False, "schema": {"type": "string"}},
                ],
                "requestBody": {"required": True, "content": json_content(CreateCampaign)},
                "responses": {"202": {"description": "Accepted; the first step is queued",
                                      "content": json_content(CampaignAccepted)}, **errors(400, 401, 404, 503)},
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
                "responses": {"200": {"description": "Send the user to `redirect_url`",
                                      "content": json_content(Checkout)},
                              **errors(400, 401, 404, 409, 503)},
            }},
            "/api/v1/campaigns/{campaign_id}/events": {"get": {
                "summary": "Progress as Server-Sent Events; reconnect with Last-Event-ID",
                "parameters": [campaign_id, {"name": "Last-Event-ID", "in": "header", "required": False,
                                             "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "`text/event-stream`; each event has `id`, `event`, `data`",
                                      "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                              **errors(400, 401, 404)},
            }},
            **paths(),
            "/webhooks/phonepe": {"post": {
                "summary": "PhonePe S2S webhook (Authorization: SHA256(username:password))",
                "security": [],
                "responses": {"200": {"description": "Received"}, **errors(400, 401, 503)},
            }},
        },
    }
