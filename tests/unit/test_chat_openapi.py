"""The chat routes' part of the OpenAPI document says what the chat function validates and sends, in both encodings."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import jsonschema_rs
import pytest
from ag_ui.core import EventType

from shared.api.chat import AGUI_EVENT_TYPES, SSE_EVENTS, ChatRequest
from shared.api.openapi import openapi_document
from shared.chat.encoding import AgUiRenderer, contract_event
from shared.conversations.events import (
    Analysis,
    ArtifactEvent,
    ArtifactMetadata,
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

CONVERSATION = "5002fc3c-ae91-40c5-84c7-5c7cbeab2ce6"
TURN: list[TurnEvent] = [
    TurnStarted(conversationId=CONVERSATION, turnId="t-1"),
    StepStarted(step="record_user"),
    StepFinished(step="record_user"),
    MessageEvent(role="user", content="An email for Diwali?", messageId=f"{CONVERSATION}:0"),
    Reasoning(content="Looking at your knowledge first."),
    ToolStarted(callId="c-1", tool="knowledge_search", args={"query": "Diwali"}, content="Searching 'Diwali'"),
    ToolFinished(callId="c-1", tool="knowledge_search", ok=True, content="2 results", result={"results": []}),
    Analysis(type="knowledge_summary", content="Hampers ship from 1 October.", sources=[{"id": "kb:1"}]),
    ArtifactEvent(type="start", artifactId="a-1", metadata=ArtifactMetadata(contentType="email")),
    ArtifactEvent(type="delta", artifactId="a-1", content="Subject: ", metadata=ArtifactMetadata(contentType="email")),
    ArtifactEvent(type="end", artifactId="a-1", content="Subject: Hampers",
                  metadata=ArtifactMetadata(contentType="email", wordCount=2, qa={"passed": True})),
    MessageDelta(messageId=f"{CONVERSATION}:1", delta="Here is "),
    ToolStarted(callId="c-2", tool="validate_content", args={}, content="Checking the copy"),
    MessageDelta(messageId=f"{CONVERSATION}:1", delta="your email."),
    MessageEvent(role="assistant", content="Here is your email.", messageId=f"{CONVERSATION}:1"),
    Done(conversationId=CONVERSATION, messageCount=2, usage={"calls": 1}),
]
DOCUMENT = openapi_document()
STREAM = DOCUMENT["paths"]["/api/v1/chat/stream"]["post"]


def _validator(schema: dict[str, Any]) -> Any:
    return jsonschema_rs.validator_for({**schema, "components": DOCUMENT["components"]})


def _documented(name: str, data: dict[str, Any]) -> bool:
    """Whether a contract frame `name` with `data` is one the stream's schema describes (the frame, then its
    `data` against the frame's `contentSchema`, as schemathesis reads it)."""
    frames = STREAM["responses"]["200"]["content"]["text/event-stream"]["schema"]["anyOf"]
    frame = next(f for f in frames if f["properties"]["event"]["const"] == name)
    return bool(_validator(frame).is_valid({"id": "7", "event": name, "data": json.dumps(data)})
                and _validator(frame["properties"]["data"]["contentSchema"]).is_valid(data))


class TestTheSseContract:
    def test_every_rendered_event_is_a_frame_the_document_describes(self) -> None:
        """Each event the SSE contract sends is one of the stream's documented frames, its data included."""
        sent = [rendered for event in [*TURN, ErrorEvent(code="turn_lost", message="Lost", retryable=True)]
                if (rendered := contract_event(event)) is not None]
        assert {name for name, _ in sent} == set(SSE_EVENTS)
        for name, data in sent:
            assert _documented(name, data), (name, data)

    def test_data_an_event_does_not_have_is_not_documented(self) -> None:
        assert not _documented("done", {"conversationId": CONVERSATION})
        assert not _documented("thinking", {"type": "plan", "content": "Planning"})
        assert not _documented("message", {"role": "user", "content": "Hi", "messageId": "m", "kind": "message"})

    def test_the_frame_models_are_the_events_without_their_kind(self) -> None:
        for name, source in (("analysis", Analysis), ("artifact", ArtifactEvent), ("message", MessageEvent),
                             ("done", Done), ("error", ErrorEvent)):
            assert set(SSE_EVENTS[name].model_fields) == set(source.model_fields) - {"kind"}


class TestAgUi:
    def test_the_documented_event_types_are_the_ones_a_turn_renders(self) -> None:
        renderer = AgUiRenderer()
        sent = {e.type for i, event in enumerate([*TURN, ErrorEvent(code="x", message="y", retryable=False)])
                for e in renderer.agui(i + 1, "t-1", event)}
        assert sent == set(AGUI_EVENT_TYPES)
        documented = STREAM["responses"]["200"]["content"]["text/event-stream"]["x-ag-ui"]["events"]
        assert documented == [t.value for t in AGUI_EVENT_TYPES] and EventType.RUN_ERROR.value in documented


class TestTheRequest:
    @pytest.mark.parametrize("message", ["hi", " a ", "\u3000x", "नमस्ते"])
    def test_a_message_with_text_is_valid_by_the_document_and_the_model(self, message: str) -> None:
        assert _validator(DOCUMENT["components"]["schemas"]["ChatRequest"]).is_valid({"message": message})
        ChatRequest.model_validate({"message": message})

    def test_blank_is_what_python_strips(self) -> None:
        """The document's `message` pattern refuses exactly the text the model refuses: whitespace only, as
        `str.strip()` sees it (U+001C-U+001F and U+0085 included, U+FEFF not)."""
        pattern = re.compile(DOCUMENT["components"]["schemas"]["ChatRequest"]["properties"]["message"]["pattern"])
        for code in range(0x3100):
            char = chr(code)
            if char == "\x00":
                continue
            assert bool(pattern.search(char * 2)) == bool((char * 2).strip()), hex(code)


def test_the_api_function_neither_serves_chat_nor_imports_its_runtime() -> None:
    """The chat routes are documented by the API function but served by the chat function only."""
    script = ("import sys, functions_framework\n"
              "functions_framework.create_app('api', 'functions/api/main.py')\n"
              "from shared.api.app import ROUTES\n"
              "print(sorted(m for m in sys.modules if m.startswith(('shared.chat', 'shared.conversations.graph'))))\n"
              "print(any(p.match('/api/v1/chat/stream') for _, p, _ in ROUTES))\n")
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert found.stdout.split("\n")[:2] == ["[]", "False"]
    assert "/api/v1/chat/stream" in DOCUMENT["paths"] and "/api/v1/chat/{conversationId}/events" in DOCUMENT["paths"]


def test_the_chat_function_checks_its_edge_without_the_api_stack() -> None:
    """The chat dispatcher's query check reads the chat paths only: neither the API's routes nor its document load."""
    script = ("import sys, functions_framework\n"
              "functions_framework.create_app('chat', 'functions/chat/main.py')\n"
              "print(sorted(m for m in sys.modules if m in ('shared.api.app', 'shared.api.openapi', "
              "'shared.api.modules', 'shared.api.plan')))\n")
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert found.stdout.split("\n")[0] == "['shared.api.plan']"


def test_the_chat_operations_document_the_rate_limit() -> None:
    """Both chat operations count against the plan's requests per minute (and a new turn against its credits)."""
    for path, method in (("/api/v1/chat/stream", "post"), ("/api/v1/chat/{conversationId}/events", "get")):
        refused = DOCUMENT["paths"][path][method]["responses"]["429"]
        assert "Retry-After" in refused["headers"], path
