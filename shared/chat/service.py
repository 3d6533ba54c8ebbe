"""What the chat function does, independent of HTTP: start a durable turn, stream it, replay it.

A turn runs in a worker thread of the request's process, not in the response generator: the request
claims the conversation's running slot (409 naming a running turn), starts the worker and streams
the turn's feed. A client that disconnects loses nothing; the worker finishes the turn, every event
is committed as it happens, and `events` replays them after `Last-Event-ID` and tails the rest.
On Cloud Run this needs CPU outside requests (`--no-cpu-throttling`, see `infra/functions.toml`).

The turn is the conversation graph (`shared.conversations.graph`) run with its Postgres checkpointer.
`turn_deps` is the one seam between this runtime and the agent: it builds the graph's run context for
a turn, with the turn's `EventSink`. The runtime itself emits the turn's frame: `turn.started`, a
`step.*` pair per graph node (from the graph's `tasks` stream), the user's message once stored, then
`done` (message count, token usage) or an `error` saying whether sending again can help; the agent
emits everything in between (reasoning, tools, analysis, artifacts, the reply).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langgraph.types import Durability

from shared.api.chat import ChatRequest
from shared.auth import Principal, choose_workspace
from shared.caching.scope import workspace_scope
from shared.chat.agent import chat_deps
from shared.chat.encoding import RETRY, Renderer
from shared.chat.sink import Feed, Listeners, PostgresEventSink, TurnEnded, stored_event
from shared.chat.turns import LeaseKeeper, claim_turn, heal_turn
from shared.conversations import ChatDeps, ChatOptions, chat_config
from shared.conversations.events import (
    Done,
    ErrorEvent,
    EventSink,
    MessageEvent,
    StepFinished,
    StepStarted,
    TurnStarted,
)
from shared.conversations.graph import ChatGraph, ChatState
from shared.db import chat as db
from shared.db.campaigns import memberships
from shared.db.conversations import ConversationRepository
from shared.db.pool import Pool, as_user
from shared.errors import BudgetExceeded, MuseError, NotFound, UpstreamUnavailable
from shared.models.usage import UsageTotals
from shared.plans import ensure_credits, plan_state
from shared.settings import Settings
from shared.tracing import span, step_trace

if TYPE_CHECKING:
    import langsmith

log = logging.getLogger("muse.chat")

DURABILITY: Durability = "sync"
"""Checkpoint after every node, not only at the end (the graph's default): a turn whose process is killed
after `record_user` stored the message leaves a checkpoint at `respond`, so the user's next turn answers
the stored message first and then the new one. With one checkpoint per turn, the new message would get the
stored one's seq and be dropped in its favour."""
POLL_SECONDS = 0.2
"""How often a stream served by another instance than the turn's reads `chat_events` for more."""


@dataclass(frozen=True)
class TurnRequest:
    """Everything a turn runs with, fixed when it is accepted."""

    conversation_id: str
    workspace_id: str
    principal: Principal
    turn_id: str
    message: str
    model_preference: str
    """`fast`, `strong` or a model name (checked against the workspace's when the deps are built)."""
    include_resources: bool
    enable_web_search: bool
    confirm: str | None = None


@dataclass(frozen=True)
class StartedTurn:
    """An accepted turn, running in this process; `feed` carries its events as they commit."""

    conversation_id: str
    turn_id: str
    feed: Feed


class TurnTimedOut(UpstreamUnavailable):
    """The turn ran past `MUSE_CHAT_TURN_SECONDS`."""

    code = "turn_timeout"


DepsFactory = Callable[["ChatService", TurnRequest, EventSink], ChatDeps]
"""Builds a turn's graph run context (the seam between the runtime and the agent); runs in the request,
so a bad `modelPreference` is a 400 before anything is claimed."""


def agent_turn_deps(service: ChatService, turn: TurnRequest, sink: EventSink) -> ChatDeps:
    """The Tier 1 orchestrator's deps for the turn (`shared.chat.agent.chat_deps`), emitting into `sink`."""
    options = ChatOptions(model_preference=turn.model_preference, include_resources=turn.include_resources,
                          enable_web_search=turn.enable_web_search)
    return chat_deps(service.settings, service.pool, workspace_id=turn.workspace_id, principal=turn.principal,
                     options=options, events=sink)


def turn_usage(final: dict[str, Any]) -> dict[str, Any]:
    """The `done` event's usage: the turn's model calls and tools (the graph state's `usage`), summed."""
    totals = UsageTotals()
    for entry in final.get("usage") or ():
        totals.add(entry)
    return totals.as_dict()


@dataclass
class ChatService:
    """The chat function's dependencies for one instance, and what it does."""

    settings: Settings
    pool: Pool
    graph: ChatGraph
    turn_deps: DepsFactory = agent_turn_deps
    listeners: Listeners = field(default_factory=Listeners)
    threads: list[threading.Thread] = field(default_factory=list)
    tracer: langsmith.Client | None = None
    """Traces each turn to LangSmith as one trace (`shared.tracing.langsmith_client`); None: untraced."""

    @property
    def messages(self) -> ConversationRepository:
        return ConversationRepository(self.pool)

    def start(self, principal: Principal, body: ChatRequest, *, workspace: str | None) -> StartedTurn:
        """Accept a turn: resolve (or create) the conversation, build the turn's deps, claim the running slot,
        start the worker.

        Another workspace's conversation is `NotFound`; a workspace whose AI credits of the period are used up
        is `QuotaExceeded` (429 `monthly_ai_credits`, as a campaign start); a model the workspace does not allow is
        `InvalidRequest`; a running turn is `TurnRunning` (409).
        """
        with as_user(self.pool, principal.claims) as conn:
            if body.conversationId is not None:
                conversation_id = str(body.conversationId)
                found = db.conversation_workspace(conn, conversation_id)
                if found is None:
                    raise NotFound(f"Conversation {conversation_id} does not exist in your workspaces; omit "
                                   "`conversationId` to start a new one.", details={"field": "conversationId"})
                workspace_id = found
            else:
                workspace_id = choose_workspace(memberships(conn), principal, workspace)
                conversation_id = str(uuid.uuid4())
            ensure_credits(plan_state(conn, workspace_id, default_tier=self.settings.plan_default_tier))
        turn = TurnRequest(conversation_id=conversation_id, workspace_id=workspace_id, principal=principal,
                           turn_id=db.new_turn_id(), message=body.message,
                           model_preference=body.modelPreference or "strong",
                           include_resources=body.context.includeResources,
                           enable_web_search=body.context.enableWebSearch, confirm=body.confirm)
        feed = Feed(conversation_id=conversation_id, turn_id=turn.turn_id)
        sink = PostgresEventSink(pool=self.pool, conversation_id=conversation_id, turn_id=turn.turn_id,
                                 workspace_id=workspace_id, feed=feed)
        deps = self.turn_deps(self, turn, sink)
        if body.conversationId is None:
            self.messages.ensure_conversation(conversation_id, workspace_id)
        claim_turn(self.pool, turn_id=turn.turn_id, conversation_id=conversation_id, workspace_id=workspace_id,
                   lease_seconds=self.settings.chat_lease_seconds, wall_seconds=self.settings.chat_turn_seconds)
        self.listeners.add(feed)
        worker = threading.Thread(target=self.run, args=(turn, sink, deps), name=f"chat-turn-{turn.turn_id[:8]}",
                                  daemon=True)
        self.threads = [t for t in self.threads if t.is_alive()] + [worker]
        worker.start()
        return StartedTurn(conversation_id=conversation_id, turn_id=turn.turn_id, feed=feed)

    def run(self, turn: TurnRequest, sink: PostgresEventSink, deps: ChatDeps) -> None:
        """Run the turn to its terminal event (the worker thread); never raises."""
        keeper = LeaseKeeper(self.pool, turn.turn_id, self.settings.chat_lease_seconds).start()
        try:
            try:
                sink.emit(TurnStarted(conversationId=turn.conversation_id, turnId=turn.turn_id))
                final = self._traced_run(turn, sink, deps, keeper)
                sink.finish(Done(conversationId=turn.conversation_id, messageCount=2 * int(final["turn"]),
                                 usage=turn_usage(final)))
            except TurnEnded:
                raise
            except MuseError as exc:
                log.warning("chat turn %s failed: %s", turn.turn_id, exc.message)
                # Over an AI-spend cap, sending again cannot help until the cap is raised (the message says how).
                retryable = exc.retryable and not isinstance(exc, BudgetExceeded)
                sink.finish(ErrorEvent(code=exc.code, message=exc.message, retryable=retryable))
            except Exception:
                log.exception("chat turn %s failed", turn.turn_id)
                sink.finish(ErrorEvent(code="internal_error", retryable=True,
                                       message="The turn failed unexpectedly; send your message again."))
        except TurnEnded:
            log.warning("chat turn %s was ended by the healer before it finished", turn.turn_id)
        except Exception:  # the database is gone too: the lease runs out and the sweeper heals the turn
            log.exception("chat turn %s could not store its end", turn.turn_id)
        finally:
            keeper.stop()
            self.listeners.drop(sink.feed)

    def _traced_run(self, turn: TurnRequest, sink: EventSink, deps: ChatDeps, keeper: LeaseKeeper) -> dict[str, Any]:
        """`_run_graph` as one LangSmith trace (root `chat.turn`), flushed before the turn's last event."""
        metadata = {"conversation_id": turn.conversation_id, "turn_id": turn.turn_id,
                    "workspace_id": turn.workspace_id}
        with step_trace(self.tracer, None, project=self.settings.langsmith_project, metadata=metadata,
                        flush_seconds=self.settings.trace_flush_seconds), \
                span("chat.turn", "chain", {"message": turn.message}) as root, workspace_scope(turn.workspace_id):
            final = self._run_graph(turn, sink, deps, keeper)
            root.record(lambda: ({"usage": turn_usage(final)}, None))
            return final

    def _run_graph(self, turn: TurnRequest, sink: EventSink, deps: ChatDeps, keeper: LeaseKeeper) -> dict[str, Any]:
        """Stream the graph's tasks into step events; the turn's final state values (`turn` = turns completed,
        two messages each).

        The wall-time bound and a lost lease are checked before each node starts; leaving the stream then
        keeps the checkpoint at that node, so the next turn finishes this one first and the history stays in
        order. A node stuck inside one call is bounded by the model timeouts and, failing those, by the lease
        the sweeper heals once this process is gone.
        """
        deadline = time.monotonic() + self.settings.chat_turn_seconds
        config = chat_config(turn.conversation_id)
        state = self.graph.get_state(config)
        if state.next:  # an earlier turn stopped after some node: finish it first, so seqs stay in order
            self.graph.invoke(None, config, context=deps, durability=DURABILITY)
            state = self.graph.get_state(config)
        known = state.values.get("workspace_id")
        if known is not None and known != turn.workspace_id:
            raise NotFound(f"Conversation {turn.conversation_id} does not exist in this workspace.")
        number = int(state.values.get("turn", 0))
        update: ChatState = {"message": turn.message} if known else {"message": turn.message,
                                                                     "workspace_id": turn.workspace_id}
        if turn.confirm is not None:
            update["confirm"] = turn.confirm
        final: dict[str, Any] = {}
        for mode, chunk in self.graph.stream(update, config, context=deps, durability=DURABILITY,
                                             stream_mode=["tasks", "values"]):
            if not isinstance(chunk, dict):
                continue
            if mode == "values":
                final = dict(chunk)
                continue
            task: dict[str, Any] = chunk
            name = str(task["name"])
            if "input" in task:
                if keeper.lost.is_set():
                    raise TurnEnded(turn.turn_id)
                if time.monotonic() > deadline:
                    raise TurnTimedOut(f"The turn took longer than {self.settings.chat_turn_seconds:g} s "
                                       "(MUSE_CHAT_TURN_SECONDS); send your message again or ask for less at once.")
                sink.emit(StepStarted(step=name))
                continue
            sink.emit(StepFinished(step=name))
            if name == "record_user":
                sink.emit(MessageEvent(role="user", content=turn.message,
                                       messageId=message_id(turn.conversation_id, 2 * number)))
        return final

    def stream_turn(self, started: StartedTurn, renderer: Renderer) -> Iterator[str]:
        """The SSE text of a turn started here: its events from the in-process feed, to the terminal one."""
        yield RETRY
        yield from self._tail(started.feed, 0, renderer, time.monotonic() + self.settings.chat_stream_max_seconds)

    def events(self, principal: Principal, conversation_id: UUID, last_event_id: int,
               renderer: Renderer) -> Iterator[str]:
        """SSE text of the conversation's events after `last_event_id`, then the running turn's until it ends.

        Checks visibility first (another workspace's conversation is `NotFound`), then returns the stream.
        """
        conversation = str(conversation_id)
        with as_user(self.pool, principal.claims) as conn:
            if db.conversation_workspace(conn, conversation) is None:
                raise NotFound(f"Conversation {conversation} does not exist in your workspaces.")
            if last_event_id:
                renderer.prime((e.id, e.turn_id, stored_event(e))
                               for e in db.turn_events_upto(conn, conversation, last_event_id))
        return self._replay(principal, conversation, last_event_id, renderer)

    def _replay(self, principal: Principal, conversation: str, cursor: int, renderer: Renderer) -> Iterator[str]:
        deadline = time.monotonic() + self.settings.chat_stream_max_seconds
        yield RETRY
        while time.monotonic() < deadline:
            feed = self.listeners.get(conversation)
            running = db.running(self.pool, conversation)
            with as_user(self.pool, principal.claims) as conn:
                rows = db.events_after(conn, conversation, cursor)
            for row in rows:
                cursor = row.id
                text = renderer.frames(row.id, row.turn_id, stored_event(row))
                if text:
                    yield text
            if rows:
                continue
            if running is None:
                return
            if running.expired:
                heal_turn(self.pool, running.id)
                continue
            if feed is not None and feed.turn_id == running.id:
                yield from self._tail(feed, cursor, renderer, deadline)
                return
            time.sleep(POLL_SECONDS)

    @staticmethod
    def _tail(feed: Feed, cursor: int, renderer: Renderer, deadline: float) -> Iterator[str]:
        while time.monotonic() < deadline:
            events, closed = feed.after(cursor, timeout=min(15.0, max(0.0, deadline - time.monotonic())))
            for emitted in events:
                cursor = emitted.id
                text = renderer.frames(emitted.id, emitted.turn_id, emitted.event)
                if text:
                    yield text
            if closed:
                return
            if not events:
                yield ": keep-alive\n\n"

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait for this instance's running turns to end (tests and benchmarks)."""
        end = time.monotonic() + timeout
        for worker in list(self.threads):
            worker.join(max(0.0, end - time.monotonic()))


def message_id(conversation_id: str, seq: int) -> str:
    """The id of a stored message on the wire: its conversation and seq."""
    return f"{conversation_id}:{seq}"
