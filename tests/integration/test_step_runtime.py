"""The runtime spine in-process: real Postgres and checkpointer, real signatures, scripted model."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest
from psycopg_pool import ConnectionPool

from shared.api.models import Decision
from shared.campaigns.schemas import AdCopy, Strategy
from shared.db.pool import connect
from shared.errors import (
    ConfigurationError,
    NotFound,
    PermanentStepError,
    ThreadBusy,
    Unauthorized,
    UpstreamUnavailable,
)
from shared.messages import StepMessage
from shared.runtime.checkpointer import Fence, LeaseLost, StepWrites, fenced
from tests.integration.harness import Harness, make_settings


@pytest.fixture
def harness(pool: ConnectionPool, migrated_dsn: str) -> Iterator[Harness]:
    yield Harness(pool=pool, dsn=migrated_dsn, settings=make_settings(migrated_dsn))


def _run_to_strategy_decision(h: Harness, **brief: object) -> tuple[uuid.UUID, object]:
    principal = h.workspace()
    campaign_id = h.create(principal, **brief)
    h.pump()
    row = h.row(campaign_id)
    assert row["status"] == "awaiting_decision", row
    assert row["pending_decision"]["kind"] == "strategy_approval"
    return campaign_id, principal


def _decide(h: Harness, principal: object, campaign_id: uuid.UUID, action: str, **extra: object) -> None:
    pending = h.row(campaign_id)["pending_decision"]
    h.api.decide(principal, campaign_id, Decision(decision_id=pending["id"], action=action, **extra))  # type: ignore[arg-type]


def _pay(h: Harness, principal: object, campaign_id: uuid.UUID) -> None:
    row = h.row(campaign_id)
    assert row["status"] == "awaiting_payment", row
    h.pay(principal, campaign_id)  # type: ignore[arg-type]


class TestCampaignFlow:
    def test_runs_through_approval_and_payment_to_completion(self, harness: Harness) -> None:
        """Plan → research → strategy → approval → content → QA → payment → execute, one function at a time."""
        campaign_id, principal = _run_to_strategy_decision(harness)
        _decide(harness, principal, campaign_id, "approve")
        harness.pump()
        _pay(harness, principal, campaign_id)
        row = harness.row(campaign_id)
        assert row["status"] == "completed" and row["lease_owner"] is None and row["lease_message"] is None
        view = harness.api.get_campaign(principal, campaign_id)  # type: ignore[arg-type]
        assert sorted(a.channel for a in view.artifacts) == ["ad", "email"]
        assert {a.status for a in view.artifacts} == {"published"}
        functions = [f for f, _, delay in harness.queue.published if not delay]
        assert functions == ["planner", "research", "planner", "planner", "content", "qa", "payments", "execution"]
        assert "campaign.completed" == harness.events(campaign_id)[-1]

    def test_reject_with_feedback_replans_then_approve(self, harness: Harness) -> None:
        """A rejection re-plans with the feedback; the next decision is a new one; approving continues."""
        campaign_id, principal = _run_to_strategy_decision(harness)
        first = harness.row(campaign_id)["pending_decision"]["id"]
        harness.model.script(Strategy, {"positioning": "Premium calm", "key_messages": ["Grower-named teas"],
                                        "budget_inr": 15000, "budget_split": [], "rationale": "feedback applied"})
        _decide(harness, principal, campaign_id, "reject", feedback="Position it for corporate gifting instead")
        harness.pump()
        row = harness.row(campaign_id)
        assert row["status"] == "awaiting_decision"
        assert row["pending_decision"]["id"] != first
        assert row["pending_decision"]["payload"]["positioning"] == "Premium calm"
        replans = [p for _, schema, p in harness.model.calls if schema == "Plan"]
        assert len(replans) == 2 and "corporate gifting" in replans[1]
        _decide(harness, principal, campaign_id, "approve")
        harness.pump()
        assert harness.row(campaign_id)["status"] == "awaiting_payment"

    def test_edit_uses_the_edited_value(self, harness: Harness) -> None:
        """An edited budget is what the payment asks for."""
        campaign_id, principal = _run_to_strategy_decision(harness)
        _decide(harness, principal, campaign_id, "edit", edits={"budget_inr": 12345})
        harness.pump()
        assert harness.row(campaign_id)["pending_decision"]["payload"]["amount_paise"] == 1_234_500

    def test_qa_failure_rewrites_then_goes_to_a_human_past_the_limit(self, harness: Harness) -> None:
        """Copy with a banned term goes back to content with its critique, then to a human after the limit."""
        principal = harness.workspace(settings={"qa_max_revisions": 1})
        with connect(harness.dsn) as conn:
            conn.execute("INSERT INTO public.brand_kits (workspace_id, kit) VALUES (%s, %s)",
                         (principal.requested_workspace, '{"banned_terms": {"cheap": "affordable"}}'))
        campaign_id = harness.create(principal, channels=["ad"])
        harness.pump()
        bad = {"headline": "Cheap tea gifts", "description": "Cheap and cheerful."}
        harness.model.script(AdCopy, bad, bad)
        _decide(harness, principal, campaign_id, "approve")
        harness.pump()
        row = harness.row(campaign_id)
        assert row["status"] == "awaiting_decision" and row["pending_decision"]["kind"] == "qa_review"
        prompts = [p for _, schema, p in harness.model.calls if schema == "AdCopy"]
        assert len(prompts) == 2 and "write 'affordable' instead" in prompts[1]
        _decide(harness, principal, campaign_id, "edit",
                edits={"ad": {"headline": "Affordable tea gifts", "description": "A calm gift."}})
        harness.pump()
        assert harness.row(campaign_id)["status"] == "awaiting_payment"


class TestAtLeastOnce:
    def test_duplicate_delivery_is_acknowledged_and_changes_nothing(self, harness: Harness) -> None:
        """The same message twice: the second finds the head moved and only acknowledges."""
        principal = harness.workspace()
        campaign_id = harness.create(principal)
        _, start, _ = harness.queue.published[0]
        assert harness.deliver("planner", start).body["status"] == "running"
        before = harness.checkpoints(campaign_id)
        assert harness.deliver("planner", start).body["status"] == "duplicate"
        assert harness.checkpoints(campaign_id) == before

    def test_concurrent_deliveries_advance_once(self, harness: Harness) -> None:
        """Three concurrent deliveries of each message: every step runs once."""
        principal = harness.workspace()
        campaign_id = harness.create(principal)
        outcomes: list[str] = []
        while harness.delivered_index < len(harness.queue.published):
            function, message, delay = harness.queue.published[harness.delivered_index]
            harness.delivered_index += 1
            if delay:
                continue

            def deliver(fn: str = function, msg: StepMessage = message) -> None:
                try:
                    outcomes.append(harness.deliver(fn, msg).body["status"])
                except ThreadBusy:
                    outcomes.append("busy")

            threads = [threading.Thread(target=deliver) for _ in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        advanced = [o for o in outcomes if o not in ("busy", "duplicate")]
        assert len(advanced) == 3, outcomes
        assert harness.row(campaign_id)["status"] == "awaiting_decision"
        plans = [c for c in harness.model.calls if c[1] == "Plan"]
        assert len(plans) == 1

    def test_forged_signature_is_rejected_and_changes_nothing(self, harness: Harness) -> None:
        """A delivery signed with another key is refused before anything is read or written."""
        principal = harness.workspace()
        campaign_id = harness.create(principal)
        _, start, _ = harness.queue.published[0]
        body, forged = harness.signed("planner", start, key="sig_forged_key_that_is_long_enough_0000")
        with pytest.raises(Unauthorized):
            harness.runtimes["planner"].handle(body, forged)
        body, wrong_url = harness.signed("research", start)
        with pytest.raises(Unauthorized):
            harness.runtimes["planner"].handle(body, wrong_url)
        assert harness.checkpoints(campaign_id) == 0
        assert harness.row(campaign_id)["status"] == "queued"

    def test_retryable_error_releases_the_lease_and_a_retry_completes(self, harness: Harness) -> None:
        """A 503 from the model: the step fails retryably, and redelivery continues from the same head."""
        principal = harness.workspace()
        campaign_id = harness.create(principal)
        harness.model.script(Strategy, UpstreamUnavailable("Gemini answered 503"))
        with pytest.raises(UpstreamUnavailable):
            harness.pump()
        row = harness.row(campaign_id)
        assert row["lease_owner"] is None and row["status"] == "running"
        function, message, _ = harness.queue.published[-1]
        assert harness.deliver(function, message).body["status"] == "awaiting_decision"

    def test_permanent_error_fails_the_campaign_with_a_reason(self, harness: Harness) -> None:
        """A non-retryable error answers 489 (PermanentStepError) and marks the campaign failed."""
        principal = harness.workspace()
        campaign_id = harness.create(principal)
        harness.model.script(Strategy, ConfigurationError("Gemini rejected the API key"))
        with pytest.raises(PermanentStepError):
            harness.pump()
        row = harness.row(campaign_id)
        assert row["status"] == "failed" and "API key" in row["failure_reason"]

    def test_a_step_whose_lease_was_taken_over_cannot_write(self, harness: Harness) -> None:
        """Fencing: a checkpoint write with a stale fencing token is refused atomically."""
        principal = harness.workspace()
        campaign_id = harness.create(principal)
        harness.pump(limit=1)
        grant = harness.runtimes["research"].threads.acquire(campaign_id, owner="stale", seconds=30, message={})
        with connect(harness.dsn) as conn:
            conn.execute("UPDATE public.campaigns SET fence = fence + 1 WHERE id = %s", (campaign_id,))
        before = harness.checkpoints(campaign_id)
        with fenced(StepWrites(harness.pool, Fence(str(campaign_id), grant.fence))), pytest.raises(LeaseLost):
            harness.runtimes["research"]._stream(grant, None)
        assert harness.checkpoints(campaign_id) == before


class TestDecisionTimeouts:
    def _timeout(self, h: Harness, campaign_id: uuid.UUID) -> str:
        delayed = [(f, m) for f, m, d in h.queue.published if d and m.kind == "decision_timeout"]
        function, message = delayed[-1]
        return h.deliver(function, message).body["status"]

    def test_auto_approves_within_the_workspace_limit(self, harness: Harness) -> None:
        principal = harness.workspace(settings={"auto_approve_max_budget_inr": 50000, "decision_timeout_seconds": 60})
        campaign_id = harness.create(principal)
        harness.pump()
        assert self._timeout(harness, campaign_id) == "running"
        harness.pump()
        assert harness.row(campaign_id)["status"] == "awaiting_payment"
        assert "decision.applied" in harness.events(campaign_id)

    def test_expires_when_the_rule_does_not_allow_approval(self, harness: Harness) -> None:
        principal = harness.workspace(settings={"auto_approve_max_budget_inr": 1000})
        campaign_id = harness.create(principal)
        harness.pump()
        assert self._timeout(harness, campaign_id) == "expired"
        assert harness.row(campaign_id)["status"] == "expired"

    def test_a_timeout_after_the_user_decided_does_nothing(self, harness: Harness) -> None:
        principal = harness.workspace(settings={"auto_approve_max_budget_inr": 1000})
        campaign_id = harness.create(principal)
        harness.pump()
        pending = harness.row(campaign_id)["pending_decision"]
        harness.api.decide(principal, campaign_id, Decision(decision_id=pending["id"], action="approve"))
        assert self._timeout(harness, campaign_id) == "duplicate"
        harness.pump()
        assert harness.row(campaign_id)["status"] == "awaiting_payment"


class TestWorkspaceScoping:
    def test_another_workspace_sees_a_404(self, harness: Harness) -> None:
        owner, stranger = harness.workspace(), harness.workspace()
        campaign_id = harness.create(owner)
        with pytest.raises(NotFound):
            harness.api.get_campaign(stranger, campaign_id)
        with pytest.raises(NotFound):
            harness.api.decide(stranger, campaign_id, Decision(decision_id="x", action="approve"))
        assert harness.api.get_campaign(owner, campaign_id).id == campaign_id

    def test_users_cannot_write_runtime_columns(self, harness: Harness, migrated_dsn: str) -> None:
        """Through RLS a member may insert a campaign, never set its status, lease or outbox."""
        from shared.db.pool import as_user

        owner = harness.workspace()
        with pytest.raises(Exception, match="permission denied"), as_user(harness.pool, owner.claims) as conn:
            conn.execute("INSERT INTO public.campaigns (id, workspace_id, created_by, kind, brief, status) "
                         "VALUES (%s, %s, %s, 'campaign', '{}', 'completed')",
                         (uuid.uuid4(), owner.requested_workspace, owner.user_id))


def test_checkpoints_never_rebuild_arbitrary_objects(pool: ConnectionPool,
                                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    """A checkpoint row whose bytes name a callable (a pickle, or msgpack's constructor extension) is refused by
    the steps' checkpointer, where LangGraph's permissive serializer, reading the same row, runs the callable."""
    import os
    import pickle
    from typing import TypedDict

    import ormsgpack
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
    from langgraph.graph import START, StateGraph

    from shared.runtime.checkpointer import create_checkpointer

    class Notes(TypedDict):
        notes: list[str]

    builder = StateGraph(Notes)
    builder.add_node("note", lambda state: {"notes": ["kept"]})
    builder.add_edge(START, "note")
    strict = create_checkpointer(pool)
    thread_id = f"serde-{uuid.uuid4()}"
    thread: RunnableConfig = {"configurable": {"thread_id": thread_id}}
    builder.compile(checkpointer=strict).invoke({"notes": []}, thread)

    def notes(saver: PostgresSaver) -> object:
        found = saver.get_tuple(thread)
        assert found is not None
        return found.checkpoint["channel_values"]["notes"]

    assert notes(strict) == ["kept"]

    sandbox = tmp_path_factory.mktemp("serde")

    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return os.mkdir, (str(sandbox / "pickle"),)

    rows = {"pickle": pickle.dumps(Exploit()),
            "msgpack": ormsgpack.packb(ormsgpack.Ext(0, ormsgpack.packb(("os", "mkdir", str(sandbox / "msgpack")))))}
    permissive = PostgresSaver(pool, serde=JsonPlusSerializer(pickle_fallback=True, allowed_msgpack_modules=True))
    for kind, blob in rows.items():
        with pool.connection() as conn:
            changed = conn.execute("UPDATE public.checkpoint_blobs SET type = %s, blob = %s "
                                   "WHERE thread_id = %s AND channel = 'notes'", (kind, blob, thread_id)).rowcount
        assert changed >= 1
        if kind == "pickle":
            with pytest.raises(NotImplementedError, match="pickle"):
                notes(strict)
        else:
            assert notes(strict) == str(sandbox / "msgpack")
        assert not (sandbox / kind).exists(), f"the steps' checkpointer ran the callable in a {kind} blob"
        notes(permissive)
        assert (sandbox / kind).is_dir(), f"a permissive serializer would not have run the {kind} blob's callable"


def test_steps_are_traced_to_langsmith(pool: ConnectionPool, migrated_dsn: str) -> None:
    """With tracing on, each step's graph run reaches the LangSmith collector before the step returns."""
    import langsmith

    from infra.local.emulators import langsmith as collector
    from infra.local.emulators.config import EmulatorConfig
    from infra.local.serve import serve_in_thread

    server = serve_in_thread(collector.create_app(EmulatorConfig(database_url="")))
    try:
        h = Harness(pool=pool, dsn=migrated_dsn, settings=make_settings(migrated_dsn))
        client = langsmith.Client(api_url=server.url, api_key="local-langsmith-key", auto_batch_tracing=True)
        for runtime in h.runtimes.values():
            runtime.tracer = client
        campaign_id = h.create(h.workspace())
        h.pump(limit=1)
        runs = httpx.get(f"{server.url}/_emulator/runs").json()
        runs = runs.get("runs", runs) if isinstance(runs, dict) else runs
        names = {r["name"] for r in runs}
        assert "campaign.planner" in names and "plan" in names, names
        root = next(r for r in runs if r["name"] == "campaign.planner")
        assert (root.get("extra") or {}).get("metadata", {}).get("campaign_id") == str(campaign_id)
        client.cleanup()
    finally:
        server.stop()
