"""`make chat`'s terminal client: SSE parsing, what it prints, and resuming a broken stream once per event."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import flask
import pytest

from infra.local.chat import ChatClient, SseEvent, parse_sse, render
from infra.local.serve import serve_in_thread


def _frames(*events: tuple[int, str, dict[str, object]]) -> list[str]:
    return [f"id: {i}\nevent: {name}\ndata: {json.dumps(data)}\n\n" for i, name, data in events]


TURN = _frames(
    (1, "thinking", {"type": "tool_status", "content": "Searching your knowledge", "tool": "knowledge_search"}),
    (2, "analysis", {"type": "knowledge_summary", "content": "Assam box Rs 1,499", "sources": [{"id": "kb:1"}]}),
    (3, "artifact", {"type": "start", "artifactId": "a1", "metadata": {"contentType": "email"}}),
    (4, "artifact", {"type": "delta", "artifactId": "a1", "content": "Subject: Diwali"}),
    (5, "artifact", {"type": "delta", "artifactId": "a1", "content": " gifts"}),
    (6, "artifact", {"type": "end", "artifactId": "a1", "content": "Subject: Diwali gifts",
                     "metadata": {"contentType": "email", "wordCount": 3, "qa": {"passed": True}}}),
    (7, "message", {"role": "assistant", "content": "Here is your email.", "messageId": "c:1"}),
    (8, "done", {"conversationId": "c0ffee00-0000-4000-8000-000000000001", "messageCount": 2, "usage": {}}),
)


class TestParse:
    def test_the_contracts_frames(self) -> None:
        events = list(parse_sse("".join(TURN).splitlines(keepends=True)))
        assert [(e.id, e.event) for e in events] == [
            ("1", "thinking"), ("2", "analysis"), ("3", "artifact"), ("4", "artifact"), ("5", "artifact"),
            ("6", "artifact"), ("7", "message"), ("8", "done")]
        assert events[3].json() == {"type": "delta", "artifactId": "a1", "content": "Subject: Diwali"}

    def test_the_fine_print_of_the_format(self) -> None:
        stream = [": keep-alive\r\n", "retry: 1000\r\n", "data:first\r\n", "data:  second\r\n", "\r\n",
                  "id: 9\n", "event\n", "\n",
                  "event: message\n", "data\n", "\n",
                  "id: 10\n", "data: {\"half\": true}\n"]
        events = list(parse_sse(stream))
        assert events == [SseEvent(event="message", data="first\n second", id=None),
                          SseEvent(event="message", data="", id="9")]

    def test_an_event_without_data_or_cut_off_is_not_dispatched(self) -> None:
        assert list(parse_sse(["event: done\n", "\n", "data: x\n"])) == []


class TestRender:
    def test_every_kind_of_the_contract(self) -> None:
        lines = [render(e) for e in parse_sse("".join(TURN).splitlines(keepends=True))]
        assert lines[0] == "  … tool_status (knowledge_search): Searching your knowledge"
        assert lines[1] == "  ◆ knowledge_summary [1 source]: Assam box Rs 1,499"
        assert lines[2] == "  ┌ artifact a1 (email)" and lines[3] is None and lines[4] is None
        assert lines[5] == "\n  └ 3 words, QA passed"
        assert lines[6] == "\nassistant> Here is your email."
        assert lines[7] == "  ✓ done: 2 messages in c0ffee00-0000-4000-8000-000000000001"
        done = SseEvent(event="done", data=json.dumps({"conversationId": "c", "messageCount": 4,
                                                       "usage": {"prompt_tokens": 120, "output_tokens": 30}}))
        assert render(done) == "  ✓ done: 4 messages in c (150 tokens)"
        error = SseEvent(event="error", data=json.dumps({"code": "turn_timeout", "message": "Too long",
                                                         "retryable": True}))
        assert render(error) == "  ✗ turn_timeout: Too long (retryable)"
        assert render(SseEvent(event="message", data=json.dumps({"role": "user", "content": "hi"}))) is None


@pytest.fixture
def chat_stack() -> Iterator[tuple[str, list[dict[str, object]]]]:
    """A stand-in chat function: the first stream breaks after event 4, the events route resumes it."""
    app = flask.Flask("chat")
    requests: list[dict[str, object]] = []

    @app.post("/api/v1/chat/stream")
    def stream() -> flask.Response:
        requests.append({"body": flask.request.get_json(), "auth": flask.request.headers.get("Authorization")})
        if flask.request.get_json().get("message") == "refuse":
            return flask.Response(json.dumps({"error": {"code": "conflict", "message": "turn t1 is running"}}),
                                  409, mimetype="application/json")
        return flask.Response(iter(TURN[:4]), mimetype="text/event-stream",
                              headers={"X-Conversation-Id": "c0ffee00-0000-4000-8000-000000000001"})

    @app.get("/api/v1/chat/<conversation>/events")
    def events(conversation: str) -> flask.Response:
        after = int(flask.request.headers.get("Last-Event-ID", "0"))
        requests.append({"resume": conversation, "after": after})
        return flask.Response(iter(TURN[after:]), mimetype="text/event-stream")

    server = serve_in_thread(app)
    try:
        yield server.url, requests
    finally:
        server.stop()


def test_a_turn_that_loses_its_stream_resumes_and_prints_every_event_once(
        chat_stack: tuple[str, list[dict[str, object]]]) -> None:
    url, requests = chat_stack
    out = io.StringIO()
    client = ChatClient(base_url=url, token="t0ken", out=out)
    events = client.say("Write our Diwali email")
    assert [e.id for e in events] == [str(i) for i in range(1, 9)]
    assert requests[1] == {"resume": "c0ffee00-0000-4000-8000-000000000001", "after": 4}
    printed = out.getvalue()
    assert printed.count("Subject: Diwali") == 1 and printed.count(" gifts") == 1
    assert printed.count("Here is your email.") == 1 and "(resuming after event 4)" in printed
    assert client.conversation_id == "c0ffee00-0000-4000-8000-000000000001"

    client.say("And a WhatsApp version?")
    assert requests[2]["body"] == {"message": "And a WhatsApp version?",
                                   "conversationId": "c0ffee00-0000-4000-8000-000000000001"}
    assert requests[2]["auth"] == "Bearer t0ken"

    assert client.say("refuse") == []
    assert "HTTP 409 conflict: turn t1 is running" in out.getvalue()
