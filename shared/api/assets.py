"""Asset library routes of the API function: upload an image, list the workspace's images.

- `POST /api/v1/assets` (`multipart/form-data`): `file` (PNG, JPEG or WebP, at most
  `MUSE_ASSETS_MAX_UPLOAD_BYTES`; its first bytes must say so and it must decode), optional `tags`
  (repeat the field or separate by commas), `description`, `alt_text`. Stored in Supabase Storage, then
  listed: 201 with the asset.
- `GET /api/v1/assets?limit=&cursor=`: the workspace's images, newest first, keyset-paginated (`next_cursor`).

Rows are read and written under the caller's row-level security; the service writes only generated images
(`shared.assets.library`).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Literal

import flask
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from shared.api.listing import Cursor
from shared.api.spec import TEXT_PATTERN, WORKSPACE_HEADER, errors, json_content
from shared.assets.images import EXTENSIONS, inspect
from shared.assets.library import asset_store
from shared.auth import Principal, choose_workspace, verify_token
from shared.db import assets as adb
from shared.db.campaigns import memberships
from shared.db.pool import Pool, as_user, create_pool
from shared.errors import InvalidRequest, PayloadTooLarge
from shared.http import Route, documented_queries, json_response, refuse_undocumented_query
from shared.integrations.storage import SupabaseObjectStore
from shared.settings import Settings, get_settings

_PREFIX = r"^(?:/api)?/v1"
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_TAGS = 20
Tag = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=50)]


class UploadFields(BaseModel):
    """Form fields sent next to `file`."""

    model_config = ConfigDict(extra="forbid")

    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    description: str = Field(default="", max_length=1000)
    """What the image shows; matched against posts' text when an image is picked for one."""
    alt_text: str = Field(default="", max_length=1000)
    """Read out by screen readers; sent to the platforms that take it (Instagram, LinkedIn)."""


class AssetView(BaseModel):
    """One image of the library."""

    id: str
    source: Literal["upload", "generated"]
    content_type: Literal["image/png", "image/jpeg", "image/webp"]
    byte_size: int
    width: int
    height: int
    filename: str | None
    tags: list[str]
    description: str
    alt_text: str
    created_at: datetime

    @classmethod
    def of(cls, row: adb.AssetRow) -> AssetView:
        return cls.model_validate({name: row[name] for name in cls.model_fields})  # type: ignore[literal-required]


class AssetPage(BaseModel):
    """A page of the library, newest first; pass `next_cursor` back as `cursor` for the next (null: the last)."""

    items: list[AssetView]
    next_cursor: str | None


def _form(request: flask.Request) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name in request.form:
        values = request.form.getlist(name)
        if name == "tags":
            data[name] = [part.strip() for value in values for part in value.split(",") if part.strip()]
        elif len(values) > 1:
            raise InvalidRequest(f"Send `{name}` once; got {len(values)} values.", details={"field": name})
        else:
            data[name] = values[0]
    return data


def _fields(request: flask.Request) -> UploadFields:
    try:
        return UploadFields.model_validate(_form(request))
    except ValidationError as exc:
        problems = [{"field": ".".join(str(p) for p in err["loc"]) or "(all)", "problem": err["msg"]}
                    for err in exc.errors(include_url=False)]
        summary = "; ".join(f"`{p['field']}`: {p['problem']}" for p in problems)
        raise InvalidRequest(f"Invalid upload fields: {summary}", details={"fields": problems}) from exc


@dataclass
class AssetsApi:
    """Uploads and listings under the caller's row-level security."""

    pool: Pool
    settings: Settings
    store: SupabaseObjectStore | None = None

    def _store(self) -> SupabaseObjectStore:
        if self.store is None:
            self.store = asset_store(self.settings)
        return self.store

    def upload(self, principal: Principal, *, data: bytes, filename: str, fields: UploadFields,
               workspace: str | None) -> AssetView:
        """Check the image, store it, then list it."""
        info = inspect(data)
        with as_user(self.pool, principal.claims) as conn:
            workspace_id = choose_workspace(memberships(conn), principal, workspace)
        asset_id = str(uuid.uuid4())
        path = f"{workspace_id}/assets/{asset_id}.{EXTENSIONS[info.content_type]}"
        self._store().put(path, data, content_type=info.content_type)
        row = adb.NewAsset(
            id=asset_id, workspace_id=workspace_id, created_by=str(principal.user_id), source="upload",
            storage_path=path, content_type=info.content_type, byte_size=len(data), width=info.width,
            height=info.height, sha256=hashlib.sha256(data).hexdigest(), filename=filename[:255],
            tags=list(dict.fromkeys(fields.tags)), description=fields.description.strip(),
            alt_text=fields.alt_text.strip(), generation_key=None, prompt=None, model=None)
        try:
            with as_user(self.pool, principal.claims) as conn:
                stored = adb.insert_asset(conn, row)
        except Exception:
            self._store().remove([path])
            raise
        assert stored is not None
        return AssetView.of(stored)

    def page(self, principal: Principal, *, limit: int, cursor: Cursor | None, workspace: str | None) -> AssetPage:
        """One page of the workspace's images."""
        with as_user(self.pool, principal.claims) as conn:
            workspace_id = choose_workspace(memberships(conn), principal, workspace)
            after = None if cursor is None else (cursor.created_at, str(cursor.id))
            rows = adb.list_assets(conn, workspace_id, limit=limit + 1, after=after)
        items = [AssetView.of(row) for row in rows[:limit]]
        last = rows[limit - 1] if len(rows) > limit else None
        next_cursor = Cursor(last["created_at"], uuid.UUID(last["id"])).encode() if last else None
        return AssetPage(items=items, next_cursor=next_cursor)


@lru_cache(maxsize=1)
def service() -> AssetsApi:
    """This instance's assets API: its own small pool, opened lazily."""
    settings = get_settings()
    return AssetsApi(pool=create_pool(settings.database_url, max_size=2), settings=settings)


def _principal(request: flask.Request) -> Principal:
    return verify_token(request.headers.get("Authorization"), get_settings())


def upload(request: flask.Request) -> flask.Response:
    """Store an uploaded image; 201 with it."""
    principal = _principal(request)
    limit = get_settings().assets_max_upload_bytes
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise PayloadTooLarge(f"The request is {request.content_length} bytes; images are limited to {limit} bytes "
                              "(MUSE_ASSETS_MAX_UPLOAD_BYTES).")
    if request.mimetype != "multipart/form-data":
        raise InvalidRequest(f"Unsupported Content-Type {request.mimetype or 'none'!r}: upload the image as "
                             "`multipart/form-data` with the field `file`.", details={"field": "file"})
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise InvalidRequest("Send the image in the multipart field `file` (with a file name).",
                             details={"field": "file"})
    if set(request.files) - {"file"}:
        raise InvalidRequest(f"Only one file, `file`, is taken; got {sorted(request.files)}.",
                             details={"field": sorted(set(request.files) - {"file"})[0]})
    fields = _fields(request)
    data = upload.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"{upload.filename!r} is larger than {limit} bytes (MUSE_ASSETS_MAX_UPLOAD_BYTES); "
                              "resize or compress it.")
    view = service().upload(principal, data=data, filename=upload.filename, fields=fields,
                            workspace=request.headers.get("X-Workspace-Id"))
    return json_response(view.model_dump(mode="json"), 201)


def listing(request: flask.Request) -> flask.Response:
    """A page of the workspace's images."""
    principal = _principal(request)
    refuse_undocumented_query(request, _QUERIES)
    limit, cursor = DEFAULT_LIMIT, None
    for name in ("limit", "cursor"):
        values = request.args.getlist(name)
        if len(values) > 1:
            raise InvalidRequest(f"Send `{name}` at most once; got {values!r}.", details={"field": name})
    raw_limit = request.args.get("limit")
    if raw_limit is not None:
        if not (raw_limit.isascii() and raw_limit.isdigit() and 1 <= int(raw_limit) <= MAX_LIMIT):
            raise InvalidRequest(f"`limit` must be a whole number from 1 to {MAX_LIMIT}; got {raw_limit!r}.",
                                 details={"field": "limit"})
        limit = int(raw_limit)
    if request.args.get("cursor"):
        cursor = Cursor.decode(request.args["cursor"])
    page = service().page(principal, limit=limit, cursor=cursor, workspace=request.headers.get("X-Workspace-Id"))
    return json_response(page.model_dump(mode="json"))


ROUTES: list[Route] = [
    ("POST", re.compile(_PREFIX + r"/assets/?$"), upload),
    ("GET", re.compile(_PREFIX + r"/assets/?$"), listing),
]

_TAG = {"type": "string", "minLength": 1, "maxLength": 50, "pattern": "^[^,\\x00]*[^\\s,\\x00][^,\\x00]*$",
        "description": "Lower-cased; a comma separates tags."}
PATHS: dict[str, Any] = {
    "/api/v1/assets": {
        "post": {
            "summary": "Add an image to the workspace's asset library (PNG, JPEG or WebP)",
            "description": "The file's first bytes must be a PNG, JPEG or WebP signature and it must decode as "
                           "that image; at most MUSE_ASSETS_MAX_UPLOAD_BYTES. Tags, description and alt text are "
                           "what posts are matched against when an image is picked for one.",
            "parameters": [WORKSPACE_HEADER],
            "requestBody": {"required": True, "content": {"multipart/form-data": {
                "schema": {"type": "object", "required": ["file"], "additionalProperties": False, "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "tags": {"type": "array", "items": _TAG, "maxItems": MAX_TAGS},
                    "description": {"type": "string", "maxLength": 1000, "pattern": TEXT_PATTERN},
                    "alt_text": {"type": "string", "maxLength": 1000, "pattern": TEXT_PATTERN}}},
                "encoding": {"file": {"contentType": "image/png, image/jpeg, image/webp"}}}}},
            "responses": {"201": {"description": "Stored", "content": json_content(AssetView)},
                          **errors(400, 401, 404, 413, 503)},
        },
        "get": {
            "summary": "The workspace's images, newest first",
            "parameters": [
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}},
                {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"},
                 "description": "A page's `next_cursor`, unchanged."},
                WORKSPACE_HEADER],
            "responses": {"200": {"description": "A page", "content": json_content(AssetPage)},
                          **errors(400, 401, 404)},
        },
    },
}
_QUERIES = documented_queries(PATHS)
MODELS: tuple[type, ...] = (AssetView, AssetPage)
