"""A local LangSmith trace collector, wire-compatible with the `langsmith` SDK's run ingestion.

Point `langsmith.Client(api_url=...)` at it and traced runs (multipart, batch or single-run uploads)
are merged into in-memory run records that tests read back from `/_emulator/runs`. `GET /info`
answers like LangSmith's cloud: a complete `batch_ingest_config` (a partial one kills the SDK's tracing
thread) and `zstd_compression_enabled`, so the SDK sends zstd multipart and `Client.flush` sends at once
instead of waiting out its background thread's 50 ms batching window (`LANGSMITH_DISABLE_RUN_COMPRESSION`
still turns compression off).

The SDK's run queries are answered as LangSmith answers them: `Client.read_run` (`GET /runs/{id}`),
`Client.read_project` (`GET /sessions?name=`), and `Client.list_runs` (`POST /runs/query`: by project,
trace, parent, run type, ids, root-ness, error, start time, and the filter language's `eq`, `neq`,
`gt`, `gte`, `lt`, `lte`, `has`, `search`, `in`, `and`, `or`, `not`, including metadata
`and(eq(metadata_key, "k"), eq(metadata_value, "v"))`), cursor-paginated, newest first. Token counts
and costs are derived from each run's `usage_metadata` like the server does.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
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


INFO = {
    "version": "0.15.0-emulator",
    "batch_ingest_config": {"use_multipart_endpoint": True, "scale_up_qsize_trigger": 1000,
                            "scale_up_nthreads_limit": 16, "scale_down_nempty_trigger": 4, "size_limit": 100,
                            "size_limit_bytes": 20_971_520},
    "instance_flags": {"zstd_compression_enabled": True},
}
"""What `GET /info` answers (every key the SDK reads)."""


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
        return flask.jsonify(INFO)

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

    @app.get("/sessions")
    def read_projects() -> flask.Response:
        name = flask.request.args.get("name")
        projects = [p for p in store.projects() if name is None or p["name"] == name]
        return flask.jsonify(projects[: int(flask.request.args.get("limit", 100))])

    @app.get("/sessions/<project_id>")
    def read_project(project_id: str) -> flask.Response:
        project = next((p for p in store.projects() if p["id"] == project_id), None)
        return flask.jsonify(project) if project else _error(404, f"project {project_id} not found")

    @app.get("/runs/<run_id>")
    def read_run(run_id: str) -> flask.Response:
        run = store.run(run_id)
        return flask.jsonify(sdk_view(run, store.runs())) if run else _error(404, f"run {run_id} not found")

    @app.post("/runs/query")
    def query_runs() -> flask.Response:
        body = _json_body()
        try:
            matches = query(store.runs(), body)
        except QueryError as exc:
            return _error(400, str(exc))
        offset = int(body.get("cursor") or 0)
        page_size = min(int(body.get("limit") or 100), 100)
        page = matches[offset: offset + page_size]
        more = offset + page_size < len(matches)
        everything = store.runs()
        return flask.jsonify({"runs": [sdk_view(run, everything) for run in page],
                              "cursors": {"next": str(offset + page_size) if more else None}})

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

    def projects(self) -> list[dict[str, Any]]:
        """One project per session name the runs were sent to, with a stable id."""
        with self.lock:
            names = sorted({str(r["session_name"]) for r in self._runs.values() if r.get("session_name")})
        return [{"id": project_id(name), "name": name, "tenant_id": TENANT_ID, "reference_dataset_id": None,
                 "start_time": "2026-01-01T00:00:00Z", "description": None, "extra": None} for name in names]

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


TENANT_ID = "00000000-0000-4000-8000-000000000001"


def project_id(name: str) -> str:
    """The emulator's id of project `name` (stable across restarts)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"langsmith-emulator:{name}"))


class QueryError(ValueError):
    """A run query the emulator cannot answer (an unknown filter function or field, or bad syntax)."""


def sdk_view(run: dict[str, Any], everything: list[dict[str, Any]]) -> dict[str, Any]:
    """A stored run as the API returns it: the `ls_schemas.Run` fields, with token and cost totals."""
    view = {k: v for k, v in run.items() if k != "attachments"}
    view["inputs"] = view.get("inputs") or {}
    view["events"] = view.get("events") or []
    view["session_id"] = project_id(view["session_name"]) if view.get("session_name") else None
    view["status"] = "error" if view.get("error") else ("success" if view.get("end_time") else "pending")
    usage = _usage(run)
    view |= {"prompt_tokens": usage.get("input_tokens"), "completion_tokens": usage.get("output_tokens"),
             "total_tokens": usage.get("total_tokens"), "prompt_cost": usage.get("input_cost"),
             "completion_cost": usage.get("output_cost"), "total_cost": usage.get("total_cost")}
    segments = str(view.get("dotted_order") or "").split(".")
    view["parent_run_ids"] = [segment[-36:] for segment in segments[:-1]]
    if not view.get("trace_id"):
        view["trace_id"] = segments[0][-36:] if segments[0] else view["id"]
    return view


def _usage(run: dict[str, Any]) -> dict[str, Any]:
    extra = run.get("extra") or {}
    usage = (extra.get("metadata") or {}).get("usage_metadata") or (run.get("outputs") or {}).get("usage_metadata")
    return usage if isinstance(usage, dict) else {}


def query(runs: list[dict[str, Any]], body: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs a `POST /runs/query` body selects, newest first."""
    by_id = {r["id"]: r for r in runs}
    checks: list[Callable[[dict[str, Any]], bool]] = []
    if body.get("session"):
        sessions = {str(s) for s in body["session"]}
        checks.append(lambda r: r.get("session_name") is not None and project_id(r["session_name"]) in sessions)
    if body.get("run_type"):
        checks.append(lambda r: r.get("run_type") == body["run_type"])
    if body.get("trace"):
        checks.append(lambda r: str(r.get("trace_id")) == str(body["trace"]))
    if body.get("parent_run"):
        checks.append(lambda r: str(r.get("parent_run_id")) == str(body["parent_run"]))
    if body.get("id"):
        ids = {str(i) for i in body["id"]}
        checks.append(lambda r: r["id"] in ids)
    if body.get("is_root") is not None:
        checks.append(lambda r: (r.get("parent_run_id") is None) == bool(body["is_root"]))
    if body.get("error") is not None:
        checks.append(lambda r: bool(r.get("error")) == bool(body["error"]))
    if body.get("start_time"):
        checks.append(lambda r: str(r.get("start_time") or "") >= str(body["start_time"]))
    if body.get("filter"):
        checks.append(compile_filter(body["filter"]))
    if body.get("trace_filter"):
        root_check = compile_filter(body["trace_filter"])
        checks.append(lambda r: (root := by_id.get(str(r.get("trace_id")))) is not None and root_check(root))
    if body.get("tree_filter"):
        raise QueryError("tree_filter is not supported by the emulator; filter with `filter` or `trace_filter`")
    selected = [r for r in runs if all(check(r) for check in checks)]
    return sorted(selected, key=lambda r: str(r.get("start_time") or ""), reverse=True)


_TOKEN = re.compile(r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')|(?P<number>-?\d+(?:\.\d+)?)'
                    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)|(?P<punct>[(),\[\]]))")
_COMPARE = {"eq": lambda a, b: a == b, "neq": lambda a, b: a != b, "gt": lambda a, b: a > b,
            "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}
_FIELDS = {"id", "name", "run_type", "trace_id", "parent_run_id", "status", "error", "start_time", "end_time",
           "session_name", "total_tokens", "prompt_tokens", "completion_tokens", "total_cost", "prompt_cost",
           "completion_cost", "latency", "tags", "metadata_key", "metadata_value", "is_root"}


def compile_filter(text: str) -> Callable[[dict[str, Any]], bool]:
    """A predicate over stored runs for LangSmith's filter language (raises `QueryError`)."""
    tokens = _tokenize(text)
    tree, rest = _parse(tokens)
    if rest:
        raise QueryError(f"unexpected {rest[0][1]!r} after the filter expression in {text!r}")
    _check(tree)
    return lambda run: _evaluate(tree, run)


def _check(node: Any) -> None:
    """Refuse unknown functions and fields up front, as the server does, even when no run would be tested."""
    if node[0] != "call":
        raise QueryError(f"{node[1]!r} is not a condition")
    function, args = node[1], node[2]
    if function in ("and", "or", "not"):
        for arg in args:
            _check(arg)
        return
    if function not in (*_COMPARE, "has", "in", "search"):
        raise QueryError(f"unknown filter function {function!r}")
    if function != "search" and (len(args) != 2 or args[0][0] != "field" or args[0][1] not in _FIELDS):
        raise QueryError(f"{function}() takes a field of {sorted(_FIELDS)} and a value")


def _tokenize(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    position = 0
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        if match is None:
            raise QueryError(f"cannot parse the filter at {text[position:position + 20]!r}")
        position = match.end()
        kind = match.lastgroup or ""
        value: Any = match.group(kind)
        if kind == "string":
            value = json.loads(value) if value.startswith('"') else value[1:-1]
        elif kind == "number":
            value = float(value) if "." in value else int(value)
        tokens.append((kind, value))
    return tokens


def _parse(tokens: list[tuple[str, Any]]) -> tuple[Any, list[tuple[str, Any]]]:
    if not tokens:
        raise QueryError("the filter ended early")
    (kind, value), rest = tokens[0], tokens[1:]
    if kind == "punct" and value == "[":
        items: list[Any] = []
        while rest and rest[0] != ("punct", "]"):
            item, rest = _parse(rest)
            items.append(item)
            if rest and rest[0] == ("punct", ","):
                rest = rest[1:]
        return ("list", items), rest[1:]
    if kind != "name" or not rest or rest[0] != ("punct", "("):
        return (("field", value) if kind == "name" else ("value", value)), rest
    rest = rest[1:]
    args: list[Any] = []
    while rest and rest[0] != ("punct", ")"):
        arg, rest = _parse(rest)
        args.append(arg)
        if rest and rest[0] == ("punct", ","):
            rest = rest[1:]
    if not rest:
        raise QueryError(f"{value}( is not closed")
    return ("call", value, args), rest[1:]


def _evaluate(node: Any, run: dict[str, Any]) -> bool:
    if node[0] != "call":
        raise QueryError(f"{node[1]!r} is not a condition")
    function, args = node[1], node[2]
    if function in ("and", "or"):
        pairs = _metadata_pairs(args) if function == "and" else []
        rest = [a for a in args if not any(a in pair for pair in pairs)]
        metadata = (run.get("extra") or {}).get("metadata") or {}
        paired = all(str(metadata.get(key)) == str(value) and key in metadata
                     for key, value in ((p[0][2][1][1], p[1][2][1][1]) for p in pairs))
        results = [_evaluate(a, run) for a in rest]
        return paired and all(results) if function == "and" else any(results)
    if function == "not":
        return not _evaluate(args[0], run)
    if function == "search":
        return str(_literal(args[-1])).lower() in json.dumps(run, default=str).lower()
    if len(args) != 2 or args[0][0] != "field":
        raise QueryError(f"{function}() takes a field and a value")
    name, expected = args[0][1], _literal(args[1])
    if name not in _FIELDS:
        raise QueryError(f"unknown field {name!r}; the emulator filters on {sorted(_FIELDS)}")
    actual = _field(run, name)
    if function in _COMPARE:
        if name == "metadata_key":
            return function == "eq" and expected in actual
        if name == "metadata_value":
            return function == "eq" and str(expected) in {str(v) for v in actual}
        if actual is None:
            return function == "neq" and expected is not None
        try:
            return bool(_COMPARE[function](actual, type(actual)(expected) if expected is not None else None))
        except (TypeError, ValueError):
            return bool(_COMPARE[function](str(actual), str(expected)))
    if function == "has":
        return expected in (actual or [])
    if function == "in":
        return actual in (expected or [])
    raise QueryError(f"unknown filter function {function!r}")


def _metadata_pairs(args: list[Any]) -> list[tuple[Any, Any]]:
    def field_is(arg: Any, name: str) -> bool:
        return arg[0] == "call" and arg[1] == "eq" and len(arg[2]) == 2 and arg[2][0] == ("field", name)

    keys = [a for a in args if field_is(a, "metadata_key")]
    values = [a for a in args if field_is(a, "metadata_value")]
    return list(zip(keys, values, strict=False))


def _literal(node: Any) -> Any:
    if node[0] == "list":
        return [_literal(n) for n in node[1]]
    if node[0] == "field" and node[1] in ("null", "true", "false"):
        return {"null": None, "true": True, "false": False}[node[1]]
    return node[1]


def _field(run: dict[str, Any], name: str) -> Any:
    usage = _usage(run)
    metadata = (run.get("extra") or {}).get("metadata") or {}
    if name == "metadata_key":
        return list(metadata)
    if name == "metadata_value":
        return list(metadata.values())
    if name == "status":
        return "error" if run.get("error") else ("success" if run.get("end_time") else "pending")
    if name == "is_root":
        return run.get("parent_run_id") is None
    if name == "latency":
        if not run.get("end_time") or not run.get("start_time"):
            return None
        return (_time(run["end_time"]) - _time(run["start_time"])).total_seconds()
    tokens = {"total_tokens": "total_tokens", "prompt_tokens": "input_tokens", "completion_tokens": "output_tokens",
              "total_cost": "total_cost", "prompt_cost": "input_cost", "completion_cost": "output_cost"}
    if name in tokens:
        return usage.get(tokens[name])
    return run.get(name)


def _time(value: Any) -> datetime:
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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
