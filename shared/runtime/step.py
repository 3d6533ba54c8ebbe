"""One delivery to a step function: verify, lease, check the head, run, save, publish the next step.

A step function owns some nodes of the campaign graph. It runs the graph from the thread's head
until the next node belongs to another function, an `interrupt()` pauses it, or it ends. The
outcome, its events and the next message (the outbox) are written in one fenced transaction;
the message is then published with a deduplication id derived from thread and checkpoint, so
duplicate or concurrent deliveries advance a thread once.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import langsmith
from langgraph.types import Command
from pydantic import ValidationError
from qstash import Receiver

from shared.campaigns.events import describe
from shared.campaigns.graph import NODE_OWNERS
from shared.db.payments import Payment, PaymentRepository
from shared.db.threads import Event, Grant, LeaseBusy, Outcome, ThreadRepository, UnknownCampaign
from shared.db.workspaces import campaign_context, policy_from_json
from shared.deps import Deps
from shared.errors import MuseError, PermanentStepError, ThreadBusy
from shared.integrations.phonepe import PhonePeClient
from shared.queue import StepQueue, verify_delivery
from shared.runtime.checkpointer import Fence, LeaseLost, fenced
from shared.runtime.messages import StepMessage
from shared.settings import Settings

log = logging.getLogger("muse.step")

TERMINAL = frozenset({"completed", "failed", "expired"})
HUMAN_DECISIONS = frozenset({"strategy_approval", "qa_review"})


@dataclass(frozen=True)
class Reply:
    """What the function answers QStash."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


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
    decision: tuple[str, str, str, dict[str, Any], str] | None = None
    expire: bool = False


class StepRuntime:
    """The per-instance engine behind every step function."""

    def __init__(self, *, function: str, settings: Settings, graph: Any, deps: Deps, threads: ThreadRepository,
                 queue: StepQueue, receiver: Receiver, payments: PaymentRepository | None = None,
                 phonepe: PhonePeClient | None = None, owners: dict[str, str] | None = None,
                 tracer: langsmith.Client | None = None) -> None:
        self.function = function
        self.owners = owners or NODE_OWNERS
        self.tracer = tracer
        self.settings = settings
        self.graph = graph
        self.deps = deps
        self.threads = threads
        self.queue = queue
        self.receiver = receiver
        self.payments = payments
        self.phonepe = phonepe
        self.url = settings.function_url(function)
        self.instance = f"{function}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.foreign_nodes = [n for n, owner in self.owners.items() if owner != function]

    def handle(self, body: bytes, signature: str | None) -> Reply:
        """Handle one QStash delivery (raises `MuseError`s for the edge to map)."""
        verify_delivery(self.receiver, body=body, signature=signature, url=self.url)
        try:
            raw = json.loads(body)
        except ValueError as exc:
            raise PermanentStepError(f"Step message is not JSON: {exc}") from exc
        if isinstance(raw, dict) and "sourceMessageId" in raw and "dlqId" in raw:
            return self._on_failure_callback(raw)
        try:
            message = StepMessage.model_validate(raw)
        except ValidationError as exc:
            raise PermanentStepError(f"Invalid step message: {exc.errors(include_url=False)}") from exc
        if message.kind == "payment_event":
            confirmed = self._confirm_payment(message)
            if confirmed is None:
                return Reply(200, {"status": "ignored", "reason": "payment not confirmed"})
            message = confirmed
        if message.campaign_id is None:
            raise PermanentStepError(f"A {message.kind!r} message needs `campaign_id`.")
        return self._advance(message)

    def _advance(self, message: StepMessage) -> Reply:
        assert message.campaign_id is not None
        try:
            grant = self.threads.acquire(message.campaign_id, owner=self.instance, seconds=self.settings.lease_seconds)
        except LeaseBusy as exc:
            raise ThreadBusy(f"Campaign {message.campaign_id} is being advanced by another delivery.",
                             retry_after_seconds=self.settings.busy_retry_after_seconds) from exc
        except UnknownCampaign as exc:
            raise ThreadBusy(f"Campaign {message.campaign_id} is not visible (yet); its creation may still be "
                             "committing.", retry_after_seconds=self.settings.busy_retry_after_seconds) from exc
        try:
            plan = self._plan(message, grant)
        except BaseException:
            self.threads.release(grant)
            raise
        if plan is None:
            self.threads.release(grant)
            self._republish(grant)
            return Reply(200, {"status": "duplicate", "head": grant.head})
        if plan.expire:
            return self._expire(grant, plan)
        return self._run(grant, plan)

    def _plan(self, message: StepMessage, grant: Grant) -> _Plan | None:
        """How this delivery applies to the thread, or None if it is a duplicate or stale."""
        if grant.status in TERMINAL:
            return None
        pending = grant.pending_decision or {}
        if message.kind == "start":
            if grant.head is not None or grant.status != "queued":
                return None
            return _Plan(graph_input={"campaign_id": str(grant.campaign_id), "workspace_id": str(grant.workspace_id),
                                      "kind": grant.kind, "brief": grant.brief, "feedback": [], "usage": []})
        if message.kind == "continue":
            if grant.status != "running" or grant.head != message.expected_checkpoint_id:
                return None
            return _Plan(graph_input=None)
        if message.kind == "resume" and pending.get("kind") == "payment":
            if grant.status != "awaiting_payment" or message.resume is None:
                return None
            return _Plan(graph_input=Command(resume=message.resume))
        if pending.get("id") != message.decision_id or grant.status != "awaiting_decision":
            return None
        if message.kind == "resume":
            resume = message.resume or {}
            decision = (pending["id"], pending["kind"], resume.get("action", "approve"), resume, "user")
            return _Plan(graph_input=Command(resume=resume), decision=decision)
        if self.threads.decided_by(pending["id"]) is not None:
            return None
        policy = policy_from_json(grant.workspace_settings or {})
        limit = policy.auto_approve_max_budget_inr
        budget = pending.get("payload", {}).get("budget_inr")
        if pending["kind"] == "strategy_approval" and limit is not None and budget is not None and budget <= limit:
            resume = {"action": "approve", "source": "timeout", "decision_id": pending["id"]}
            return _Plan(graph_input=Command(resume=resume),
                         decision=(pending["id"], pending["kind"], "approve", resume, "timeout"))
        reason = {"rule": "expire", "budget_inr": budget, "auto_approve_max_budget_inr": limit}
        return _Plan(graph_input=None, expire=True,
                     decision=(pending["id"], pending["kind"], "expire", reason, "timeout"))

    def _run(self, grant: Grant, plan: _Plan) -> Reply:
        try:
            with fenced(Fence(str(grant.campaign_id), grant.fence)), self._traced(grant):
                result = self._stream(grant, plan.graph_input)
        except LeaseLost:
            raise
        except MuseError as exc:
            if exc.retryable:
                self.threads.release(grant)
                raise
            self._finish(grant, Outcome(status="failed", current_step=None, failure_reason=exc.message),
                         [Event("campaign.failed", {"reason": exc.message, "function": self.function})])
            raise PermanentStepError(exc.message) from exc
        except BaseException:
            self.threads.release(grant)
            raise
        outcome, events = self._outcome(grant, result)
        if plan.decision is not None:
            events.insert(0, Event("decision.applied", {"id": plan.decision[0], "action": plan.decision[2],
                                                        "source": plan.decision[4]}))
        usage = [u for _, update in result.updates for u in (update or {}).get("usage") or []]
        self._finish(grant, outcome, events, plan.decision, usage=usage)
        self._publish(grant, outcome.outbox)
        return Reply(200, {"status": outcome.status, "step": outcome.current_step, "head": result.head})

    @contextmanager
    def _traced(self, grant: Grant) -> Iterator[None]:
        """Trace the graph run to LangSmith when configured, flushing before the function answers.

        Cloud Run throttles CPU once a response is sent, so traces are flushed inside the request.
        """
        if self.tracer is None:
            yield
            return
        metadata = {"campaign_id": str(grant.campaign_id), "workspace_id": str(grant.workspace_id),
                    "function": self.function}
        try:
            with langsmith.tracing_context(client=self.tracer, enabled=True, metadata=metadata,
                                           project_name=self.settings.langsmith_project):
                yield
        finally:
            self.tracer.flush(timeout=5)

    def _stream(self, grant: Grant, graph_input: Any) -> RunResult:
        config = {
            "configurable": {"thread_id": str(grant.campaign_id)},
            "metadata": {"campaign_id": str(grant.campaign_id), "workspace_id": str(grant.workspace_id),
                         "function": self.function},
            "run_name": f"campaign.{self.function}",
            "recursion_limit": 100,
        }
        result = RunResult(head=grant.head)
        deps = self.deps
        if deps.workspaces is not None:
            context = campaign_context(str(grant.workspace_id), grant.workspace_settings, grant.brand_kit,
                                       user_id=str(grant.created_by) if grant.created_by else None)
            if deps.plans is not None:
                context = replace(context, agent_performance=deps.plans.performance(str(grant.workspace_id),
                                                                                     grant.kind))
            model = deps.model
            if context.settings.get("models") and hasattr(model, "for_workspace"):
                model = model.for_workspace(context.settings)
            deps = replace(deps, campaign=context, model=model)
        for mode, chunk in self.graph.stream(graph_input, config, context=deps, durability="exit",
                                             interrupt_before=self.foreign_nodes,
                                             stream_mode=["updates", "checkpoints"]):
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

    def _outcome(self, grant: Grant, result: RunResult) -> tuple[Outcome, list[Event]]:
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
            pending = {"id": interrupt.id, "kind": value["kind"], "node": node, "function": owner,
                       "payload": value, "requested_at": now.isoformat()}
            outbox = None
            if value["kind"] in HUMAN_DECISIONS:
                timeout = policy_from_json(grant.workspace_settings or {}).decision_timeout_seconds
                pending["expires_at"] = (now + timedelta(seconds=timeout)).isoformat()
                message = StepMessage(kind="decision_timeout", campaign_id=grant.campaign_id,
                                      expected_checkpoint_id=result.head, decision_id=interrupt.id)
                outbox = self._outbox(owner, message, delay_seconds=timeout)
                status, event = "awaiting_decision", "decision.requested"
            else:
                status, event = "awaiting_payment", "payment.requested"
            events.append(Event(event, {"decision_id": interrupt.id, "kind": value["kind"], "payload": value}))
            return Outcome(status=status, current_step=node, pending_decision=pending, outbox=outbox), events
        if result.next_nodes:
            owners = {self.owners[n] for n in result.next_nodes}
            if len(owners) != 1 or self.function in owners:
                raise PermanentStepError(f"Nodes {result.next_nodes} cannot be scheduled from {self.function!r}.")
            [owner] = owners
            message = StepMessage(kind="continue", campaign_id=grant.campaign_id, expected_checkpoint_id=result.head)
            step = ",".join(result.next_nodes)
            return Outcome(status="running", current_step=step, outbox=self._outbox(owner, message)), events
        events.append(Event("campaign.completed", {}))
        return Outcome(status="completed", current_step=None), events

    @staticmethod
    def _outbox(function: str, message: StepMessage, *, delay_seconds: int | None = None) -> dict[str, Any]:
        return {"function": function, "message": message.model_dump(mode="json", exclude_none=True),
                "delay_seconds": delay_seconds, "dedup_id": message.dedup_id()}

    def _finish(self, grant: Grant, outcome: Outcome, events: list[Event],
                decision: tuple[str, str, str, dict[str, Any], str] | None = None, *,
                usage: list[dict[str, Any]] | None = None) -> None:
        if not self.threads.finish(grant, outcome, events, decision, usage=usage or []):
            raise LeaseLost(f"Lease on campaign {grant.campaign_id} was lost before the step could finish.")

    def _publish(self, grant: Grant, outbox: dict[str, Any] | None) -> None:
        if not outbox:
            return
        message = StepMessage.model_validate(outbox["message"])
        self.queue.publish(outbox["function"], message, delay_seconds=outbox.get("delay_seconds"))

    def _republish(self, grant: Grant) -> None:
        """A duplicate delivery re-sends the outbox of the thread's current head.

        The step that wrote it may have died between committing and publishing; QStash deduplicates
        the copy if it did publish. Only the head's own continuation is re-sent, so a stale outbox
        can never loop.
        """
        if grant.outbox and grant.outbox["message"].get("expected_checkpoint_id") == grant.head:
            self._publish(grant, grant.outbox)

    def _expire(self, grant: Grant, plan: _Plan) -> Reply:
        assert plan.decision is not None
        outcome = Outcome(status="expired", current_step=(grant.pending_decision or {}).get("node"),
                          failure_reason="The decision timed out and the workspace rule does not auto-approve it.")
        self._finish(grant, outcome, [Event("decision.expired", {"id": plan.decision[0], **plan.decision[3]})],
                     plan.decision)
        return Reply(200, {"status": "expired"})

    def _confirm_payment(self, message: StepMessage) -> StepMessage | None:
        """Turn a webhook trigger into a resume only if Order Status says COMPLETED with the expected amount."""
        if self.payments is None or self.phonepe is None or message.payment is None:
            raise PermanentStepError(f"Function {self.function!r} does not handle payment events.")
        payment = self.payments.by_merchant_order(message.payment.merchant_order_id)
        if payment is None:
            log.warning("webhook for unknown merchant order %s", message.payment.merchant_order_id)
            return None
        status = self.phonepe.order_status(payment.merchant_order_id)
        if status is None:
            self.payments.event(payment, "payment.unverified", {"merchant_order_id": payment.merchant_order_id,
                                                                 "reason": "PhonePe does not know this order"})
            return None
        seen = {"merchant_order_id": payment.merchant_order_id, "state": status.state,
                "amount_paise": status.amount_paise, "expected_amount_paise": payment.amount_paise}
        if status.state == "COMPLETED" and status.amount_paise == payment.amount_paise:
            self.payments.mark(payment, "completed", phonepe_order_id=status.order_id, event="payment.completed",
                               data=seen)
            resume = {"status": "paid", "merchant_order_id": payment.merchant_order_id,
                      "amount_paise": status.amount_paise, "phonepe_order_id": status.order_id}
            return StepMessage(kind="resume", campaign_id=payment.campaign_id, resume=resume)
        if status.state == "FAILED":
            self.payments.mark(payment, "failed", phonepe_order_id=status.order_id, event="payment.failed", data=seen)
            return None
        if status.state != "PENDING" or message.payment.state == "COMPLETED":
            self.payments.event(payment, "payment.mismatch", seen)
        self._schedule_recheck(message, payment)
        return None

    def _schedule_recheck(self, message: StepMessage, payment: Payment) -> None:
        """Confirm again later: PhonePe's order status may lag its webhook, and webhooks may never come."""
        assert message.payment is not None
        schedule = self.settings.payment_recheck_seconds
        attempt = message.payment.recheck
        if attempt >= len(schedule):
            self.payments.event(payment, "payment.unconfirmed", {"merchant_order_id": payment.merchant_order_id,
                                                                 "rechecks": attempt})
            return
        recheck = message.payment.model_copy(update={"recheck": attempt + 1})
        self.queue.publish(self.function, StepMessage(kind="payment_event", payment=recheck),
                           delay_seconds=schedule[attempt])

    def _on_failure_callback(self, raw: dict[str, Any]) -> Reply:
        """QStash gave up on a message: mark its campaign failed with the last answer as the reason."""
        try:
            source = StepMessage.model_validate_json(base64.b64decode(raw.get("sourceBody") or ""))
        except (ValueError, ValidationError):
            return Reply(200, {"status": "ignored", "reason": "failure callback for an unknown message"})
        if raw.get("status") == ThreadBusy.http_status:
            return Reply(200, {"status": "ignored", "reason": "gave up on a busy thread; its holder continues it"})
        answer = base64.b64decode(raw.get("body") or "").decode("utf-8", "replace")[:500]
        reason = (f"Step {self.function!r} failed after {raw.get('retried', '?')} retries "
                  f"(last answer HTTP {raw.get('status')}): {answer}")
        if source.campaign_id is not None:
            self.threads.fail(source.campaign_id, reason)
        return Reply(200, {"status": "failed", "reason": reason})
