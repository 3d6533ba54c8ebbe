"""Turning results and `MuseError`s into HTTP responses (Flask, as functions-framework serves it)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import flask
from pydantic import BaseModel, ValidationError

from shared.errors import InvalidRequest, MuseError, QuotaExceeded, ThreadBusy

log = logging.getLogger("muse.http")
M = TypeVar("M", bound=BaseModel)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> flask.Response:
    """A JSON response."""
    response = flask.jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_response(exc: MuseError) -> flask.Response:
    """The JSON error body and status of `exc`."""
    headers = {}
    if isinstance(exc, ThreadBusy | QuotaExceeded):
        headers["Retry-After"] = str(exc.retry_after_seconds)
    return json_response(exc.to_dict(), exc.http_status, headers)


def parse_body(request: flask.Request, model: type[M]) -> M:
    """Validate a JSON body into `model`, or raise `InvalidRequest` naming each bad field and the fix."""
    if not request.is_json:
        raise InvalidRequest("Send a JSON body with `Content-Type: application/json`.")
    data = request.get_json(silent=True)
    if data is None:
        raise InvalidRequest("The request body is not valid JSON.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "problem": err["msg"]}
            for err in exc.errors(include_url=False)
        ]
        summary = "; ".join(f"`{p['field']}`: {p['problem']}" for p in problems)
        raise InvalidRequest(f"Invalid {model.__name__}: {summary}", details={"fields": problems}) from exc


def handle_errors(view: Callable[..., flask.Response]) -> Callable[..., flask.Response]:
    """Map `MuseError`s to their JSON responses; anything else is a logged 500."""

    def wrapper(*args: Any, **kwargs: Any) -> flask.Response:
        try:
            return view(*args, **kwargs)
        except MuseError as exc:
            return error_response(exc)
        except Exception:
            log.exception("unhandled error")
            return json_response({"error": {"code": "internal_error", "message": "Internal error."}}, 500)

    wrapper.__name__ = view.__name__
    wrapper.__doc__ = view.__doc__
    return wrapper


def qstash_response(handler: Callable[[], Any]) -> flask.Response:
    """Run a QStash-delivered step and answer in the terms QStash understands.

    2xx: done (or a harmless duplicate). 429 + Retry-After: the thread is busy, try later.
    489 + `Upstash-NonRetryable-Error: true`: permanent, do not retry. 5xx: transient, retry.
    """
    try:
        reply = handler()
    except MuseError as exc:
        response = error_response(exc)
        if not exc.retryable and exc.http_status >= 500 or exc.http_status == 489:
            response.status_code = 489
            response.headers["Upstash-NonRetryable-Error"] = "true"
        return response
    except Exception:
        log.exception("step failed")
        return json_response({"error": {"code": "internal_error", "message": "Step failed; QStash retries it."}}, 500)
    return json_response(reply.body, reply.status, reply.headers)
