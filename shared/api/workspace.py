"""The workspace's data rights (issue 7, India's DPDP Act): export everything, erase it. Owners only.

- `GET /api/v1/workspace/export`: a zip (`Content-Disposition: attachment`) with a JSON array per
  table, the stored originals and a manifest with the counts (see `shared.workspace_data.service`).
- `DELETE /api/v1/workspace/data?confirm=<workspace id>`: erases the workspace's data, keeping payments,
  invoices and the audit log; an `Idempotency-Key` makes a retried request record one audit entry.
  A 503 after the database part says so; repeat the DELETE to finish.

Both are recorded in the audit log with who asked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import IO, Any

import flask

from shared.api.spec import errors, json_content
from shared.auth import Principal, verify_token
from shared.db.pool import create_pool
from shared.errors import InvalidRequest
from shared.http import Route, json_response
from shared.integrations.cache import upstash_cache
from shared.integrations.storage import supabase_object_store
from shared.settings import get_settings
from shared.workspace_data.service import ErasureReport, ExportManifest, WorkspaceData

_PREFIX = r"^(?:/api)?/v1"
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


@lru_cache(maxsize=1)
def service() -> WorkspaceData:
    """This instance's export and erasure service: its own small pool, Storage and the cache."""
    settings = get_settings()
    return WorkspaceData(pool=create_pool(settings.database_url, max_size=2), files=supabase_object_store(settings),
                         cache=upstash_cache(settings))


def _principal(request: flask.Request) -> Principal:
    return verify_token(request.headers.get("Authorization"), get_settings())


def export(request: flask.Request) -> flask.Response:
    """`GET /api/v1/workspace/export`: the archive as a download."""
    principal = _principal(request)
    archive = service().export(principal, request.headers.get("X-Workspace-Id"))
    size = archive.file.seek(0, 2)
    archive.file.seek(0)
    response = flask.Response(_streamed(archive.file), mimetype="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{archive.filename}"', "Content-Length": str(size),
        "Cache-Control": "no-store"})
    response.call_on_close(archive.file.close)
    return response


def _streamed(file: IO[bytes], chunk: int = 256 * 1024) -> Iterator[bytes]:
    """The file's bytes in chunks; closes it once read to the end (or when the server closes the response)."""
    try:
        while data := file.read(chunk):
            yield data
    finally:
        file.close()


def erase(request: flask.Request) -> flask.Response:
    """`DELETE /api/v1/workspace/data?confirm=<workspace id>`."""
    principal = _principal(request)
    confirms = request.args.getlist("confirm")
    if len(confirms) > 1:
        raise InvalidRequest(f"Send `confirm` once; got {confirms!r}.", details={"field": "confirm", "value": confirms})
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _KEY.match(key):
        raise InvalidRequest("`Idempotency-Key` must be 1 to 200 printable ASCII characters without spaces.",
                             details={"field": "Idempotency-Key", "value": key[:300]})
    report = service().erase(principal, request.headers.get("X-Workspace-Id"),
                             confirm=confirms[0] if confirms else None, idempotency_key=key)
    return json_response(report.model_dump(mode="json"))


ROUTES: list[Route] = [
    ("GET", re.compile(_PREFIX + r"/workspace/export/?$"), export),
    ("DELETE", re.compile(_PREFIX + r"/workspace/data/?$"), erase),
]

_FORBIDDEN = {"403": {"description": "Only a workspace owner may do this",
                      "content": errors(400)["400"]["content"]}}
_WORKSPACE_HEADER = {"name": "X-Workspace-Id", "in": "header", "required": False,
                     "schema": {"type": "string", "format": "uuid"}}
PATHS: dict[str, Any] = {
    "/api/v1/workspace/export": {"get": {
        "summary": "Download everything the workspace stored (owners only; audited)",
        "parameters": [_WORKSPACE_HEADER],
        "responses": {
            "200": {"description": "A zip: `manifest.json` (an `ExportManifest`), `workspace.json`, "
                                   "`tables/<table>.json` (a JSON array per table) and `files/<path>` (originals)",
                    "headers": {"Content-Disposition": {"schema": {"type": "string"},
                                                        "description": "attachment; filename=…zip"}},
                    "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
            **errors(400, 401, 404), **_FORBIDDEN, **errors(503)},
    }},
    "/api/v1/workspace/data": {"delete": {
        "summary": "Erase the workspace's data, keeping payments, invoices and the audit log (owners only; audited)",
        "parameters": [
            {"name": "confirm", "in": "query", "required": True, "schema": {"type": "string", "format": "uuid"},
             "description": "The workspace's id (the one `X-Workspace-Id` or the token names), repeated to "
                            "confirm an irreversible erasure; any other value is a 400 naming `confirm`"},
            {"name": "Idempotency-Key", "in": "header", "required": False,
             "schema": {"type": "string", "pattern": _KEY.pattern}},
            _WORKSPACE_HEADER],
        "responses": {"200": {"description": "What was erased and kept", "content": json_content(ErasureReport)},
                      **errors(400, 401, 404), **_FORBIDDEN, **errors(503)},
    }},
}
MODELS: tuple[type, ...] = (ErasureReport, ExportManifest)
