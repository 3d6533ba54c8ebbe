"""`/api/v1/conversations` over the served `api` function, on real Postgres with the Upstash emulator.

Conversations are made the way the chat makes them: turns of the conversation graph with its Postgres
checkpointer, so a DELETE has real checkpoints, messages and cached context to remove.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from psycopg_pool import ConnectionPool

from shared.api import conversations as conversations_api
from shared.chat.agent import MemorySink
from shared.conversations.fake import EchoChatModel
from shared.conversations.graph import ChatDeps, compile_chat_graph, run_turn
from shared.db.conversations import ConversationRepository
from shared.db.pool import connect, create_pool
from shared.runtime.checkpointer import create_checkpointer
from tests.integration import served_api
from tests.integration.served_api import Served

served = served_api.served
BASE = "/api/v1/conversations"


@pytest.fixture(scope="module")
def pool(served: Served) -> ConnectionPool:
    p = create_pool(served.dsn, max_size=4)
    yield p
    p.close()


def _chat(pool: ConnectionPool, workspace_id: str, turns: int) -> str:
    """A conversation of `turns` turns (user message + echoed reply each), through the real graph."""
    conversation = str(uuid.uuid4())
    repo = ConversationRepository(pool)
    caches = conversations_api.service().caches
    deps = ChatDeps(model=EchoChatModel(), messages=caches.messages(repo), events=MemorySink())
    graph = compile_chat_graph(create_checkpointer(pool))
    for turn in range(turns):
        run_turn(graph, deps, conversation_id=conversation, workspace_id=workspace_id,
                 message=f"turn {turn}: plan our Diwali email")
    return conversation


def _rows(dsn: str, conversation: str) -> dict[str, int]:
    with connect(dsn) as conn:
        counts = {table: conn.execute(f"SELECT count(*) AS n FROM public.{table} WHERE thread_id = %s",
                                      (conversation,)).fetchone()["n"]  # type: ignore[index]
                  for table in ("checkpoints", "checkpoint_blobs")}
        counts["messages"] = conn.execute("SELECT count(*) AS n FROM public.conversation_messages "
                                          "WHERE conversation_id = %s", (conversation,)).fetchone()["n"]  # type: ignore[index]
    return counts


def test_list_get_retitle_and_delete(served: Served, pool: ConnectionPool) -> None:
    headers = served.member()
    client = served.client()
    workspace = client.get(BASE, headers=headers).get_json()["workspace_id"]
    older, newer = _chat(pool, workspace, 2), _chat(pool, workspace, 3)

    first = client.get(f"{BASE}?limit=1", headers=headers).get_json()
    assert [c["id"] for c in first["conversations"]] == [newer], "most recently active first"
    second = client.get(f"{BASE}?limit=1&cursor={first['next_cursor']}", headers=headers).get_json()
    assert [c["id"] for c in second["conversations"]] == [older] and second["next_cursor"] is None

    page = client.get(f"{BASE}/{newer}?limit=4", headers=headers).get_json()
    assert page["message_count"] == 6 and [m["seq"] for m in page["messages"]] == [0, 1, 2, 3]
    rest = client.get(f"{BASE}/{newer}?limit=4&after_seq={page['next_after_seq']}", headers=headers).get_json()
    assert [m["seq"] for m in rest["messages"]] == [4, 5] and rest["next_after_seq"] is None
    assert rest["messages"][0]["content"] == "turn 2: plan our Diwali email"

    renamed = client.patch(f"{BASE}/{newer}", json={"title": "  Diwali email  "}, headers=headers)
    assert renamed.status_code == 200 and renamed.get_json()["title"] == "Diwali email"
    assert client.patch(f"{BASE}/{newer}", json={"title": None}, headers=headers).get_json()["title"] is None

    caches = conversations_api.service().caches
    assert caches.cache.get("session", f"ws:{workspace}:chat:{newer}:tail") is not None
    assert _rows(served.dsn, newer)["checkpoints"] > 0
    deleted = client.delete(f"{BASE}/{newer}", headers=headers)
    assert deleted.status_code == 200, deleted.get_json()
    report = deleted.get_json()
    assert report["rows"]["conversation_messages"] == 6 and report["rows"]["conversations"] == 1
    assert report["context_cache"] == "cleared"
    assert _rows(served.dsn, newer) == {"checkpoints": 0, "checkpoint_blobs": 0, "messages": 0}
    assert caches.cache.get("session", f"ws:{workspace}:chat:{newer}:tail") is None
    assert client.delete(f"{BASE}/{newer}", headers=headers).status_code == 404, "a repeated DELETE changes nothing"
    assert client.get(f"{BASE}/{newer}", headers=headers).status_code == 404
    assert _rows(served.dsn, older)["messages"] == 4, "the other conversation is untouched"

    audit = client.get("/api/v1/audit?action=conversation.deleted", headers=headers).get_json()
    assert [(e["target_id"], e["details"]) for e in audit["entries"]] == [(newer, {"messages": 6})]


def test_another_workspace_sees_nothing(served: Served, pool: ConnectionPool) -> None:
    owner, stranger = served.member(), served.member()
    client = served.client()
    workspace = client.get(BASE, headers=owner).get_json()["workspace_id"]
    conversation = _chat(pool, workspace, 1)
    assert client.get(BASE, headers=stranger).get_json()["conversations"] == []
    for response in (client.get(f"{BASE}/{conversation}", headers=stranger),
                     client.patch(f"{BASE}/{conversation}", json={"title": "mine now"}, headers=stranger),
                     client.delete(f"{BASE}/{conversation}", headers=stranger)):
        assert response.status_code == 404, response.get_json()
    assert _rows(served.dsn, conversation)["messages"] == 2
    assert client.get(f"{BASE}/{conversation}", headers=owner).get_json()["title"] is None


@pytest.mark.parametrize(("method", "path", "body", "field"), [
    ("get", f"{BASE}?limit=0", None, "limit"),
    ("get", f"{BASE}?limit=abc", None, "limit"),
    ("get", f"{BASE}?cursor=nope", None, "cursor"),
    ("get", f"{BASE}?status=open", None, "status"),
    ("get", f"{BASE}/not-a-uuid", None, "conversation_id"),
    ("get", f"{BASE}/{uuid.uuid4()}?after_seq=-1", None, "after_seq"),
    ("get", f"{BASE}/{uuid.uuid4()}?limit=201", None, "limit"),
    ("patch", f"{BASE}/{uuid.uuid4()}", {"title": "   "}, "title"),
    ("patch", f"{BASE}/{uuid.uuid4()}", {"title": "x" * 201}, "title"),
    ("patch", f"{BASE}/{uuid.uuid4()}", {"name": "x"}, "name"),
    ("patch", f"{BASE}/{uuid.uuid4()}", {}, "title"),
    ("delete", f"{BASE}/123", None, "conversation_id"),
])
def test_bad_input_is_a_400_naming_the_field(served: Served, method: str, path: str, body: Any, field: str) -> None:
    response = getattr(served.client(), method)(path, json=body, headers=served.member_headers)
    assert response.status_code == 400, response.get_json()
    assert field in response.get_json()["error"]["message"]


def test_a_running_turn_holds_off_the_delete_until_it_ends(served: Served, pool: ConnectionPool) -> None:
    headers = served.member()
    client = served.client()
    workspace = client.get(BASE, headers=headers).get_json()["workspace_id"]
    conversation, turn = _chat(pool, workspace, 1), str(uuid.uuid4())
    with connect(served.dsn) as conn, conn.transaction():
        conn.execute("INSERT INTO public.chat_turns (id, conversation_id, workspace_id, lease_until, deadline) "
                     "VALUES (%s, %s, %s, now() + interval '1 minute', now() + interval '4 minutes')",
                     (turn, conversation, workspace))
        conn.execute("INSERT INTO public.chat_events (conversation_id, turn_id, workspace_id, kind, data) "
                     "VALUES (%s, %s, %s, 'turn.started', '{}')", (conversation, turn, workspace))
    refused = client.delete(f"{BASE}/{conversation}", headers=headers)
    assert refused.status_code == 409 and turn in refused.get_json()["error"]["message"]
    assert _rows(served.dsn, conversation)["messages"] == 2, "nothing was deleted"

    with connect(served.dsn) as conn, conn.transaction():
        conn.execute("UPDATE public.chat_turns SET lease_until = now() - interval '1 second' WHERE id = %s", (turn,))
    deleted = client.delete(f"{BASE}/{conversation}", headers=headers).get_json()
    assert deleted["rows"]["chat_turns"] == 1 and deleted["rows"]["chat_events"] == 1, "a dead turn does not block"


def test_a_campaigns_own_history_is_not_deleted_on_its_own(served: Served) -> None:
    headers = served.member()
    client = served.client()
    workspace = client.get(BASE, headers=headers).get_json()["workspace_id"]
    conversation = str(uuid.uuid4())
    with connect(served.dsn) as conn, conn.transaction():
        conn.execute("INSERT INTO public.conversations (id, workspace_id, kind) VALUES (%s, %s, 'campaign')",
                     (conversation, workspace))
    refused = client.delete(f"{BASE}/{conversation}", headers=headers)
    assert refused.status_code == 409 and "campaign" in refused.get_json()["error"]["message"]
    assert client.get(f"{BASE}/{conversation}", headers=headers).get_json()["kind"] == "campaign"
