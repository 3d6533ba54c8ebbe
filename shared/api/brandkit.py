"""`/api/v1/brand-kit` (GET, PUT) and `/api/v1/qa/check` (POST): the brand kit and the QA gate on demand.

Every read and write runs as the caller under row-level security. A PUT replaces the whole kit and
bumps its version; send `If-Match: <version>` to refuse the write when someone saved in between.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property, lru_cache
from typing import Annotated, Any

import flask
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, ValidationInfo, field_validator

from shared.api.spec import TEXT_PATTERN, errors, json_content
from shared.auth import Principal, choose_workspace, verify_token
from shared.brandkit import BrandKit
from shared.db import audit
from shared.db import brandkits as db
from shared.db.campaigns import memberships
from shared.db.pool import Conn, Pool, as_user, create_pool
from shared.errors import Conflict, InvalidRequest
from shared.http import Route, json_response, parse_body
from shared.integrations.gemini import structured_model
from shared.ports import StructuredModel
from shared.qa.correction import SelfCorrectionConfig
from shared.qa.gate import ALL_LAYERS, check
from shared.qa.report import QAReport
from shared.settings import get_settings
from shared.writing.specs import CONTENT_SPECS, ContentType, Language

_PREFIX = r"^(?:/api)?/v1"
MAX_TEXT = 50_000
MAX_ITEMS = 100
Source = Annotated[str, StringConstraints(min_length=1, max_length=20_000)]


class KitDocument(BaseModel):
    """`GET`/`PUT /api/v1/brand-kit`: the workspace's kit and its version (0: none saved yet)."""

    workspace_id: str
    version: int
    updated_at: datetime | None
    kit: BrandKit


def _fields_by_content_type(schema: dict[str, Any]) -> None:
    """State in the schema what `_match_content_type` enforces: each content type's own fields and kinds."""
    text = {"type": "string", "maxLength": MAX_TEXT, "pattern": TEXT_PATTERN}
    schema["oneOf"] = [{"properties": {
        "content_type": {"const": name},
        "fields": {"type": "object", "additionalProperties": False,
                   "required": [f.name for f in spec.fields if f.required],
                   "properties": {f.name: {"type": "array", "items": text, "maxItems": MAX_ITEMS}
                                  if f.kind == "list" else text for f in spec.fields}}}}
        for name, spec in CONTENT_SPECS.items()]


class QACheck(BaseModel):
    """`POST /api/v1/qa/check`: copy to gate against the caller's brand kit."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_fields_by_content_type)

    content_type: ContentType
    fields: dict[str, str | list[str]] = Field(min_length=1)
    """Field → text (list of texts for list fields such as `posts` or `hashtags`)."""
    language: Language = "en"
    sources: list[Source] = Field(default_factory=list, max_length=50)
    """Texts claims may rest on (research, knowledge); the kit's approved claims and product facts always count."""
    judge: bool = True
    """Run the model judge (one call per guideline); false: deterministic layers only."""

    @field_validator("fields")
    @classmethod
    def _match_content_type(cls, value: dict[str, str | list[str]],
                            info: ValidationInfo) -> dict[str, str | list[str]]:
        content_type = info.data.get("content_type")
        if content_type is None:
            return value
        spec = CONTENT_SPECS[content_type]
        for name, text in value.items():
            field_spec = spec.field(name)
            if field_spec is None:
                raise ValueError(f"{name!r} is not a field of {content_type}; use {spec.names}")
            if field_spec.kind == "list" and not isinstance(text, list):
                raise ValueError(f"{name!r} of {content_type} is a list of texts; send [\"...\"]")
            if field_spec.kind == "text" and not isinstance(text, str):
                raise ValueError(f"{name!r} of {content_type} is one text; send a string")
            texts = [text] if isinstance(text, str) else text
            if len(texts) > MAX_ITEMS or any(len(t) > MAX_TEXT for t in texts):
                raise ValueError(f"{name!r} is too large; at most {MAX_ITEMS} items of {MAX_TEXT} characters")
        missing = [f.name for f in spec.fields if f.required and f.name not in value]
        if missing:
            raise ValueError(f"{content_type} copy needs {missing}; send every required field")
        return value


@dataclass
class BrandKitApi:
    """The brand-kit and QA operations, independent of HTTP."""

    pool: Pool
    model_factory: Callable[[], StructuredModel]
    judge_workers: int = 8

    @cached_property
    def model(self) -> StructuredModel:
        """The judge's model (built on the first check that needs it)."""
        return self.model_factory()

    def get(self, principal: Principal, workspace: str | None) -> KitDocument:
        """The caller's workspace kit (an empty kit at version 0 when none was saved)."""
        with as_user(self.pool, principal.claims) as conn:
            workspace_id = _workspace(conn, principal, workspace)
            stored = db.get_kit(conn, workspace_id)
        if stored is None:
            return KitDocument(workspace_id=workspace_id, version=0, updated_at=None, kit=BrandKit())
        return KitDocument(workspace_id=workspace_id, version=stored["version"], updated_at=stored["updated_at"],
                           kit=_stored(stored["kit"]))

    def put(self, principal: Principal, workspace: str | None, kit: BrandKit,
            if_match: int | None) -> KitDocument:
        """Replace the kit and bump its version; with `if_match`, only if the version is still that one."""
        with as_user(self.pool, principal.claims) as conn:
            workspace_id = _workspace(conn, principal, workspace)
            if if_match is not None:
                current = db.current_version(conn, workspace_id)
                if current != if_match:
                    raise Conflict(f"The brand kit is at version {current}, not {if_match}: someone saved in "
                                   "between. GET it, reapply your change and PUT with the new If-Match.")
            version, updated_at = db.save_kit(conn, workspace_id, kit.model_dump(mode="json"))
            audit.record(conn, workspace_id=workspace_id, actor=str(principal.user_id), action="brand_kit.updated",
                         target_type="brand_kit", target_id=workspace_id, details={"version": version})
        return KitDocument(workspace_id=workspace_id, version=version, updated_at=updated_at, kit=kit)

    def check(self, principal: Principal, workspace: str | None, body: QACheck) -> tuple[QAReport, int]:
        """Gate the copy against the caller's kit; returns the report and the kit version used."""
        with as_user(self.pool, principal.claims) as conn:
            workspace_id = _workspace(conn, principal, workspace)
            stored = db.get_kit(conn, workspace_id)
            settings = db.workspace_settings(conn, workspace_id)
        kit = _stored(stored["kit"]) if stored else BrandKit()
        try:
            config = SelfCorrectionConfig.from_settings(settings)
        except ValidationError as exc:
            raise Conflict(f"The workspace's `self_correction` settings are invalid: "
                           f"{exc.errors(include_url=False)}; fix them in the workspace settings.") from exc
        layers = ALL_LAYERS if body.judge else ("lint", "claims")
        report = check(body.content_type, body.fields, kit, language=body.language, sources=body.sources,
                       model=self.model if body.judge else None, config=config, layers=layers,
                       judge_workers=self.judge_workers)
        return report, stored["version"] if stored else 0


@lru_cache(maxsize=1)
def service() -> BrandKitApi:
    """This instance's brand-kit API: its own small pool (opened lazily) and the routed Gemini model."""
    settings = get_settings()
    return BrandKitApi(pool=create_pool(settings.database_url, max_size=2),
                       model_factory=lambda: structured_model(settings))


def _workspace(conn: Conn, principal: Principal, requested: str | None) -> str:
    return choose_workspace(memberships(conn), principal, requested)


def _stored(data: dict[str, Any]) -> BrandKit:
    try:
        return BrandKit.from_stored(data)
    except ValidationError as exc:
        raise Conflict(f"The stored brand kit no longer validates ({exc.error_count()} problems, first: "
                       f"{exc.errors(include_url=False)[0]['msg']}); PUT a corrected kit.") from exc


def _principal(request: flask.Request) -> Principal:
    return verify_token(request.headers.get("Authorization"), get_settings())


def _if_match(request: flask.Request) -> int | None:
    raw = request.headers.get("If-Match")
    if raw is None:
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    if not (value.isascii() and value.isdigit() and len(value) <= 18):
        raise InvalidRequest(f"`If-Match` must be a brand-kit version number (ASCII digits), got {raw!r}.",
                             details={"field": "If-Match", "value": raw})
    return int(value)


def _document(doc: KitDocument) -> flask.Response:
    return json_response(doc.model_dump(mode="json"), headers={"ETag": f'"{doc.version}"'})


def get_brand_kit(request: flask.Request) -> flask.Response:
    doc = service().get(_principal(request), request.headers.get("X-Workspace-Id"))
    return _document(doc)


def put_brand_kit(request: flask.Request) -> flask.Response:
    principal = _principal(request)
    kit = parse_body(request, BrandKit)
    doc = service().put(principal, request.headers.get("X-Workspace-Id"), kit, _if_match(request))
    return _document(doc)


def qa_check(request: flask.Request) -> flask.Response:
    principal = _principal(request)
    body = parse_body(request, QACheck)
    report, version = service().check(principal, request.headers.get("X-Workspace-Id"), body)
    return json_response({**report.model_dump(mode="json"), "kit_version": version})


ROUTES: list[Route] = [
    ("GET", re.compile(_PREFIX + r"/brand-kit/?$"), get_brand_kit),
    ("PUT", re.compile(_PREFIX + r"/brand-kit/?$"), put_brand_kit),
    ("POST", re.compile(_PREFIX + r"/qa/check/?$"), qa_check),
]


PATHS: dict[str, Any] = {
    "/api/v1/brand-kit": {
        "get": {"summary": "The workspace's brand kit and its version",
                "responses": {"200": {"description": "The kit", "content": json_content(KitDocument)},
                              **errors(401, 404)}},
        "put": {"summary": "Replace the brand kit (validated); bumps the version",
                "parameters": [{"name": "If-Match", "in": "header", "required": False,
                                "schema": {"type": "string", "pattern": '^(?:W/)?"?[0-9]{1,18}"?$'},
                                "description": "The version you read (its ETag): the PUT is refused with a 409 "
                                               "if someone saved in between."}],
                "requestBody": {"required": True, "content": json_content(BrandKit)},
                "responses": {"200": {"description": "The stored kit", "content": json_content(KitDocument)},
                              **errors(400, 401, 409)}},
    },
    "/api/v1/qa/check": {"post": {
        "summary": "Run the QA gate on one piece of copy against the workspace's brand kit",
        "requestBody": {"required": True, "content": json_content(QACheck)},
        "responses": {"200": {"description": "Score and per-field findings", "content": json_content(QAReport)},
                      **errors(400, 401)},
    }},
}
MODELS: tuple[type, ...] = (BrandKit, KitDocument, QACheck, QAReport)
