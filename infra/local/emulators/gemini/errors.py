"""Gemini's error envelope, `{"error": {code, message, status}}`, which `google.genai.errors.APIError` parses."""

from __future__ import annotations

import flask

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_response(code: int, message: str) -> flask.Response:
    """Gemini's error envelope, which `google.genai.errors.APIError` parses."""
    status = STATUS_NAMES.get(code, "UNKNOWN")
    response = flask.jsonify({"error": {"code": code, "message": message, "status": status}})
    response.status_code = code
    return response
