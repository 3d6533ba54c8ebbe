"""History compaction (rolling summary + recent window) and the chat graph, with in-memory stores."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from shared.chat.agent import MemorySink
from shared.conversations import (
    ChatDeps,
    CompactionPolicy,
    HistoryItem,
    RollingSummary,
    TurnUnfinished,
    build_chat_graph,
    compact,
    compile_chat_graph,
    events_as_history,
    needs_compaction,
    render_context,
    resume_turn,
    run_turn,
)
from shared.conversations.fake import EchoChatModel
from shared.db.conversations import StoredMessage
from shared.errors import NotFound, UpstreamUnavailable
from shared.ports import Usage
from shared.summarize import Claim
from shared.summarize.fake import ExtractiveModel


@dataclass
class MemoryMessages:
    """`MessageStore` in a dict, for graph tests without Postgres."""

    rows: dict[str, dict[int, StoredMessage]] = field(default_factory=dict)
    summaries: dict[str, tuple[dict[str, Any], int]] = field(default_factory=dict)
    workspaces: dict[str, str] = field(default_factory=dict)

    def ensure_conversation(self, conversation_id: str, workspace_id: str) -> None:
        self.workspaces.setdefault(conversation_id, workspace_id)
        self.rows.setdefault(conversation_id, {})

    def append(self, conversation_id: str, workspace_id: str, *, seq: int, role: str, content: str,
               usage: Usage | None = None) -> str:
        stored = self.rows[conversation_id].setdefault(seq, StoredMessage(seq=seq, role=role, content=content))
        return stored.content

    def oldest_after(self, conversation_id: str, after_seq: int, limit: int) -> list[StoredMessage]:
        return [m for s, m in sorted(self.rows[conversation_id].items()) if s > after_seq][:limit]

    def newest_after(self, conversation_id: str, after_seq: int, limit: int) -> list[StoredMessage]:
        return [m for s, m in sorted(self.rows[conversation_id].items()) if s > after_seq][-limit:]

    def save_summary(self, conversation_id: str, summary: dict[str, Any], through_seq: int) -> None:
        self.summaries[conversation_id] = (summary, through_seq)


def _items(n: int, start: int = 0) -> list[HistoryItem]:
    return [HistoryItem(seq=i, role="user" if i % 2 == 0 else "assistant", text=f"message number {i} about tea")
            for i in range(start, start + n)]


def test_compaction_triggers_only_past_the_threshold() -> None:
    policy = CompactionPolicy(window_items=4, trigger_items=8)
    assert not needs_compaction(8, policy) and needs_compaction(9, policy)
    with pytest.raises(ValueError):
        CompactionPolicy(window_items=8, trigger_items=8)


def test_compaction_folds_all_but_the_recent_window_and_cites_folded_items() -> None:
    policy = CompactionPolicy(window_items=4, trigger_items=8)
    out = compact(RollingSummary(), _items(10), ExtractiveModel(), policy)
    assert [i.seq for i in out.window] == [6, 7, 8, 9]
    assert out.summary.through_seq == 5 and out.summary.folded_items == 6
    cited = {i for c in out.summary.claims for i in c.source_ids}
    assert cited and cited <= {f"msg:{i}" for i in range(6)}
    assert out.result is not None and out.result.model_calls == 1


def test_nothing_to_fold_keeps_the_summary() -> None:
    summary = RollingSummary(claims=[Claim(text="x", source_ids=["msg:1"])], through_seq=1)
    out = compact(summary, _items(3, start=2), ExtractiveModel(), CompactionPolicy(window_items=4, trigger_items=8))
    assert out.summary is summary and out.result is None and len(out.window) == 3


def test_rolling_summary_is_recursive_and_bounded() -> None:
    policy = CompactionPolicy(window_items=4, trigger_items=8, summary_budget_tokens=120, max_citations_per_claim=3)
    model = ExtractiveModel()
    summary = RollingSummary()
    for start in range(0, 200, 6):
        pending = [i for i in _items(10, start=max(0, start - 4)) if i.seq > summary.through_seq]
        summary = compact(summary, pending, model, policy).summary
    assert summary.through_seq > 150 and summary.folded_items == summary.through_seq + 1
    assert all(1 <= len(c.source_ids) <= 3 for c in summary.claims)
    assert sum(len(c.text.split()) for c in summary.claims) <= 120
    newest = max(int(i.split(":")[1]) for c in summary.claims for i in c.source_ids)
    assert newest == summary.through_seq


def test_render_context_shows_summary_then_window() -> None:
    summary = RollingSummary(claims=[Claim(text="Budget is Rs 20,000.", source_ids=["msg:2"])], through_seq=3)
    text = render_context(summary, _items(2, start=4))
    assert text.splitlines() == ["Summary of earlier history:", "- Budget is Rs 20,000.", "Recent history:",
                                 "user: message number 4 about tea", "assistant: message number 5 about tea"]
    assert render_context(RollingSummary(), []) == ""


def test_campaign_events_become_history_items() -> None:
    items = events_as_history([{"id": 41, "type": "decision", "data": {"action": "reject", "reason": "too pricey"}}])
    assert items == [HistoryItem(seq=41, role="decision", text='{"action": "reject", "reason": "too pricey"}')]
    out = compact(RollingSummary(), events_as_history(
        [{"id": n, "type": "feedback", "data": {"text": f"note {n}"}} for n in range(1, 6)]), ExtractiveModel(),
        CompactionPolicy(window_items=2, trigger_items=3, source_prefix="event:"))
    assert {i for c in out.summary.claims for i in c.source_ids} <= {"event:1", "event:2", "event:3"}


def _deps(policy: CompactionPolicy | None = None) -> tuple[ChatDeps, EchoChatModel, MemoryMessages]:
    model = EchoChatModel()
    store = MemoryMessages()
    return ChatDeps(model=model, events=MemorySink(), messages=store,
                    policy=policy or CompactionPolicy(window_items=4, trigger_items=8)), model, store


def test_the_model_sees_the_rolling_summary_and_the_recent_window_only() -> None:
    deps, model, store = _deps()
    graph = compile_chat_graph(InMemorySaver())
    conversation = str(uuid.uuid4())
    for turn in range(12):
        result = run_turn(graph, deps, conversation_id=conversation, workspace_id="ws", message=f"question {turn} zz")
    assert result.turn == 12 and result.summary.through_seq >= 0
    assert len(store.rows[conversation]) == 24
    prompt = model.chat_prompts[-1]
    assert prompt.startswith("Summary of earlier history:\n- ")
    window = prompt.split("Recent history:\n", 1)[1].splitlines()
    assert window[-1] == "user: question 11 zz"
    assert 1 <= len(window) <= 9 and "user: question 0 zz" not in window
    assert store.summaries[conversation][1] == result.summary.through_seq
    assert all(len(p.split("Recent history:\n", 1)[-1].splitlines()) <= 9 for p in model.chat_prompts)


def test_turn_state_stays_small_and_the_graph_builds_uncompiled() -> None:
    deps, _, _ = _deps()
    graph = compile_chat_graph(InMemorySaver())
    for turn in range(30):
        run_turn(graph, deps, conversation_id="c1", workspace_id="ws", message=f"m{turn}")
    values = graph.get_state({"configurable": {"thread_id": "c1"}}).values
    assert set(values) == {"workspace_id", "message", "turn", "reply", "summary", "usage"}
    assert set(build_chat_graph().nodes) == {"record_user", "compact", "respond"}


def test_a_failed_turn_resumes_at_the_failed_node_without_duplicates() -> None:
    deps, model, store = _deps()
    graph = compile_chat_graph(InMemorySaver())
    run_turn(graph, deps, conversation_id="c", workspace_id="ws", message="hello")
    model.fail_next_chat = UpstreamUnavailable("Gemini 503")
    with pytest.raises(UpstreamUnavailable):
        run_turn(graph, deps, conversation_id="c", workspace_id="ws", message="second")
    assert graph.get_state({"configurable": {"thread_id": "c"}}).next == ("respond",)
    with pytest.raises(TurnUnfinished):
        run_turn(graph, deps, conversation_id="c", workspace_id="ws", message="third")
    resumed = resume_turn(graph, deps, "c")
    assert resumed is not None and resumed.turn == 2
    assert resume_turn(graph, deps, "c") is None
    assert [m.content for m in store.rows["c"].values()][::2] == ["hello", "second"]
    assert len(store.rows["c"]) == 4


def test_a_conversation_stays_in_its_workspace() -> None:
    deps, _, _ = _deps()
    graph = compile_chat_graph(InMemorySaver())
    run_turn(graph, deps, conversation_id="c", workspace_id="ws-a", message="hi")
    with pytest.raises(NotFound):
        run_turn(graph, deps, conversation_id="c", workspace_id="ws-b", message="hi")
