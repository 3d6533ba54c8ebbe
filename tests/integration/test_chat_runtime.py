"""The chat runtime on a real Postgres, in-process: the turn lock, lease expiry healing, the sink, durable turns."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from ag_ui.core import Event, EventType
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, TypeAdapter

from shared.api.chat import ChatRequest
from shared.auth import Principal
from shared.chat.encoding import AgUiRenderer, ContractRenderer
from shared.chat.service import ChatService, TurnRequest
from shared.chat.sink import Feed, PostgresEventSink, TurnEnded
from shared.chat.turns import LeaseKeeper, TurnRunning, claim_turn, heal_expired_turns
from shared.conversations import ChatDeps, TurnAnswer, TurnInput, compile_chat_graph
from shared.conversations.events import (
    Done,
    ErrorEvent,
    EventSink,
    MessageDelta,
    MessageEvent,
    Reasoning,
    ToolFinished,
    ToolStarted,
    TurnStarted,
)
from shared.conversations.fake import EchoChatModel
from shared.db import chat as db
from shared.db.conversations import ConversationRepository
from shared.db.pool import connect
from shared.db.threads import ThreadRepository
from shared.db.workspaces import ensure_workspace
from shared.errors import UpstreamUnavailable
from shared.outbox import Outbox
from shared.ports import Generated, ModelTier, Usage
from shared.queue import qstash_receiver
from shared.runtime.checkpointer import create_checkpointer
from shared.runtime.sweeper import Sweeper
from shared.testing.fakes import RecordingQueue
from tests.integration.harness import make_settings

T = TypeVar("T", bound=BaseModel)
AG_UI: TypeAdapter[Any] = TypeAdapter(Event)


@dataclass(frozen=True)
class Member:
    workspace_id: str
    principal: Principal


def _member(dsn: str) -> Member:
    user_id = uuid.uuid4()
    slug = f"chat-{uuid.uuid4().hex[:10]}"
    with connect(dsn) as conn, conn.transaction():
        workspace_id = ensure_workspace(conn, slug=slug, name=slug, user_id=str(user_id))
    claims = {"sub": str(user_id), "aud": "authenticated", "role": "authenticated"}
    return Member(workspace_id=workspace_id, principal=Principal(user_id=user_id, claims=claims))


@pytest.fixture
def member(migrated_dsn: str) -> Member:
    return _member(migrated_dsn)


def _conversation(pool: ConnectionPool, member: Member) -> str:
    conversation_id = str(uuid.uuid4())
    ConversationRepository(pool).ensure_conversation(conversation_id, member.workspace_id)
    return conversation_id


def _claim(pool: ConnectionPool, member: Member, conversation_id: str, *, lease: float = 30.0,
           wall: float = 60.0) -> str:
    turn_id = db.new_turn_id()
    claim_turn(pool, turn_id=turn_id, conversation_id=conversation_id, workspace_id=member.workspace_id,
               lease_seconds=lease, wall_seconds=wall)
    return turn_id


def _sink(pool: ConnectionPool, member: Member, conversation_id: str, turn_id: str) -> PostgresEventSink:
    return PostgresEventSink(pool=pool, conversation_id=conversation_id, turn_id=turn_id,
                             workspace_id=member.workspace_id, feed=Feed(conversation_id, turn_id))


def _events(pool: ConnectionPool, conversation_id: str) -> list[db.StoredEvent]:
    with pool.connection() as conn:
        return db.events_after(conn, conversation_id, 0)


def test_a_second_turn_is_refused_naming_the_running_one_until_it_ends(pool: ConnectionPool, member: Member) -> None:
    conversation_id = _conversation(pool, member)
    first = _claim(pool, member, conversation_id)
    with pytest.raises(TurnRunning) as refused:
        _claim(pool, member, conversation_id)
    assert refused.value.http_status == 409 and refused.value.turn_id == first and first in refused.value.message
    _sink(pool, member, conversation_id, first).finish(
        Done(conversationId=conversation_id, messageCount=2, usage={}))
    second = _claim(pool, member, conversation_id)
    assert second != first and db.running(pool, conversation_id).id == second  # type: ignore[union-attr]


def test_racing_claims_let_exactly_one_turn_run(pool: ConnectionPool, member: Member) -> None:
    conversation_id = _conversation(pool, member)
    won, refused = [], []
    barrier = threading.Barrier(6)

    def race() -> None:
        barrier.wait()
        try:
            won.append(_claim(pool, member, conversation_id))
        except TurnRunning as exc:
            refused.append(exc.turn_id)

    threads = [threading.Thread(target=race) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and refused == [won[0]] * 5


def test_a_turn_whose_lease_ran_out_is_healed_with_a_retryable_error(pool: ConnectionPool, member: Member) -> None:
    conversation_id = _conversation(pool, member)
    dead = _claim(pool, member, conversation_id, lease=0.2)
    live_conversation = _conversation(pool, member)
    live = _claim(pool, member, live_conversation, lease=30)
    _sink(pool, member, conversation_id, dead).emit(Reasoning(content="Looking at your brief."))
    time.sleep(0.4)
    sweeper = Sweeper(threads=ThreadRepository(pool), outbox=Outbox(pool=pool, queue=RecordingQueue()),
                      receiver=qstash_receiver(make_settings("postgresql://unused")), url="https://sweeper.test/",
                      publish_grace_seconds=60.0, lease_grace_seconds=0.0, stall_seconds=300.0)
    assert sweeper.sweep().turns_healed >= 1
    assert db.running(pool, conversation_id) is None
    kinds = [(e.kind, e.data.get("code"), e.data.get("retryable")) for e in _events(pool, conversation_id)]
    assert kinds == [("reasoning", None, None), ("error", "turn_lost", True)]
    assert db.running(pool, live_conversation).id == live  # type: ignore[union-attr]
    with pytest.raises(TurnEnded):  # the dead turn's writer, back from a pause, cannot add a second ending
        _sink(pool, member, conversation_id, dead).finish(Done(conversationId=conversation_id, messageCount=2,
                                                               usage={}))
    assert [e.kind for e in _events(pool, conversation_id)] == ["reasoning", "error"]
    _claim(pool, member, conversation_id)  # the conversation is free again


def test_the_next_request_heals_a_dead_turn_without_the_sweeper(pool: ConnectionPool, member: Member) -> None:
    conversation_id = _conversation(pool, member)
    _claim(pool, member, conversation_id, lease=0.1)
    time.sleep(0.3)
    again = _claim(pool, member, conversation_id)
    assert [e.kind for e in _events(pool, conversation_id)] == ["error"]
    assert db.running(pool, conversation_id).id == again  # type: ignore[union-attr]


def test_the_sink_commits_each_event_before_listeners_see_it(pool: ConnectionPool, member: Member) -> None:
    conversation_id = _conversation(pool, member)
    turn_id = _claim(pool, member, conversation_id)
    sink = _sink(pool, member, conversation_id, turn_id)
    seen: list[tuple[int, list[int]]] = []
    stop = threading.Event()

    def listen() -> None:
        cursor = 0
        while not stop.is_set():
            events, closed = sink.feed.after(cursor, timeout=1)
            for e in events:
                seen.append((e.id, [r.id for r in _events(pool, conversation_id)]))
                cursor = e.id
            if closed:
                return

    listener = threading.Thread(target=listen)
    listener.start()
    ids = [sink.emit(TurnStarted(conversationId=conversation_id, turnId=turn_id)),
           sink.emit(MessageEvent(role="user", content="Plan a Diwali email", messageId=f"{conversation_id}:0")),
           sink.emit(ErrorEvent(code="x", message="stopped", retryable=False))]
    listener.join(5)
    stop.set()
    assert ids == sorted(ids) and [i for i, _ in seen] == ids
    assert all(event_id in committed for event_id, committed in seen)
    assert db.running(pool, conversation_id) is None
    with pytest.raises(TurnEnded):  # a node still running after the turn ended cannot add to it
        sink.emit(Reasoning(content="One more thought."))
    assert [e.kind for e in _events(pool, conversation_id)] == ["turn.started", "message", "error"]


@dataclass
class GatedModel(EchoChatModel):
    """An echo model whose chat replies wait until `release` is set (a slow model)."""

    release: threading.Event = field(default_factory=threading.Event)

    def generate(self, *, tier: ModelTier, system: str, prompt: str, schema: type[T]) -> Generated[T]:
        if "Muse" in system:
            self.release.wait(10)
        return super().generate(tier=tier, system=system, prompt=prompt, schema=schema)


def _service(pool: ConnectionPool, dsn: str, model: EchoChatModel) -> ChatService:
    def deps(service: ChatService, turn: TurnRequest, sink: EventSink) -> ChatDeps:
        return ChatDeps(model=model, messages=service.messages, events=sink, tier="fast")

    return ChatService(settings=make_settings(dsn), pool=pool, graph=compile_chat_graph(create_checkpointer(pool)),
                       turn_deps=deps)


def _frames(text: str) -> list[tuple[int, str]]:
    out = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and line[0] != ":")
        if "id" in fields:
            out.append((int(fields["id"]), fields["event"]))
    return out


def test_a_turn_outlives_its_stream_and_replays_after_last_event_id(pool: ConnectionPool, migrated_dsn: str,
                                                                     member: Member) -> None:
    model = GatedModel()
    service = _service(pool, migrated_dsn, model)
    started = service.start(member.principal, ChatRequest(message="Draft a Diwali teaser"), workspace=None)
    stream = service.stream_turn(started, ContractRenderer())
    assert next(stream).startswith("retry:")
    first = next(stream)
    assert _frames(first)[0][1] == "message"  # the user's message, stored
    stream.close()  # the client went away mid-turn
    again = ChatRequest(conversationId=uuid.UUID(started.conversation_id), message="And a subject line?")
    with pytest.raises(TurnRunning):
        service.start(member.principal, again, workspace=None)
    model.release.set()
    service.wait_idle()
    resumed = "".join(service.events(member.principal, uuid.UUID(started.conversation_id), _frames(first)[0][0],
                                     ContractRenderer()))
    assert [name for _, name in _frames(resumed)] == ["message", "done"]
    everything = "".join(service.events(member.principal, uuid.UUID(started.conversation_id), 0,
                                        ContractRenderer()))
    ids = [i for i, _ in _frames(everything)]
    assert ids == sorted(set(ids)) and _frames(first)[0] in _frames(everything)
    assert ConversationRepository(pool).count(started.conversation_id) == 2
    second = service.start(member.principal, again, workspace=None)
    names = [name for _, name in _frames("".join(service.stream_turn(second, ContractRenderer())))]
    assert names == ["message", "message", "done"]


def test_a_reader_on_another_instance_tails_the_table_until_the_turn_ends(pool: ConnectionPool, migrated_dsn: str,
                                                                         member: Member) -> None:
    model = GatedModel()
    running_here = _service(pool, migrated_dsn, model)
    elsewhere = _service(pool, migrated_dsn, model)
    started = running_here.start(member.principal, ChatRequest(message="Plan our Holi sale"), workspace=None)
    read: list[str] = []
    reader = threading.Thread(target=lambda: read.extend(elsewhere.events(
        member.principal, uuid.UUID(started.conversation_id), 0, ContractRenderer())))
    reader.start()
    time.sleep(0.3)
    assert reader.is_alive()  # waiting on the table: the turn is running in the other instance
    model.release.set()
    reader.join(10)
    assert [name for _, name in _frames("".join(read))] == ["message", "message", "done"]


class SlowUserMessages(ConversationRepository):
    """Stores the user's message slowly, once (the turn runs out of wall time before `respond`)."""

    def __init__(self, pool: ConnectionPool) -> None:
        super().__init__(pool)
        self.slow_once = threading.Event()

    def append(self, conversation_id: str, workspace_id: str, *, seq: int, role: str, content: str,
               usage: Usage | None = None) -> str:
        if role == "user" and not self.slow_once.is_set():
            self.slow_once.set()
            time.sleep(0.4)
        return super().append(conversation_id, workspace_id, seq=seq, role=role, content=content, usage=usage)


def test_a_turn_past_its_wall_time_ends_retryable_and_the_next_turn_keeps_the_history_in_order(
        pool: ConnectionPool, migrated_dsn: str, member: Member) -> None:
    messages = SlowUserMessages(pool)

    def deps(service: ChatService, turn: TurnRequest, sink: EventSink) -> ChatDeps:
        return ChatDeps(model=EchoChatModel(), messages=messages, events=sink, tier="fast")

    graph = compile_chat_graph(create_checkpointer(pool))
    bounded = ChatService(settings=make_settings(migrated_dsn, MUSE_CHAT_TURN_SECONDS="0.2"), pool=pool, graph=graph,
                          turn_deps=deps)
    started = bounded.start(member.principal, ChatRequest(message="First: the Diwali brief"), workspace=None)
    ended = _frames("".join(bounded.stream_turn(started, ContractRenderer())))
    assert [name for _, name in ended] == ["message", "error"]
    with pool.connection() as conn:
        error = db.events_after(conn, started.conversation_id, ended[0][0])[-1].data
    assert error["code"] == "turn_timeout" and error["retryable"] is True
    assert "MUSE_CHAT_TURN_SECONDS" in error["message"]
    assert db.running(pool, started.conversation_id) is None

    relaxed = ChatService(settings=make_settings(migrated_dsn), pool=pool, graph=graph, turn_deps=deps)
    again = relaxed.start(member.principal, ChatRequest(conversationId=uuid.UUID(started.conversation_id),
                                                        message="Second: a subject line"), workspace=None)
    assert _frames("".join(relaxed.stream_turn(again, ContractRenderer())))[-1][1] == "done"
    stored = ConversationRepository(pool).oldest_after(started.conversation_id, -1, 10)
    assert [(m.seq, m.role) for m in stored] == [(0, "user"), (1, "assistant"), (2, "user"), (3, "assistant")]
    assert stored[0].content.startswith("First") and stored[2].content.startswith("Second")


def test_a_failing_model_ends_the_turn_with_an_error_and_frees_the_conversation(pool: ConnectionPool,
                                                                                migrated_dsn: str,
                                                                                member: Member) -> None:
    model = EchoChatModel(fail_next_chat=UpstreamUnavailable("Gemini is unavailable; try again."))
    service = _service(pool, migrated_dsn, model)
    started = service.start(member.principal, ChatRequest(message="Hello"), workspace=None)
    frames = _frames("".join(service.stream_turn(started, ContractRenderer())))
    assert [name for _, name in frames] == ["message", "error"]
    with pool.connection() as conn:
        error = db.events_after(conn, started.conversation_id, 0)[-1].data
    assert error == {"code": "upstream_unavailable", "message": "Gemini is unavailable; try again.", "retryable": True}
    again = service.start(member.principal, ChatRequest(conversationId=uuid.UUID(started.conversation_id),
                                                        message="Hello again"), workspace=None)
    assert _frames("".join(service.stream_turn(again, ContractRenderer())))[-1][1] == "done"


def test_a_live_turn_keeps_its_lease(pool: ConnectionPool, member: Member) -> None:
    conversation_id = _conversation(pool, member)
    turn_id = _claim(pool, member, conversation_id, lease=0.3)
    keeper = LeaseKeeper(pool, turn_id, 0.3).start()
    try:
        time.sleep(0.8)
        heal_expired_turns(pool)
        assert db.running(pool, conversation_id).id == turn_id and not keeper.lost.is_set()  # type: ignore[union-attr]
    finally:
        keeper.stop()
    time.sleep(0.5)
    assert db.running(pool, conversation_id).expired  # type: ignore[union-attr]


def test_a_turn_stuck_past_its_wall_time_stops_renewing_and_is_healed(pool: ConnectionPool, member: Member) -> None:
    conversation_id = _conversation(pool, member)
    turn_id = _claim(pool, member, conversation_id, lease=0.3, wall=0.1)
    keeper = LeaseKeeper(pool, turn_id, 0.3).start()  # its thread is alive, its node never returns
    try:
        time.sleep(1.2)
        assert keeper.lost.is_set()
        heal_expired_turns(pool)
        assert db.running(pool, conversation_id) is None
        assert [e.data["code"] for e in _events(pool, conversation_id)] == ["turn_lost"]
    finally:
        keeper.stop()


class StreamingOrchestrator:
    """Streams its reply in three deltas with a tool call after the first, pausing there until `release`."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def answer(self, turn: TurnInput) -> TurnAnswer:
        turn.events.emit(MessageDelta(messageId=turn.message_id, delta="Diwali "))
        self.release.wait(10)
        turn.events.emit(ToolStarted(callId="c1", tool="knowledge_search", args={"query": "hampers"},
                                     content="Searching your knowledge for 'hampers'"))
        turn.events.emit(ToolFinished(callId="c1", tool="knowledge_search", ok=True, content="2 passages",
                                      result={"hits": 2}))
        turn.events.emit(MessageDelta(messageId=turn.message_id, delta="hampers, "))
        turn.events.emit(MessageDelta(messageId=turn.message_id, delta="delivered."))
        return TurnAnswer(reply="Diwali hampers, delivered.")


def test_an_ag_ui_stream_resumed_mid_message_continues_it_without_reopening(pool: ConnectionPool,
                                                                           migrated_dsn: str,
                                                                           member: Member) -> None:
    orchestrator = StreamingOrchestrator()

    def deps(service: ChatService, turn: TurnRequest, sink: EventSink) -> ChatDeps:
        return ChatDeps(model=EchoChatModel(), messages=service.messages, events=sink, orchestrator=orchestrator)

    service = ChatService(settings=make_settings(migrated_dsn), pool=pool,
                          graph=compile_chat_graph(create_checkpointer(pool)), turn_deps=deps)
    started = service.start(member.principal, ChatRequest(message="A tagline?"), workspace=None)
    reply_id = f"{started.conversation_id}:1"
    seen = ""
    for text in service.stream_turn(started, AgUiRenderer()):
        seen += text
        if reply_id in text:
            break  # cut off right after the reply's first delta
    orchestrator.release.set()
    service.wait_idle()
    cut = max(int(line[4:]) for line in seen.splitlines() if line.startswith("id: "))
    rest = "".join(service.events(member.principal, uuid.UUID(started.conversation_id), cut, AgUiRenderer()))
    before, after = _ag_ui(seen), _ag_ui(rest)
    verify_ag_ui(before + after)
    assert [(e.type, getattr(e, "message_id", None)) for e in after if "TEXT" in e.type] == [
        (EventType.TEXT_MESSAGE_END, reply_id), (EventType.TEXT_MESSAGE_START, f"{reply_id}#2"),
        (EventType.TEXT_MESSAGE_CONTENT, f"{reply_id}#2"), (EventType.TEXT_MESSAGE_CONTENT, f"{reply_id}#2"),
        (EventType.TEXT_MESSAGE_END, f"{reply_id}#2")]
    assert after[-1].type == EventType.RUN_FINISHED and after[-1].run_id == started.turn_id
    text = "".join(e.delta for e in before + after if e.type == EventType.TEXT_MESSAGE_CONTENT
                   and e.message_id.startswith(reply_id))
    assert text == "Diwali hampers, delivered."
    whole = "".join(service.events(member.principal, uuid.UUID(started.conversation_id), 0, AgUiRenderer()))
    verify_ag_ui(_ag_ui(whole))
    assert [e.type for e in _ag_ui(whole)] == [e.type for e in before + after]


def verify_ag_ui(events: list[Any]) -> None:
    """AG-UI's event-order rules (as its client's verifier applies them) over one run."""
    assert events and events[0].type == EventType.RUN_STARTED
    text: str | None = None
    tools: set[str] = set()
    ended_tools: set[str] = set()
    steps: list[str] = []
    started_texts: set[str] = set()
    for i, e in enumerate(events):
        kind = e.type
        if text is not None:
            assert kind in (EventType.TEXT_MESSAGE_CONTENT, EventType.TEXT_MESSAGE_END) and e.message_id == text, \
                f"{kind} while text message {text} is open (event {i})"
        if kind == EventType.TEXT_MESSAGE_START:
            assert e.message_id not in started_texts
            started_texts.add(text := e.message_id)
        elif kind == EventType.TEXT_MESSAGE_END:
            text = None
        elif kind == EventType.TEXT_MESSAGE_CONTENT:
            assert text == e.message_id
        elif kind == EventType.TOOL_CALL_START:
            assert e.tool_call_id not in tools | ended_tools
            tools.add(e.tool_call_id)
        elif kind in (EventType.TOOL_CALL_ARGS, EventType.TOOL_CALL_END):
            assert e.tool_call_id in tools
            if kind == EventType.TOOL_CALL_END:
                tools.discard(e.tool_call_id)
                ended_tools.add(e.tool_call_id)
        elif kind == EventType.TOOL_CALL_RESULT:
            assert e.tool_call_id in ended_tools
        elif kind == EventType.STEP_STARTED:
            steps.append(e.step_name)
        elif kind == EventType.STEP_FINISHED:
            assert e.step_name in steps
            steps.remove(e.step_name)
        elif kind in (EventType.RUN_FINISHED, EventType.RUN_ERROR):
            assert i == len(events) - 1 and text is None and not tools
            assert kind == EventType.RUN_ERROR or not steps


def _ag_ui(text: str) -> list[Any]:
    events = []
    for block in text.split("\n\n"):
        lines = block.splitlines()
        data = [line[6:] for line in lines if line.startswith("data: ")]
        if data:
            assert any(line.startswith("id: ") for line in lines)
            events.append(AG_UI.validate_json(data[0]))
    return events
