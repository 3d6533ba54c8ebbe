"""A chat turn's streamed model calls against the workspace's monthly AI-spend cap, for real: the chat
service's worker on Postgres, the orchestrator's streams through the google-genai SDK to the Gemini emulator.

Each call reserves before it is sent and settles at the usage of its stream's last chunk; the calls are in
`GET /api/v1/costs` (node `chat`, no campaign). A workspace at its cap gets an `error` event
(`budget_exceeded`, not retryable) before anything is sent, and no reply is stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from psycopg_pool import ConnectionPool

from infra.local.serve import RunningServer
from shared.api.chat import ChatRequest
from shared.api.costs import CostsApi
from shared.api.service import Api
from shared.auth import Principal
from shared.chat.agent import ChatOverrides, chat_deps
from shared.chat.service import ChatService, TurnRequest
from shared.conversations import ChatDeps, ChatOptions, CompactionPolicy, compile_chat_graph
from shared.conversations.events import EventSink
from shared.db import budgets as bdb
from shared.db import chat as chat_db
from shared.db.pool import connect
from shared.db.workspaces import ensure_workspace
from shared.models.pricing import cost_micro_usd
from shared.ports import Finding, Usage
from shared.runtime.checkpointer import create_checkpointer
from shared.settings import Settings
from shared.testing.fakes import CannedSearch, RecordingQueue
from tests.integration.gemini_fixtures import GEMINI_CONFIG
from tests.integration.harness import TEST_ENV

PRO = "gemini-2.5-pro"
REPLY = "Diwali hampers ship from 1 October; order by 25 October for delivery before Dhanteras."


@dataclass(frozen=True)
class Member:
    workspace_id: str
    principal: Principal


@pytest.fixture
def member(migrated_dsn: str) -> Member:
    user_id = str(uuid.uuid4())
    slug = f"chat-budget-{uuid.uuid4().hex[:8]}"
    with connect(migrated_dsn) as conn, conn.transaction():
        workspace_id = ensure_workspace(conn, slug=slug, name=slug, user_id=user_id)
    claims = {"sub": user_id, "role": "authenticated", "aud": "authenticated",
              "app_metadata": {"workspace_id": workspace_id}}
    return Member(workspace_id, Principal(user_id=uuid.UUID(user_id), claims=claims))


@pytest.fixture
def settings(gemini_server: RunningServer, migrated_dsn: str) -> Settings:
    env = {**TEST_ENV, "DATABASE_URL": migrated_dsn, "GEMINI_API_KEY": GEMINI_CONFIG.gemini_api_key,
           "GEMINI_BASE_URL": gemini_server.url, "MUSE_QA_JUDGE": "false", "MUSE_PLAN_DEFAULT_TIER": "agency"}
    return Settings(**env)  # type: ignore[arg-type]


@pytest.fixture
def service(settings: Settings, pool: ConnectionPool) -> ChatService:
    return _service(settings, pool)


def _service(settings: Settings, pool: ConnectionPool, policy: CompactionPolicy | None = None) -> ChatService:
    """The chat service with the production deps of a turn but canned search results."""
    api = Api(settings=settings, pool=pool, queue=RecordingQueue(), phonepe_factory=lambda: None)  # type: ignore[arg-type,return-value]
    search = CannedSearch(findings=[Finding(source_id="kb:1", title="Diwali", content="Hampers ship 1 October.")])

    def deps(chat: ChatService, turn: TurnRequest, sink: EventSink) -> ChatDeps:
        options = ChatOptions(model_preference=turn.model_preference, include_resources=turn.include_resources,
                              enable_web_search=turn.enable_web_search)
        return chat_deps(chat.settings, chat.pool, workspace_id=turn.workspace_id, principal=turn.principal,
                         options=options, events=sink, overrides=ChatOverrides(knowledge=search, web=search, api=api),
                         policy=policy)

    return ChatService(settings=settings, pool=pool, graph=compile_chat_graph(create_checkpointer(pool)),
                       turn_deps=deps)


def _turn(service: ChatService, member: Member, message: str) -> tuple[str, list[chat_db.StoredEvent]]:
    """Run one turn to its end: (conversation id, its stored events)."""
    started = service.start(member.principal, ChatRequest(message=message), workspace=None)
    for thread in service.threads:
        thread.join(60)
    with service.pool.connection() as conn:
        return started.conversation_id, chat_db.events_after(conn, started.conversation_id, 0)


def _spend(dsn: str, workspace_id: str) -> dict[str, Any]:
    with connect(dsn) as conn:
        return dict(bdb.period_spend(conn, workspace_id, bdb.month_of(datetime.now(UTC).date())))


def _usage_rows(dsn: str, workspace_id: str) -> list[dict[str, Any]]:
    with connect(dsn) as conn:
        return list(conn.execute("SELECT * FROM public.model_usage WHERE workspace_id = %s ORDER BY id",
                                 (workspace_id,)))


def test_a_turns_streamed_call_is_settled_at_its_priced_usage_and_shows_in_costs(
        service: ChatService, member: Member, migrated_dsn: str, gemini_http: httpx.Client) -> None:
    gemini_http.post("/_emulator/script", json={"rules": [
        {"times": 1, "match": {"model": PRO}, "response": {"text": REPLY}}]}).raise_for_status()

    _, events = _turn(service, member, "When do Diwali hampers ship?")

    assert events[-1].kind == "done", [(e.kind, e.data) for e in events]
    rows = _usage_rows(migrated_dsn, member.workspace_id)
    assert [(r["node"], r["model"], r["campaign_id"]) for r in rows] == [("chat", PRO, None)]
    row = rows[0]
    priced = cost_micro_usd(Usage(model=row["model"], prompt_tokens=row["prompt_tokens"],
                                  cached_tokens=row["cached_tokens"], output_tokens=row["output_tokens"],
                                  thinking_tokens=row["thinking_tokens"]))
    assert priced is not None and priced > 0 and row["cost_micro_usd"] == priced
    assert row["prompt_tokens"] > 0 and row["output_tokens"] > 0
    assert events[-1].data["usage"]["prompt_tokens"] == row["prompt_tokens"]
    with connect(migrated_dsn) as conn:
        held = conn.execute("SELECT amount_micro_usd, actual_micro_usd, settled_at FROM public.spend_reservations "
                            "WHERE workspace_id = %s", (member.workspace_id,)).fetchall()
    assert len(held) == 1 and held[0]["settled_at"] is not None
    assert held[0]["actual_micro_usd"] == priced < held[0]["amount_micro_usd"]  # settled at the usage, not the hold
    assert _spend(migrated_dsn, member.workspace_id) == {"spent": priced, "reserved": 0}

    report = CostsApi(pool=service.pool, settings=service.settings).report(member.principal, None, None)
    assert report.total.calls == 1 and report.total.cost.micro_usd == priced
    assert report.budget.spent.micro_usd == priced
    assert [(n.node, n.model, n.kind, n.cost.micro_usd) for n in report.by_node] == [("chat", PRO, "model", priced)]
    assert [(c.campaign_id, c.cost.micro_usd) for c in report.by_campaign] == [(None, priced)]


def test_a_turns_compaction_call_is_capped_and_recorded_too(settings: Settings, pool: ConnectionPool, member: Member,
                                                             migrated_dsn: str, gemini_http: httpx.Client) -> None:
    """The second turn compacts the first (a structured call through the router): reserved, settled at its
    usage and recorded like the streamed calls."""
    service = _service(settings, pool, CompactionPolicy(window_items=1, trigger_items=2))
    started = service.start(member.principal, ChatRequest(message="When do Diwali hampers ship?"), workspace=None)
    for thread in service.threads:
        thread.join(60)
    again = ChatRequest(conversationId=uuid.UUID(started.conversation_id), message="And Holi gift boxes?")
    service.start(member.principal, again, workspace=None)
    for thread in service.threads:
        thread.join(60)
    with service.pool.connection() as conn:
        events = chat_db.events_after(conn, started.conversation_id, 0)
    assert [e.kind for e in events].count("done") == 2, [(e.kind, e.data) for e in events]
    assert "compact" in [e.data.get("step") for e in events if e.kind == "step.started"]

    rows = _usage_rows(migrated_dsn, member.workspace_id)
    assert len(rows) == 3 and {r["node"] for r in rows} == {"chat"} and all(r["cost_micro_usd"] for r in rows)
    with connect(migrated_dsn) as conn:
        held = conn.execute("SELECT count(*) AS n, count(settled_at) AS settled, sum(actual_micro_usd) AS spent "
                            "FROM public.spend_reservations WHERE workspace_id = %s", (member.workspace_id,)).fetchone()
    assert held is not None and held["n"] == held["settled"] == 3
    assert held["spent"] == sum(r["cost_micro_usd"] for r in rows)
    assert _spend(migrated_dsn, member.workspace_id) == {"spent": held["spent"], "reserved": 0}


def test_a_workspace_at_its_cap_gets_budget_exceeded_and_nothing_is_sent_or_stored(
        service: ChatService, member: Member, migrated_dsn: str, gemini_http: httpx.Client) -> None:
    gemini_http.delete("/_emulator/requests").raise_for_status()
    gemini_http.post("/_emulator/script", json={"rules": [
        {"times": 1, "match": {"model": PRO}, "response": {"text": REPLY}}]}).raise_for_status()
    with connect(migrated_dsn) as conn, conn.transaction():  # the month's cap (US$0.005) is spent
        bdb.set_caps(conn, member.workspace_id, monthly=5_000, campaign=None, set_monthly=True, set_campaign=False)
        held = uuid.uuid4()
        assert bdb.reserve(conn, reservation_id=held, workspace_id=member.workspace_id, campaign_id=None,
                           period=bdb.month_of(datetime.now(UTC).date()), amount=5_000, default_monthly=None,
                           default_campaign=None)["ok"]
        assert bdb.settle(conn, held, 5_000)

    conversation_id, events = _turn(service, member, "When do Diwali hampers ship?")

    last = events[-1]
    assert last.kind == "error", [(e.kind, e.data) for e in events]
    assert last.data["code"] == "budget_exceeded" and last.data["retryable"] is False
    assert "AI-spend cap" in last.data["message"] and "PUT /api/v1/budgets" in last.data["message"]
    assert not [e for e in events if e.kind in ("message.delta", "done")]
    assert [e.data["role"] for e in events if e.kind == "message"] == ["user"]
    with connect(migrated_dsn) as conn:
        stored = conn.execute("SELECT role FROM public.conversation_messages WHERE conversation_id = %s",
                              (conversation_id,)).fetchall()
    assert [r["role"] for r in stored] == ["user"]  # no reply, not even a partial one
    assert _spend(migrated_dsn, member.workspace_id) == {"spent": 5_000, "reserved": 0}
    assert _usage_rows(migrated_dsn, member.workspace_id) == []
    assert gemini_http.get("/_emulator/requests").json() == []
