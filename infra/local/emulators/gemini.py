"""A wire-compatible emulator of the Gemini Developer API for the local stack and tests.

The official `google-genai` SDK talks to it unchanged through `HttpOptions(base_url=...)`. Answers are
deterministic (same request, same answer) and visibly marked as emulated; structured output is
generated to satisfy the request's schema, so `response.parsed` validates. Tests steer it through a
small control plane under `/_emulator/`: scripted answers, injected errors and delays, and a log of
every request served.

Function calling: a scripted response `{"function_calls": [{"name": ..., "args": {...}}]}` answers with
`functionCall` parts instead of text. The request must declare every called function in its `tools`
(else 400, as a wrong script is a test bug); the next turn, carrying the `functionResponse`, is
answered by the next matching rule (use `times` to order a conversation). A request whose
`toolConfig` sets function calling to `NONE` gets the default text answer instead, as on the real API.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parser  # type: ignore[attr-defined]
from typing import Any

import flask
from werkzeug.exceptions import HTTPException

from infra.local.emulators._scripting import register_script_routes
from infra.local.emulators.config import EmulatorConfig

API_VERSIONS = ("v1", "v1beta")
DEFAULT_EMBEDDING_DIMENSIONS = 768
GENERATION_ACTIONS = ("generateContent", "streamGenerateContent")

_STATUS_NAMES = {
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
_STOPWORDS = frozenset(
    "a an and are as at be but by can do for from give has have how i in into is it its me my of on or "
    "our please should so that the their them then there these this to us was we what when which who "
    "why will with write you your about all any some than also just more most very".split()
)
_TOKEN_SPLIT = re.compile(r"[\s.,;:!?\"'()\[\]{}<>/\\|@#$%^&*+=~`\u2013\u2014-]+")
_MAX_SCHEMA_DEPTH = 24
_SHALLOW_DEPTH = 12
"""From this nesting depth (or on re-entering a recursive `$ref`) only required content is generated."""


def create_app(config: EmulatorConfig) -> flask.Flask:
    """Build the Gemini emulator; every app instance keeps its own script, log and caches."""
    app = flask.Flask(__name__)
    app.url_map.strict_slashes = False
    state = _State()

    @app.before_request
    def _authenticate() -> flask.Response | None:
        if flask.request.path.startswith("/_emulator"):
            return None
        key = flask.request.headers.get("x-goog-api-key") or flask.request.args.get("key")
        if not key:
            return _error(401, "Method doesn't allow unregistered callers. Please use an API key.")
        if key != config.gemini_api_key:
            return _error(403, "API key not valid. Please pass a valid API key.")
        return None

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> flask.Response:
        return _error(exc.code or 500, exc.description or exc.name)

    @app.post("/<version>/models/<target>")
    def model_action(version: str, target: str) -> flask.Response:
        model, _, action = target.rpartition(":")
        if version not in API_VERSIONS or not model:
            return _error(404, f"Unknown route {flask.request.path}")
        body = flask.request.get_json(silent=True)
        if not isinstance(body, dict):
            return _error(400, "Invalid JSON payload received.")
        handler = _MODEL_ACTIONS.get(action)
        if handler is None:
            return _error(404, f"Method {action!r} is not supported by the emulator.")
        return handler(state, model, action, body)

    @app.post("/<version>/cachedContents")
    def create_cache(version: str) -> flask.Response:
        body = flask.request.get_json(silent=True) or {}
        return flask.jsonify(state.caches.create(body))

    @app.get("/<version>/cachedContents")
    def list_caches(version: str) -> flask.Response:
        return flask.jsonify({"cachedContents": state.caches.public_list()})

    @app.route("/<version>/cachedContents/<cache_id>", methods=["GET", "PATCH", "DELETE"])
    def one_cache(version: str, cache_id: str) -> flask.Response:
        name = f"cachedContents/{cache_id}"
        if flask.request.method == "DELETE":
            found = state.caches.delete(name)
            return flask.jsonify({}) if found else _error(404, f"{name} not found")
        if flask.request.method == "PATCH":
            record = state.caches.update(name, flask.request.get_json(silent=True) or {})
        else:
            record = state.caches.get(name)
        return flask.jsonify(record.public()) if record else _error(404, f"{name} not found")

    register_script_routes(app, state, _error)

    return app


# --------------------------------------------------------------------------------------------- state


@dataclass
class _Rule:
    """One scripted behaviour; `remaining` is None for unlimited uses."""

    index: int
    model: str | None
    contains: str | None
    action: str | None
    response: dict[str, Any] | None
    status: int | None
    message: str | None
    delay_seconds: float
    remaining: int | None

    @classmethod
    def parse(cls, index: int, raw: dict[str, Any]) -> _Rule:
        match = raw.get("match") or {}
        times = raw.get("times")
        return cls(
            index=index,
            model=_bare_model(match["model"]) if match.get("model") else None,
            contains=match.get("contains"),
            action=match.get("action"),
            response=raw.get("response"),
            status=int(raw["status"]) if raw.get("status") is not None else None,
            message=raw.get("message"),
            delay_seconds=float(raw.get("delay_seconds") or 0.0),
            remaining=int(times) if times is not None else None,
        )

    def matches(self, model: str, action: str, text: str) -> bool:
        """Whether this rule (with uses left) applies to a request."""
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.action is None and action not in GENERATION_ACTIONS:
            return False
        if self.action is not None and self.action != action:
            return False
        if self.model is not None and self.model != model:
            return False
        return self.contains is None or self.contains in text

    def view(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "match": {"model": self.model, "contains": self.contains, "action": self.action},
            "response": self.response,
            "status": self.status,
            "delay_seconds": self.delay_seconds,
            "remaining": self.remaining,
        }


@dataclass
class _CacheRecord:
    name: str
    model: str
    display_name: str
    text: str
    created: datetime
    updated: datetime
    expires: datetime

    @property
    def token_count(self) -> int:
        return estimate_tokens(self.text)

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "displayName": self.display_name,
            "createTime": _rfc3339(self.created),
            "updateTime": _rfc3339(self.updated),
            "expireTime": _rfc3339(self.expires),
            "usageMetadata": {"totalTokenCount": self.token_count},
        }


class _Caches:
    """Explicit context caches (`cachedContents`), enough for cost accounting in tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, _CacheRecord] = {}

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        now = datetime.now(UTC)
        text = "\n".join(
            [*_content_texts([body.get("systemInstruction") or {}]), *_content_texts(body.get("contents"))]
        )
        record = _CacheRecord(
            name=f"cachedContents/{uuid.uuid4().hex[:16]}",
            model=body.get("model") or "models/unknown",
            display_name=body.get("displayName") or "",
            text=text,
            created=now,
            updated=now,
            expires=_expiry(body, now) or now + timedelta(hours=1),
        )
        with self._lock:
            self._records[record.name] = record
        return record.public()

    def get(self, name: str) -> _CacheRecord | None:
        with self._lock:
            record = self._records.get(name)
            if record and record.expires <= datetime.now(UTC):
                del self._records[name]
                return None
            return record

    def public_list(self) -> list[dict[str, Any]]:
        with self._lock:
            names = list(self._records)
        return [record.public() for name in names if (record := self.get(name))]

    def update(self, name: str, body: dict[str, Any]) -> _CacheRecord | None:
        record = self.get(name)
        if record:
            now = datetime.now(UTC)
            record.expires = _expiry(body, now) or record.expires
            record.updated = now
        return record

    def delete(self, name: str) -> bool:
        with self._lock:
            return self._records.pop(name, None) is not None


@dataclass
class _State:
    """Per-app mutable state, shared by the request threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    rules: list[_Rule] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    caches: _Caches = field(default_factory=_Caches)
    rule_counter: itertools.count = field(default_factory=itertools.count)

    def add_rules(self, raw_rules: list[dict[str, Any]]) -> None:
        with self.lock:
            self.rules.extend(_Rule.parse(next(self.rule_counter), raw) for raw in raw_rules)

    def clear_rules(self) -> None:
        with self.lock:
            self.rules.clear()

    def rule_views(self) -> list[dict[str, Any]]:
        with self.lock:
            return [rule.view() for rule in self.rules]

    def claim_rule(self, model: str, action: str, text: str) -> _Rule | None:
        """Pick the first applicable rule and consume one of its uses."""
        with self.lock:
            for rule in self.rules:
                if rule.matches(model, action, text):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    return rule
        return None

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            entry["seq"] = len(self.log)
            self.log.append(entry)

    def requests(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.log)

    def clear_requests(self) -> None:
        with self.lock:
            self.log.clear()


# --------------------------------------------------------------------------------------- handlers


def _generate(state: _State, model: str, action: str, body: dict[str, Any]) -> flask.Response:
    """`generateContent` and `streamGenerateContent`: scripted rule, else the default generator."""
    model = _bare_model(model)
    text = request_text(body)
    rule, early = _admit(state, model, action, text, body)
    if early is not None:
        return early
    response_id = _digest(model, json.dumps(body, sort_keys=True))[:24]
    scripted_calls = (rule.response or {}).get("function_calls") if rule else None
    if scripted_calls is not None and _function_calling_mode(body) != "NONE":
        parts, problem = _function_call_parts(scripted_calls, body)
        if problem:
            return _error(400, problem)
        usage = _usage(state, body, text, json.dumps(scripted_calls))
        payload = _response_payload(model, response_id, "", "STOP", usage, parts=parts)
        if action == "generateContent":
            return flask.jsonify(payload)
        return flask.Response(f"data: {json.dumps(payload, ensure_ascii=False)}\r\n\r\n",
                              mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})
    scripted = rule.response if rule and scripted_calls is None else None
    answer, finish_reason = _answer_text(model, body, scripted)
    usage = _usage(state, body, text, answer)
    if action == "generateContent":
        return flask.jsonify(_response_payload(model, response_id, answer, finish_reason, usage))
    return _stream_response(model, response_id, answer, finish_reason, usage)


def _function_call_parts(calls: Any, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """`functionCall` parts for scripted calls, or the reason the request cannot carry them."""
    declared = _declared_functions(body)
    if not isinstance(calls, list) or not calls:
        return [], "scripted 'function_calls' must be a non-empty list of {'name': ..., 'args': {...}}"
    parts: list[dict[str, Any]] = []
    for call in calls:
        name = call.get("name") if isinstance(call, dict) else None
        if not name:
            return [], f"scripted function call {call!r} has no 'name'"
        if name not in declared:
            return [], (f"scripted function call {name!r} is not declared in the request's tools "
                        f"(declared: {sorted(declared) or 'none'}); add it to the tools or fix the script")
        function_call: dict[str, Any] = {"name": name, "args": call.get("args") or {}}
        if call.get("id"):
            function_call["id"] = call["id"]
        parts.append({"functionCall": function_call})
    return parts, None


def _function_calling_mode(body: dict[str, Any]) -> str:
    config = (body.get("toolConfig") or body.get("tool_config") or {})
    calling = config.get("functionCallingConfig") or config.get("function_calling_config") or {}
    return str(calling.get("mode") or "AUTO").upper()


def _declared_functions(body: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            declarations = tool.get("functionDeclarations") or tool.get("function_declarations") or []
            names.update(d["name"] for d in declarations if isinstance(d, dict) and d.get("name"))
    return names


def _embed_batch(state: _State, model: str, action: str, body: dict[str, Any]) -> flask.Response:
    """`batchEmbedContents`: one vector per request entry."""
    requests = body.get("requests") or []
    texts = ["\n".join(_content_texts([entry.get("content") or {}])) for entry in requests]
    _, early = _admit(state, _bare_model(model), action, "\n".join(texts), body)
    if early is not None:
        return early
    embeddings = [{"values": embed_text(text, _dimensions(entry))} for text, entry in zip(texts, requests, strict=True)]
    return flask.jsonify({"embeddings": embeddings})


def _embed_single(state: _State, model: str, action: str, body: dict[str, Any]) -> flask.Response:
    """`embedContent`: one vector for the (possibly multi-part) content."""
    text = "\n".join(_content_texts([body.get("content") or {}]))
    _, early = _admit(state, _bare_model(model), action, text, body)
    if early is not None:
        return early
    return flask.jsonify({"embedding": {"values": embed_text(text, _dimensions(body))}})


def _count_tokens(state: _State, model: str, action: str, body: dict[str, Any]) -> flask.Response:
    """`countTokens` with the same estimate the usage metadata uses."""
    inner = body.get("generateContentRequest") or body
    text = request_text(inner)
    _, early = _admit(state, _bare_model(model), action, text, body)
    if early is not None:
        return early
    total = estimate_tokens(text)
    return flask.jsonify({"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]})


_MODEL_ACTIONS = {
    "generateContent": _generate,
    "streamGenerateContent": _generate,
    "batchEmbedContents": _embed_batch,
    "embedContent": _embed_single,
    "countTokens": _count_tokens,
}


def _admit(
    state: _State, model: str, action: str, text: str, body: dict[str, Any]
) -> tuple[_Rule | None, flask.Response | None]:
    """Claim the matching rule, log the request, then honour the rule's delay and injected error.

    Returns the rule (its `response` only matters to generation) and, for an injected error, the
    response to send instead of the normal answer.
    """
    rule = state.claim_rule(model, action, text)
    status = rule.status if rule and rule.status else 200
    state.record(_log_entry(model, action, text, body, rule, status))
    if rule and rule.delay_seconds > 0:
        time.sleep(rule.delay_seconds)
    if rule and rule.status and rule.status >= 400:
        return rule, _error(rule.status, rule.message or f"Emulated {_STATUS_NAMES.get(rule.status, 'error')}")
    return rule, None


def _log_entry(
    model: str, action: str, text: str, body: dict[str, Any], rule: _Rule | None, status: int
) -> dict[str, Any]:
    return {
        "model": model,
        "action": action,
        "path": flask.request.path,
        "text": text,
        "time": time.time(),
        "rule": rule.index if rule else None,
        "status": status,
        "body": body,
    }


# ----------------------------------------------------------------------------------- generation


def _answer_text(model: str, body: dict[str, Any], scripted: dict[str, Any] | None) -> tuple[str, str]:
    """The candidate text and its finish reason, from a scripted response or the default generator."""
    if scripted is not None:
        if "json" in scripted:
            return json.dumps(scripted["json"], ensure_ascii=False), "STOP"
        return str(scripted.get("text", "")), "STOP"
    config = body.get("generationConfig") or {}
    mime = config.get("responseMimeType") or config.get("response_mime_type") or "text/plain"
    prompt = _user_text(body)
    schema = _response_schema(config)
    if mime == "application/json":
        if schema is None:
            value: Any = {"emulated": True, "model": model, "summary": _emulated_sentence(model, prompt)}
        else:
            value = SchemaFaker(schema, seed=prompt).generate()
        return json.dumps(value, ensure_ascii=False), "STOP"
    if mime == "text/x.enum" and schema is not None:
        return str(SchemaFaker(schema, seed=prompt).generate()), "STOP"
    return _limit_tokens(f"[emulated {model}] {_emulated_sentence(model, prompt)}", config)


def _emulated_sentence(model: str, prompt: str) -> str:
    """A short deterministic reply that echoes the gist of the prompt."""
    gist = " ".join(keywords(prompt, 8)) or "your request"
    openers = (
        "Here is a concise take on",
        "A short, practical response about",
        "Key points to consider regarding",
        "A brief draft addressing",
    )
    opener = openers[_seed_int(model, prompt) % len(openers)]
    return f"{opener}: {gist}."


def _limit_tokens(text: str, config: dict[str, Any]) -> tuple[str, str]:
    limit = config.get("maxOutputTokens") or config.get("max_output_tokens")
    if not limit or estimate_tokens(text) <= int(limit):
        return text, "STOP"
    words = text.split()
    return " ".join(words[: max(1, int(int(limit) / 1.3))]), "MAX_TOKENS"


def _response_schema(config: dict[str, Any]) -> dict[str, Any] | None:
    for key in ("responseJsonSchema", "response_json_schema", "responseSchema", "response_schema"):
        if isinstance(config.get(key), dict):
            return config[key]
    return None


def _usage(state: _State, body: dict[str, Any], text: str, answer: str) -> dict[str, Any]:
    """Usage metadata; prompt tokens include the referenced explicit cache, as on the real API."""
    prompt_tokens = estimate_tokens(text)
    cached = 0
    cache_name = body.get("cachedContent") or body.get("cached_content")
    if cache_name and (record := state.caches.get(cache_name)):
        cached = record.token_count
    candidates = estimate_tokens(answer)
    usage: dict[str, Any] = {
        "promptTokenCount": prompt_tokens + cached,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt_tokens + cached + candidates,
        "thoughtsTokenCount": 0,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens + cached}],
    }
    if cached:
        usage["cachedContentTokenCount"] = cached
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
    return usage


def _response_payload(
    model: str,
    response_id: str,
    text: str,
    finish_reason: str | None,
    usage: dict[str, Any] | None,
    parts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts or [{"text": text}], "role": "model"}, "index": 0}
    if finish_reason:
        candidate["finishReason"] = finish_reason
    payload: dict[str, Any] = {"candidates": [candidate], "modelVersion": model, "responseId": response_id}
    if usage is not None:
        payload["usageMetadata"] = usage
    return payload


def _stream_response(
    model: str, response_id: str, text: str, finish_reason: str, usage: dict[str, Any]
) -> flask.Response:
    """Server-sent events, one full response per chunk; the last carries finish reason and usage."""
    pieces = _split_for_stream(text)

    def events() -> Iterator[str]:
        for position, piece in enumerate(pieces):
            last = position == len(pieces) - 1
            payload = _response_payload(
                model, response_id, piece, finish_reason if last else None, usage if last else None
            )
            yield f"data: {json.dumps(payload, ensure_ascii=False)}\r\n\r\n"

    return flask.Response(events(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})


def _split_for_stream(text: str, chunks: int = 3) -> list[str]:
    words = re.split(r"(?<=\s)", text)
    size = max(1, math.ceil(len(words) / chunks))
    pieces = ["".join(words[start : start + size]) for start in range(0, len(words), size)]
    return pieces or [""]


# ------------------------------------------------------------------------------ text and tokens


def request_text(body: dict[str, Any]) -> str:
    """All text of a generate/count request: system instruction first, then every content part."""
    system = body.get("systemInstruction") or body.get("system_instruction")
    parts = _content_texts([system]) if isinstance(system, dict) else []
    return "\n".join([*parts, *_content_texts(body.get("contents"))])


def _user_text(body: dict[str, Any]) -> str:
    """Text of the last user turn, the most useful seed for a deterministic answer."""
    contents = [c for c in body.get("contents") or [] if isinstance(c, dict)]
    users = [c for c in contents if c.get("role", "user") == "user"] or contents
    return "\n".join(_content_texts(users[-1:])) if users else ""


def _content_texts(contents: Any) -> list[str]:
    texts: list[str] = []
    for content in contents or []:
        if isinstance(content, dict):
            texts.extend(str(part["text"]) for part in content.get("parts") or [] if "text" in part)
    return texts


def estimate_tokens(text: str) -> int:
    """Roughly 1.3 tokens per whitespace-separated word."""
    return math.ceil(len(text.split()) * 1.3)


def keywords(text: str, limit: int) -> list[str]:
    """The first `limit` distinct non-stopword words of `text`, case preserved."""
    seen: dict[str, str] = {}
    for word in _TOKEN_SPLIT.split(text):
        lowered = word.lower()
        if len(word) > 2 and lowered not in _STOPWORDS and lowered not in seen:
            seen[lowered] = word
            if len(seen) >= limit:
                break
    return list(seen.values())


def _tokens(text: str) -> list[str]:
    return [token for token in _TOKEN_SPLIT.split(text.lower()) if token]


# ------------------------------------------------------------------------------------- embeddings


def embed_text(text: str, dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS) -> list[float]:
    """A feature-hashed bag of words and bigrams, L2-normalised: shared words raise cosine similarity."""
    vector = [0.0] * dimensions
    words = _tokens(text) or ["<empty>"]
    features = [(word, 1.0) for word in words]
    features += [(f"{first} {second}", 0.5) for first, second in itertools.pairwise(words)]
    for feature, weight in features:
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        number = int.from_bytes(digest, "big")
        sign = 1.0 if number & 1 else -1.0
        vector[(number >> 1) % dimensions] += sign * weight
    norm = math.sqrt(sum(value * value for value in vector)) or 1.0
    return [value / norm for value in vector]


def _dimensions(entry: dict[str, Any]) -> int:
    value = entry.get("outputDimensionality") or entry.get("output_dimensionality")
    return int(value) if value else DEFAULT_EMBEDDING_DIMENSIONS


# ------------------------------------------------------------------------------ schema generation


class SchemaFaker:
    """Generate a deterministic JSON value that is valid against a response schema.

    Accepts both Gemini's OpenAPI subset (`responseSchema`: UPPERCASE types, snake_case or camelCase
    keywords, `nullable`, `property_ordering`) and standard JSON Schema (`responseJsonSchema`: `$defs`,
    `$ref`, `anyOf`, `const`...). Strings are marked as emulated and echo the field name and the gist
    of the prompt; numbers respect bounds; enums take their first value, rotating by array position
    (so the n-th item of a list, and the fields of that item, differ from their siblings).
    """

    def __init__(self, schema: dict[str, Any], seed: str) -> None:
        self._root = _normalise_schema(schema)
        self._seed = seed
        self._gist = " ".join(keywords(seed, 6)) or "request"
        self._active_refs: list[str] = []

    def generate(self) -> Any:
        return self._value(self._root, "$", "value", 0, 0)

    def _value(self, schema: Any, path: str, label: str, ordinal: int, depth: int) -> Any:
        if not isinstance(schema, dict) or depth > _MAX_SCHEMA_DEPTH:
            return None
        reference = schema.get("$ref")
        if not isinstance(reference, str):
            return self._plain(self._flatten(schema), path, label, ordinal, depth)
        if reference in self._active_refs:
            depth = max(depth, _SHALLOW_DEPTH)
        self._active_refs.append(reference)
        try:
            return self._plain(self._flatten(schema), path, label, ordinal, depth)
        finally:
            self._active_refs.pop()

    def _plain(self, schema: dict[str, Any], path: str, label: str, ordinal: int, depth: int) -> Any:
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][ordinal % len(schema["enum"])]
        branches = schema.get("anyOf") or schema.get("oneOf")
        if branches:
            return self._union(schema, branches, path, label, ordinal, depth)
        kind = _schema_type(schema)
        if kind != "null" and schema.get("nullable") and depth >= _SHALLOW_DEPTH:
            return None
        generator = {
            "string": self._string,
            "integer": self._integer,
            "number": self._number,
            "boolean": self._boolean,
            "array": self._array,
            "object": self._object,
        }.get(kind)
        return generator(schema, path, label, ordinal, depth) if generator else None

    def _flatten(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Resolve `$ref` and merge `allOf` so the rest sees one plain schema."""
        for _ in range(_MAX_SCHEMA_DEPTH):
            if "$ref" in schema:
                siblings = {k: v for k, v in schema.items() if k != "$ref"}
                schema = {**self._resolve(schema["$ref"]), **siblings}
            elif schema.get("allOf"):
                merged = {k: v for k, v in schema.items() if k != "allOf"}
                for part in schema["allOf"]:
                    merged = _merge_schemas(merged, self._flatten(part))
                schema = merged
            else:
                break
        return schema

    def _resolve(self, reference: str) -> dict[str, Any]:
        node: Any = self._root
        for token in reference.lstrip("#").strip("/").split("/"):
            if token:
                node = node.get(token.replace("~1", "/").replace("~0", "~"), {})
        return node if isinstance(node, dict) else {}

    def _union(
        self, schema: dict[str, Any], branches: list[Any], path: str, label: str, ordinal: int, depth: int
    ) -> Any:
        options = [b for b in branches if isinstance(b, dict)]
        concrete = [b for b in options if not _is_null_schema(self._flatten(b))]
        nullable = len(concrete) < len(options) or bool(schema.get("nullable"))
        if not concrete or (nullable and depth >= _SHALLOW_DEPTH):
            return None
        base = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
        return self._value(_merge_schemas(base, concrete[0]), path, label, ordinal, depth + 1)

    def _string(self, schema: dict[str, Any], path: str, label: str, ordinal: int, depth: int) -> str:
        formatted = self._formatted(schema.get("format"), path, label)
        if formatted is not None:
            return formatted
        pattern = schema.get("pattern")
        if pattern:
            candidate = _string_for_pattern(pattern)
            if candidate is not None:
                return candidate
        suffix = f" #{ordinal + 1}" if ordinal or path.endswith("]") else ""
        text = f"[emulated] {_humanise(label)}{suffix}: {self._gist}"
        return _fit_length(text, schema.get("minLength"), schema.get("maxLength"))

    def _formatted(self, fmt: str | None, path: str, label: str) -> str | None:
        if not fmt:
            return None
        day = datetime(2026, 1, 1, 9, 30, tzinfo=UTC) + timedelta(days=self._int(path) % 365)
        slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "item"
        return {
            "date-time": day.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "date": day.strftime("%Y-%m-%d"),
            "time": day.strftime("%H:%M:%S"),
            "email": f"emulated.{slug}@example.com",
            "uri": f"https://example.com/emulated/{slug}",
            "url": f"https://example.com/emulated/{slug}",
            "hostname": f"{slug}.example.com",
            "uuid": str(uuid.UUID(bytes=hashlib.blake2b(f"{self._seed}|{path}".encode(), digest_size=16).digest())),
            "ipv4": "192.0.2.1",
            "ipv6": "2001:db8::1",
            "duration": "PT1H",
        }.get(fmt)

    def _integer(self, schema: dict[str, Any], path: str, label: str, ordinal: int, depth: int) -> int:
        low, high = _bounds(schema, integer=True)
        value = _pick_in_range(low, high, self._int(path))
        step = schema.get("multipleOf")
        if step and float(step).is_integer() and step > 0:
            step = int(step)
            rounded = math.ceil(value / step) * step
            value = rounded if high is None or rounded <= high else math.floor(value / step) * step
        return int(value)

    def _number(self, schema: dict[str, Any], path: str, label: str, ordinal: int, depth: int) -> float:
        low, high = _bounds(schema, integer=False)
        step = schema.get("multipleOf")
        if step and step > 0:
            return _multiple_in_range(float(step), low, high, self._int(path))
        fraction = 0.1 + (self._int(path) % 81) / 100
        if low is not None and high is not None:
            value = round(low + (high - low) * fraction, 2)
            return value if low <= value <= high else (low + high) / 2
        if low is not None:
            return round(low + 1 + fraction * 10, 2)
        if high is not None:
            return round(high - 1 - fraction * 10, 2)
        return round(fraction * 10, 2)

    def _boolean(self, schema: dict[str, Any], path: str, label: str, ordinal: int, depth: int) -> bool:
        return self._int(path) % 2 == 0

    def _array(self, schema: dict[str, Any], path: str, label: str, ordinal: int, depth: int) -> list[Any]:
        prefix = schema.get("prefixItems") or []
        minimum = int(schema.get("minItems") or 0)
        unknown_items = not schema.get("items") and not prefix
        wanted = 0 if depth >= _SHALLOW_DEPTH or unknown_items else 1 + self._int(path) % 2
        count = max(minimum, wanted, len(prefix))
        if schema.get("maxItems") is not None:
            count = min(count, int(schema["maxItems"]))
        item_label = _singular(label)
        values = []
        for index in range(count):
            item_schema = prefix[index] if index < len(prefix) else schema.get("items", {})
            if item_schema is False:
                break
            values.append(self._value(item_schema, f"{path}[{index}]", item_label, index, depth + 1))
        if schema.get("uniqueItems"):
            values = _unique(values)
        return values

    def _object(self, schema: dict[str, Any], path: str, label: str, ordinal: int, depth: int) -> dict[str, Any]:
        properties: dict[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        ordering = schema.get("propertyOrdering") or []
        names = [n for n in ordering if n in properties] + [n for n in properties if n not in ordering]
        if depth >= _SHALLOW_DEPTH:
            names = [name for name in names if name in required]
        result = {name: self._value(properties[name], f"{path}.{name}", name, ordinal, depth + 1) for name in names}
        extra = schema.get("additionalProperties")
        minimum = int(schema.get("minProperties") or (0 if properties else 1))
        if isinstance(extra, dict) and len(result) < minimum:
            for index in range(minimum - len(result)):
                key = f"emulated_{_singular(label)}_{index + 1}"
                result[key] = self._value(extra, f"{path}.{key}", key, index, depth + 1)
        return result

    def _int(self, path: str) -> int:
        return _seed_int(self._seed, path)


def _normalise_schema(node: Any) -> Any:
    """camelCase the keywords and lowercase the types, leaving property names untouched."""
    if isinstance(node, list):
        return [_normalise_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    result: dict[str, Any] = {}
    for key, value in node.items():
        name = _camel(key)
        if name in ("properties", "$defs", "definitions", "patternProperties") and isinstance(value, dict):
            result[name] = {prop: _normalise_schema(sub) for prop, sub in value.items()}
        elif name == "type":
            result[name] = [t.lower() for t in value] if isinstance(value, list) else str(value).lower()
        elif name in ("items", "additionalProperties", "not", "anyOf", "oneOf", "allOf", "prefixItems"):
            result[name] = _normalise_schema(value)
        else:
            result[name] = value
    return result


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest) if rest and head else key


def _is_null_schema(schema: dict[str, Any]) -> bool:
    return _schema_type(schema) == "null" and "const" not in schema and "enum" not in schema


def _schema_type(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        concrete = [k for k in kind if k != "null"]
        return concrete[0] if concrete else "null"
    if kind and kind != "type_unspecified":
        return kind
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "string"


def _merge_schemas(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **extra}
    if "properties" in base and "properties" in extra:
        merged["properties"] = {**base["properties"], **extra["properties"]}
    if "required" in base and "required" in extra:
        merged["required"] = list(dict.fromkeys([*base["required"], *extra["required"]]))
    if "type" not in extra and "type" in base:
        merged["type"] = base["type"]
    return merged


def _bounds(schema: dict[str, Any], *, integer: bool) -> tuple[float | None, float | None]:
    """Inclusive bounds, folding in both draft-4 (boolean) and modern (numeric) exclusive bounds."""
    low, high = schema.get("minimum"), schema.get("maximum")
    epsilon = 1 if integer else 0.01
    exclusive_low, exclusive_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if exclusive_low is True and low is not None:
        low += epsilon
    elif isinstance(exclusive_low, int | float) and not isinstance(exclusive_low, bool):
        low = max(low, exclusive_low + epsilon) if low is not None else exclusive_low + epsilon
    if exclusive_high is True and high is not None:
        high -= epsilon
    elif isinstance(exclusive_high, int | float) and not isinstance(exclusive_high, bool):
        high = min(high, exclusive_high - epsilon) if high is not None else exclusive_high - epsilon
    if integer:
        low = math.ceil(low) if low is not None else None
        high = math.floor(high) if high is not None else None
    return low, high


def _pick_in_range(low: float | None, high: float | None, seed: int) -> float:
    if low is not None and high is not None:
        return low + seed % (int(high - low) + 1) if high >= low else low
    if low is not None:
        return low + seed % 10
    if high is not None:
        return high - seed % 10
    return 1 + seed % 10


def _multiple_in_range(step: float, low: float | None, high: float | None, seed: int) -> float:
    """A multiple of `step` within the inclusive bounds (any of ten when a bound is open)."""
    if low is not None:
        first = math.ceil(low / step)
    else:
        first = math.floor(high / step) - 9 if high is not None else 1
    last = math.floor(high / step) if high is not None else first + 9
    return round((first + seed % max(last - first + 1, 1)) * step, 10)


def _fit_length(text: str, minimum: int | None, maximum: int | None) -> str:
    if minimum and len(text) < minimum:
        text = (text + " " + "emulated " * math.ceil(minimum / 9))[: max(minimum, len(text))]
    if maximum is not None and len(text) > maximum:
        text = text[: int(maximum)].rstrip() if maximum else ""
    if minimum and len(text) < minimum:
        text = text.ljust(int(minimum), ".")
    return text


def _string_for_pattern(pattern: str) -> str | None:
    """A string matching a simple regular expression, or None when it cannot be produced."""
    try:
        candidate = _render_regex(sre_parser.parse(pattern))
    except Exception:
        return None
    return candidate if re.search(pattern, candidate) else None


def _render_regex(tokens: Any) -> str:
    c = sre_constants
    out: list[str] = []
    for op, arg in tokens:
        if op is c.LITERAL:
            out.append(chr(arg))
        elif op is c.NOT_LITERAL:
            out.append("a" if chr(arg) != "a" else "b")
        elif op is c.ANY:
            out.append("x")
        elif op is c.IN:
            out.append(_render_class(arg, c))
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
            low, _high, sub = arg
            out.append(_render_regex(sub) * max(int(low), 1 if _high else 0))
        elif op is c.SUBPATTERN:
            out.append(_render_regex(arg[-1]))
        elif op is c.BRANCH:
            out.append(_render_regex(arg[1][0]))
        elif op in (c.AT, c.ASSERT, c.ASSERT_NOT):
            continue
        else:
            raise ValueError(f"unsupported regex op {op}")
    return "".join(out)


def _render_class(items: Any, c: Any) -> str:
    if items and items[0][0] is c.NEGATE:
        return "x"
    op, arg = items[0]
    if op is c.LITERAL:
        return chr(arg)
    if op is c.RANGE:
        return chr(arg[0])
    if op is c.CATEGORY:
        return {c.CATEGORY_DIGIT: "7", c.CATEGORY_SPACE: " "}.get(arg, "a")
    raise ValueError("unsupported character class")


def _unique(values: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen


def _humanise(label: str) -> str:
    words = re.sub(r"([a-z])([A-Z])", r"\1 \2", label).replace("_", " ").replace("-", " ").split()
    return " ".join(words).lower() or "value"


def _singular(label: str) -> str:
    if label.endswith("ies") and len(label) > 4:
        return label[:-3] + "y"
    if label.endswith("s") and not label.endswith("ss") and len(label) > 3:
        return label[:-1]
    return label


# ----------------------------------------------------------------------------------------- utils


def _error(code: int, message: str) -> flask.Response:
    """Gemini's error envelope, which `google.genai.errors.APIError` parses."""
    status = _STATUS_NAMES.get(code, "UNKNOWN")
    response = flask.jsonify({"error": {"code": code, "message": message, "status": status}})
    response.status_code = code
    return response


def _bare_model(model: str) -> str:
    return model.removeprefix("models/")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _seed_int(*parts: str) -> int:
    return int(_digest(*parts)[:12], 16)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _expiry(body: dict[str, Any], now: datetime) -> datetime | None:
    if body.get("expireTime"):
        return datetime.fromisoformat(str(body["expireTime"]).replace("Z", "+00:00"))
    if body.get("ttl"):
        return now + timedelta(seconds=float(str(body["ttl"]).rstrip("s")))
    return None
