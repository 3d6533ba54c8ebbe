"""Building blocks of the OpenAPI document, shared by every route module's `PATHS`.

`complete_operation` adds what the edge (`shared.http`, the dispatcher) answers on every operation, so a
module documents only its own outcomes: a 400 for text Postgres cannot store or JSON too deep, a 401 where
a token is required, a 413 where a body is read, `Retry-After` on every 429 and `Allow` on a 405.
"""

from __future__ import annotations

from typing import Any

from shared.api.models import EMAIL_PATTERN, NOT_BLANK_PATTERN, TEXT_PATTERN, ErrorBody

__all__ = ["EMAIL_PATTERN", "NOT_BLANK_PATTERN", "TEXT_PATTERN", "complete_operation", "errors", "json_content", "ref",
           "uuid_path"]

ERROR_TEXT = {400: "Malformed request (the message names the field and the fix)", 401: "Missing or invalid token",
              404: "No such resource in your workspaces",
              405: "Method not allowed on this path (`Allow` lists the methods)",
              409: "Not possible in the resource's current state",
              413: "Larger than a configured limit (the message names it)",
              415: "Unsupported media type (the message names the ones accepted)",
              422: "Well-formed but refused (the message says why)",
              429: "A quota or rate limit is used up; retry after `Retry-After` seconds",
              503: "A dependency is unavailable; retry"}
RETRY_AFTER = {"description": "Seconds to wait before retrying", "schema": {"type": "integer", "minimum": 0}}
WORKSPACE_HEADER: dict[str, Any] = {
    "name": "X-Workspace-Id", "in": "header", "required": False, "schema": {"type": "string", "format": "uuid"},
    "description": "The workspace to act in; needed only by members of several workspaces."}


def ref(model: type) -> dict[str, str]:
    """A `$ref` to a component schema."""
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def json_content(model: type) -> dict[str, Any]:
    """`content` of a JSON body of `model`."""
    return {"application/json": {"schema": ref(model)}}


def errors(*codes: int) -> dict[str, Any]:
    """The error responses of an operation: each an `ErrorBody` (a 429 with `Retry-After`)."""
    found: dict[str, Any] = {}
    for code in codes:
        found[str(code)] = {"description": ERROR_TEXT[code], "content": json_content(ErrorBody)}
        if code == 429:
            found[str(code)]["headers"] = {"Retry-After": RETRY_AFTER}
    return found


def uuid_path(name: str) -> dict[str, Any]:
    """A required path parameter holding a UUID."""
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}


def complete_operation(operation: dict[str, Any], *, secured: bool) -> dict[str, Any]:
    """`operation` with the responses the edge can give on it added (a module's own entries are kept)."""
    responses = dict(operation.get("responses", {}))
    edge = [400, *([401, 429] if secured else []), *([413] if "requestBody" in operation else [])]
    for status, response in errors(*edge).items():
        responses.setdefault(status, response)
    if "429" in responses:
        responses["429"] = {**responses["429"], "headers": {"Retry-After": RETRY_AFTER,
                                                            **responses["429"].get("headers", {})}}
    return {**operation, "responses": responses}
