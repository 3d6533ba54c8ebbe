"""One delivery to a step function: lease, check what it answers, run, commit once, publish the outbox.

A step function owns some nodes of the campaign graph. It runs the graph from the thread's head
until the next node belongs to another function, an `interrupt()` pauses it, or it ends. Its
checkpoint writes, outcome, events and next messages (the outbox) commit in ONE fenced transaction;
the messages are published after commit with deduplication ids derived from thread and checkpoint.
Duplicate, stale or concurrent deliveries advance a thread once; a crash at any instant leaves
either nothing or everything, and the sweeper re-sends what a crash left unsent.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

import langsmith
from langgraph.types import Command
from pydantic import ValidationError
from qstash import Receiver

from shared.campaigns import decisions
from shared.campaigns.context import load_step_context
from shared.campaigns.events import describe
from shared.campaigns.graph import NODE_OWNERS
from shared.db import outbox as outbox_db
from shared.db.threads import (
    DecisionRaced,
    Event,
    Grant,
    LeaseBusy,
    LeaseLostAtFinish,
    Outcome,
    ThreadRepository,
    UnknownCampaign,
    UnpaidCompletion,
)
from shared.db.workspaces import policy_from_json
from shared.delivery import FailureCallback, Reply, deliver
from shared.deps import Deps
from shared.domain import (
    HUMAN_DECISIONS,
    AppliedDecision,
    CampaignStatus,
    ConfirmedPayment,
    OutboxRow,
    PendingDecision,
)
from shared.errors import MuseError, PermanentStepError, ThreadBusy
from shared.messages import StepMessage
from shared.outbox import Outbox, item
from shared.payments.confirmation import PaymentConfirmer
from shared.payments.refunds import RefundService
from shared.runtime.checkpointer import Fence, LeaseLost, StepWrites, fenced
from shared.runtime.lease import Heartbeat
from shared.settings import Settings
from shared.tracing import CampaignEnd, campaign_trace, end_campaign_run, flush, step_trace

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig
    from langgraph.graph.state import CompiledStateGraph

    from shared.campaigns.state import CampaignState

log = logging.getLogger("muse.step")

PUBLISHING_STEP = "publishing"
"""Where a campaign whose graph has ended waits while its publications fire (`shared.publishing.engine`
completes it with the last one)."""


@dataclass
class RunResult:
    """What one graph run did, read from its stream (no extra state load)."""

    head: str | None = None
    next_nodes: tuple[str, ...] = ()
    interrupts: list[Any] = field(default_factory=list)
    updates: list[tuple[str, dict[str, Any] | None]] = field(default_factory=list)


@dataclass(frozen=True)
class _Plan:
    graph_input: Any
    decision: AppliedDecision | None = None
    expire: bool = False


class StepRuntime:
    """The per-instance engine behind every step function."""

    def __init__(self, *, function: str, settings: Settings,
                 graph: CompiledStateGraph[CampaignState, Deps, CampaignState, CampaignState], deps: Deps,
                 threads: ThreadRepository, outbox: Outbox, receiver: Receiver,
                 payments: PaymentConfirmer | None = None, owners: dict[str, str] | None = None,
                 tracer: langsmith.Client | None = None, refunds: RefundService | None = None) -> None:
        self.function = function
        self.owners = owners or NODE_OWNERS
        self.tracer = tracer
        self.settings = settings
        self.graph = graph
        self.deps = deps
        self.threads = threads
        self.outbox = outbox
        self.receiver = receiver
        self.payments = payments
        self.refunds = refunds
        self.url = settings.function_url(function)
        self.instance = f"{function}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.foreign_nodes = [n for n, owner in self.owners.items() if owner != function]

    def handle(self, body: bytes, signature: str | None) -> Reply:
        """Handle one QStash delivery (raises `MuseError`s for the edge to map)."""
        return deliver(self.receiver, url=self.url, body=body, signature=signature,
                       on_message=self._on_message, on_failure=self._on_failure_callback)

    def _on_message(self, raw: Any) -> Reply:
        try:
            message = StepMessage.model_validate(raw)
        except ValidationError as exc:
            raise PermanentStepError(f"Invalid step message: {exc.errors(include_url=False)}") from exc
        if message.kind == "payment_event":
            if self.payments is None or message.payment is None:
                raise PermanentStepError(f"Function {self.function!r} does not handle payment events.")
            confirmed = self.payments.confirm(message.payment)
            if confirmed is None:
                return Reply(200, {"status": "ignored", "reason": "payment not confirmed"})
            if self.refunds is not None:
                self.refunds.refund_if_cancelled(confirmed)
            return self.advance(message, confirmed.campaign_id, payment=confirmed)
        if message.kind == "refund_event":
            if self.refunds is None or message.refund is None:
                raise PermanentStepError(f"Function {self.function!r} does not handle refund events.")
            return Reply(200, self.refunds.handle(message.refund))
        assert message.campaign_id is not None
        return self.advance(message, message.campaign_id)

    def _trace_of(self, message: StepMessage, grant: Grant) -> dict[str, str]:
        """The campaign's trace context: the message's, or (for one built without it) rebuilt from the id."""
        if message.trace:
            return message.trace
        return campaign_trace(grant.campaign_id, project=self.settings.langsmith_project,
                              metadata={"workspace_id": str(grant.workspace_id)})

    def advance(self, message: StepMessage, campaign_id: UUID, *, payment: ConfirmedPayment | None = None) -> Reply:
        """Apply one message to the campaign's thread, at most once."""
        lease_message = {"function": self.function, "message": message.model_dump(mode="json", exclude_none=True)}
        try:
            grant = self.threads.acquire(campaign_id, owner=self.instance, seconds=self.settings.lease_seconds,
                                         message=lease_message)
        except LeaseBusy as exc:
            wait = max(self.settings.busy_retry_after_seconds, min(int(exc.retry_after_seconds) + 1,
                                                                   int(self.settings.lease_seconds) + 1))
            raise ThreadBusy(f"Campaign {campaign_id} is being advanced by another delivery.",
                             retry_after_seconds=wait) from exc
        except UnknownCampaign:
            return Reply(200, {"status": "ignored", "reason": f"campaign {campaign_id} does not exist"})
        try:
            plan = self._plan(message, grant, payment)
        except BaseException:
            self.threads.release(grant)
            raise
        if plan is None:
            self.threads.release(grant)
            self.outbox.publish(outbox_db.unpublished_for(self.threads.pool, grant.campaign_id))
            return Reply(200, {"status": "duplicate", "head": grant.head})
        trace = self._trace_of(message, grant)
        if plan.expire:
            return self._expire(grant, plan)
        return self._run(grant, plan, trace)

    def _plan(self, message: StepMessage, grant: Grant, payment: ConfirmedPayment | None) -> _Plan | None:
        """How this delivery applies to the thread, or None if it is a duplicate, stale or answers nothing."""
        if grant.status.terminal:
            return None
        pending = grant.pending_decision
        if message.kind == "start":
            if grant.head is not None or grant.status != CampaignStatus.QUEUED:
                return None
            return _Plan(graph_input={"campaign_id": str(grant.campaign_id), "workspace_id": str(grant.workspace_id),
                                      "kind": grant.kind, "brief": grant.brief, "feedback": [], "usage": []})
        if message.kind == "continue":
            if grant.status != CampaignStatus.RUNNING or grant.head != message.expected_checkpoint_id:
                return None
            return _Plan(graph_input=None)
        if pending is None:
            return None
        if message.kind == "payment_event":
            if grant.status != CampaignStatus.AWAITING_PAYMENT or payment is None:
                return None
            value = decisions.payment_answer(pending, payment, grant.campaign_id)
            if value is None:
                log.warning("payment %s does not answer campaign %s's pending %s", payment.merchant_order_id,
                            grant.campaign_id, pending["kind"])
                return None
            return _Plan(graph_input=Command(resume={pending["id"]: value}))
        if grant.status != CampaignStatus.AWAITING_DECISION:
            return None
        if message.kind == "resume":
            answer = decisions.user_answer(pending, message.decision_id, message.resume)
            if answer is None:
                return None
            return _Plan(graph_input=Command(resume={pending["id"]: answer.payload}), decision=answer)
        if message.kind != "decision_timeout" or message.decision_id != pending["id"]:
            return None
        if pending["kind"] not in HUMAN_DECISIONS or self.threads.decided_by(pending["id"]) is not None:
            return None
        applied = decisions.on_timeout(pending, policy_from_json(grant.workspace_settings or {}))
        if applied.action == "expire":
            return _Plan(graph_input=None, expire=True, decision=applied)
        return _Plan(graph_input=Command(resume={pending["id"]: applied.payload}), decision=applied)

    def _run(self, grant: Grant, plan: _Plan, trace: dict[str, str]) -> Reply:
        writes = StepWrites(self.threads.pool, Fence(str(grant.campaign_id), grant.fence))
        try:
            with Heartbeat(self.threads, grant, self.settings.lease_seconds):
                with fenced(writes), self._traced(grant, trace):
                    result = self._stream(grant, plan.graph_input)
                outcome, events = self._outcome(grant, result, trace)
                if plan.decision is not None:
                    events.insert(0, Event("decision.applied", {"id": plan.decision.id,
                                                                "action": plan.decision.action,
                                                                "source": plan.decision.source}))
                usage = [u for _, update in result.updates for u in (update or {}).get("usage") or []]
                rows = writes.commit(lambda conn: self.threads.finish(conn, grant, outcome, events, plan.decision,
                                                                      usage=usage))
        except (LeaseLost, LeaseLostAtFinish) as exc:
            writes.rollback()
            raise LeaseLost(f"Lease on campaign {grant.campaign_id} was lost before the step could finish.") from exc
        except DecisionRaced:
            writes.rollback()
            self.threads.release(grant)
            return Reply(200, {"status": "duplicate", "reason": "a user answered the decision first"})
        except UnpaidCompletion as exc:
            writes.rollback()
            reason = "Refused to complete: no completed payment of the amount due."
            self._fail(grant, reason)
            raise PermanentStepError(reason) from exc
        except MuseError as exc:
            writes.rollback()
            if exc.retryable:
                self.threads.release(grant)
                raise
            self._fail(grant, exc.message)
            raise PermanentStepError(exc.message) from exc
        except BaseException:
            writes.rollback()
            self.threads.release(grant)
            raise
        self.outbox.publish(rows)
        if outcome.status == CampaignStatus.COMPLETED:
            self._end_trace(grant.campaign_id, "completed")
        return Reply(200, {"status": outcome.status.value, "step": outcome.current_step, "head": result.head})

    def _fail(self, grant: Grant, reason: str) -> None:
        outcome = Outcome(status=CampaignStatus.FAILED, current_step=None, failure_reason=reason)
        events = [Event("campaign.failed", {"reason": reason, "function": self.function})]
        if self._commit_alone(grant, outcome, events) is not None:
            self._end_trace(grant.campaign_id, "failed", reason)

    def _end_trace(self, campaign_id: UUID, status: CampaignEnd, reason: str | None = None) -> None:
        """End the campaign's root run (the campaign has ended) and flush it before the function answers."""
        if self.tracer is None:
            return
        end_campaign_run(self.tracer, campaign_id, project=self.settings.langsmith_project, status=status,
                         reason=reason)
        flush(self.tracer, self.settings.trace_flush_seconds)

    def _commit_alone(self, grant: Grant, outcome: Outcome, events: list[Event],
                      decision: AppliedDecision | None = None) -> list[OutboxRow] | None:
        """Commit an outcome that changes no checkpoint (fenced like any step); None if a user's answer won."""
        writes = StepWrites(self.threads.pool, Fence(str(grant.campaign_id), grant.fence))
        try:
            return writes.commit(lambda conn: self.threads.finish(conn, grant, outcome, events, decision))
        except (LeaseLost, LeaseLostAtFinish) as exc:
            raise LeaseLost(f"Lease on campaign {grant.campaign_id} was lost before the step could finish.") from exc
        except DecisionRaced:
            self.threads.release(grant)
            return None

    @contextmanager
    def _traced(self, grant: Grant, trace: dict[str, str]) -> Iterator[None]:
        """Trace the graph run to LangSmith, under the campaign's root run, when tracing is configured.

        Traces are flushed before the function answers (Cloud Run throttles CPU once it has).
        """
        metadata = {"campaign_id": str(grant.campaign_id), "workspace_id": str(grant.workspace_id),
                    "function": self.function}
        with step_trace(self.tracer, trace, project=self.settings.langsmith_project, metadata=metadata,
                        flush_seconds=self.settings.trace_flush_seconds):
            yield

    def _stream(self, grant: Grant, graph_input: Any) -> RunResult:
        config: RunnableConfig = {
            "configurable": {"thread_id": str(grant.campaign_id)},
            "metadata": {"campaign_id": str(grant.campaign_id), "workspace_id": str(grant.workspace_id),
                         "function": self.function},
            "run_name": f"campaign.{self.function}",
            "recursion_limit": 100,
        }
        result = RunResult(head=grant.head)
        deps = load_step_context(self.deps, grant, default_tier=self.settings.plan_default_tier)
        # With a list of stream modes LangGraph yields (mode, chunk) pairs; its annotation does not say so.
        parts = cast(Iterator[tuple[str, Any]], self.graph.stream(
            graph_input, config, context=deps, durability="exit", interrupt_before=self.foreign_nodes,
            stream_mode=["updates", "checkpoints"]))
        for mode, chunk in parts:
            if mode == "checkpoints":
                result.head = chunk["config"]["configurable"]["checkpoint_id"]
                result.next_nodes = tuple(chunk["next"])
                continue
            for node, update in chunk.items():
                if node == "__interrupt__":
                    result.interrupts.extend(update)
                else:
                    result.updates.append((node, update))
        return result

    def _outcome(self, grant: Grant, result: RunResult, trace: dict[str, str]) -> tuple[Outcome, list[Event]]:
        events: list[Event] = []
        for node, update in result.updates:
            events.append(Event("step.completed", describe(node, update) | {"function": self.function}))
            events += [Event("plan.changed", {"node": node, **change})
                       for change in (update or {}).get("course_changes") or []]
        if result.interrupts:
            interrupt = result.interrupts[0]
            value = dict(interrupt.value)
            node = result.next_nodes[0]
            owner = self.owners[node]
            now = datetime.now(UTC)
            pending: PendingDecision = {"id": interrupt.id, "kind": value["kind"], "node": node, "function": owner,
                                        "payload": value, "requested_at": now.isoformat()}
            events.append(Event("decision.requested" if value["kind"] in HUMAN_DECISIONS else "payment.requested",
                                {"decision_id": interrupt.id, "kind": value["kind"], "payload": value}))
            if value["kind"] not in HUMAN_DECISIONS:
                return Outcome(status=CampaignStatus.AWAITING_PAYMENT, current_step=node, pending_decision=pending,
                               amount_due_paise=int(value["amount_paise"])), events
            timeout = policy_from_json(grant.workspace_settings or {}).decision_timeout_seconds
            due = now + timedelta(seconds=timeout)
            pending["expires_at"] = due.isoformat()
            message = StepMessage(kind="decision_timeout", campaign_id=grant.campaign_id,
                                  expected_checkpoint_id=result.head, decision_id=interrupt.id, trace=trace or None)
            return Outcome(status=CampaignStatus.AWAITING_DECISION, current_step=node, pending_decision=pending,
                           outbox=[item(owner, message, not_before=due)]), events
        if result.next_nodes:
            owners = {self.owners[n] for n in result.next_nodes}
            if len(owners) != 1 or self.function in owners:
                raise PermanentStepError(f"Nodes {result.next_nodes} cannot be scheduled from {self.function!r}.")
            [owner] = owners
            message = StepMessage(kind="continue", campaign_id=grant.campaign_id, expected_checkpoint_id=result.head,
                                  trace=trace or None)
            return Outcome(status=CampaignStatus.RUNNING, current_step=",".join(result.next_nodes),
                           outbox=[item(owner, message)]), events
        to_publish = sum(int((update or {}).get("publications_pending") or 0) for _, update in result.updates)
        if to_publish:
            events.append(Event("campaign.publishing", {"pending": to_publish}))
            return Outcome(status=CampaignStatus.RUNNING, current_step=PUBLISHING_STEP), events
        events.append(Event("campaign.completed", {}))
        return Outcome(status=CampaignStatus.COMPLETED, current_step=None), events

    def _expire(self, grant: Grant, plan: _Plan) -> Reply:
        assert plan.decision is not None
        outcome = Outcome(status=CampaignStatus.EXPIRED,
                          current_step=grant.pending_decision["node"] if grant.pending_decision else None,
                          failure_reason="The decision timed out and the workspace rule does not auto-approve it.")
        committed = self._commit_alone(grant, outcome, [Event("decision.expired", {"id": plan.decision.id,
                                                                                     **plan.decision.payload})],
                                       plan.decision)
        if committed is None:
            return Reply(200, {"status": "duplicate", "reason": "a user answered the decision first"})
        self._end_trace(grant.campaign_id, "expired", outcome.failure_reason)
        return Reply(200, {"status": "expired"})

    def _on_failure_callback(self, callback: FailureCallback) -> Reply:
        """QStash gave up on a message.

        A message that met a busy thread is re-sent for after the lease ends (its holder may have
        died); anything else marks the campaign failed with the last answer as the reason.
        """
        try:
            source = StepMessage.model_validate_json(callback.source())
        except (ValueError, ValidationError):
            return Reply(200, {"status": "ignored", "reason": "failure callback for an unknown message"})
        campaign_id = source.campaign_id
        if callback.status == ThreadBusy.http_status:
            lease = self.threads.lease(campaign_id) if campaign_id is not None else None
            if lease is None and source.kind != "payment_event":
                return Reply(200, {"status": "ignored", "reason": "campaign does not exist"})
            fence, left = (lease[1], lease[2]) if lease else (0, 0.0)
            due = datetime.now(UTC) + timedelta(seconds=left + 1)
            self.outbox.send(campaign_id, [item(self.function, source, not_before=due,
                                                dedup_suffix=f"-afterlease-{fence}")])
            return Reply(200, {"status": "rescheduled", "after_seconds": round(left + 1, 1)})
        reason = (f"Step {self.function!r} failed after {callback.retried if callback.retried is not None else '?'} "
                  f"retries (last answer HTTP {callback.status}): {callback.answer()}")
        if campaign_id is not None:
            self.threads.fail(campaign_id, reason)
            self._end_trace(campaign_id, "failed", reason)
        return Reply(200, {"status": "failed", "reason": reason})
