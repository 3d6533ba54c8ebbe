"""The reliability probe's defects, each reproduced in-process on real Postgres with real signatures.

1. a redelivered or forged resume must never pay for a campaign;
2. a holder that dies with the lease must not strand its campaign;
3. a step that commits and dies before publishing must still be continued;
4. the API's first message is written with the campaign and published after commit;
6. a QStash JWT without a `body` claim is a 401 that changes nothing.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import jwt
import pytest
from psycopg_pool import ConnectionPool

from infra.local.emulators.config import DEV_QSTASH_CURRENT_SIGNING_KEY
from shared.api.models import Decision
from shared.db.artifacts import PostgresArtifactStore
from shared.db.pool import connect
from shared.db.threads import Event, Outcome, UnpaidCompletion
from shared.domain import CampaignStatus
from shared.errors import PermanentStepError, ThreadBusy, Unauthorized, UpstreamUnavailable
from shared.messages import StepMessage
from shared.outbox import item
from shared.runtime.checkpointer import Fence, StepWrites
from shared.runtime.sweeper import Sweeper, SweepReport
from shared.testing.fakes import RecordingQueue
from tests.integration.harness import Harness, make_settings


@dataclass
class OutageQueue(RecordingQueue):
    """QStash that refuses every publish while `down` (like an instance dying right after its commit)."""

    down: bool = False
    refused: list[str] = field(default_factory=list)

    def publish(self, function: str, message: StepMessage, *, dedup_id: str | None = None,
                not_before: datetime | None = None) -> str:
        if self.down:
            self.refused.append(message.kind)
            raise UpstreamUnavailable("QStash is unreachable")
        return super().publish(function, message, dedup_id=dedup_id, not_before=not_before)


@pytest.fixture
def harness(pool: ConnectionPool, migrated_dsn: str) -> Iterator[Harness]:
    yield Harness(pool=pool, dsn=migrated_dsn, settings=make_settings(migrated_dsn, MUSE_LEASE_SECONDS="2"),
                  queue=OutageQueue())


def _sweeper(h: Harness, **overrides: float) -> Sweeper:
    settings = {"publish_grace_seconds": 0.0, "lease_grace_seconds": 0.0, "stall_seconds": 300.0} | overrides
    return Sweeper(threads=h.runtimes["planner"].threads, outbox=h.outbox, receiver=h.runtimes["planner"].receiver,
                   url=h.settings.function_url("sweeper"), **settings)


def _sent_for(h: Harness, campaign_id: uuid.UUID, since: int) -> list[StepMessage]:
    """Messages for this campaign published since index `since` (other tests' campaigns share the database)."""
    return [m for _, m, _ in h.queue.published[since:] if m.campaign_id == campaign_id]


def _keep_only(h: Harness, campaign_id: uuid.UUID, since: int) -> None:
    """Drop what a sweep sent to other tests' campaigns, so pumping advances only this test's."""
    h.queue.published[since:] = [p for p in h.queue.published[since:] if p[1].campaign_id == campaign_id]


def _sweep_and_pump(h: Harness, campaign_id: uuid.UUID) -> SweepReport:
    """One sweep, then deliver what it sent to this test's campaign (and what that chains)."""
    since = len(h.queue.published)
    report = _sweeper(h).sweep()
    _keep_only(h, campaign_id, since)
    h.pump()
    return report


def _unpublished(h: Harness, campaign_id: uuid.UUID) -> int:
    with connect(h.dsn) as conn:
        return conn.execute("SELECT count(*) AS n FROM public.step_outbox WHERE campaign_id = %s AND "
                            "published_at IS NULL", (campaign_id,)).fetchone()["n"]


def _to_payment(h: Harness) -> tuple[uuid.UUID, object, StepMessage]:
    principal = h.workspace()
    campaign_id = h.create(principal)
    h.pump()
    pending = h.row(campaign_id)["pending_decision"]
    h.api.decide(principal, campaign_id, Decision(decision_id=pending["id"], action="approve"))
    approval = next(m for _, m, _ in h.queue.published if m.kind == "resume")
    h.pump()
    assert h.row(campaign_id)["status"] == "awaiting_payment"
    return campaign_id, principal, approval


def _published_artifacts(h: Harness, campaign_id: uuid.UUID) -> int:
    with connect(h.dsn) as conn:
        return conn.execute("SELECT count(*) AS n FROM public.artifacts WHERE campaign_id = %s AND status = "
                            "'published'", (campaign_id,)).fetchone()["n"]


class TestPaymentBypass:
    def test_a_redelivered_approval_does_not_pass_the_payment(self, harness: Harness) -> None:
        campaign_id, _, approval = _to_payment(harness)
        for _ in range(2):
            assert harness.deliver("planner", approval).body["status"] == "duplicate"
            assert harness.deliver("payments", approval).body["status"] == "duplicate"
        harness.pump()
        assert harness.row(campaign_id)["status"] == "awaiting_payment"
        assert _published_artifacts(harness, campaign_id) == 0

    def test_a_signed_resume_naming_the_payment_interrupt_is_a_no_op(self, harness: Harness) -> None:
        campaign_id, _, _ = _to_payment(harness)
        pending = harness.row(campaign_id)["pending_decision"]
        forged = StepMessage(kind="resume", campaign_id=campaign_id, decision_id=pending["id"],
                             resume={"status": "paid", "amount_paise": pending["payload"]["amount_paise"],
                                     "merchant_order_id": "made-up"})
        assert harness.deliver("payments", forged).body["status"] == "duplicate"
        harness.pump()
        assert harness.row(campaign_id)["status"] == "awaiting_payment"

    def test_a_resume_must_name_what_it_answers(self, harness: Harness) -> None:
        campaign_id, _, _ = _to_payment(harness)
        body = json.dumps({"version": 1, "kind": "resume", "campaign_id": str(campaign_id),
                           "resume": {"status": "paid"}}).encode()
        from infra.local.emulators.qstash import sign

        with pytest.raises(PermanentStepError, match="decision_id"):
            harness.runtimes["payments"].handle(body, sign(body, harness.settings.function_url("payments"),
                                                           DEV_QSTASH_CURRENT_SIGNING_KEY))
        assert harness.row(campaign_id)["status"] == "awaiting_payment"

    def test_a_payment_of_another_amount_does_not_resume(self, harness: Harness) -> None:
        campaign_id, principal, _ = _to_payment(harness)
        order = harness.api.checkout(principal, campaign_id)  # type: ignore[arg-type]
        harness.phonepe.settle(order.merchant_order_id)
        harness.phonepe.status_override[order.merchant_order_id] = ("COMPLETED", order.amount_paise - 100)
        harness.webhook(order.merchant_order_id)
        harness.pump()
        assert harness.row(campaign_id)["status"] == "awaiting_payment"
        assert "payment.mismatch" in harness.events(campaign_id)

    def test_paying_completes_with_the_approved_amount(self, harness: Harness) -> None:
        campaign_id, principal, approval = _to_payment(harness)
        amount = harness.row(campaign_id)["pending_decision"]["payload"]["amount_paise"]
        harness.pay(principal, campaign_id)  # type: ignore[arg-type]
        assert harness.deliver("payments", approval).body["status"] == "duplicate"
        row = harness.row(campaign_id)
        assert row["status"] == "completed"
        with connect(harness.dsn) as conn:
            paid = conn.execute("SELECT amount_paise FROM public.payments WHERE campaign_id = %s AND state = "
                                "'completed'", (campaign_id,)).fetchall()
        assert [p["amount_paise"] for p in paid] == [amount]
        assert _published_artifacts(harness, campaign_id) == 2

    def test_the_database_refuses_an_unpaid_completion(self, harness: Harness) -> None:
        """The last line of defence: no outcome can complete a campaign without its payment."""
        campaign_id, _, _ = _to_payment(harness)
        threads = harness.runtimes["execution"].threads
        grant = threads.acquire(campaign_id, owner="rogue", seconds=10, message={})
        writes = StepWrites(harness.pool, Fence(str(campaign_id), grant.fence))
        with pytest.raises(UnpaidCompletion):
            writes.commit(lambda conn: threads.finish(conn, grant, Outcome(CampaignStatus.COMPLETED, None),
                                                      [Event("campaign.completed", {})]))
        assert harness.row(campaign_id)["status"] == "awaiting_payment"


    def test_artifacts_cannot_be_published_before_the_payment(self, harness: Harness) -> None:
        campaign_id, principal, _ = _to_payment(harness)
        store = PostgresArtifactStore(harness.pool)
        assert store.publish(campaign_id=str(campaign_id), channel="email", variant="a") is False
        assert _published_artifacts(harness, campaign_id) == 0
        harness.pay(principal, campaign_id)  # type: ignore[arg-type]
        assert _published_artifacts(harness, campaign_id) == 2


class TestStrandedAfterCrash:
    def test_a_dead_holders_thread_heals_through_busy_retries(self, harness: Harness) -> None:
        """The holder dies with the lease: deliveries meet 429 with a Retry-After reaching past the lease."""
        principal = harness.workspace()
        campaign_id = harness.create(principal)
        function, start, _ = harness.queue.published[0]
        harness.runtimes["planner"].threads.acquire(campaign_id, owner="dead-instance", seconds=2,
                                                    message={"function": function,
                                                             "message": start.model_dump(mode="json")})
        with pytest.raises(ThreadBusy) as busy:
            harness.deliver(function, start)
        assert 2 <= busy.value.retry_after_seconds <= 3
        time.sleep(2.1)
        assert harness.deliver(function, start).body["status"] == "running"

    def test_the_sweeper_redrives_a_dead_holders_message_once(self, harness: Harness) -> None:
        """QStash gave up on the busy thread; the sweeper re-sends what the dead holder was working on."""
        principal = harness.workspace()
        campaign_id = harness.create(principal)
        harness.delivered_index = len(harness.queue.published)
        function, start, _ = harness.queue.published[0]
        harness.runtimes["planner"].threads.acquire(campaign_id, owner="dead-instance", seconds=0.5,
                                                    message={"function": function,
                                                             "message": start.model_dump(mode="json")})
        time.sleep(0.6)
        sweeper = _sweeper(harness)
        since = len(harness.queue.published)
        assert sweeper.sweep().redriven >= 1
        assert [m.kind for m in _sent_for(harness, campaign_id, since)] == ["start"]
        sweeper.sweep()
        assert [m.kind for m in _sent_for(harness, campaign_id, since)] == ["start"]
        harness.delivered_index = since
        _keep_only(harness, campaign_id, since)
        harness.pump()
        assert harness.row(campaign_id)["status"] == "awaiting_decision"

    def test_a_failure_callback_for_a_busy_thread_reschedules_after_the_lease(self, harness: Harness) -> None:
        principal = harness.workspace()
        campaign_id = harness.create(principal)
        function, start, _ = harness.queue.published[0]
        harness.runtimes["planner"].threads.acquire(campaign_id, owner="dead-instance", seconds=2, message={})
        callback = {"status": 429, "retried": 5, "sourceMessageId": "msg_1", "dlqId": "1-0",
                    "sourceBody": base64.b64encode(json.dumps(start.model_dump(mode="json")).encode()).decode(),
                    "body": base64.b64encode(b'{"error": "busy"}').decode()}
        body = json.dumps(callback).encode()
        from infra.local.emulators.qstash import sign

        reply = harness.runtimes["planner"].handle(body, sign(body, harness.settings.function_url("planner"),
                                                              DEV_QSTASH_CURRENT_SIGNING_KEY))
        assert reply.body["status"] == "rescheduled"
        rescheduled, message, delay = harness.queue.published[-1]
        assert (rescheduled, message.kind) == ("planner", "start") and delay is not None and 2 <= delay <= 4
        assert harness.row(campaign_id)["status"] == "queued"

    def test_reposting_a_decision_sends_it_again(self, harness: Harness) -> None:
        principal = harness.workspace()
        campaign_id = harness.create(principal)
        harness.pump()
        pending = harness.row(campaign_id)["pending_decision"]
        harness.api.decide(principal, campaign_id, Decision(decision_id=pending["id"], action="approve"))
        harness.delivered_index = len(harness.queue.published)
        before = len(harness.queue.published)
        harness.api.decide(principal, campaign_id, Decision(decision_id=pending["id"], action="approve"))
        assert len(harness.queue.published) == before + 1
        harness.pump()
        assert harness.row(campaign_id)["status"] == "awaiting_payment"


    def test_a_stalled_thread_is_nudged_with_its_heads_continuation(self, harness: Harness) -> None:
        """QStash's backoff left the head's continuation waiting for minutes: the sweeper re-sends exactly it,
        not an older message that happens to be newer in the outbox, and not again within the stall period."""
        principal = harness.workspace()
        campaign_id = harness.create(principal)
        harness.pump(limit=2)
        stale_function, stale, _ = next(p for p in harness.queue.published if p[1].kind == "continue")
        harness.outbox.send(campaign_id, [item(stale_function, stale, dedup_suffix="-afterlease-9")])
        harness.delivered_index = len(harness.queue.published)
        with connect(harness.dsn) as conn:
            conn.execute("UPDATE public.campaigns SET updated_at = now() - interval '1 hour' WHERE id = %s",
                         (campaign_id,))
        row = harness.row(campaign_id)
        assert row["status"] == "running"
        sweeper = _sweeper(harness, stall_seconds=60)
        since = len(harness.queue.published)
        assert sweeper.sweep().nudged >= 1
        nudges = _sent_for(harness, campaign_id, since)
        assert [(m.kind, m.expected_checkpoint_id != stale.expected_checkpoint_id) for m in nudges] == \
            [("continue", True)], nudges
        sweeper.sweep()
        assert _sent_for(harness, campaign_id, since) == nudges
        _keep_only(harness, campaign_id, since)
        harness.pump()
        assert harness.row(campaign_id)["status"] == "awaiting_decision"


class TestCommittedButNotPublished:
    def test_the_sweeper_publishes_what_a_crash_left_in_the_outbox(self, harness: Harness) -> None:
        queue: OutageQueue = harness.queue  # type: ignore[assignment]
        principal = harness.workspace()
        campaign_id = harness.create(principal)
        harness.pump(limit=1)
        queue.down = True
        harness.pump(limit=1)
        assert queue.refused == ["continue"]
        row = harness.row(campaign_id)
        assert row["status"] == "running" and row["lease_owner"] is None
        queue.down = False
        assert _unpublished(harness, campaign_id) == 1
        assert _sweep_and_pump(harness, campaign_id).published >= 1
        assert _unpublished(harness, campaign_id) == 0
        assert harness.row(campaign_id)["status"] == "awaiting_decision"

    def test_a_confirmed_payment_whose_continuation_was_lost_still_executes(self, harness: Harness) -> None:
        queue: OutageQueue = harness.queue  # type: ignore[assignment]
        campaign_id, principal, _ = _to_payment(harness)
        queue.down = True
        order = harness.api.checkout(principal, campaign_id)  # type: ignore[arg-type]
        harness.phonepe.settle(order.merchant_order_id)
        harness.webhook(order.merchant_order_id)
        assert harness.row(campaign_id)["status"] == "running"
        queue.down = False
        _sweep_and_pump(harness, campaign_id)
        assert harness.row(campaign_id)["status"] == "completed"

    def test_the_api_writes_its_start_message_with_the_campaign(self, harness: Harness) -> None:
        """Create while QStash is down: 202, the start message waits in the outbox, the sweeper sends it."""
        queue: OutageQueue = harness.queue  # type: ignore[assignment]
        queue.down = True
        principal = harness.workspace()
        campaign_id = harness.create(principal)
        assert queue.refused == ["start"] and harness.row(campaign_id)["status"] == "queued"
        queue.down = False
        assert _unpublished(harness, campaign_id) == 1
        assert _sweep_and_pump(harness, campaign_id).published >= 1
        assert _unpublished(harness, campaign_id) == 0
        assert harness.row(campaign_id)["status"] == "awaiting_decision"


def test_a_signature_without_a_body_claim_is_a_401(harness: Harness) -> None:
    principal = harness.workspace()
    campaign_id = harness.create(principal)
    _, start, _ = harness.queue.published[0]
    body = json.dumps(start.model_dump(mode="json")).encode()
    now = int(time.time())
    token = jwt.encode({"iss": "Upstash", "sub": harness.settings.function_url("planner"), "exp": now + 300,
                        "nbf": now, "iat": now, "jti": "x"}, DEV_QSTASH_CURRENT_SIGNING_KEY, algorithm="HS256")
    with pytest.raises(Unauthorized):
        harness.runtimes["planner"].handle(body, token)
    assert harness.row(campaign_id)["status"] == "queued" and harness.checkpoints(campaign_id) == 0


def test_a_timeout_racing_a_users_answer_yields_to_it(harness: Harness) -> None:
    """The user's answer lands between the timeout's check and its commit: the timeout changes nothing."""
    principal = harness.workspace(settings={"auto_approve_max_budget_inr": 10_000_000})
    campaign_id = harness.create(principal)
    harness.pump()
    pending = harness.row(campaign_id)["pending_decision"]
    timeout = next(m for _, m, d in harness.queue.published if d and m.kind == "decision_timeout")
    runtime = harness.runtimes["planner"]
    original = runtime.threads.decided_by
    runtime.threads.decided_by = lambda decision_id: None  # type: ignore[method-assign]
    try:
        with connect(harness.dsn) as conn:
            conn.execute("INSERT INTO public.decisions (id, campaign_id, workspace_id, kind, action, payload, source) "
                         "SELECT %s, id, workspace_id, 'strategy_approval', 'reject', '{}', 'user' "
                         "FROM public.campaigns WHERE id = %s", (pending["id"], campaign_id))
        assert harness.deliver("planner", timeout).body["status"] == "duplicate"
    finally:
        runtime.threads.decided_by = original  # type: ignore[method-assign]
    row = harness.row(campaign_id)
    assert row["status"] == "awaiting_decision" and row["lease_owner"] is None
    with connect(harness.dsn) as conn:
        [decision] = conn.execute("SELECT action, source FROM public.decisions WHERE id = %s",
                                  (pending["id"],)).fetchall()
    assert (decision["action"], decision["source"]) == ("reject", "user")
