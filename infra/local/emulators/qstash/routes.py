"""The HTTP routes: publish, enqueue and batch; messages, logs, DLQ and keys; schedules; `/_emulator/`.

Destinations are read from the raw request URI (`raw_destination`), because the SDK appends them
unescaped and their query strings and `%2F`s must reach the destination as sent.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import flask
from werkzeug.datastructures import Headers

from infra.local.emulators.qstash import store as db
from infra.local.emulators.qstash.documents import emulator_document, event_document, message_document
from infra.local.emulators.qstash.emulator import QStashEmulator
from infra.local.emulators.qstash.errors import ApiError
from infra.local.emulators.qstash.messages import Incoming


def raw_destination(environ: dict[str, Any], marker: str) -> str:
    """Everything after `marker` in the raw request URI, query included, not percent-decoded.

    Works behind a mount prefix; the SDK appends the destination unescaped, so its own query string
    arrives as the request's. A `qstash_token` query parameter is removed.
    """
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        raw = raw.encode("latin-1").decode("utf-8", "replace")
    else:
        path = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1")
        raw = path.decode("utf-8", "replace")
        if environ.get("QUERY_STRING"):
            raw += "?" + environ["QUERY_STRING"]
    index = raw.find(marker)
    if index < 0:
        raise ApiError(400, "missing destination")
    path, sep, query = raw[index + len(marker) :].partition("?")
    kept = [p for p in query.split("&") if p and not p.startswith("qstash_token=")] if sep else []
    return path + ("?" + "&".join(kept) if kept else "")


def _incoming(destination: str, queue: str | None = None) -> Incoming:
    request = flask.request
    return Incoming(destination, Headers(request.headers), request.get_data(), queue, request.remote_addr)


def _json_body() -> Any:
    data = flask.request.get_data()
    if not data.strip():
        return None
    try:
        return json.loads(data)
    except ValueError as exc:
        raise ApiError(400, f"invalid JSON body: {exc}") from exc


def _json(payload: Any, status: int = 200) -> flask.Response:
    response = flask.jsonify(payload)
    response.status_code = status
    return response


def register_publish_routes(app: flask.Flask, emulator: QStashEmulator) -> None:
    @app.post("/v2/publish/<path:destination>")
    def publish(destination: str) -> flask.Response:
        status, body = emulator.accept(_incoming(raw_destination(flask.request.environ, "/v2/publish/")))
        return _json(body, status)

    @app.post("/v2/enqueue/<queue>/<path:destination>")
    def enqueue(queue: str, destination: str) -> flask.Response:
        rest = raw_destination(flask.request.environ, "/v2/enqueue/")
        _, _, target = rest.partition("/")
        status, body = emulator.accept(_incoming(target, queue))
        return _json(body, status)

    @app.post("/v2/batch")
    def batch() -> flask.Response:
        items = _json_body()
        if not isinstance(items, list):
            raise ApiError(400, "batch body must be a JSON array of {destination, headers, body, queue}")
        return _json([_batch_item(emulator, item) for item in items], 201)


def _batch_item(emulator: QStashEmulator, item: Any) -> dict[str, Any]:
    """Publish one batch element; a bad element yields an error entry and the rest still go out."""
    try:
        if not isinstance(item, dict) or not isinstance(item.get("destination"), str):
            raise ApiError(400, "each batch element needs a string `destination`")
        headers = item.get("headers") or {}
        if not isinstance(headers, dict):
            raise ApiError(400, "batch element `headers` must be an object")
        incoming = Incoming(
            destination=item["destination"],
            headers=Headers({str(k): str(v) for k, v in headers.items()}),
            body=_batch_body(item.get("body")),
            queue=item.get("queue") or None,
            caller_ip=flask.request.remote_addr,
        )
        return emulator.accept(incoming)[1]
    except ApiError as exc:
        return {"error": exc.message}


def _batch_body(body: Any) -> bytes:
    if body is None:
        return b""
    return body.encode() if isinstance(body, str) else json.dumps(body).encode()


def _page_params(default_count: int) -> tuple[int | None, int]:
    args = flask.request.args
    cursor = args.get("cursor") or None
    try:
        count = min(max(1, int(args.get("count", default_count))), default_count)
        return (int(cursor) if cursor else None), count
    except ValueError as exc:
        raise ApiError(400, f"invalid cursor or count: {exc}") from exc


def register_management_routes(app: flask.Flask, emulator: QStashEmulator) -> None:
    store = emulator.store

    @app.get("/v2/messages/<message_id>")
    def get_message(message_id: str) -> flask.Response:
        row = store.get_message(message_id)
        if row is None or row["state"] not in db.PENDING_STATES:
            raise ApiError(404, f"message {message_id} not found")
        return _json(message_document(row))

    @app.delete("/v2/messages/<message_id>")
    def cancel_message(message_id: str) -> flask.Response:
        if store.cancel([message_id], time.time()) == 0:
            raise ApiError(404, f"message {message_id} not found")
        return flask.Response(status=202)

    @app.delete("/v2/messages")
    def cancel_messages() -> flask.Response:
        body = _json_body()
        ids = body.get("messageIds") if isinstance(body, dict) else None
        return _json({"cancelled": store.cancel(ids, time.time())})

    @app.get("/v2/events")
    @app.get("/v2/logs")
    def list_events() -> flask.Response:
        cursor, count = _page_params(1000)
        filters = {**flask.request.args.to_dict(), "messageIds": flask.request.args.getlist("messageIds")}
        rows = store.list_events(filters, cursor, count)
        next_cursor = str(rows[count - 1]["id"]) if len(rows) > count else None
        key = "logs" if flask.request.path.endswith("/logs") else "events"
        return _json({"cursor": next_cursor, key: [event_document(r) for r in rows[:count]]})

    @app.get("/v2/dlq")
    def list_dlq() -> flask.Response:
        cursor, count = _page_params(100)
        rows = store.list_dlq(flask.request.args.to_dict(), cursor, count)
        next_cursor = str(rows[count - 1]["seq"]) if len(rows) > count else None
        return _json({"cursor": next_cursor, "messages": [r["document"] for r in rows[:count]]})

    @app.get("/v2/dlq/<dlq_id>")
    def get_dlq(dlq_id: str) -> flask.Response:
        row = store.get_dlq(dlq_id)
        if row is None:
            raise ApiError(404, f"dlq message {dlq_id} not found")
        return _json(row["document"])

    @app.delete("/v2/dlq/<dlq_id>")
    def delete_dlq(dlq_id: str) -> flask.Response:
        if store.delete_dlq([dlq_id]) == 0:
            raise ApiError(404, f"dlq message {dlq_id} not found")
        return flask.Response(status=200)

    @app.delete("/v2/dlq")
    def delete_dlq_many() -> flask.Response:
        body = _json_body()
        ids = body.get("dlqIds") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            raise ApiError(400, 'body must be {"dlqIds": [...]}')
        return _json({"deleted": store.delete_dlq([str(i) for i in ids])})

    @app.get("/v2/keys")
    def keys() -> flask.Response:
        config = emulator.config
        return _json({"current": config.qstash_current_signing_key, "next": config.qstash_next_signing_key})

    @app.post("/v2/keys/rotate")
    def rotate_keys() -> flask.Response:
        raise ApiError(400, "the emulator's signing keys come from its configuration and cannot be rotated")


def register_schedule_routes(app: flask.Flask, emulator: QStashEmulator) -> None:
    store = emulator.store

    @app.post("/v2/schedules/<path:destination>")
    def create_schedule(destination: str) -> flask.Response:
        request = flask.request
        target = raw_destination(request.environ, "/v2/schedules/")
        created, schedule_id = emulator.create_schedule(
            target, Headers(request.headers), request.get_data(), request.remote_addr
        )
        return _json({"scheduleId": schedule_id}, 201 if created else 200)

    @app.get("/v2/schedules")
    def list_schedules() -> flask.Response:
        return _json(emulator.schedule_documents())

    @app.get("/v2/schedules/<schedule_id>")
    def get_schedule(schedule_id: str) -> flask.Response:
        found = emulator.schedule_documents(schedule_id)
        if not found:
            raise ApiError(404, f"schedule {schedule_id} not found")
        return _json(found[0])

    @app.delete("/v2/schedules/<schedule_id>")
    def delete_schedule(schedule_id: str) -> flask.Response:
        if not store.delete_schedule(schedule_id):
            raise ApiError(404, f"schedule {schedule_id} not found")
        return flask.Response(status=200)

    @app.route("/v2/schedules/<schedule_id>/pause", methods=["PATCH", "POST"])
    def pause_schedule(schedule_id: str) -> flask.Response:
        if not store.pause_schedule(schedule_id, time.time()):
            raise ApiError(404, f"schedule {schedule_id} not found")
        return flask.Response(status=200)

    @app.route("/v2/schedules/<schedule_id>/resume", methods=["PATCH", "POST"])
    def resume_schedule(schedule_id: str) -> flask.Response:
        if not emulator.resume_schedule(schedule_id):
            raise ApiError(404, f"schedule {schedule_id} not found")
        return flask.Response(status=200)


def register_emulator_routes(app: flask.Flask, emulator: QStashEmulator) -> None:
    @app.get("/_emulator/messages")
    def all_messages() -> flask.Response:
        return _json({"messages": [emulator_document(row) for row in emulator.store.list_messages()]})

    @app.get("/_emulator/duplicates")
    def get_duplicates() -> flask.Response:
        return _json({"times": emulator.duplicates})

    @app.post("/_emulator/duplicates")
    def set_duplicates() -> flask.Response:
        body = _json_body()
        times = body.get("times") if isinstance(body, dict) else None
        if not isinstance(times, int) or isinstance(times, bool) or times < 1:
            raise ApiError(400, 'body must be {"times": <integer >= 1>}')
        emulator.duplicates = times
        return _json({"times": times})

    @app.get("/_emulator/cron")
    def get_cron_speed() -> flask.Response:
        return _json({"seconds_per_minute": emulator.scheduler.clock.seconds_per_minute})

    @app.post("/_emulator/cron")
    def set_cron_speed() -> flask.Response:
        body = _json_body()
        seconds = body.get("seconds_per_minute") if isinstance(body, dict) else None
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 0 < seconds < math.inf:
            raise ApiError(400, 'body must be {"seconds_per_minute": <number > 0>}')
        emulator.scheduler.set_speed(float(seconds))
        return _json({"seconds_per_minute": emulator.scheduler.clock.seconds_per_minute})
