"""One LangSmith trace per campaign (and per chat turn): a whole campaign through the spine harness, Gemini and
LangSmith emulated.

The real `langsmith` SDK sends every run to the LangSmith emulator and the tests read them back with
the SDK's own queries (`Client.list_runs`, `Client.read_run`); every model call goes through
google-genai to the Gemini emulator, so token counts are the emulator's, as `model_usage` stores them.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import langsmith
import pytest
from psycopg_pool import ConnectionPool

from infra.local.emulators import langsmith as collector
from infra.local.emulators.config import EmulatorConfig
from infra.local.serve import RunningServer, serve_in_thread
from shared.api.chat import ChatRequest
from shared.api.models import Decision
from shared.chat.agent import ChatOverrides, chat_deps
from shared.chat.service import ChatService, TurnRequest
from shared.conversations import ChatDeps, ChatOptions, compile_chat_graph
from shared.conversations.events import EventSink
from shared.db.pool import connect
from shared.errors import PermanentStepError
from shared.integrations.gemini import structured_model
from shared.messages import StepMessage
from shared.runtime.checkpointer import create_checkpointer
from shared.tracing import campaign_started_at
from tests.integration.gemini_fixtures import gemini_http, gemini_server  # noqa: F401  (fixtures)
from tests.integration.harness import Harness, make_settings

pytestmark = pytest.mark.filterwarnings("ignore:(list_runs|read_run)\\(\\) is deprecated:DeprecationWarning")
"""The brief's queries are the SDK's classic `list_runs`/`read_run` (deprecated, removed after January 2027)."""

PROJECT = "muse-trace-tests"
KEY = EmulatorConfig(database_url="").langsmith_api_key


@pytest.fixture(scope="module")
def langsmith_server() -> Iterator[RunningServer]:
    running = serve_in_thread(collector.create_app(EmulatorConfig(database_url="")))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def harness(pool: ConnectionPool, migrated_dsn: str, gemini_server: RunningServer,  # noqa: F811
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    monkeypatch.delenv("LANGSMITH_DISABLE_RUN_COMPRESSION", raising=False)
    yield _harness(pool, migrated_dsn, gemini_server.url)


def _harness(pool: ConnectionPool, dsn: str, gemini_url: str, flush_seconds: float = 3.0) -> Harness:
    settings = make_settings(dsn, GEMINI_BASE_URL=gemini_url, GEMINI_API_KEY="local-gemini-key",
                             LANGSMITH_PROJECT=PROJECT, MUSE_TRACE_FLUSH_SECONDS=str(flush_seconds))
    return Harness(pool=pool, dsn=dsn, settings=settings, model=structured_model(settings))  # type: ignore[arg-type]


def _trace_with(h: Harness, url: str) -> langsmith.Client:
    client = langsmith.Client(api_url=url, api_key=KEY)
    h.api.tracer = client
    for runtime in h.runtimes.values():
        runtime.tracer = client
    return client


def _run_campaign(h: Harness) -> uuid.UUID:
    """Create, approve the strategy, pay: the campaign completes through every step function."""
    principal = h.workspace()
    campaign_id = h.create(principal)
    h.pump()
    pending = h.row(campaign_id)["pending_decision"]
    assert pending and pending["kind"] == "strategy_approval", h.row(campaign_id)
    h.api.decide(principal, campaign_id, Decision(decision_id=pending["id"], action="approve"))
    h.pump()
    assert h.row(campaign_id)["status"] == "awaiting_payment", h.row(campaign_id)
    h.pay(principal, campaign_id)
    assert h.row(campaign_id)["status"] == "completed", h.row(campaign_id)
    return campaign_id


def _usage_rows(dsn: str, campaign_id: uuid.UUID) -> Counter[tuple[Any, ...]]:
    with connect(dsn) as conn:
        rows = conn.execute("SELECT model, prompt_tokens, cached_tokens, output_tokens, thinking_tokens "
                            "FROM public.model_usage WHERE campaign_id = %s", (campaign_id,)).fetchall()
    return Counter((r["model"], r["prompt_tokens"], r["cached_tokens"], r["output_tokens"] + r["thinking_tokens"])
                   for r in rows)


def test_a_campaign_is_one_trace_with_an_llm_run_per_model_call(harness: Harness,
                                                                 langsmith_server: RunningServer) -> None:
    client = _trace_with(harness, langsmith_server.url)
    campaign_id = _run_campaign(harness)

    runs = list(client.list_runs(project_name=PROJECT, trace_id=campaign_id))
    root = client.read_run(campaign_id)
    assert root.name == "campaign" and root.parent_run_id is None and root.trace_id == campaign_id
    assert root.start_time.replace(tzinfo=None) == campaign_started_at(campaign_id).replace(tzinfo=None)  # type: ignore[union-attr]
    assert root.end_time is not None and root.outputs == {"status": "completed"}, root
    assert root.inputs["brief"]["title"] == "Diwali"

    by_id = {run.id: run for run in runs}
    assert {run.trace_id for run in runs} == {campaign_id}
    for run in runs:
        assert run.id == campaign_id or run.parent_run_id in by_id, f"{run.name} hangs outside the trace"
        assert run.dotted_order.startswith(root.dotted_order)
    steps = [run for run in runs if run.parent_run_id == campaign_id]
    functions = {f for f, _, delay in harness.queue.published if not delay} | {"payments"}
    assert {run.name for run in steps} == {f"campaign.{f}" for f in functions}
    assert {"planner", "research", "content", "qa", "payments", "execution"} <= functions

    llm_runs = list(client.list_runs(project_name=PROJECT, trace_id=campaign_id, run_type="llm"))
    assert llm_runs and all(run.name == "gemini" for run in llm_runs)
    traced = Counter((run.metadata["usage_metadata"]["input_tokens"] and run.metadata["ls_model_name"],
                      run.prompt_tokens, run.prompt_token_details and run.prompt_token_details.get("cache_read"),
                      run.completion_tokens) for run in llm_runs)
    stored = _usage_rows(harness.dsn, campaign_id)
    assert sum(stored.values()) == len(llm_runs)
    assert Counter((m, p, c, o) for (m, p, c, o) in stored) == Counter(
        (m, p, c or 0, o) for (m, p, c, o) in traced)
    assert all(run.total_cost is not None and run.total_cost > 0 for run in llm_runs)

    searches = list(client.list_runs(trace_id=campaign_id, run_type="retriever"))
    assert {run.name for run in searches} == {"web_search", "knowledge_search"}
    parents = {by_id[run.parent_run_id].name for run in searches if run.parent_run_id in by_id}
    assert parents == {"specialist"} and all(run.outputs and run.outputs["ok"] for run in searches)

    by_metadata = list(client.list_runs(
        project_name=PROJECT, filter=f'and(eq(metadata_key, "campaign_id"), eq(metadata_value, "{campaign_id}"))'))
    assert {run.id for run in by_metadata} == set(by_id)


def test_an_unreachable_langsmith_never_fails_a_step(pool: ConnectionPool, migrated_dsn: str,
                                                     gemini_server: RunningServer) -> None:  # noqa: F811
    """Every step still succeeds; one flush waits out its timeout, later ones do not wait for a dead collector."""
    harness = _harness(pool, migrated_dsn, gemini_server.url, flush_seconds=0.5)
    with socket_closed() as url:
        _trace_with(harness, url)
        started = time.monotonic()
        campaign_id = _run_campaign(harness)
    assert harness.events(campaign_id)[-1] == "campaign.completed"
    waits = harness.delivered + 1  # a flush per step and one when the API starts the root run
    assert waits >= 10 and time.monotonic() - started < 0.8 * waits * harness.settings.trace_flush_seconds


def test_a_message_without_trace_context_joins_the_campaign_trace(harness: Harness,
                                                                 langsmith_server: RunningServer) -> None:
    """Webhooks and sweeper nudges build messages without the context: it is rebuilt from the campaign id."""
    client = _trace_with(harness, langsmith_server.url)
    principal = harness.workspace()
    campaign_id = harness.create(principal)
    start = harness.queue.published[-1][1]
    assert isinstance(start, StepMessage) and start.trace and start.trace["langsmith-trace"].endswith(str(campaign_id))
    harness.queue.published[-1] = ("planner", start.model_copy(update={"trace": None}), None)
    harness.pump(limit=1)
    planner = next(r for r in client.list_runs(project_name=PROJECT, trace_id=campaign_id)
                   if r.name == "campaign.planner")
    assert planner.parent_run_id == campaign_id


class socket_closed:
    """A loopback URL nothing listens on."""

    def __enter__(self) -> str:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        return None


def test_a_chat_turn_is_one_trace(harness: Harness, langsmith_server: RunningServer,
                                  gemini_http: httpx.Client) -> None:  # noqa: F811
    """Streamed Gemini calls are llm runs with the turn's usage; the knowledge search is a retriever run."""
    gemini_http.post("/_emulator/script", json={"rules": [
        {"times": 1, "match": {"model": "gemini-2.5-pro"},
         "response": {"function_calls": [{"name": "knowledge_search", "args": {"query": "Diwali hampers"}}]}},
        {"times": 1, "match": {"model": "gemini-2.5-pro"}, "response": {"text": "Hampers ship from October."}},
    ]}).raise_for_status()
    member = harness.workspace()

    def deps(service: ChatService, turn: TurnRequest, sink: EventSink) -> ChatDeps:
        overrides = ChatOverrides(knowledge=harness.search, web=harness.search, api=harness.api)
        return chat_deps(harness.settings, harness.pool, workspace_id=turn.workspace_id, principal=member,
                         options=ChatOptions(), events=sink, overrides=overrides)

    client = langsmith.Client(api_url=langsmith_server.url, api_key=KEY)
    service = ChatService(settings=harness.settings, pool=harness.pool, turn_deps=deps, tracer=client,
                          graph=compile_chat_graph(create_checkpointer(harness.pool)))
    started = service.start(member, ChatRequest(message="When do Diwali hampers ship?"), workspace=None)
    service.wait_idle()

    turn = f'and(eq(metadata_key, "turn_id"), eq(metadata_value, "{started.turn_id}"), eq(name, "chat.turn"))'
    (root,) = client.list_runs(project_name=PROJECT, filter=turn)
    assert root.parent_run_id is None and root.end_time is not None and root.outputs
    runs = list(client.list_runs(trace_id=root.id))
    assert all(run.metadata["conversation_id"] == started.conversation_id for run in runs)
    llm_runs = [run for run in runs if run.run_type == "llm"]
    assert len(llm_runs) == 2 and all(run.end_time is not None for run in llm_runs)
    usage = root.outputs["usage"]
    assert sum(run.prompt_tokens or 0 for run in llm_runs) == usage["prompt_tokens"]
    assert sum(run.completion_tokens or 0 for run in llm_runs) == usage["output_tokens"] + usage["thinking_tokens"]
    assert [run.name for run in runs if run.run_type == "retriever"] == ["knowledge_search"]


def test_a_failed_campaign_ends_its_root_run_with_the_reason(harness: Harness, langsmith_server: RunningServer,
                                                             gemini_http: httpx.Client) -> None:  # noqa: F811
    client = _trace_with(harness, langsmith_server.url)
    gemini_http.post("/_emulator/script", json={"rules": [
        {"match": {}, "status": 400, "message": "Invalid JSON payload"}]}).raise_for_status()
    campaign_id = harness.create(harness.workspace())
    with pytest.raises(PermanentStepError):
        harness.pump(limit=1)
    assert harness.row(campaign_id)["status"] == "failed"

    root = client.read_run(campaign_id)
    assert root.end_time is not None and root.outputs == {"status": "failed"}
    assert root.error is not None and "Invalid JSON payload" in root.error
    (llm,) = client.list_runs(trace_id=campaign_id, run_type="llm", error=True)
    assert "400" in (llm.error or "")
