"""Knowledge routes of the API function: submit a resource, search, fetch a whole resource.

- `POST /api/v1/knowledge`: JSON (`TextResource`: text, Markdown, HTML or a URL) or `multipart/form-data`
  with `file` (PDF, Markdown, HTML, text) and optional `title`, `kind`, `tags`. Answers 202: ingestion
  is a chained step; poll `GET /api/v1/knowledge/{id}` until `status` is `ready` (or `failed`).
- `GET /api/v1/knowledge/search?q=…&k=5&type=pdf,url&tags=a,b&mode=hybrid`: chunks with citations.
- `GET /api/v1/knowledge/{id}`: the resource and, once ready, its full text.

Every query runs under the caller's row-level security; another workspace's resource is a 404.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, TypeVar
from uuid import UUID

import flask
from pydantic import BaseModel, ValidationError

from shared.api.spec import NOT_BLANK_PATTERN, TEXT_PATTERN, errors, json_content
from shared.auth import Principal, verify_token
from shared.errors import InvalidRequest, PayloadTooLarge
from shared.http import Route, json_response, parse_body
from shared.knowledge.models import (
    MAX_TAGS,
    ResourceAccepted,
    ResourceView,
    SearchQuery,
    SearchResponse,
    TextResource,
    UploadFields,
)
from shared.knowledge.service import KnowledgeService, knowledge_service
from shared.settings import get_settings

M = TypeVar("M", bound=BaseModel)
_PREFIX = r"^(?:/api)?/v1"
_LISTS = ("type", "tags")


@lru_cache(maxsize=1)
def service() -> KnowledgeService:
    """This instance's knowledge service (built on first request)."""
    return knowledge_service(get_settings())


def _principal(request: flask.Request) -> Principal:
    return verify_token(request.headers.get("Authorization"), get_settings())


def _validated(model: type[M], data: dict[str, Any], what: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [{"field": ".".join(str(p) for p in err["loc"]) or "(all)", "problem": err["msg"]}
                    for err in exc.errors(include_url=False)]
        summary = "; ".join(f"`{p['field']}`: {p['problem']}" for p in problems)
        raise InvalidRequest(f"Invalid {what}: {summary}", details={"fields": problems}) from exc


def _listed(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _form(request: flask.Request) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name in request.form:
        values = request.form.getlist(name)
        data[name] = _listed(values) if name == "tags" else values[-1]
    return data


def submit(request: flask.Request) -> flask.Response:
    """Accept a resource; 202 with its id while the ingest function processes it."""
    principal = _principal(request)
    limit = get_settings().knowledge_max_upload_bytes
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise PayloadTooLarge(f"The request is {request.content_length} bytes; uploads are limited to {limit} "
                              "bytes (MUSE_KNOWLEDGE_MAX_UPLOAD_BYTES).")
    workspace = request.headers.get("X-Workspace-Id")
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            raise InvalidRequest("Send the document in the multipart field `file` (with a file name).")
        fields = _validated(UploadFields, _form(request), "upload fields")
        data = upload.read(limit + 1)
        if len(data) > limit:
            raise PayloadTooLarge(f"{upload.filename!r} is larger than {limit} bytes "
                                  "(MUSE_KNOWLEDGE_MAX_UPLOAD_BYTES); split it or raise the limit.")
        accepted = service().submit_file(principal, filename=upload.filename, data=data,
                                         content_type=upload.content_type or None, kind=fields.kind,
                                         title=fields.title, tags=fields.tags, workspace=workspace)
    elif request.is_json:
        accepted = service().submit_text(principal, parse_body(request, TextResource), workspace=workspace)
    else:
        raise InvalidRequest(f"Unsupported Content-Type {request.mimetype or 'none'!r}: send JSON "
                             "(`application/json`) or a file upload (`multipart/form-data` with field `file`).")
    return json_response(accepted.model_dump(mode="json"), 202, {"Location": accepted.links["self"]})


def search(request: flask.Request) -> flask.Response:
    """Hybrid search of the caller's workspace."""
    principal = _principal(request)
    args: dict[str, Any] = {}
    for name in request.args:
        values = request.args.getlist(name)
        if name in _LISTS and any(not part.strip() for value in values for part in value.split(",")):
            raise InvalidRequest(f"`{name}` has an empty value in {values!r}; send values separated by commas, "
                                 "or leave the parameter out.", details={"field": name, "value": values})
        args[name] = _listed(values) if name in _LISTS else values[-1]
    query = _validated(SearchQuery, args, "search parameters")
    result = service().search(principal, query, workspace=request.headers.get("X-Workspace-Id"))
    return json_response(result.model_dump(mode="json"))


def fetch(request: flask.Request, document_id: str) -> flask.Response:
    """The whole resource."""
    principal = _principal(request)
    try:
        parsed = UUID(document_id)
    except ValueError as exc:
        raise InvalidRequest(f"{document_id!r} is not a knowledge resource id; ids are UUIDs.") from exc
    return json_response(service().get(principal, parsed).model_dump(mode="json"))


def delete(request: flask.Request, document_id: str) -> flask.Response:
    """Delete the resource, its chunks, embeddings and stored original; 204."""
    principal = _principal(request)
    try:
        parsed = UUID(document_id)
    except ValueError as exc:
        raise InvalidRequest(f"{document_id!r} is not a knowledge resource id; ids are UUIDs.") from exc
    service().delete(principal, parsed)
    return flask.Response(status=204)


ROUTES: list[Route] = [
    ("POST", re.compile(_PREFIX + r"/knowledge/?$"), submit),
    ("GET", re.compile(_PREFIX + r"/knowledge/search/?$"), search),
    ("GET", re.compile(_PREFIX + r"/knowledge/(?!search/?$)(?P<document_id>[^/]+)/?$"), fetch),
    ("DELETE", re.compile(_PREFIX + r"/knowledge/(?!search/?$)(?P<document_id>[^/]+)/?$"), delete),
]


_TAG = {"type": "string", "minLength": 1, "maxLength": 50, "pattern": "^[^,\\x00]*[^\\s,\\x00][^,\\x00]*$",
        "description": "Lower-cased; a comma separates tags."}
_UPLOAD_TYPES = "text/plain, text/markdown, text/html, application/pdf"


def _search_parameters() -> list[dict[str, Any]]:
    """The query parameters of a search, from `SearchQuery` (lists: repeat the parameter or use commas)."""
    fields = SearchQuery.model_json_schema()["properties"]
    kinds = fields["type"]["anyOf"][0]
    return [
        {"name": "q", "in": "query", "required": True,
         "schema": {"type": "string", "minLength": 1, "maxLength": fields["q"]["maxLength"],
                    "pattern": NOT_BLANK_PATTERN}},
        {"name": "k", "in": "query", "required": False,
         "schema": {key: fields["k"][key] for key in ("type", "minimum", "maximum", "default")}},
        {"name": "type", "in": "query", "required": False, "style": "form", "explode": True, "schema": kinds},
        {"name": "tags", "in": "query", "required": False, "style": "form", "explode": True,
         "schema": {"type": "array", "items": _TAG, "maxItems": MAX_TAGS}},
        {"name": "mode", "in": "query", "required": False,
         "schema": {key: fields["mode"][key] for key in ("type", "enum", "default")}},
    ]


PATHS: dict[str, Any] = {
    "/api/v1/knowledge": {"post": {
        "summary": "Add a resource (text, Markdown, HTML, URL as JSON; PDF etc. as multipart `file`)",
        "description": "JSON: `content` is required (not blank) unless `kind` is `url`, which needs `url` (a public "
                       "http(s) URL) and no `content`. Upload: the file's kind comes from `kind`, else its "
                       "extension (.pdf, .md, .html, .txt), else its media type; a PDF must start with `%PDF-`, "
                       "text and Markdown must decode (UTF-8 unless the part names a charset), and it must not "
                       "be empty. Each refusal is a 400 naming the rule.",
        "requestBody": {"required": True, "content": {
            **json_content(TextResource),
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["file"], "additionalProperties": False, "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "title": {"type": "string", "minLength": 1, "maxLength": 300, "pattern": TEXT_PATTERN},
                    "kind": {"type": "string", "enum": ["text", "markdown", "html", "pdf"]},
                    "tags": {"type": "array", "items": _TAG, "maxItems": MAX_TAGS}}},
                "encoding": {"file": {"contentType": _UPLOAD_TYPES}}}}},
        "responses": {"202": {"description": "Accepted; ingestion runs as chained steps",
                              "headers": {"Location": {"description": "The resource", "schema": {"type": "string"}}},
                              "content": json_content(ResourceAccepted)}, **errors(400, 401, 413, 429, 503)},
    }},
    "/api/v1/knowledge/search": {"get": {
        "summary": "Hybrid (vector + full text, reciprocal rank fusion) search with citations",
        "parameters": _search_parameters(),
        "responses": {"200": {"description": "Chunks with citations", "content": json_content(SearchResponse)},
                      **errors(400, 401)},
    }},
    "/api/v1/knowledge/{document_id}": {"get": {
        "summary": "A whole resource and its ingestion status",
        "parameters": [{"name": "document_id", "in": "path", "required": True,
                        "schema": {"type": "string", "format": "uuid"}}],
        "responses": {"200": {"description": "The resource", "content": json_content(ResourceView)},
                      **errors(400, 401, 404)},
    }, "delete": {
        "summary": "Delete a resource with its chunks, embeddings and stored original (audited)",
        "parameters": [{"name": "document_id", "in": "path", "required": True,
                        "schema": {"type": "string", "format": "uuid"}}],
        "responses": {"204": {"description": "Deleted"}, **errors(400, 401, 404, 503)},
    }},
}
MODELS: tuple[type, ...] = (TextResource, ResourceAccepted, ResourceView, SearchResponse)
