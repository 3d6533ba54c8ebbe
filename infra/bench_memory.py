"""Memory benchmarks: recursive summarization and bounded conversations, against LangGraph's default.

Prints one figure per line as `name: value unit` (lines starting with `#` say how it was measured):
- summarization rounds, model calls and input tokens for 10k, 50k and 200k-word documents, with the
  deterministic `ExtractiveModel` (a fake with a 16k-token context window; no network);
- storage of one conversation's thread (checkpoint rows + message rows, bytes as stored) and the time
  of one turn at turns 10, 300 and 1,000, for the bounded chat graph (`shared.conversations`) and for
  the same chat with LangGraph's default `add_messages` channel, both on `create_checkpointer`
  against the same Postgres (`DATABASE_URL`, else an embedded pgserver).

`--with-delta` adds the same chat with its messages in LangGraph's `DeltaChannel`.

Run: `python -m infra.bench_memory [--turns 1000] [--default-time-limit 120] [--with-delta]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.channels.delta import DeltaChannel
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Durability

from shared.chat.agent import MemorySink
from shared.conversations import ChatDeps, ChatReply, CompactionPolicy, compile_chat_graph, run_turn
from shared.conversations.fake import EchoChatModel
from shared.db.conversations import ConversationRepository, thread_storage
from shared.db.pool import connect, create_pool
from shared.db.workspaces import ensure_workspace
from shared.runtime.checkpointer import create_checkpointer
from shared.summarize import document_sources, summarize
from shared.summarize.fake import ExtractiveModel, synthetic_document

SAMPLE_TURNS = (10, 300, 1000)
SUMMARY_BUDGET_TOKENS = 1_000
FAKE_CONTEXT_TOKENS = 16_000


def line(name: str, value: float | int, unit: str) -> None:
    text = f"{value:.2f}" if isinstance(value, float) else str(value)
    print(f"{name}: {text} {unit}", flush=True)


def bench_summarization() -> None:
    print(f"# summarization: ExtractiveModel fake, {FAKE_CONTEXT_TOKENS}-token context, budget "
          f"{SUMMARY_BUDGET_TOKENS} tokens, default SummarizeConfig (3k-token chunks, 12k-token calls)")
    for label, words in (("10k", 10_000), ("50k", 50_000), ("200k", 200_000)):
        model = ExtractiveModel(context_tokens=FAKE_CONTEXT_TOKENS)
        started = time.perf_counter()
        result = summarize(document_sources(f"doc{label}", synthetic_document(words)), model, SUMMARY_BUDGET_TOKENS)
        elapsed = time.perf_counter() - started
        assert all(c.source_ids for c in result.claims) and result.summary_tokens <= SUMMARY_BUDGET_TOKENS
        line(f"summarize_{label}_rounds", result.rounds, "rounds")
        line(f"summarize_{label}_calls", result.model_calls, "calls")
        line(f"summarize_{label}_input_tokens", result.input_tokens, "tokens")
        line(f"summarize_{label}_cited_sources", len(result.citations), "sources")
        line(f"summarize_{label}_ms", elapsed * 1000, "ms")


class DefaultChatState(TypedDict):
    """The textbook chat state: the whole transcript in LangGraph's `add_messages` channel."""

    messages: Annotated[list[AnyMessage], add_messages]


def _fold_messages(messages: list[AnyMessage], writes: Sequence[Any]) -> list[AnyMessage]:
    for write in writes:
        messages = add_messages(messages, write)
    return messages


class DeltaChatState(TypedDict):
    """The same transcript in LangGraph's `DeltaChannel` (writes replayed from the last snapshot)."""

    messages: Annotated[list[AnyMessage], DeltaChannel(_fold_messages)]


def default_chat_graph(window: int, *, delta: bool = False) -> StateGraph:
    """One `respond` node that answers from the last `window` messages and appends its reply."""

    def respond(state: dict[str, Any], runtime: Runtime[ChatDeps]) -> dict[str, Any]:
        recent = state["messages"][-window:]
        prompt = "\n".join(f"{m.type}: {m.content}" for m in recent)
        out = runtime.context.model.generate(tier="fast", system="chat", prompt=prompt, schema=ChatReply)
        return {"messages": [AIMessage(out.value.reply)]}

    graph = StateGraph(DeltaChatState if delta else DefaultChatState, context_schema=ChatDeps)
    graph.add_node("respond", respond)
    graph.add_edge(START, "respond")
    graph.add_edge("respond", END)
    return graph


def user_message(turn: int) -> str:
    return f"Turn {turn}: what should our Diwali email say about the new Assam gift box and its price of Rs 1,499?"


@dataclass
class Variant:
    """One way of running the chat: a turn function, how to measure its thread, and what was measured."""

    turn: Callable[[int], object]
    stored_bytes: Callable[[], int]
    time_limit: float = float("inf")
    durations: list[float] = field(default_factory=list)
    bytes_at: dict[int, int] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(self.durations) / 1000

    def ms_at(self, turn: int) -> float:
        """Median time of the (up to) 25 turns ending at `turn`."""
        return statistics.median(self.durations[max(0, turn - 25):turn])


def drive(variants: dict[str, Variant], turns: int) -> None:
    """Run the variants' turns interleaved (turn 1 of each, then turn 2…), so load bursts hit all alike.

    A variant whose turns have taken more than its `time_limit` in total stops there.
    """
    active = dict(variants)
    for turn in range(1, turns + 1):
        for name, variant in list(active.items()):
            started = time.perf_counter()
            variant.turn(turn)
            variant.durations.append((time.perf_counter() - started) * 1000)
            if turn in SAMPLE_TURNS:
                variant.bytes_at[turn] = variant.stored_bytes()
            if variant.seconds > variant.time_limit:
                print(f"# {name}: stopped after {turn} turns at its {variant.time_limit:.0f} s limit", flush=True)
                del active[name]


@contextmanager
def postgres() -> Iterator[str]:
    """A migrated database: `DATABASE_URL` if set, else an embedded pgserver in a temporary directory."""
    from infra.local.stack import setup_database, start_postgres

    handles: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="muse-bench-memory-") as data_dir:
        dsn = start_postgres(Path(data_dir), handles)
        try:
            setup_database(dsn)
            yield dsn
        finally:
            for handle in handles:
                handle.stop()


def bench_conversations(dsn: str, turns: int, default_time_limit: float, *, with_delta: bool = False) -> None:
    policy = CompactionPolicy()
    with connect(dsn) as conn, conn.transaction():
        workspace_id = ensure_workspace(conn, slug="bench-memory", name="bench-memory", user_id=str(uuid.uuid4()))
    pool = create_pool(dsn, max_size=4)
    print(f"# conversations: {turns} turns, user message 20 words, reply 30 words, EchoChatModel fake; MB = the "
          "thread's rows in checkpoints, checkpoint_blobs, checkpoint_writes and conversation_messages "
          "(pg_column_size, as stored); per-turn ms = median of the 25 turns up to the sample; the variants' "
          "turns run interleaved on one pool and database")
    print(f"# bounded: shared.conversations chat graph, messages in conversation_messages, rolling summary "
          f"({policy.summary_budget_tokens} tokens) + window of {policy.window_items}-{policy.trigger_items} "
          "messages, durability='exit' (its default); bounded_async: the same graph with LangGraph's default "
          "durability='async'")
    print(f"# default: LangGraph's add_messages channel in the state, durability='async' (LangGraph's default), "
          f"one respond node answering from the last {policy.trigger_items} messages")
    if with_delta:
        print("# delta: the default graph with the messages in a DeltaChannel (snapshot every 100 updates), "
              "add_messages as its reducer")
    try:
        model = EchoChatModel(summarizer=ExtractiveModel(context_tokens=FAKE_CONTEXT_TOKENS), keep_prompts=False)
        deps = ChatDeps(model=model, events=MemorySink(), messages=ConversationRepository(pool), policy=policy)
        checkpointer = create_checkpointer(pool)
        bounded = compile_chat_graph(checkpointer)
        default = default_chat_graph(policy.trigger_items).compile(checkpointer=checkpointer)
        delta = default_chat_graph(policy.trigger_items, delta=True).compile(checkpointer=checkpointer)

        def bounded_turn(conversation_id: str, durability: Durability) -> Callable[[int], object]:
            return lambda t: run_turn(bounded, deps, conversation_id=conversation_id, workspace_id=workspace_id,
                                      message=user_message(t), durability=durability)

        def messages_turn(thread_id: str, graph: CompiledStateGraph) -> Callable[[int], object]:
            config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
            return lambda t: graph.invoke({"messages": [HumanMessage(user_message(t))]}, config, context=deps)

        def storage(thread_id: str) -> Callable[[], int]:
            return lambda: thread_storage(pool, thread_id).total

        ids = {name: str(uuid.uuid4()) for name in ("bounded", "bounded_async", "default", "delta")}
        variants = {
            "bounded": Variant(bounded_turn(ids["bounded"], "exit"), storage(ids["bounded"])),
            "bounded_async": Variant(bounded_turn(ids["bounded_async"], "async"), storage(ids["bounded_async"])),
            "default": Variant(messages_turn(ids["default"], default), storage(ids["default"]), default_time_limit),
        }
        if with_delta:
            variants["delta"] = Variant(messages_turn(ids["delta"], delta), storage(ids["delta"]), default_time_limit)
        drive(variants, turns)
    finally:
        pool.close()
    report(variants)


def report(results: dict[str, Variant]) -> None:
    mb = 1024 * 1024
    bounded, default = results["bounded"], results["default"]
    for t in SAMPLE_TURNS:
        for name, measured in results.items():
            if t in measured.bytes_at:
                line(f"conversation_{name}_mb_at_{t}", measured.bytes_at[t] / mb, "MB")
        if t in default.bytes_at and t in bounded.bytes_at:
            line(f"conversation_storage_ratio_at_{t}", default.bytes_at[t] / bounded.bytes_at[t], "x")
    for t in SAMPLE_TURNS:
        for name, measured in results.items():
            if len(measured.durations) >= t:
                line(f"conversation_{name}_turn_ms_at_{t}", measured.ms_at(t), "ms")
        if len(default.durations) >= t and len(bounded.durations) >= t:
            line(f"conversation_turn_time_ratio_at_{t}", default.ms_at(t) / bounded.ms_at(t), "x")
    for name, measured in results.items():
        if 300 in measured.bytes_at and 1000 in measured.bytes_at:
            line(f"conversation_{name}_bytes_per_turn_1_300", measured.bytes_at[300] / 300, "B")
            line(f"conversation_{name}_bytes_per_turn_300_1000",
                 (measured.bytes_at[1000] - measured.bytes_at[300]) / 700, "B")
        line(f"conversation_{name}_turns_run", len(measured.durations), "turns")
        line(f"conversation_{name}_seconds", measured.seconds, "s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--default-time-limit", type=float, default=120.0,
                        help="stop the add_messages run after this many seconds (reported if reached)")
    parser.add_argument("--with-delta", action="store_true",
                        help="also run the chat with a DeltaChannel (about 80 s more for 1,000 turns)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    bench_summarization()
    with postgres() as dsn:
        bench_conversations(dsn, args.turns, args.default_time_limit, with_delta=args.with_delta)
    line("bench_memory_seconds", time.perf_counter() - started, "s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
