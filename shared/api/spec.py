"""Building blocks of the OpenAPI document, shared by every route module's `PATHS`."""

from __future__ import annotations

from typing import Any

from shared.api.models import ErrorBody

ERROR_TEXT = {400: "Malformed request (the message names the field and the fix)", 401: "Missing or invalid token",
              404: "No such resource in your workspaces", 409: "Not possible in the resource's current state",
              413: "Larger than a configured limit (the message names it)",
              422: "Well-formed but refused (the message says why)",
              429: "A quota or rate limit is used up; retry after `Retry-After` seconds",
              503: "A dependency is unavailable; retry"}


def ref(model: type) -> dict[str, str]:
    """A `$ref` to a component schema."""
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def json_content(model: type) -> dict[str, Any]:
    """`content` of a JSON body of `model`."""
    return {"application/json": {"schema": ref(model)}}


def errors(*codes: int) -> dict[str, Any]:
    """The error responses of an operation: each an `ErrorBody`."""
    return {str(c): {"description": ERROR_TEXT[c], "content": json_content(ErrorBody)} for c in codes}
