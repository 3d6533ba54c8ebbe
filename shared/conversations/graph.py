"""The chat turn graph: linear storage and flat per-turn cost over thousands of turns, resumable.

Design: messages live outside the checkpoint, in `conversation_messages` (one append-only row each,
`seq` = 2·turn for the user, 2·turn + 1 for the reply). The checkpoint keeps only small, bounded
state: the turn counter, the current message and reply, and the rolling summary. The conversation id
is the thread id. A turn records the user message, compacts when too many messages follow the
summary, then answers from the summary plus the recent window: through `ChatDeps.orchestrator` (the
Tier 1 orchestrator of `shared.chat.agent`, which streams its work to `ChatDeps.events`) or, without
one, with a single structured call. The reply is stored, then emitted as the turn's `MessageEvent`;
an action the orchestrator proposed (deciding, paying) waits in the state's `pending_action` for the
next turn's confirmation.

Why a table rather than LangGraph's `DeltaChannel` (both avoid `add_messages` rewriting the whole list
at every step):
- Per-turn cost stays flat. A `DeltaChannel` rebuilds the list from its last snapshot by replaying
  every later write, and snapshots every `snapshot_frequency` updates are full copies; frequent
  snapshots bring back superlinear storage, rare ones make each load replay more history. A turn
  here reads one bounded window through the primary key.
- The transcript is data the product needs: the API pages through it with row-level security by
  workspace, which checkpoint blobs (service-only, msgpack) cannot offer.
- Retention stays simple: `PostgresSaver.prune(..., strategy="keep_latest")` refuses threads with a
  `DeltaChannel`, but works here (see `prune_history`), and `DeltaChannel` is still beta with an
  unstable on-disk format.
- `python -m infra.bench_memory --with-delta` measures all three side by side.
- Resume is unchanged: every node is idempotent (messages are inserted by deterministic seq with
  `ON CONFLICT DO NOTHING`), so a turn interrupted after any node is finished by `resume_turn` from
  another process, and the next turn continues from the checkpoint's counter and summary.

Turns run with `durability="exit"` by default: one checkpoint per turn instead of one per superstep
(a quarter of the rows). A node that raises still saves the checkpoint with the finished nodes'
writes and the error, so `resume_turn` continues at the failed node; a hard kill mid-turn leaves the
previous turn's checkpoint, and redelivering the turn repeats it idempotently (same seqs: the stored
message and reply win). Pass `durability="sync"` to checkpoint every superstep instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeAlias, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, Durability
from pydantic import BaseModel

from shared.conversations.compaction import (
    CompactionPolicy,
    HistoryItem,
    RollingSummary,
    compact,
    needs_compaction,
    render_context,
)
from shared.conversations.events import EventSink, MessageEvent
from shared.db.conversations import StoredMessage
from shared.errors import Conflict, NotFound
from shared.ports import ModelTier, StructuredModel, Usage
from shared.safety.untrusted import with_rule

CHAT_SYSTEM = with_rule(
    "You are Muse, a marketing assistant for an Indian brand. Answer the user's last message helpfully and "
    "concisely. Use the summary of earlier history and the recent messages; do not invent facts about the brand."
)
"""The history is the user's own conversation (their last message is the request), so it is not quoted;
the summarizer that compacts it quotes the messages it reads (`shared.summarize.prompts`)."""


class ChatState(TypedDict, total=False):
    """Bounded per-thread state; the transcript itself is in `conversation_messages`."""

    workspace_id: str
    """Given with the first turn; the conversation belongs to this workspace for good."""
    message: str
    """The user's message of the current turn (the input of each invocation)."""
    turn: int
    """Completed turns; the current turn's messages get seq 2·turn and 2·turn + 1."""
    reply: str
    summary: dict[str, Any]
    """`RollingSummary` as JSON: cited claims about every message up to its `through_seq`."""
    confirm: str | None
    """The request's explicit confirmation of the current turn: the id of the pending action it confirms."""
    pending_action: dict[str, Any] | None
    """An action the orchestrator proposed (deciding, paying) that waits for the user's confirmation in the
    next turn; see `shared.chat.campaign_tools`."""
    usage: list[dict[str, Any]]
    """Token usage of the current turn's model calls and tools (the `done` event's `usage`)."""


class ChatReply(BaseModel):
    """The model's answer to one turn."""

    reply: str


class MessageStore(Protocol):
    """Where a conversation's messages live (`ConversationRepository` in Postgres)."""

    def ensure_conversation(self, conversation_id: str, workspace_id: str) -> None:
        """Create the conversation if it does not exist yet."""
        ...

    def append(self, conversation_id: str, workspace_id: str, *, seq: int, role: str, content: str,
               usage: Usage | None = None) -> str:
        """Store message `seq` unless it exists; return the content stored under `seq`."""
        ...

    def oldest_after(self, conversation_id: str, after_seq: int, limit: int) -> list[StoredMessage]:
        """The first `limit` messages after `after_seq`."""
        ...

    def newest_after(self, conversation_id: str, after_seq: int, limit: int) -> list[StoredMessage]:
        """The last `limit` messages after `after_seq`, oldest first."""
        ...

    def save_summary(self, conversation_id: str, summary: dict[str, Any], through_seq: int) -> None:
        """Publish the rolling summary for readers of the conversation."""
        ...


@dataclass(frozen=True)
class ChatOptions:
    """What the request asks of one turn (`modelPreference`, `context.includeResources`, `.enableWebSearch`)."""

    model_preference: str = "strong"
    """`fast`, `strong`, or a model id the workspace's router knows (`shared.chat.agent.resolve_model`)."""
    include_resources: bool = True
    """Offer knowledge_search / knowledge_fetch over the workspace's documents."""
    enable_web_search: bool = False
    """Offer web_search."""


@dataclass(frozen=True)
class TurnInput:
    """What the orchestrator gets for one turn: the bounded history, the request and the turn's sink."""

    conversation_id: str
    workspace_id: str
    turn: int
    message: str
    """The user's message of this turn (verbatim; also the last line of `history`)."""
    history: str
    """The rolling summary and the recent window (`render_context`)."""
    message_id: str
    """The id the reply will be stored and streamed under."""
    events: EventSink
    options: ChatOptions
    confirm: str | None = None
    pending_action: dict[str, Any] | None = None


@dataclass(frozen=True)
class TurnAnswer:
    """The orchestrator's reply, what it spent, and the action it proposes (if any) for the next turn."""

    reply: str
    usage: tuple[Usage, ...] = ()
    pending_action: dict[str, Any] | None = None


class Orchestrator(Protocol):
    """Answers one turn, emitting what it does on `turn.events` (`shared.chat.agent.ChatOrchestrator`)."""

    def answer(self, turn: TurnInput) -> TurnAnswer:
        """The reply to `turn.message`; must not emit the final `MessageEvent` (the graph does, once stored)."""
        ...


@dataclass(frozen=True)
class ChatDeps:
    """The chat graph's run context: built per turn by `shared.chat.agent.chat_deps` in functions.

    Without an `orchestrator`, `respond` answers with one structured call to `model` (benchmarks and
    graph tests); with one, the orchestrator plans, calls tools and streams.
    """

    model: StructuredModel
    """Compacts the history (and answers when there is no orchestrator)."""
    messages: MessageStore
    events: EventSink
    """Where the turn's events go (persisted and streamed by the chat function)."""
    policy: CompactionPolicy = field(default_factory=CompactionPolicy)
    tier: ModelTier = "fast"
    options: ChatOptions = field(default_factory=ChatOptions)
    orchestrator: Orchestrator | None = None


ChatGraph: TypeAlias = "CompiledStateGraph[ChatState, ChatDeps, ChatState, ChatState]"
"""The compiled chat graph."""


@dataclass(frozen=True)
class TurnResult:
    """What one turn produced."""

    reply: str
    turn: int
    summary: RollingSummary
    usage: tuple[dict[str, Any], ...] = ()
    """Token usage of the turn (model calls and tools), for the `done` event."""
    pending_action: dict[str, Any] | None = None
    """The action proposed in this turn, waiting for the user's confirmation."""

    @property
    def message_count(self) -> int:
        """Messages in the conversation after this turn (a user message and a reply per turn)."""
        return 2 * self.turn


class TurnUnfinished(Conflict):
    """The conversation's previous turn has not finished; call `resume_turn` first."""

    code = "turn_unfinished"


def _summary(state: ChatState) -> RollingSummary:
    return RollingSummary.model_validate(state.get("summary") or {})


def _items(messages: list[StoredMessage]) -> list[HistoryItem]:
    return [HistoryItem(seq=m.seq, role=m.role, text=m.content) for m in messages]


def _conversation(config: RunnableConfig) -> str:
    return str(config["configurable"]["thread_id"])


def record_user(state: ChatState, config: RunnableConfig,
                runtime: Runtime[ChatDeps]) -> Command[Literal["compact", "respond"]]:
    """Store the user's message, then compact first if too much history follows the summary."""
    deps = runtime.context
    conversation_id = _conversation(config)
    turn = state.get("turn", 0)
    if turn == 0:
        deps.messages.ensure_conversation(conversation_id, state["workspace_id"])
    deps.messages.append(conversation_id, state["workspace_id"], seq=2 * turn, role="user",
                         content=state["message"])
    unsummarized = 2 * turn - _summary(state).through_seq
    return Command(goto="compact" if needs_compaction(unsummarized, deps.policy) else "respond")


def compact_history(state: ChatState, config: RunnableConfig, runtime: Runtime[ChatDeps]) -> dict[str, Any]:
    """Fold the messages older than the recent window into the rolling summary."""
    deps = runtime.context
    conversation_id = _conversation(config)
    summary = _summary(state)
    pending = deps.messages.oldest_after(conversation_id, summary.through_seq, deps.policy.trigger_items * 2)
    folded = compact(summary, _items(pending), deps.model, deps.policy).summary
    deps.messages.save_summary(conversation_id, folded.model_dump(), folded.through_seq)
    return {"summary": folded.model_dump()}


def respond(state: ChatState, config: RunnableConfig, runtime: Runtime[ChatDeps]) -> dict[str, Any]:
    """Answer from the rolling summary and the recent window; store the reply, then emit it."""
    deps = runtime.context
    conversation_id = _conversation(config)
    turn = state.get("turn", 0)
    summary = _summary(state)
    window = deps.messages.newest_after(conversation_id, summary.through_seq, deps.policy.trigger_items + 1)
    prompt = render_context(summary, _items(window))
    seq = 2 * turn + 1
    message_id = f"{conversation_id}:{seq}"
    if deps.orchestrator is None:
        out = deps.model.generate(tier=deps.tier, system=CHAT_SYSTEM, prompt=prompt, schema=ChatReply)
        answer = TurnAnswer(reply=out.value.reply, usage=(out.usage,))
    else:
        answer = deps.orchestrator.answer(TurnInput(
            conversation_id=conversation_id, workspace_id=state["workspace_id"], turn=turn, message=state["message"],
            history=prompt, message_id=message_id, events=deps.events, options=deps.options,
            confirm=state.get("confirm"), pending_action=state.get("pending_action")))
    reply = deps.messages.append(conversation_id, state["workspace_id"], seq=seq, role="assistant",
                                 content=answer.reply, usage=answer.usage[0] if len(answer.usage) == 1 else None)
    deps.events.emit(MessageEvent(role="assistant", content=reply, messageId=message_id))
    update: dict[str, Any] = {"reply": reply, "turn": turn + 1, "usage": [u.as_dict() for u in answer.usage]}
    if deps.orchestrator is not None:
        update |= {"pending_action": answer.pending_action, "confirm": None}
    return update


def build_chat_graph() -> StateGraph[ChatState, ChatDeps, ChatState, ChatState]:
    """record_user → (compact) → respond; uncompiled, so building it opens no connection."""
    graph = StateGraph(ChatState, context_schema=ChatDeps)
    # The nodes take (state, config, runtime), which LangGraph injects by parameter name; its typed node
    # protocols only list config and runtime separately, hence the targeted ignores.
    graph.add_node("record_user", record_user, destinations=("compact", "respond"))  # type: ignore[call-overload]
    graph.add_node("compact", compact_history)  # type: ignore[call-overload]
    graph.add_node("respond", respond)  # type: ignore[call-overload]
    graph.add_edge(START, "record_user")
    graph.add_edge("compact", "respond")
    graph.add_edge("respond", END)
    return graph


def compile_chat_graph(checkpointer: BaseCheckpointSaver[Any]) -> ChatGraph:
    """The chat graph with a checkpointer (in functions: `create_checkpointer(pool)`)."""
    return build_chat_graph().compile(checkpointer=checkpointer)


def chat_config(conversation_id: str) -> RunnableConfig:
    """The run config of a conversation: its id is the thread id."""
    return {"configurable": {"thread_id": conversation_id}}


def run_turn(graph: ChatGraph, deps: ChatDeps, *, conversation_id: str, workspace_id: str,
             message: str, durability: Durability = "exit", confirm: str | None = None) -> TurnResult:
    """Run one user turn to its reply; refuses while the previous turn is unfinished.

    `confirm` is the request's explicit confirmation: the id of the pending action the user confirms
    (only the user's own request can carry it). Raises `NotFound` if the conversation belongs to
    another workspace.
    """
    config = chat_config(conversation_id)
    state = graph.get_state(config)
    if state.next:
        raise TurnUnfinished(f"Conversation {conversation_id} has an unfinished turn; resume it first.")
    known = state.values.get("workspace_id")
    if known is not None and known != workspace_id:
        raise NotFound(f"Conversation {conversation_id} does not exist in this workspace.")
    update: ChatState = {"message": message} if known else {"message": message, "workspace_id": workspace_id}
    if confirm is not None:
        update["confirm"] = confirm
    return _result(graph.invoke(update, config, context=deps, durability=durability))


def resume_turn(graph: ChatGraph, deps: ChatDeps, conversation_id: str, *,
                durability: Durability = "exit") -> TurnResult | None:
    """Finish an interrupted turn from its last checkpoint (any process); None if nothing was pending."""
    config = chat_config(conversation_id)
    if not graph.get_state(config).next:
        return None
    return _result(graph.invoke(None, config, context=deps, durability=durability))


def prune_history(checkpointer: PostgresSaver, conversation_id: str) -> None:
    """Drop the conversation's superseded checkpoints; the transcript and the latest state stay."""
    checkpointer.prune([conversation_id], strategy="keep_latest")


def _result(out: dict[str, Any]) -> TurnResult:
    return TurnResult(reply=out["reply"], turn=out["turn"],
                      summary=RollingSummary.model_validate(out.get("summary") or {}),
                      usage=tuple(out.get("usage") or ()), pending_action=out.get("pending_action"))
