"""What a chat turn emits, once, in the order it happens: the one event model both wire encodings render.

A turn produces `TurnEvent`s through an `EventSink`; the sink persists each one (so a client that
reconnects with `Last-Event-ID` gets every event once) and hands it to whoever streams the turn.
The events are richer than either wire format, so neither encoding has to guess:

- the SSE contract (`thinking`, `analysis`, `artifact`, `message`, `done`, `error`) renders some of them
  and skips the rest (e.g. `message.delta`: the contract sends the whole message at its end);
- AG-UI (`RUN_STARTED`, `TEXT_MESSAGE_*`, `TOOL_CALL_*`, `STEP_*`, `RUN_FINISHED`, `RUN_ERROR`, ...) renders
  them through the official `ag-ui-protocol` models.

Field names are the wire's camelCase (`artifactId`, `messageId`, `conversationId`), so an event's
`data()` is what the SSE contract sends for it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def data(self) -> dict[str, Any]:
        """The event's JSON payload (without its `kind`)."""
        return self.model_dump(mode="json", exclude={"kind"}, exclude_none=True)


class TurnStarted(_Event):
    """The turn has the conversation's lock; nothing else of it has happened yet."""

    kind: Literal["turn.started"] = "turn.started"
    conversationId: str
    turnId: str


class StepStarted(_Event):
    """A named phase of the turn begins (a graph node: `record_user`, `compact`, `respond`)."""

    kind: Literal["step.started"] = "step.started"
    step: str


class StepFinished(_Event):
    """The named phase ended."""

    kind: Literal["step.finished"] = "step.finished"
    step: str


class Reasoning(_Event):
    """The orchestrator says what it is about to do (SSE `thinking`, type `agent_reasoning`)."""

    kind: Literal["reasoning"] = "reasoning"
    content: str


class ToolStarted(_Event):
    """The orchestrator called a tool (SSE `thinking`, type `tool_status`)."""

    kind: Literal["tool.started"] = "tool.started"
    callId: str
    tool: str
    args: dict[str, Any]
    content: str
    """A human line for the status, e.g. "Searching your knowledge for 'Diwali hampers'"."""


class ToolFinished(_Event):
    """The tool returned (or failed); `result` is what the model was given back."""

    kind: Literal["tool.finished"] = "tool.finished"
    callId: str
    tool: str
    ok: bool
    content: str
    result: dict[str, Any]


class Analysis(_Event):
    """A condensed finding from research or the knowledge base, with its sources (SSE `analysis`)."""

    kind: Literal["analysis"] = "analysis"
    type: Literal["research_summary", "knowledge_summary"]
    content: str
    sources: list[dict[str, Any]] = Field(default_factory=list)


class ArtifactMetadata(BaseModel):
    """`metadata` of an artifact event: content type always; word count and the QA verdict on `end`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    contentType: str
    wordCount: int | None = None
    qa: dict[str, Any] | None = None


class ArtifactEvent(_Event):
    """A piece of content written by a Tier 2 writer, streamed as it is written (SSE `artifact`)."""

    kind: Literal["artifact"] = "artifact"
    type: Literal["start", "delta", "end"]
    artifactId: str
    content: str | None = None
    """The new text on `delta`; the whole artifact on `end`; absent on `start`."""
    metadata: ArtifactMetadata


class MessageDelta(_Event):
    """A piece of the assistant's reply as the model streams it (AG-UI `TEXT_MESSAGE_CONTENT`; not in SSE)."""

    kind: Literal["message.delta"] = "message.delta"
    messageId: str
    delta: str


class MessageEvent(_Event):
    """A whole message of the conversation, stored (SSE `message`)."""

    kind: Literal["message"] = "message"
    role: Literal["user", "assistant"]
    content: str
    messageId: str


class Done(_Event):
    """The turn finished and is saved (SSE `done`)."""

    kind: Literal["done"] = "done"
    conversationId: str
    messageCount: int
    usage: dict[str, Any]


class ErrorEvent(_Event):
    """The turn ended without an answer (SSE `error`); `retryable` says whether sending it again can help."""

    kind: Literal["error"] = "error"
    code: str
    message: str
    retryable: bool


TurnEvent = Annotated[
    TurnStarted | StepStarted | StepFinished | Reasoning | ToolStarted | ToolFinished | Analysis | ArtifactEvent
    | MessageDelta | MessageEvent | Done | ErrorEvent,
    Field(discriminator="kind"),
]
"""Every event a turn can emit; `kind` tells them apart (and is how they are stored)."""

TERMINAL_KINDS = frozenset({"done", "error"})
"""A turn's stream ends after one of these."""


class EventSink(Protocol):
    """Where a running turn's events go: persisted in order, then streamed."""

    def emit(self, event: TurnEvent) -> int:
        """Store `event` as the turn's next event and return its id (the SSE `id:`)."""
        ...
