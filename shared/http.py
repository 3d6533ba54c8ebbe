"""The HTTP edge (Flask, as functions-framework serves it): untrusted input in, JSON responses out.

Input is refused here, once, before any route sees it: JSON nested deeper than `MUSE_JSON_MAX_DEPTH`
(measured on the raw bytes, so a 100k-deep body costs a few passes of C string scanning, never a
recursion), `NaN`/`Infinity`, and any string (JSON key or value at any depth, query parameter, path,
header, form field or file name) that Postgres cannot store as text: a NUL byte or an unpaired surrogate.
Each answer is a 400 naming the field. Every error, `MuseError` or werkzeug's `HTTPException` (404, 405,
413, a malformed multipart body), leaves as the same JSON `ErrorBody`.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import flask
import functions_framework
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from shared.errors import InvalidRequest, MuseError, NotFound, QuotaExceeded, ThreadBusy
from shared.safety.pii import install_log_masking
from shared.security.redact import install_secret_log_masking
from shared.settings import get_settings

log = logging.getLogger("muse.http")
install_log_masking()  # every function serves through this module, so every function process masks its logs
install_secret_log_masking()
M = TypeVar("M", bound=BaseModel)

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_INNERMOST_PAIR = re.compile(rb"\[\]|\{\}")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_HTTP_CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
               415: "unsupported_media_type", 429: "quota_exceeded"}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> flask.Response:
    """A JSON response."""
    response = flask.jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _refusal(body: dict[str, Any], status: int, headers: dict[str, str]) -> flask.Response:
    """A JSON answer sent as a stream, for a 413: functions-framework drains the body of every response that
    is not streamed, and reading a body past `max_content_length` raises again (a 500 while handling the 413)."""
    return flask.Response(iter([json.dumps(body)]), status, headers=headers, mimetype="application/json")


def error_response(exc: MuseError) -> flask.Response:
    """The JSON error body and status of `exc`."""
    headers = {}
    if isinstance(exc, ThreadBusy | QuotaExceeded):
        headers["Retry-After"] = str(exc.retry_after_seconds)
    if exc.http_status == 413:
        return _refusal(exc.to_dict(), 413, headers)
    return json_response(exc.to_dict(), exc.http_status, headers)


def http_error_response(exc: HTTPException) -> flask.Response:
    """werkzeug's own errors (routing, body limits, malformed forms) as the JSON `ErrorBody`."""
    status = exc.code or 500
    message = exc.description or exc.name
    if status == 413:
        limit = flask.request.max_content_length if flask.has_request_context() else None
        message = (f"The request body is larger than this function accepts ({limit} bytes, MUSE_API_MAX_BODY_BYTES)."
                   if limit else "The request body (or one form field) is larger than this function accepts.")
    body = {"error": {"code": _HTTP_CODES.get(status, f"http_{status}"), "message": message}}
    headers = {name: value for name, value in exc.get_headers() if name.lower() == "allow"}
    if status == 413:
        return _refusal(body, status, headers)
    return json_response(body, status, headers)


def internal_error_response() -> flask.Response:
    """The JSON 500 of an unexpected exception (already logged by the caller)."""
    return json_response({"error": {"code": "internal_error", "message": "Internal error."}}, 500)


def text_problem(value: str) -> str | None:
    """Why Postgres could not store `value` as text (a NUL byte, an unpaired surrogate), or None."""
    if "\x00" in value:
        return "contains a NUL byte (\\u0000), which cannot be stored; remove it"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "contains an unpaired UTF-16 surrogate (not valid Unicode text); send valid UTF-8"
    return None


def check_text(value: str, field: str) -> None:
    """Raise `InvalidRequest` naming `field` if `value` cannot be stored as text."""
    problem = text_problem(value)
    if problem is not None:
        shown = field.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode()
        raise InvalidRequest(f"`{shown}` {problem}.", details={"field": shown})


def check_json_strings(data: Any) -> None:
    """Check every key and string of parsed JSON, naming the field by its path (`brief.channels.0`)."""
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            check_text(value, path or "(body)")
        elif isinstance(value, dict):
            for key, item in value.items():
                name = f"{path}.{key}" if path else str(key)
                check_text(key, f"{name} (a key)")
                stack.append((item, name))
        elif isinstance(value, list):
            stack.extend((item, f"{path}.{i}" if path else str(i)) for i, item in enumerate(value))


def json_too_deep(raw: bytes, limit: int) -> bool:
    """Whether the JSON text `raw` nests arrays/objects deeper than `limit`, decided without parsing it.

    Strings are blanked out, everything but brackets dropped, then innermost pairs are removed one level
    per pass: anything left after `limit` passes was nested deeper (or unbalanced, hence not JSON either).
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        shorter = _INNERMOST_PAIR.sub(b"", brackets)
        if not shorter:
            return False
        if shorter == brackets:
            return True
        brackets = shorter
    return True


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; send a finite number or null")


def _number(text: str) -> int | float:
    """A JSON number as JSON Schema reads it: `1.0` is the integer 1; one beyond float range is refused."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range; send a finite number")
    return int(value) if value.is_integer() else value


def read_json(request: flask.Request, *, max_depth: int | None = None) -> Any:
    """The request's JSON body, or `InvalidRequest`: not JSON, too deep, `NaN`, or a string Postgres refuses.

    `max_depth` defaults to the `MUSE_JSON_MAX_DEPTH` setting.
    """
    if max_depth is None:
        max_depth = get_settings().json_max_depth
    if not request.is_json:
        raise InvalidRequest("Send a JSON body with `Content-Type: application/json`.")
    raw = request.get_data(cache=True)
    if json_too_deep(raw, max_depth):
        raise InvalidRequest(f"The JSON body nests arrays/objects deeper than {max_depth} levels "
                             "(MUSE_JSON_MAX_DEPTH); flatten it.", details={"max_depth": max_depth})
    try:
        data = json.loads(raw, parse_constant=_refuse_constant, parse_float=_number)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}.") from exc
    check_json_strings(data)
    return data


def check_request_text(request: flask.Request, path_params: Iterable[tuple[str, str]] = ()) -> None:
    """Refuse a request whose path, query, headers or form fields hold text Postgres cannot store."""
    for name, value in path_params:
        check_text(value, name)
    check_text(request.path, "path")
    for name, values in request.args.lists():
        if not name:
            raise InvalidRequest("A query parameter has no name (`?=value`); name it or leave it out.",
                                 details={"field": "(query)", "value": values})
        check_text(name, f"{name} (a query parameter name)")
        for value in values:
            check_text(value, name)
    for name, value in request.headers.items():
        check_text(value, name)
    if request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        for name, values in request.form.lists():
            check_text(name, f"{name} (a form field name)")
            for value in values:
                check_text(value, name)
        for name, upload in request.files.items(multi=True):
            check_text(upload.filename or "", f"{name} (its file name)")


def parse_body(request: flask.Request, model: type[M], *, max_depth: int | None = None) -> M:
    """Validate a JSON body into `model`, or raise `InvalidRequest` naming each bad field and the fix.

    Validation is pydantic's strict JSON mode, the types JSON Schema states: `"5"` is not an integer and
    `0` not a boolean, while `1.0` is the integer 1 (dates, UUIDs and enums are strings, as in the document).
    """
    data = read_json(request, max_depth=max_depth)
    try:
        return model.model_validate_json(json.dumps(data), strict=True)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "problem": err["msg"]}
            for err in exc.errors(include_url=False)
        ]
        summary = "; ".join(f"`{p['field']}`: {p['problem']}" for p in problems)
        raise InvalidRequest(f"Invalid {model.__name__}: {summary}", details={"fields": problems}) from exc


def any_error_response(exc: BaseException) -> flask.Response:
    """The JSON response of any exception: `MuseError`, werkzeug `HTTPException`, else a logged 500."""
    if isinstance(exc, MuseError):
        return error_response(exc)
    if isinstance(exc, HTTPException):
        return http_error_response(exc)
    log.error("unhandled error", exc_info=exc)
    return internal_error_response()


def json_errors() -> None:
    """Make every error of the function being loaded JSON, those functions-framework raises itself included.

    Call it at the top level of a function's `main.py`: functions-framework points `errorhandler` at the
    app it is building while it runs that module, so its own 404s (`/robots.txt`, `/favicon.ico`), a 413
    past `max_content_length` and anything a view lets escape answer an `ErrorBody`, not an HTML page.
    """
    functions_framework.errorhandler(Exception)(any_error_response)


def handle_errors(view: Callable[..., flask.Response]) -> Callable[..., flask.Response]:
    """Map every exception of `view` to its JSON response (`any_error_response`)."""

    def wrapper(*args: Any, **kwargs: Any) -> flask.Response:
        try:
            return view(*args, **kwargs)
        except Exception as exc:
            return any_error_response(exc)

    wrapper.__name__ = view.__name__
    wrapper.__doc__ = view.__doc__
    return wrapper


MAX_EVENT_ID = 2**63 - 1
"""Largest event id a stream can resume after (event tables use bigserial ids)."""

Route = tuple[str, re.Pattern[str], Callable[..., flask.Response]]
"""(method, path pattern, view): the view gets the pattern's named groups as keyword arguments."""


def last_event_id(request: flask.Request) -> int:
    """The event id to resume after: `Last-Event-ID` (what browsers resend), else `?last_event_id=`, else 0."""
    header = request.headers.get("Last-Event-ID")
    name, raw = ("Last-Event-ID", header) if header else ("last_event_id", request.args.get("last_event_id"))
    if not raw:
        return 0
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19 and int(raw) <= MAX_EVENT_ID):
        raise InvalidRequest(f"`{name}` must be an event id: ASCII digits from 0 to {MAX_EVENT_ID}, got {raw!r}.",
                             details={"field": name, "value": raw})
    return int(raw)


QueryRule = tuple[str, re.Pattern[str], frozenset[str]]
"""(method, path pattern without `/api`, the query parameter names its operation documents)."""


def documented_queries(paths: Mapping[str, Any]) -> list[QueryRule]:
    """The `QueryRule` of every operation of an OpenAPI `paths` object, literal paths first."""
    found = []
    for path, item in paths.items():
        literal_parts = re.split(r"\{[^}]+\}", path.removeprefix("/api"))
        pattern = re.compile("^" + "[^/]+".join(re.escape(part) for part in literal_parts) + "/?$")
        for method, operation in item.items():
            names = frozenset(p["name"] for p in operation.get("parameters", []) if p.get("in") == "query")
            found.append((path.count("{"), method.upper(), pattern, names))
    return [(method, pattern, names) for _, method, pattern, names in sorted(found, key=lambda f: f[0])]


def refuse_undocumented_query(request: flask.Request, rules: Iterable[QueryRule], path: str | None = None) -> None:
    """A query parameter `rules` do not list for the operation at `path` (default `request.path`) is a 400
    naming it (never ignored)."""
    if not request.args:
        return
    shown = request.path if path is None else path
    bare = shown.removeprefix("/api")
    for method, pattern, names in rules:
        if method == request.method and pattern.match(bare):
            unknown = sorted(set(request.args) - names)
            if unknown:
                listed = ", ".join(sorted(names)) or "none"
                named = ", ".join(f"`{name}`" for name in unknown)
                raise InvalidRequest(f"Unknown query parameter {named} for {method} {shown}; documented: "
                                     f"{listed}.", details={"field": unknown[0], "allowed": sorted(names)})
            return


def route(request: flask.Request, routes: Iterable[Route], path: str, *,
          before: Callable[[flask.Request], None] | None = None, not_found: str) -> flask.Response:
    """Serve `request` with the first route matching `path` and its method (after the edge's input checks).

    A body over `MUSE_API_MAX_BODY_BYTES` is a 413 before anything is read; a path served for other
    methods only is a JSON 405 with `Allow`; no match at all is a 404 saying `not_found`.
    """
    limit = get_settings().api_max_body_bytes
    request.max_content_length = limit
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()
    allowed: list[str] = []
    for method, pattern, view in routes:
        match = pattern.match(path)
        if match is None:
            continue
        if method != request.method:
            allowed.append(method)
            continue
        check_request_text(request, match.groupdict().items())
        if before is not None:
            before(request)
        return view(request, **match.groupdict())
    if allowed:
        return json_response({"error": {"code": "method_not_allowed",
                                        "message": f"{request.method} is not allowed on {path}; use {allowed}."}},
                             405, {"Allow": ", ".join(allowed)})
    return error_response(NotFound(not_found))


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
