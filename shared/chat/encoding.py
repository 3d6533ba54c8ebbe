"""One turn, two encodings: the SSE contract and AG-UI, both rendered from the same `TurnEvent`s.

A stream picks its renderer once (`renderer_for`), then every committed event goes through
`Renderer.frames(event_id, turn_id, event)`, which returns the SSE text to send for it (possibly
empty: the SSE contract has no `step.*` or `message.delta`). Every frame carries the event's `id:`,
so a client resumes with `Last-Event-ID` from wherever it was cut off, in either encoding.

- The SSE contract: `thinking`, `analysis`, `artifact`, `message`, `done`, `error`, with the JSON
  data of issue 8 (`shared.api.chat.SSE_EVENTS`, the models the OpenAPI document states).
- AG-UI: the official `ag_ui.core` event models, serialized by `ag_ui.encoder.EventEncoder`
  (RUN_STARTED, STEP_*, REASONING_*, TOOL_CALL_*, TEXT_MESSAGE_*, CUSTOM for analysis and artifacts,
  RUN_FINISHED, RUN_ERROR). AG-UI streams a message as START/CONTENT/END, so the renderer remembers
  which messages it opened; a resumed stream is `prime`d with the turn's earlier events first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Literal, Protocol

from ag_ui.core import (
    BaseEvent,
    CustomEvent,
    ReasoningEndEvent,
    ReasoningMessageContentEvent,
    ReasoningMessageEndEvent,
    ReasoningMessageStartEvent,
    ReasoningStartEvent,
    RunErrorEvent,
    RunFinishedEvent,
    RunStartedEvent,
    StepFinishedEvent,
    StepStartedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)
from ag_ui.encoder import AGUI_MEDIA_TYPE, EventEncoder

from shared.api.chat import SSE_SOURCES, ChatThinking
from shared.conversations.events import (
    Analysis,
    ArtifactEvent,
    Done,
    ErrorEvent,
    MessageDelta,
    MessageEvent,
    Reasoning,
    StepFinished,
    StepStarted,
    ToolFinished,
    ToolStarted,
    TurnEvent,
    TurnStarted,
)
from shared.errors import InvalidRequest

Protocol_ = Literal["sse", "ag-ui"]
"""The two encodings: the SSE contract (default) and AG-UI."""

RETRY = "retry: 1000\n\n"
"""Sent first on every stream: how long a browser waits before reconnecting (with `Last-Event-ID`)."""


def choose_protocol(query: str | None, accept: str | None) -> Protocol_:
    """`?protocol=ag-ui` or AG-UI's Accept media type selects AG-UI; `?protocol=sse` or nothing, the contract."""
    if query is not None:
        if query not in ("sse", "ag-ui"):
            raise InvalidRequest(f"`protocol` must be 'sse' (the default) or 'ag-ui'; got {query!r}.",
                                 details={"field": "protocol", "value": query})
        return "ag-ui" if query == "ag-ui" else "sse"
    return "ag-ui" if accept and AGUI_MEDIA_TYPE in accept else "sse"


class Renderer(Protocol):
    """Turns committed events into the SSE text of one stream."""

    def prime(self, events: Iterable[tuple[int, str, TurnEvent]]) -> None:
        """Learn from events the client already has (`(event_id, turn_id, event)`), sending nothing."""
        ...

    def frames(self, event_id: int, turn_id: str, event: TurnEvent) -> str:
        """The SSE text for one event (every frame with `id: event_id`), or "" if the encoding skips it."""
        ...


def renderer_for(protocol: Protocol_) -> Renderer:
    return AgUiRenderer() if protocol == "ag-ui" else ContractRenderer()


def _frame(event_id: int, name: str, data: dict[str, Any]) -> str:
    return f"id: {event_id}\nevent: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def contract_event(event: TurnEvent) -> tuple[str, dict[str, Any]] | None:
    """The SSE contract's event name and data for `event` (`shared.api.chat.SSE_EVENTS`, the document's), or
    None when the contract has no such event."""
    match event:
        case Reasoning():
            return "thinking", ChatThinking(type="agent_reasoning", content=event.content).model_dump(
                mode="json", exclude_none=True)
        case ToolStarted() | ToolFinished():
            return "thinking", ChatThinking(type="tool_status", content=event.content, tool=event.tool).model_dump(
                mode="json", exclude_none=True)
    name = SSE_SOURCES.get(type(event))
    return (name, event.data()) if name is not None else None


class ContractRenderer:
    """The SSE contract of issue 8; stateless."""

    def prime(self, events: Iterable[tuple[int, str, TurnEvent]]) -> None:
        return None

    def frames(self, event_id: int, turn_id: str, event: TurnEvent) -> str:
        rendered = contract_event(event)
        return _frame(event_id, *rendered) if rendered is not None else ""


class AgUiRenderer:
    """AG-UI events from `ag_ui.core`, encoded by the official `EventEncoder`, each frame with the event's id.

    AG-UI's event verifier allows nothing but a text message's own CONTENT/END while it is open, so an
    open reply is ended before any other event (a tool call, reasoning, a step, the run's end); deltas
    that follow open a new segment, `<messageId>#2`, `#3`, ... The reply's final `message` event ends the
    open segment, or is skipped when its text was already streamed.
    """

    def __init__(self) -> None:
        self.encoder = EventEncoder()
        self.open: dict[str, str] = {}
        """Message id → the id of its open AG-UI text message (segment)."""
        self.segments: dict[str, int] = {}
        """Message id → how many segments of it were started."""

    def prime(self, events: Iterable[tuple[int, str, TurnEvent]]) -> None:
        for event_id, turn_id, event in events:
            self.agui(event_id, turn_id, event)

    def frames(self, event_id: int, turn_id: str, event: TurnEvent) -> str:
        return "".join(f"id: {event_id}\n{self.encoder.encode(e)}" for e in self.agui(event_id, turn_id, event))

    def agui(self, event_id: int, turn_id: str, event: TurnEvent) -> list[BaseEvent]:
        """The AG-UI events for one turn event (updating which text messages are open)."""
        if isinstance(event, MessageDelta):
            return self._delta(event)
        if isinstance(event, MessageEvent) and (event.messageId in self.open or event.messageId in self.segments):
            segment = self.open.pop(event.messageId, None)
            return [TextMessageEndEvent(message_id=segment)] if segment is not None else []
        return [*self._close_open(), *self._render(event_id, turn_id, event)]

    def _delta(self, event: MessageDelta) -> list[BaseEvent]:
        opened: list[BaseEvent] = []
        segment = self.open.get(event.messageId)
        if segment is None:
            closing = self._close_open()
            count = self.segments[event.messageId] = self.segments.get(event.messageId, 0) + 1
            segment = self.open[event.messageId] = event.messageId if count == 1 else f"{event.messageId}#{count}"
            opened = [*closing, TextMessageStartEvent(message_id=segment, role="assistant")]
        return [*opened, TextMessageContentEvent(message_id=segment, delta=event.delta)]

    def _close_open(self) -> list[BaseEvent]:
        closing: list[BaseEvent] = [TextMessageEndEvent(message_id=m) for m in self.open.values()]
        self.open.clear()
        return closing

    @staticmethod
    def _render(event_id: int, turn_id: str, event: TurnEvent) -> list[BaseEvent]:
        match event:
            case TurnStarted():
                return [RunStartedEvent(thread_id=event.conversationId, run_id=turn_id)]
            case StepStarted():
                return [StepStartedEvent(step_name=event.step)]
            case StepFinished():
                return [StepFinishedEvent(step_name=event.step)]
            case Reasoning():
                rid = f"reasoning-{event_id}"
                return [ReasoningStartEvent(message_id=rid), ReasoningMessageStartEvent(message_id=rid),
                        ReasoningMessageContentEvent(message_id=rid, delta=event.content),
                        ReasoningMessageEndEvent(message_id=rid), ReasoningEndEvent(message_id=rid)]
            case ToolStarted():
                return [ToolCallStartEvent(tool_call_id=event.callId, tool_call_name=event.tool),
                        ToolCallArgsEvent(tool_call_id=event.callId, delta=json.dumps(event.args, ensure_ascii=False)),
                        ToolCallEndEvent(tool_call_id=event.callId)]
            case ToolFinished():
                return [ToolCallResultEvent(message_id=f"{event.callId}-result", tool_call_id=event.callId,
                                            content=json.dumps(event.result, ensure_ascii=False), role="tool")]
            case Analysis():
                return [CustomEvent(name="analysis", value=event.data())]
            case ArtifactEvent():
                return [CustomEvent(name="artifact", value=event.data())]
            case MessageEvent():
                content = [TextMessageContentEvent(message_id=event.messageId, delta=event.content)] \
                    if event.content else []
                return [TextMessageStartEvent(message_id=event.messageId, role=event.role), *content,
                        TextMessageEndEvent(message_id=event.messageId)]
            case Done():
                return [RunFinishedEvent(thread_id=event.conversationId, run_id=turn_id,
                                         result={"messageCount": event.messageCount, "usage": event.usage})]
            case ErrorEvent():
                return [RunErrorEvent(message=event.message, code=event.code)]
            case MessageDelta():
                raise AssertionError("deltas are rendered by `_delta`")
