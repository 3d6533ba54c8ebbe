"""The chat function's operations in the API's OpenAPI document, and the wire contract they share with it.

`POST /api/v1/chat/stream` and `GET /api/v1/chat/{conversationId}/events` are served by the `chat`
function (`shared.chat.app`; the local stack routes `/api/v1/chat` to it), not by the API's dispatcher, so
this is no route module of `shared.api.modules`: its `PATHS` and `MODELS` only join `/api/v1/openapi.json`.
The request body (`ChatRequest`) and the SSE contract's data models live here, below `shared.chat`, so that
the document states exactly what the chat function validates and sends without the API function importing
the chat runtime: `shared.chat.service` parses this `ChatRequest`, and `shared.chat.encoding` renders turn
events by `SSE_SOURCES` (the `data` of each event is its `shared.conversations.events` model without `kind`).
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from ag_ui.core import EventType
from ag_ui.encoder import AGUI_MEDIA_TYPE
from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from shared.api.models import NOT_BLANK_PATTERN, ErrorBody
from shared.api.spec import WORKSPACE_HEADER, errors, json_content, ref
from shared.conversations.events import Analysis, ArtifactEvent, Done, ErrorEvent, MessageEvent
from shared.http import MAX_EVENT_ID

MAX_MESSAGE_CHARS = 20_000
MODEL_PREFERENCE_PATTERN = r"^(fast|strong|[a-z0-9][a-z0-9.\-]*)$"
_EVENT_ID = {"type": "integer", "minimum": 0, "maximum": MAX_EVENT_ID}
"""A `chat_events` id, as `shared.http.last_event_id` reads it."""


class ChatContext(BaseModel):
    """What the turn may reach beyond the conversation."""

    model_config = ConfigDict(extra="forbid")

    includeResources: bool = Field(True, description="Search the workspace's knowledge (and canon) when it helps.")
    enableWebSearch: bool = Field(False, description="Allow web search (Tavily).")


class ChatRequest(BaseModel):
    """The body of `POST /api/v1/chat/stream`."""

    model_config = ConfigDict(extra="forbid")

    conversationId: UUID | None = Field(
        None, description="An existing conversation of the workspace (another's is a 404); omitted, a new "
                          "conversation is created (its id is the `X-Conversation-Id` header and `done`'s).")
    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS,
                         json_schema_extra={"pattern": NOT_BLANK_PATTERN},
                         description="The user's message: some text that is not whitespace only.")
    modelPreference: str | None = Field(
        None, min_length=1, max_length=100, pattern=MODEL_PREFERENCE_PATTERN,
        description="`fast`, `strong` (the default) or a model name the workspace allows (one of its model "
                    "cascades); any other name is a 400 listing the allowed ones.")
    context: ChatContext = Field(default_factory=ChatContext)
    confirm: str | None = Field(
        None, min_length=1, max_length=200,
        description="The id of the action the assistant proposed last turn (deciding, paying) that this message "
                    "confirms explicitly; any other value confirms nothing.")

    @field_validator("message")
    @classmethod
    def _has_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must contain text, not only whitespace")
        return value


class ChatThinking(BaseModel):
    """SSE `thinking`: the orchestrator's reasoning (`agent_reasoning`) or a tool it runs (`tool_status`, with
    the tool's name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["agent_reasoning", "tool_status"]
    content: str
    tool: str | None = Field(None, description="The tool, on `tool_status` (absent otherwise).")


def _data_of(event: type[BaseModel], name: str) -> type[BaseModel]:
    """The `data` of an SSE event rendered from `event`: its fields without `kind` (`_Event.data()`)."""
    fields: dict[str, Any] = {n: (f.annotation, f) for n, f in event.model_fields.items() if n != "kind"}
    return create_model(name, __config__=ConfigDict(extra="forbid", frozen=True), __doc__=event.__doc__,
                        __module__=__name__, **fields)


SSE_SOURCES: dict[type[BaseModel], str] = {Analysis: "analysis", ArtifactEvent: "artifact", MessageEvent: "message",
                                           Done: "done", ErrorEvent: "error"}
"""Turn events the SSE contract sends as they are (their `data()`), by event name; reasoning and tool events
are `thinking` (`ChatThinking`); the others (`turn.started`, `step.*`, `message.delta`) are not sent."""
SSE_EVENTS: dict[str, type[BaseModel]] = {
    "thinking": ChatThinking,
    **{name: _data_of(source, f"Chat{name.title()}") for source, name in SSE_SOURCES.items()},
}
"""The SSE contract: event name → the model of its `data`."""

AGUI_EVENT_TYPES: tuple[EventType, ...] = (
    EventType.RUN_STARTED, EventType.STEP_STARTED, EventType.STEP_FINISHED,
    EventType.REASONING_START, EventType.REASONING_MESSAGE_START, EventType.REASONING_MESSAGE_CONTENT,
    EventType.REASONING_MESSAGE_END, EventType.REASONING_END,
    EventType.TOOL_CALL_START, EventType.TOOL_CALL_ARGS, EventType.TOOL_CALL_END, EventType.TOOL_CALL_RESULT,
    EventType.TEXT_MESSAGE_START, EventType.TEXT_MESSAGE_CONTENT, EventType.TEXT_MESSAGE_END,
    EventType.CUSTOM, EventType.RUN_FINISHED, EventType.RUN_ERROR,
)
"""The AG-UI event types a chat stream sends (`shared.chat.encoding.AgUiRenderer`; a unit test holds them equal)."""

MODELS: tuple[type[BaseModel], ...] = (ChatRequest, *SSE_EVENTS.values())

_PROTOCOL = {
    "name": "protocol", "in": "query", "required": False, "schema": {"type": "string", "enum": ["sse", "ag-ui"]},
    "examples": {"sse": {"value": "sse"}, "ag-ui": {"value": "ag-ui"}},
    "description": "`sse` (the default): the SSE contract; `ag-ui`: AG-UI events. Without it, an `Accept` "
                   f"header naming `{AGUI_MEDIA_TYPE}` selects AG-UI. Any other value is a 400."}
_ENCODINGS = (
    "Both encodings are Server-Sent Events (`Content-Type: text/event-stream`): first `retry: 1000`, then frames "
    "each with `id: <event id>` (resume after it with `Last-Event-ID`), and `: keep-alive` comments while the "
    "turn is quiet. **SSE contract** (the default): `event: <name>` and `data: <JSON>`, one of "
    + ", ".join(f"`{name}` ({model.__name__})" for name, model in SSE_EVENTS.items())
    + " (`x-sse-events`). **AG-UI** (`?protocol=ag-ui`, or `Accept` naming `" + AGUI_MEDIA_TYPE + "` without "
    "`protocol`): `data: <AG-UI event JSON>` encoded by the official `ag-ui-protocol` `EventEncoder`, of types "
    + ", ".join(t.value for t in AGUI_EVENT_TYPES)
    + " (analysis and artifacts are CUSTOM events named `analysis` and `artifact` whose `value` is the SSE "
      "contract's data; RUN_FINISHED's `result` has `messageCount` and `usage`; `x-ag-ui`)."
)
_FRAME_ID = {"type": "string", "pattern": "^[0-9]+$", "description": "The event's id: resume after it."}


def sse_frame(event: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """One Server-Sent Event (`id`, `event` name, JSON `data`) as OpenAPI 3.1 describes an event stream: its
    media type's `schema` is each event's (what schemathesis validates every event of a 200 against)."""
    return {"type": "object", "required": ["id", "event", "data"], "additionalProperties": False,
            "properties": {"id": _FRAME_ID, "event": event,
                           "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": data}}}


_STREAM_CONTENT = {"text/event-stream": {
    "schema": {"anyOf": [
        *(sse_frame({"const": name}, ref(model)) for name, model in SSE_EVENTS.items()),
        sse_frame({"const": "message", "description": "AG-UI frames have no `event:` line (the SSE default)."},
               {"type": "object", "required": ["type"],
                "properties": {"type": {"enum": [t.value for t in AGUI_EVENT_TYPES]}}}),
    ]},
    "x-sse-events": {name: ref(model) for name, model in SSE_EVENTS.items()},
    "x-ag-ui": {"mediaType": AGUI_MEDIA_TYPE, "events": [t.value for t in AGUI_EVENT_TYPES]},
}}
"""Each frame of a chat stream: an SSE contract event (its `data` the event's model) or an AG-UI event."""
_PROTOCOL_HEADER = {"description": "The encoding of the stream.",
                    "schema": {"type": "string", "enum": ["sse", "ag-ui"]}}
_CONFLICT = {"description": "A turn of the conversation is running: `details` names it (`conversationId`, `turnId`) "
                            "and where to follow it (`events`); send again after its `done` or `error`.",
             "content": json_content(ErrorBody)}

PATHS: dict[str, Any] = {
    "/api/v1/chat/stream": {"post": {
        "summary": "Send a message: run one durable turn and stream its events (served by the `chat` function)",
        "description": "The turn runs in the chat function's worker, not in the response: every event is stored as "
                       "it happens, so a client that disconnects loses nothing and resumes with `GET "
                       "/api/v1/chat/{conversationId}/events` and `Last-Event-ID`. The stream ends after `done` "
                       "(the turn is saved) or `error` (`retryable` says whether sending again can help), or after "
                       "MUSE_CHAT_STREAM_MAX_SECONDS. " + _ENCODINGS,
        "parameters": [_PROTOCOL, WORKSPACE_HEADER],
        "requestBody": {"required": True, "content": json_content(ChatRequest)},
        "responses": {
            "200": {"description": "The turn's events as they happen, to its `done` or `error`",
                    "headers": {"X-Conversation-Id": {"required": True, "description": "The turn's conversation.",
                                                      "schema": {"type": "string", "format": "uuid"}},
                                "X-Turn-Id": {"required": True, "description": "The turn.",
                                              "schema": {"type": "string", "format": "uuid"}},
                                "X-Chat-Protocol": {**_PROTOCOL_HEADER, "required": True}},
                    "content": _STREAM_CONTENT},
            **errors(400, 401, 404), "409": _CONFLICT, **errors(429, 503)},
    }},
    "/api/v1/chat/{conversationId}/events": {"get": {
        "summary": "The conversation's events after `Last-Event-ID`, then its running turn's until it ends "
                   "(served by the `chat` function)",
        "description": "Replays the stored events after the given id, then follows the running turn, if any, to "
                       "its `done` or `error`; with no turn running the stream ends after the replay. " + _ENCODINGS,
        "parameters": [
            {"name": "conversationId", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}},
            _PROTOCOL,
            {"name": "Last-Event-ID", "in": "header", "required": False, "schema": _EVENT_ID,
             "description": "Resume after this event id (what EventSource resends); ASCII digits only."},
            {"name": "last_event_id", "in": "query", "required": False, "schema": _EVENT_ID,
             "description": "The same, for clients that cannot set headers; the header wins."},
        ],
        "responses": {"200": {"description": "The events after `Last-Event-ID`, then the running turn's",
                              "headers": {"X-Chat-Protocol": {**_PROTOCOL_HEADER, "required": True}},
                              "content": _STREAM_CONTENT},
                      **errors(400, 401, 404, 429, 503)},
    }},
}
