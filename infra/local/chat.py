"""`make chat`: hold a short conversation with the local stack's chat function, in the terminal.

Start the stack first (`make dev`), then `make chat` (or `python -m infra.local.chat`). Each line you
type is one turn: `POST /api/v1/chat/stream`, its Server-Sent Events printed as they arrive
(thinking, analysis, artifact deltas, the message, done). The conversation id is kept across turns;
`/new` starts another conversation, `/quit` (or an empty line, or Ctrl-D) ends. `--say` sends the given
messages one after the other and exits (the demo's scripted conversation). If the stream breaks
mid-turn, the client resumes it with `GET /api/v1/chat/{id}/events` and `Last-Event-ID`: the turn went
on, and every event arrives once.

A token for the demo workspace is minted as `make token` does, unless `--token` (or `MUSE_TOKEN`) gives one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

TERMINAL = frozenset({"done", "error"})


@dataclass(frozen=True)
class SseEvent:
    """One Server-Sent Event: its `id:`, `event:` (default `message`) and `data:` (joined lines)."""

    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        """`data` parsed as JSON (the chat's events are JSON objects); the raw text if it is not JSON."""
        try:
            return json.loads(self.data)
        except ValueError:
            return self.data


def parse_sse(lines: Iterable[str]) -> Iterator[SseEvent]:
    """The events of an SSE stream, as the WHATWG EventSource algorithm reads it.

    A blank line dispatches the fields gathered since the last one; `data` lines are joined with a
    newline; a line starting with `:` is a comment (keep-alive); a field without a colon has an empty
    value; one space after the colon is dropped; `retry` and unknown fields are ignored. An event with
    no data is not dispatched, and neither is a trailing event the stream ended in the middle of.
    """
    event, data, last_id = "", [], None
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield SseEvent(event=event or "message", data="\n".join(data), id=last_id)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id" and "\x00" not in value:
            last_id = value


def render(event: SseEvent) -> str | None:
    """A terminal line for one event of the chat's SSE contract (None: print nothing: an artifact delta is
    printed inline by the caller, and the user's own message is already on the screen)."""
    data = event.json()
    if not isinstance(data, dict):
        return f"[{event.event}] {data}"
    kind = event.event
    if kind == "thinking":
        tool = f" ({data['tool']})" if data.get("tool") else ""
        return f"  … {data.get('type', 'thinking')}{tool}: {data.get('content', '')}"
    if kind == "analysis":
        sources = data.get("sources") or []
        cited = f" [{len(sources)} source{'s' if len(sources) != 1 else ''}]" if sources else ""
        return f"  ◆ {data.get('type', 'analysis')}{cited}: {data.get('content', '')}"
    if kind == "artifact":
        meta = data.get("metadata") or {}
        if data.get("type") == "start":
            return f"  ┌ artifact {data.get('artifactId')} ({meta.get('contentType', 'text')})"
        if data.get("type") == "end":
            qa = meta.get("qa") or {}
            verdict = f", QA {'passed' if qa.get('passed') else 'flagged'}" if qa else ""
            return f"\n  └ {meta.get('wordCount', '?')} words{verdict}"
        return None
    if kind == "message":
        if data.get("role") == "user":
            return None
        return f"\n{data.get('role', 'assistant')}> {data.get('content', '')}"
    if kind == "done":
        usage = data.get("usage")
        spent = f" ({_tokens(usage)} tokens)" if _tokens(usage) else ""
        return f"  ✓ done: {data.get('messageCount')} messages in {data.get('conversationId')}{spent}"
    if kind == "error":
        again = " (retryable)" if data.get("retryable") else ""
        return f"  ✗ {data.get('code')}: {data.get('message')}{again}"
    return f"  [{kind}] {json.dumps(data, ensure_ascii=False)}"


def _tokens(usage: Any) -> int:
    """Tokens a `done` event's usage adds up to (a usage object, or a list of them)."""
    lines = usage if isinstance(usage, list) else [usage] if isinstance(usage, dict) else []
    return sum(int(line.get(name) or 0) for line in lines if isinstance(line, dict)
               for name in ("prompt_tokens", "output_tokens", "thinking_tokens") if isinstance(line.get(name), int))


@dataclass
class ChatClient:
    """One conversation with the chat function over HTTP; `conversation_id` carries over between turns."""

    base_url: str
    token: str
    out: TextIO = sys.stdout
    conversation_id: str | None = None
    last_event_id: str | None = None
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=httpx.Timeout(10.0, read=300.0)))

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"}

    def say(self, message: str, *, resume_attempts: int = 3) -> list[SseEvent]:
        """Send one message and print its events as they arrive; every event of the turn, in order."""
        body: dict[str, Any] = {"message": message}
        if self.conversation_id:
            body["conversationId"] = self.conversation_id
        seen: list[SseEvent] = []
        try:
            with self.http.stream("POST", f"{self.base_url}/api/v1/chat/stream", json=body,
                                  headers=self.headers) as response:
                if response.status_code != 200:
                    response.read()
                    self._refused(response)
                    return seen
                self.conversation_id = response.headers.get("X-Conversation-Id", self.conversation_id)
                if self._show(parse_sse(response.iter_lines()), seen):
                    return seen
        except httpx.TransportError as exc:
            print(f"  (stream interrupted: {exc})", file=self.out)
        for _ in range(resume_attempts):
            if self.conversation_id is None:
                break
            print(f"  (resuming after event {self.last_event_id or 0})", file=self.out)
            try:
                if self._resume(seen):
                    return seen
            except httpx.TransportError as exc:
                print(f"  (stream interrupted: {exc})", file=self.out)
        return seen

    def _resume(self, seen: list[SseEvent]) -> bool:
        headers = {**self.headers, **({"Last-Event-ID": self.last_event_id} if self.last_event_id else {})}
        with self.http.stream("GET", f"{self.base_url}/api/v1/chat/{self.conversation_id}/events",
                              headers=headers) as response:
            if response.status_code != 200:
                response.read()
                self._refused(response)
                return True
            return self._show(parse_sse(response.iter_lines()), seen)

    def _show(self, events: Iterator[SseEvent], seen: list[SseEvent]) -> bool:
        """Print events until the turn ends; True when it did (`done` or `error`)."""
        for event in events:
            seen.append(event)
            self.last_event_id = event.id or self.last_event_id
            data = event.json()
            if event.event == "artifact" and isinstance(data, dict) and data.get("type") == "delta":
                print(data.get("content", ""), end="", file=self.out, flush=True)
            else:
                line = render(event)
                if line is not None:
                    print(line, file=self.out, flush=True)
            if event.event == "done" and isinstance(data, dict):
                self.conversation_id = data.get("conversationId") or self.conversation_id
            if event.event in TERMINAL:
                return True
        return False

    def _refused(self, response: httpx.Response) -> None:
        try:
            error = response.json()["error"]
            print(f"  ✗ HTTP {response.status_code} {error.get('code')}: {error.get('message')}", file=self.out)
        except (ValueError, KeyError, TypeError):
            print(f"  ✗ HTTP {response.status_code}: {response.text[:300]}", file=self.out)

    def new_conversation(self) -> None:
        self.conversation_id, self.last_event_id = None, None


def local_token(workspace: str, data_dir: Path) -> str:
    """A token for `workspace` of the local stack, as `make token` mints it."""
    from infra.local.token import token_for

    return token_for(workspace, data_dir)


def main(argv: list[str] | None = None) -> int:
    from infra.local.stack import DEFAULT_DATA_DIR

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('PORT', '8080')}",
                        help="the local stack (make dev)")
    parser.add_argument("--workspace", default="demo")
    parser.add_argument("--token", default=os.environ.get("MUSE_TOKEN"), help="a bearer token (default: minted)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--say", action="append", default=[], help="send this message (repeatable), then exit")
    args = parser.parse_args(argv)
    client = ChatClient(base_url=args.url.rstrip("/"), token=args.token or local_token(args.workspace, args.data_dir))
    try:
        client.http.get(f"{client.base_url}/api/v1/openapi.json", timeout=3.0)
    except httpx.TransportError:
        print(f"Nothing answers at {client.base_url}; start the stack with `make dev` first.", file=sys.stderr)
        return 2
    if args.say:
        for message in args.say:
            print(f"\nyou> {message}")
            events = client.say(message)
            if not events or events[-1].event != "done":
                return 1
        return 0
    print("Chat with Muse (the demo workspace). /new starts a new conversation, /quit or an empty line ends.")
    while True:
        try:
            message = input("\nyou> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if message in ("", "/quit", "/exit"):
            return 0
        if message == "/new":
            client.new_conversation()
            print("  (new conversation)")
            continue
        client.say(message)


if __name__ == "__main__":
    sys.exit(main())
