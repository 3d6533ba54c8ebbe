"""Schemathesis over every operation of `/api/v1/openapi.json`, in-process, against the real migrated Postgres.

The functions are served as functions-framework builds them (`served_api`) and called over WSGI with a
real HS256 token of a seeded member. Every check schemathesis has is enabled (server errors, status codes,
content types, response schemas and headers, schema-valid data accepted and schema-invalid data refused,
ignored auth, unsupported methods, missing headers, ...); examples per operation are bounded so the whole
run stays well under a minute. The operations are read from the document, so routes that modules add to
`shared/api/modules.py` are fuzzed as soon as they are documented.

First run (schemathesis 4.32.5, before the fixes of issue 7), each operation stopping at its first failure:
9 of 14 operations failed. 7 x ST202 "schema-valid request rejected" (the document did not state the rules
the API enforces: `cursor` format, `Idempotency-Key` length, `edits`/`feedback` per `action`, `Last-Event-ID`
minimum, upload kinds, search parameter bounds, QA fields per content type), 1 x ST201 "schema-violating
request accepted" (a brand kit's `required_disclaimers` entry given as one string), 1 x ST204 "wrong response
to undeclared method" (TRACE on `/webhooks/phonepe` was a 404, not a 405). The 5xx behind them (NUL bytes,
deep JSON, `Last-Event-ID`, HTML error pages) are pinned one by one in `test_bad_input.py`.

Later runs, once the first failures were fixed, found: NUL bytes in generated strings (the document now says
no string holds one), `0` accepted as a boolean (bodies are now validated in pydantic's strict JSON mode,
where `1.0` is still the integer 1), stripped strings measured before stripping and ECMA's `\\s` not being
pydantic's whitespace (patterns now state both), brand-kit shorthands accepting any falsy value, an empty
`X-Workspace-Id` ignored, undocumented and unnamed query parameters ignored (now a 400 for every route), and a
stale Storage URL cached by the export service. (`If-Match: ²` and malformed token claims, both 500s, were
found by the malformed-request sweep of `test_bad_input.py`.)

Requests the document describes in words rather than JSON Schema (cross-field rules, an opaque cursor, an
upload that must be the document it claims, the caller's own workspace id as an erasure's `confirm`) are
generated or discarded accordingly (`breaks_a_rule_stated_in_words`), and form fields are judged as the text
they are on the wire. Now: every operation, 12 examples each (derandomized, so `make test` is repeatable),
all checks, zero failures, about 40 s here with the 23 operations documented today.

The chat function's two operations joined the document later (`shared.api.chat`) and are fuzzed against the
chat function mounted at `/api/v1/chat` (`served_api`), turns running the real orchestrator on the Gemini
emulator: positive examples carry the member's workspace and conversation, so turns run and replay in both
encodings. The first run failed with ST108 "SSE event violates schema": schemathesis reads an event stream's
`schema` as each event's (`id`, `event`, `data`), which the document's `{"type": "string"}` was not; streams
are now described frame by frame, `data` as `contentSchema` (campaign events too, whose positive examples now
replay the member's campaign). `modelPreference` names the workspace's models in words (any other name is a
400), so positive examples ask for `fast`. The chat edge itself needed no fix; about 10 s more.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from ag_ui.core import Event
from hypothesis import HealthCheck, reject, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError
from schemathesis import GenerationMode
from schemathesis.config._checks import MaxResponseTimeConfig
from schemathesis.core.file_samples import file_extension
from schemathesis.transport.serialization import Binary

from shared.api.chat import AGUI_EVENT_TYPES
from shared.api.listing import Cursor
from shared.api.openapi import documented_models, openapi_document
from shared.assets.images import inspect as inspect_image
from shared.db.pool import connect, create_pool
from shared.db.workspaces import ensure_workspace
from shared.errors import InvalidRequest
from shared.http import check_json_strings
from shared.knowledge.service import kind_of_upload, validate_original
from shared.plans import set_workspace_tier
from tests.integration import served_api
from tests.integration.served_api import Served, token

served = served_api.served
EXAMPLES = 12
MAX_RESPONSE_SECONDS = 10.0


USER_ID = str(uuid.uuid4())
TOKEN = token(USER_ID, str(uuid.uuid4()), app_metadata={})
"""The fuzzing member's real HS256 token (minted before the member exists: its only workspace is chosen)."""


class _Served:
    """The WSGI app schemathesis calls: the `served` fixture's, once it is built.

    Like a WSGI server it reads each response to the end and closes it (schemathesis' WSGI transport
    does not close, which leaves a streamed download's file open).
    """

    app: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.app is not None, "the served fixture builds the app"
        result = self.app(environ, start_response)
        try:
            return [b"".join(result)]
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


SERVED = _Served()
DOCUMENT = openapi_document()
MODELS = {model.__name__: model for model in documented_models()}


def breaks_a_rule_stated_in_words(case: Any) -> bool:
    """A schema-valid request that only a rule stated in words refuses: a cross-field rule (a brief's window,
    duplicates in a kit, ...), an opaque cursor, an upload that is not the document it claims to be, or a NUL
    byte inside a free-form JSON value (the document's description: no text may hold one).

    JSON Schema cannot state such rules, so the document says them in descriptions and the API answers 400
    naming the value; a positive example breaking one is no evidence about the document, and is discarded.
    Anything else the model refuses (a type, a length, an enum) is a gap in the document and still fails.
    """
    if case.meta is None:
        return False
    if case.meta.generation.mode != GenerationMode.POSITIVE:
        return case.media_type == "multipart/form-data" and _valid_as_form_text(case)
    if isinstance(case.query, dict) and isinstance(case.query.get("cursor"), str) and case.query["cursor"]:
        try:
            Cursor.decode(case.query["cursor"])
        except InvalidRequest:
            return True
    if not isinstance(case.body, dict):
        return False
    try:
        check_json_strings(case.body)
    except InvalidRequest:
        return True
    if case.media_type == "multipart/form-data":
        return not _a_document(case)
    operation = DOCUMENT["paths"][case.operation.path][case.method.lower()]
    content = operation.get("requestBody", {}).get("content", {}).get(case.media_type or "", {})
    model = MODELS.get(content.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1])
    if model is None:
        return False
    try:
        model.model_validate(case.body)
    except ValidationError as exc:
        return all(error["type"] in ("value_error", "assertion_error") for error in exc.errors())
    return False

schemathesis.openapi.format("muse-cursor", st.builds(
    lambda when, ident: Cursor(when, ident).encode(),
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)),
    st.uuids()))
schema = schemathesis.openapi.from_dict(openapi_document())
schema.app = SERVED


@schema.auth()
class _Member:
    """Every case carries the member's token, so schemathesis knows it is authenticated (and, for the
    `ignored_auth` check, what to leave out)."""

    def get(self, case: Any, ctx: Any) -> str:
        return TOKEN

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


_checks = schema.config.checks
_checks.max_response_time = MaxResponseTimeConfig(limit=MAX_RESPONSE_SECONDS)
_checks.positive_data_acceptance.expected_statuses = [*_checks.positive_data_acceptance.expected_statuses, "422"]
"""422 joins 409 as a refusal that depends on state, not on the request: an `Idempotency-Key` the generator
reuses with a different body is refused exactly as the document says."""


def _valid_as_form_text(case: Any) -> bool:
    """Whether a negative multipart body is valid once on the wire, where every form field is text.

    Schemathesis allows for this in query and path parameters, not yet in form fields: a "number" tag is
    sent as the text `-2.9e+16`, which is a valid tag, one value is a list of one, and a null is either the
    text `null` or not sent at all.
    """
    def text(value: Any) -> Any:
        if isinstance(value, list):
            return [text(item) for item in value]
        if isinstance(value, Binary | bytes):
            return "file"
        return value if isinstance(value, str) else json.dumps(value)

    operation = DOCUMENT["paths"][case.operation.path].get(case.method.lower())
    if not isinstance(case.body, dict) or operation is None:
        return False
    form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    validator = jsonschema_rs.validator_for(form)
    lists = {name for name, field in form["properties"].items() if field.get("type") == "array"}
    sent = {name: [text(value)] if name in lists and not isinstance(value, list) else text(value)
            for name, value in case.body.items()}
    unsent = {name: value for name, value in sent.items() if case.body[name] is not None}
    return bool(validator.is_valid(sent) or validator.is_valid(unsent))


def _a_document(case: Any) -> bool:
    """Whether an upload is a document of the kind it claims (the upload rules its description states)."""
    upload = case.body.get("file")
    data = upload.data if isinstance(upload, Binary) else upload
    if not isinstance(data, bytes):
        return True
    if case.operation.path == "/api/v1/assets":
        try:
            inspect_image(data)
        except InvalidRequest:
            return False
        return True
    extension = file_extension(data)
    content_type = (case.multipart_content_types or {}).get("file")
    kind = case.body.get("kind")
    try:
        resolved = kind_of_upload(f"file.{extension}" if extension else "file", content_type,
                                  kind if isinstance(kind, str) else None)
        validate_original(resolved, data, content_type)
    except InvalidRequest:
        return False
    return True


def test_the_fuzzed_document_is_the_served_one(served: Served) -> None:
    response = served.client().get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.get_json() == openapi_document()


@pytest.fixture(scope="module")
def workspace(served: Served) -> str:
    """The fuzzing member's workspace, created for `USER_ID` on the agency tier: the run sends hundreds of
    requests a minute and starts many campaigns, past the free tier's limits (the limiter stays on)."""
    slug = f"fz-{uuid.uuid4().hex[:10]}"
    with connect(served.dsn) as conn, conn.transaction():
        workspace_id = ensure_workspace(conn, slug=slug, name=slug, user_id=USER_ID)
    pool = create_pool(served.dsn, max_size=1)
    try:
        set_workspace_tier(pool, workspace_id=workspace_id, tier_name="agency", actor="system", key=f"fuzz-{slug}")
    finally:
        pool.close()
    return workspace_id


@pytest.fixture(scope="module")
def conversation(served: Served, workspace: str) -> str:
    """A conversation of the member with one finished turn, so that replaying its events has events to send."""
    response = served.client().post("/api/v1/chat/stream", json={"message": "A subject line for our Diwali sale?"},
                                    headers={"Authorization": f"Bearer {TOKEN}"})
    frames = sse_frames(response.get_data(as_text=True))
    assert response.status_code == 200 and frames[-1][1] == "done", frames
    return response.headers["X-Conversation-Id"]


@pytest.fixture(scope="module")
def campaign(served: Served, workspace: str) -> str:
    """A move of the member, so that its events stream has events to send."""
    response = served.client().post("/api/v1/campaigns", headers={"Authorization": f"Bearer {TOKEN}"}, json={
        "kind": "move", "brief": {"title": "Diwali teaser", "objective": "Warm up the list", "channels": ["email"]}})
    assert response.status_code == 202, response.get_data(as_text=True)
    return str(response.get_json()["id"])


AG_UI: TypeAdapter[Any] = TypeAdapter(Event)


def sse_frames(text: str) -> list[tuple[str | None, str | None, str | None]]:
    """(`id`, `event`, `data`) of each frame of an SSE body; comments and the `retry:` frame are left out."""
    frames = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if not line.startswith(":") and ": " in line:
                name, value = line.split(": ", 1)
                fields[name] = value
        if set(fields) - {"retry"}:
            frames.append((fields.get("id"), fields.get("event"), fields.get("data")))
    return frames


def check_chat_stream(case: Any, response: Any) -> None:
    """Beyond the document's frame schemas (which schemathesis checks): an AG-UI frame is an event of the
    official `ag-ui-protocol` models, and a turn's stream ends with its terminal event."""
    if response.status_code != 200 or not case.operation.path.startswith("/api/v1/chat/"):
        return
    ag_ui = response.headers["x-chat-protocol"] == ["ag-ui"]
    frames = sse_frames(response.text)
    if ag_ui:
        for _, _, data in frames:
            assert AG_UI.validate_json(data or "").type in AGUI_EVENT_TYPES, data
    if case.operation.path == "/api/v1/chat/stream":
        last = frames[-1]
        ended = json.loads(last[2] or "{}").get("type") in {"RUN_FINISHED", "RUN_ERROR"} if ag_ui \
            else last[1] in {"done", "error"}
        assert ended, frames


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")  # the pool's jitter thread
def test_every_operation_answers_as_documented(case: Any, served: Served, workspace: str, conversation: str,
                                               campaign: str) -> None:
    """Every generated request, valid or not, gets a documented status and body; never a 5xx. A chat stream
    is the document's SSE events, in either encoding.

    A positive example carries the caller's own value where the document says a parameter must be it
    (`confirm` of an erasure is the caller's workspace id, `modelPreference` a model the workspace allows), and
    a chat or event stream example the caller's workspace, conversation or campaign (any other is a 404), so
    that turns run and streams have events to send.
    """
    SERVED.app = served.app
    positive = case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE
    caller = {"confirm": workspace}
    if positive and isinstance(case.query, dict):
        case.query.update({name: value for name, value in caller.items() if name in case.query})
    if positive and case.operation.path == "/api/v1/campaigns/{campaign_id}/events":
        case.path_parameters["campaign_id"] = campaign
    if positive and case.operation.path.startswith("/api/v1/chat/"):
        if isinstance(case.path_parameters, dict) and "conversationId" in case.path_parameters:
            case.path_parameters["conversationId"] = conversation
        if isinstance(case.headers, dict) and "X-Workspace-Id" in case.headers:
            case.headers["X-Workspace-Id"] = workspace
    if positive and isinstance(case.body, dict) and case.body.get("modelPreference") not in (None, "fast", "strong"):
        case.body["modelPreference"] = "fast"
    if breaks_a_rule_stated_in_words(case):
        reject()
    response = case.call_and_validate()
    check_chat_stream(case, response)
