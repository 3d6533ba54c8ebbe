"""A local LangSmith trace collector, wire-compatible with the `langsmith` SDK's run ingestion.

Point `langsmith.Client(api_url=...)` at it and traced runs (multipart, batch or single-run uploads)
are merged into in-memory run records that tests read back from `/_emulator/runs`. `GET /info`
answers 404 on purpose: the SDK then uses safe defaults (multipart, no zstd) instead of a partial
`batch_ingest_config` that would kill its tracing thread.
"""

from __future__ import annotations

import gzip
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import flask
from werkzeug.exceptions import HTTPException
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from infra.local.emulators.config import EmulatorConfig

RUN_FIELDS = (
    "id",
    "name",
    "run_type",
    "parent_run_id",
    "trace_id",
    "dotted_order",
    "session_name",
    "start_time",
    "end_time",
    "inputs",
    "outputs",
    "error",
    "extra",
    "events",
    "tags",
)
"""Fields every run record carries (None until the SDK sends them), in display order."""

_PAYLOAD_PARTS = ("inputs", "outputs", "events", "extra", "error", "serialized")


def create_app(config: EmulatorConfig) -> flask.Flask:
    """Build the collector; runs and feedback live in memory, per app instance."""
    app = flask.Flask(__name__)
    app.url_map.strict_slashes = False
    store = RunStore()

    @app.before_request
    def _authenticate() -> flask.Response | None:
        path = flask.request.path
        if path.startswith("/_emulator") or path.rstrip("/") == "/info":
            return None
        if flask.request.headers.get("x-api-key") != config.langsmith_api_key:
            return _error(401, "Unauthorized: missing or invalid x-api-key.")
        return None

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> flask.Response:
        return _error(exc.code or 500, exc.description or exc.name)

    @app.get("/info")
    def info() -> flask.Response:
        return _error(404, "The local collector has no /info; the SDK falls back to defaults.")

    @app.post("/runs/multipart")
    def ingest_multipart() -> flask.Response:
        boundary = parse_options_header(flask.request.headers.get("Content-Type", ""))[1].get("boundary")
        if not boundary:
            return _error(400, "multipart/form-data with a boundary expected")
        for name, content_type, data in parse_multipart(_request_body(), boundary):
            store.apply_part(name, content_type, data)
        return _accepted()

    @app.post("/runs/batch")
    def ingest_batch() -> flask.Response:
        body = _json_body()
        for run in body.get("post") or []:
            store.upsert(run)
        for run in body.get("patch") or []:
            store.upsert(run)
        return _accepted()

    @app.post("/runs")
    def create_run() -> flask.Response:
        store.upsert(_json_body())
        return _accepted()

    @app.patch("/runs/<run_id>")
    def update_run(run_id: str) -> flask.Response:
        store.upsert({**_json_body(), "id": run_id})
        return _accepted()

    @app.get("/_emulator/runs")
    def list_runs() -> flask.Response:
        filters = {key: value for key, value in flask.request.args.items() if key in RUN_FIELDS}
        return flask.jsonify(store.runs(filters))

    @app.get("/_emulator/runs/<run_id>")
    def get_run(run_id: str) -> flask.Response:
        run = store.run(run_id)
        return flask.jsonify(run) if run else _error(404, f"run {run_id} not found")

    @app.delete("/_emulator/runs")
    def clear_runs() -> flask.Response:
        store.clear()
        return flask.jsonify([])

    @app.get("/_emulator/feedback")
    def list_feedback() -> flask.Response:
        return flask.jsonify(store.feedback())

    return app


@dataclass
class RunStore:
    """Run records merged from post/patch operations in arrival order, guarded by one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    _runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _feedback: list[dict[str, Any]] = field(default_factory=list)

    def upsert(self, fields: dict[str, Any]) -> None:
        """Merge a run (or a patch of one): present, non-null values win; `extra` merges shallowly."""
        run_id = str(fields.get("id") or "")
        if not run_id:
            return
        with self.lock:
            record = self._runs.setdefault(run_id, _empty_run(run_id))
            for key, value in fields.items():
                if value is None or key == "id":
                    continue
                if key == "extra" and isinstance(value, dict) and isinstance(record.get("extra"), dict):
                    record["extra"] = {**record["extra"], **value}
                else:
                    record[key] = _stringify_ids(key, value)

    def apply_part(self, name: str, content_type: str, data: bytes) -> None:
        """Route one multipart part (`post.<id>`, `patch.<id>.outputs`, `attachment.<id>.<n>`...)."""
        kind, _, rest = name.partition(".")
        if kind in ("post", "patch"):
            run_id, _, payload = rest.partition(".")
            value = json.loads(data or b"null")
            if not payload:
                self.upsert({**(value or {}), "id": run_id})
            elif payload in _PAYLOAD_PARTS:
                self.upsert({"id": run_id, payload: value})
        elif kind == "attachment":
            run_id, _, attachment = rest.partition(".")
            with self.lock:
                record = self._runs.setdefault(run_id, _empty_run(run_id))
                record.setdefault("attachments", {})[attachment] = {
                    "content_type": content_type,
                    "size": len(data),
                }
        elif kind == "feedback":
            with self.lock:
                self._feedback.append(json.loads(data or b"{}"))

    def runs(self, filters: dict[str, str] | None = None) -> list[dict[str, Any]]:
        with self.lock:
            records = [dict(record) for record in self._runs.values()]
        return [r for r in records if all(str(r.get(k)) == v for k, v in (filters or {}).items())]

    def run(self, run_id: str) -> dict[str, Any] | None:
        with self.lock:
            record = self._runs.get(run_id)
            return dict(record) if record else None

    def feedback(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self._feedback)

    def clear(self) -> None:
        with self.lock:
            self._runs.clear()
            self._feedback.clear()


def parse_multipart(body: bytes, boundary: str) -> list[tuple[str, str, bytes]]:
    """Split a multipart/form-data body into `(name, content_type, bytes)` without decoding text."""
    decoder = MultipartDecoder(boundary.encode())
    decoder.receive_data(body)
    decoder.receive_data(None)
    parts: list[tuple[str, str, bytes]] = []
    name, content_type, buffer = "", "", bytearray()
    event = decoder.next_event()
    while not isinstance(event, Epilogue | NeedData):
        if isinstance(event, Field | File):
            name, content_type, buffer = event.name, event.headers.get("Content-Type", ""), bytearray()
        elif isinstance(event, Data):
            buffer += event.data
            if not event.more_data:
                parts.append((name, content_type, bytes(buffer)))
        event = decoder.next_event()
    return parts


def _empty_run(run_id: str) -> dict[str, Any]:
    return {key: (run_id if key == "id" else None) for key in RUN_FIELDS}


def _stringify_ids(key: str, value: Any) -> Any:
    return str(value) if key in ("parent_run_id", "trace_id") else value


def _request_body() -> bytes:
    """The raw body, decompressed if the SDK compressed it (zstd or gzip)."""
    data = flask.request.get_data(cache=False)
    encoding = flask.request.headers.get("Content-Encoding", "").lower()
    if encoding == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(data).read()
    if encoding == "gzip":
        return gzip.decompress(data)
    return data


def _json_body() -> dict[str, Any]:
    body = json.loads(_request_body() or b"{}")
    return body if isinstance(body, dict) else {}


def _accepted() -> flask.Response:
    response = flask.jsonify({})
    response.status_code = 202
    return response


def _error(status: int, message: str) -> flask.Response:
    response = flask.jsonify({"detail": message})
    response.status_code = status
    return response
