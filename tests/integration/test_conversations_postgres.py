"""The bounded chat graph on a real Postgres: linear storage over 1,000 turns, resume after reconnect, RLS."""

from __future__ import annotations

import statistics
import time
import uuid
from dataclasses import dataclass

import pytest
from psycopg_pool import ConnectionPool

from shared.chat.agent import MemorySink
from shared.conversations import (
    ChatDeps,
    TurnUnfinished,
    compile_chat_graph,
    prune_history,
    resume_turn,
    run_turn,
)
from shared.conversations.fake import EchoChatModel
from shared.db.conversations import ConversationRepository, thread_storage, transcript
from shared.db.pool import as_user, connect, create_pool
from shared.db.workspaces import ensure_workspace
from shared.errors import UpstreamUnavailable
from shared.runtime.checkpointer import create_checkpointer


@dataclass(frozen=True)
class Member:
    workspace_id: str
    user_id: str

    @property
    def claims(self) -> dict[str, object]:
        return {"sub": self.user_id, "aud": "authenticated", "role": "authenticated"}


def _member(dsn: str) -> Member:
    user_id = str(uuid.uuid4())
    slug = f"chat-{uuid.uuid4().hex[:10]}"
    with connect(dsn) as conn, conn.transaction():
        return Member(workspace_id=ensure_workspace(conn, slug=slug, name=slug, user_id=user_id), user_id=user_id)


@pytest.fixture
def member(migrated_dsn: str) -> Member:
    """A new workspace and its one member."""
    return _member(migrated_dsn)


def _message(turn: int) -> str:
    return f"Turn {turn}: what should our Diwali email say about the Assam gift box priced at Rs 1,499?"


def test_a_thousand_turns_grow_storage_linearly_at_flat_cost(pool: ConnectionPool, member: Member) -> None:
    deps = ChatDeps(model=EchoChatModel(keep_prompts=False), events=MemorySink(), messages=ConversationRepository(pool))
    graph = compile_chat_graph(create_checkpointer(pool))
    conversation = str(uuid.uuid4())
    stored, durations = {}, []
    for turn in range(1, 1001):
        started = time.perf_counter()
        run_turn(graph, deps, conversation_id=conversation, workspace_id=member.workspace_id, message=_message(turn))
        durations.append(time.perf_counter() - started)
        if turn in (300, 1000):
            stored[turn] = thread_storage(pool, conversation)

    early = stored[300].total / 300
    late = (stored[1000].total - stored[300].total) / 700
    assert 0.85 <= late / early <= 1.15, (early, late)
    assert stored[1000].total < 5_000 * 1000
    assert ConversationRepository(pool).count(conversation) == 2000
    assert statistics.median(durations[-100:]) < 3 * statistics.median(durations[50:150]) + 0.01


@pytest.mark.parametrize("durability", ["exit", "sync"])
def test_a_conversation_resumes_across_connections_and_savers(migrated_dsn: str, member: Member,
                                                              durability: str) -> None:
    model = EchoChatModel()
    conversation = str(uuid.uuid4())

    def session() -> tuple[ConnectionPool, ChatDeps, object]:
        pool = create_pool(migrated_dsn, max_size=2)
        return pool, ChatDeps(model=model, events=MemorySink(), messages=ConversationRepository(pool)), \
            compile_chat_graph(create_checkpointer(pool))

    first, deps, graph = session()
    try:
        for turn in range(14):
            run_turn(graph, deps, conversation_id=conversation, workspace_id=member.workspace_id,
                     message=_message(turn), durability=durability)
    finally:
        first.close()

    second, deps, graph = session()
    try:
        result = run_turn(graph, deps, conversation_id=conversation, workspace_id=member.workspace_id,
                          message="after reconnect", durability=durability)
        assert result.turn == 15 and result.summary.through_seq >= 0
        prompt = model.chat_prompts[-1]
        assert prompt.startswith("Summary of earlier history:\n")
        assert prompt.endswith("user: after reconnect") and f"user: {_message(13)}" in prompt
        assert f"user: {_message(0)}" not in prompt.split("Recent history:", 1)[1]

        model.fail_next_chat = UpstreamUnavailable("Gemini answered 503")
        with pytest.raises(UpstreamUnavailable):
            run_turn(graph, deps, conversation_id=conversation, workspace_id=member.workspace_id,
                     message="interrupted turn", durability=durability)
    finally:
        second.close()

    third, deps, graph = session()
    try:
        assert graph.get_state({"configurable": {"thread_id": conversation}}).next == ("respond",)
        with pytest.raises(TurnUnfinished):
            run_turn(graph, deps, conversation_id=conversation, workspace_id=member.workspace_id, message="too soon")
        resumed = resume_turn(graph, deps, conversation, durability=durability)
        assert resumed is not None and resumed.turn == 16
        assert model.chat_prompts[-1].endswith("user: interrupted turn")
        with third.connection() as conn:
            messages = transcript(conn, conversation, limit=100)
        assert [m.seq for m in messages] == list(range(32))
        assert [m.content for m in messages[28:32:2]] == ["after reconnect", "interrupted turn"]
    finally:
        third.close()


def test_members_read_only_their_workspaces_transcripts(pool: ConnectionPool, migrated_dsn: str,
                                                        member: Member) -> None:
    other = _member(migrated_dsn)
    deps = ChatDeps(model=EchoChatModel(), events=MemorySink(), messages=ConversationRepository(pool))
    graph = compile_chat_graph(create_checkpointer(pool))
    conversation = str(uuid.uuid4())
    run_turn(graph, deps, conversation_id=conversation, workspace_id=member.workspace_id, message="private plan")

    with as_user(pool, member.claims) as conn:
        assert [m.content for m in transcript(conn, conversation)][0] == "private plan"
    with as_user(pool, other.claims) as conn:
        assert transcript(conn, conversation) == []


def test_pruning_superseded_checkpoints_keeps_the_conversation_going(pool: ConnectionPool, member: Member) -> None:
    deps = ChatDeps(model=EchoChatModel(), events=MemorySink(), messages=ConversationRepository(pool))
    checkpointer = create_checkpointer(pool)
    graph = compile_chat_graph(checkpointer)
    conversation = str(uuid.uuid4())
    for turn in range(30):
        run_turn(graph, deps, conversation_id=conversation, workspace_id=member.workspace_id, message=_message(turn),
                 durability="sync")
    before = thread_storage(pool, conversation)
    prune_history(checkpointer, conversation)
    after = thread_storage(pool, conversation)
    assert after.checkpoint_bytes < before.checkpoint_bytes / 10 and after.message_bytes == before.message_bytes
    result = run_turn(graph, deps, conversation_id=conversation, workspace_id=member.workspace_id, message="still here")
    assert result.turn == 31 and ConversationRepository(pool).count(conversation) == 62
