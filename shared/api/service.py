"""What the frontend API does, independent of HTTP: every read and write scoped to the caller's workspace."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode
from uuid import UUID

from pydantic import ValidationError

from shared.api.listing import CampaignQuery, Cursor
from shared.api.models import (
    CampaignAccepted,
    CampaignCostView,
    CampaignPage,
    CampaignSummary,
    CampaignView,
    Checkout,
    CostNodeLine,
    CreateCampaign,
    Decision,
    DecisionAccepted,
    Money,
    PublicationView,
    UsageView,
)
from shared.auth import Principal, choose_workspace
from shared.campaigns.schemas import CHANNEL_SCHEMAS, Strategy
from shared.db import audit
from shared.db import budgets as budgets_db
from shared.db import campaigns as db
from shared.db import costs as costs_db
from shared.db import outbox as outbox_db
from shared.db import payments as paydb
from shared.db import publications as publications_db
from shared.db.pool import Conn, Pool, as_runtime, as_service, as_user
from shared.domain import CampaignStatus
from shared.errors import Conflict, InvalidRequest, NotFound, Unprocessable
from shared.integrations.phonepe import OrderAlreadyExists, PhonePeClient
from shared.messages import StepMessage
from shared.models.pricing import micro_usd_to_inr, micro_usd_to_usd
from shared.outbox import Outbox, item
from shared.payments.confirmation import reconcile_message
from shared.plans import PlanGate, rate_limiter
from shared.publishing.scheduling import waits
from shared.queue import StepQueue
from shared.settings import Settings
from shared.tracing import campaign_trace, new_campaign_id, start_campaign_run

if TYPE_CHECKING:
    import langsmith

STRATEGY_EDITABLE = {"positioning", "key_messages", "budget_inr", "budget_split"}


def body_fingerprint(body: CreateCampaign) -> str:
    """SHA-256 of the validated body as canonical JSON: key order, spacing and defaults do not change it."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class Api:
    """The API's dependencies for one instance."""

    settings: Settings
    pool: Pool
    queue: StepQueue
    phonepe_factory: Callable[[], PhonePeClient]
    """Builds the PhonePe client on first checkout (keeps cold start light)."""
    tracer: langsmith.Client | None = None
    """Starts each campaign's root LangSmith run (`shared.runtime.wiring.langsmith_client`); None: untraced."""

    @cached_property
    def phonepe(self) -> PhonePeClient:
        return self.phonepe_factory()

    def _workspace(self, conn: Conn, principal: Principal, requested: str | None) -> str:
        return choose_workspace(db.memberships(conn), principal, requested)

    @cached_property
    def outbox(self) -> Outbox:
        return Outbox(pool=self.pool, queue=self.queue)

    @cached_property
    def plans(self) -> PlanGate:
        """The plan checks of a campaign start (credits left, starts per day)."""
        return PlanGate(pool=self.pool, settings=self.settings, limiter=rate_limiter(self.settings))

    def create_campaign(self, principal: Principal, body: CreateCampaign, *, idempotency_key: str | None,
                        workspace: str | None) -> tuple[CampaignAccepted, bool]:
        """Create the campaign and its first step message in one transaction.

        A repeated Idempotency-Key with the same body (by `body_fingerprint`) is a no-op answering the first
        campaign; with a different body it is `Unprocessable`.

        The message is published after the commit, so the planner never meets a campaign that is not there yet.
        A new campaign is admitted by the workspace's plan in the same transaction (`QuotaExceeded` when its
        credits or today's starts are used up), so a refused start leaves nothing and a retry is not counted.
        """
        rows = []
        with as_user(self.pool, principal.claims) as conn:
            workspace_id = self._workspace(conn, principal, workspace)
            fingerprint = body_fingerprint(body) if idempotency_key is not None else None
            campaign_id, created, stored = db.insert_campaign(
                conn, campaign_id=new_campaign_id(), workspace_id=workspace_id, kind=body.kind,
                brief=body.brief.model_dump(mode="json", exclude_none=True), idempotency_key=idempotency_key,
                fingerprint=fingerprint)
            if not created and stored is not None and stored != fingerprint:
                raise Unprocessable(f"`Idempotency-Key` {idempotency_key!r} was already used with a different body "
                                    f"(campaign {campaign_id}); send a new key for a new campaign, or the same "
                                    "body to retry.",
                                    details={"field": "Idempotency-Key", "campaign_id": str(campaign_id)})
            if created:
                self.plans.admit_campaign_start(conn, workspace_id)
                as_runtime(conn)
                db.add_event(conn, campaign_id=campaign_id, workspace_id=workspace_id, type_="campaign.created",
                             data={"kind": body.kind, "title": body.brief.title})
                trace = campaign_trace(campaign_id, project=self.settings.langsmith_project,
                                       metadata={"workspace_id": workspace_id}) if self.tracer else {}
                start = StepMessage(kind="start", campaign_id=campaign_id, trace=trace or None)
                rows = outbox_db.add(conn, campaign_id, [item("planner", start)])
        if created:
            start_campaign_run(self.tracer, campaign_id, project=self.settings.langsmith_project,
                               inputs={"kind": body.kind, "brief": body.brief.model_dump(mode="json",
                                                                                          exclude_none=True)},
                               metadata={"workspace_id": str(workspace_id), "kind": body.kind},
                               flush_seconds=self.settings.trace_flush_seconds)
        self.outbox.publish(rows)
        base = f"/api/v1/campaigns/{campaign_id}"
        accepted = CampaignAccepted(id=campaign_id, status="queued",
                                    links={"self": base, "events": f"{base}/events", "decisions": f"{base}/decisions"})
        return accepted, created

    def _visible(self, conn: Conn, campaign_id: UUID) -> dict[str, Any]:
        row = db.get_campaign(conn, campaign_id)
        if row is None:
            raise NotFound(f"Campaign {campaign_id} does not exist in your workspaces.")
        return row

    def get_campaign(self, principal: Principal, campaign_id: UUID) -> CampaignView:
        """Status, current step, pending decision, artifacts and payment of one campaign."""
        with as_user(self.pool, principal.claims) as conn:
            row = self._visible(conn, campaign_id)
            artifacts = db.campaign_artifacts(conn, campaign_id)
            payment = db.latest_payment(conn, campaign_id)
            usage = db.campaign_usage(conn, campaign_id)
            cost = self._cost(conn, row)
            publications = publications_db.of_campaign(conn, campaign_id)
        pending = row["pending_decision"]
        totals = {k: sum(line[k] for line in usage)
                  for k in ("prompt_tokens", "cached_tokens", "output_tokens", "thinking_tokens", "calls")}
        return CampaignView(
            id=row["id"], kind=row["kind"], status=row["status"], current_step=row["current_step"],
            pending_decision=None if not pending else {k: pending.get(k) for k in
                                                       ("id", "kind", "payload", "requested_at", "expires_at")},
            failure_reason=row["failure_reason"], brief=row["brief"], artifacts=artifacts, payment=payment,
            publications=[PublicationView.model_validate(dict(p)) for p in publications],
            waiting_for=waits(publications), usage=UsageView(**totals, by_node=usage), cost=cost,
            created_at=row["created_at"], updated_at=row["updated_at"],
        )

    def _cost(self, conn: Conn, row: dict[str, Any]) -> CampaignCostView:
        """The campaign's priced calls by node and model, its cap and what is held (`shared.db.costs`)."""
        workspace_id, rate = str(row["workspace_id"]), self.settings.usd_inr_rate

        def money(micro: int) -> Money:
            return Money(micro_usd=micro, usd=micro_usd_to_usd(micro), inr=micro_usd_to_inr(micro, rate))

        lines = costs_db.by_node(conn, workspace_id, row["created_at"], datetime.now(UTC) + timedelta(days=1),
                                 campaign_id=str(row["id"]))
        spend = budgets_db.campaign_spend(conn, str(row["id"]))
        cap = spend["cap_micro_usd"] if spend["cap_micro_usd"] is not None else \
            budgets_db.caps(conn, workspace_id)["campaign_cap_micro_usd"]
        return CampaignCostView(
            total=money(sum(int(line["cost_micro_usd"]) for line in lines)),
            cap=money(cap if cap is not None else round(self.settings.budget_campaign_cap_usd * 1_000_000)),
            reserved=money(spend["reserved"]),
            by_node=[CostNodeLine(node=line["node"], model=line["model"], kind=line["kind"], calls=line["calls"],
                                  cost=money(int(line["cost_micro_usd"])), unpriced=line["unpriced"])
                     for line in lines])

    def decide(self, principal: Principal, campaign_id: UUID, decision: Decision) -> DecisionAccepted:
        """Record the answer to the pending decision and resume the graph through QStash."""
        with as_user(self.pool, principal.claims) as conn:
            row = self._visible(conn, campaign_id)
        pending = row["pending_decision"] or {}
        if row["status"] != "awaiting_decision" or not pending:
            raise Conflict(f"Campaign {campaign_id} has no pending decision (status {row['status']!r}).")
        if decision.decision_id != pending["id"]:
            raise Conflict(f"Decision {decision.decision_id!r} is not pending; the pending one is {pending['id']!r}.")
        edits = self._validated_edits(pending["kind"], pending.get("payload", {}), decision)
        resume = {"action": decision.action, "feedback": decision.feedback, "edits": edits, "source": "user",
                  "decision_id": pending["id"]}
        message = StepMessage(kind="resume", campaign_id=campaign_id, decision_id=pending["id"], resume=resume)
        with as_service(self.pool) as svc:
            earlier = db.record_user_decision(svc, decision_id=pending["id"], campaign_id=campaign_id,
                                              workspace_id=row["workspace_id"], kind=pending["kind"],
                                              action=decision.action, payload=resume, user_id=principal.user_id)
            if earlier is None:
                db.add_event(svc, campaign_id=campaign_id, workspace_id=row["workspace_id"], type_="decision.received",
                             data={"id": pending["id"], "action": decision.action, "feedback": decision.feedback})
                audit.record(svc, workspace_id=str(row["workspace_id"]), actor=str(principal.user_id),
                             action="decision.recorded", target_type="decision", target_id=pending["id"],
                             details={"campaign_id": str(campaign_id), "kind": pending["kind"],
                                      "action": decision.action},
                             key=f"decision:{pending['id']}")
                rows = outbox_db.add(svc, campaign_id, [item(pending["function"], message)])
            elif earlier["source"] == "user" and earlier["action"] == decision.action:
                again = message.model_copy(update={"resume": earlier["payload"]})
                rows = outbox_db.add(svc, campaign_id, [item(pending["function"], again,
                                                             dedup_suffix=f"-again-{uuid.uuid4().hex[:8]}")])
            else:
                raise Conflict(f"Decision {pending['id']!r} was already answered ({earlier['action']!r}).")
        self.outbox.publish(rows)
        return DecisionAccepted(decision_id=pending["id"], action=decision.action)

    @staticmethod
    def _validated_edits(kind: str, payload: dict[str, Any], decision: Decision) -> dict[str, Any] | None:
        if decision.action != "edit" or decision.edits is None:
            return None
        if kind == "strategy_approval":
            unknown = set(decision.edits) - STRATEGY_EDITABLE
            if unknown:
                raise InvalidRequest(f"Cannot edit {sorted(unknown)}; editable fields: {sorted(STRATEGY_EDITABLE)}.")
            base = {"rationale": "edited by a human", **payload}
            try:
                Strategy.model_validate({k: base[k] for k in (*STRATEGY_EDITABLE, "rationale") if k in base}
                                        | decision.edits)
            except ValidationError as exc:
                raise InvalidRequest(f"Invalid strategy edits: {exc.errors(include_url=False)}") from exc
            return decision.edits
        if kind == "qa_review":
            for channel, content in decision.edits.items():
                schema = CHANNEL_SCHEMAS.get(channel)
                if schema is None:
                    raise InvalidRequest(f"Unknown channel {channel!r}; use one of {sorted(CHANNEL_SCHEMAS)}.")
                try:
                    schema.model_validate(content)
                except ValidationError as exc:
                    raise InvalidRequest(f"Invalid {channel} copy: {exc.errors(include_url=False)}") from exc
            return decision.edits
        raise InvalidRequest(f"A {kind!r} decision cannot be edited.")

    def checkout(self, principal: Principal, campaign_id: UUID) -> Checkout:
        """Create (once) the PhonePe order funding the campaign and return where to pay."""
        with as_user(self.pool, principal.claims) as conn:
            row = self._visible(conn, campaign_id)
        pending = row["pending_decision"] or {}
        if row["status"] != "awaiting_payment" or pending.get("kind") != "payment":
            raise Conflict(f"Campaign {campaign_id} is {row['status']!r}; checkout opens once it awaits payment.")
        amount = int(pending["payload"]["amount_paise"])
        redirect = f"{self.settings.checkout_redirect_url}?{urlencode({'campaign': str(campaign_id)})}"
        with as_service(self.pool) as svc:
            current = paydb.open_payment(svc, campaign_id)
            if current is not None and current["state"] == "completed":
                raise Conflict(f"Campaign {campaign_id} is already paid.")
            if current is not None and current["state"] == "pending" and current["redirect_url"]:
                return Checkout(merchant_order_id=current["merchant_order_id"], redirect_url=current["redirect_url"],
                                amount_paise=current["amount_paise"], state="pending")
            if current is not None:
                paydb.abandon_payment(svc, current["merchant_order_id"])
            for _ in range(3):
                order_id, _attempt = paydb.new_payment(svc, campaign_id=campaign_id, workspace_id=row["workspace_id"],
                                                       amount_paise=amount)
                try:
                    order = self.phonepe.create_order(
                        merchant_order_id=order_id, amount_paise=amount, redirect_url=redirect,
                        meta={"udf1": str(campaign_id), "udf2": str(row["workspace_id"])})
                except OrderAlreadyExists:
                    paydb.abandon_payment(svc, order_id)
                    continue
                paydb.payment_created(svc, order_id, phonepe_order_id=order.order_id, redirect_url=order.redirect_url)
                db.add_event(svc, campaign_id=campaign_id, workspace_id=row["workspace_id"], type_="payment.created",
                             data={"merchant_order_id": order_id, "amount_paise": amount})
                audit.record(svc, workspace_id=str(row["workspace_id"]), actor=str(principal.user_id),
                             action="payment.created", target_type="payment", target_id=order_id,
                             details={"campaign_id": str(campaign_id), "amount_paise": amount},
                             key=f"payment:{order_id}:created")
                due = datetime.now(UTC) + timedelta(seconds=self.settings.payment_recheck_seconds[0])
                rows = outbox_db.add(svc, campaign_id, [item("payments", reconcile_message(order_id), not_before=due)])
                break
            else:
                raise Conflict("Could not create a PhonePe order after 3 attempts; try again.")
        self.outbox.publish(rows)
        return Checkout(merchant_order_id=order_id, redirect_url=order.redirect_url, amount_paise=amount,
                        state=order.state.lower())

    def events(self, principal: Principal, campaign_id: UUID, last_event_id: int) -> Iterator[str]:
        """SSE frames of the campaign's events after `last_event_id`, until it ends or the stream times out."""
        with as_user(self.pool, principal.claims) as conn:
            self._visible(conn, campaign_id)
        deadline = time.monotonic() + self.settings.sse_max_seconds
        cursor = last_event_id
        yield "retry: 1000\n\n"
        while True:
            with as_user(self.pool, principal.claims) as conn:
                rows = db.events_after(conn, campaign_id, cursor)
                status = self._visible(conn, campaign_id)["status"]
            for r in rows:
                cursor = r["id"]
                data = {"type": r["type"], "data": r["data"], "at": r["created_at"].isoformat()}
                yield f"id: {r['id']}\nevent: {r['type']}\ndata: {json.dumps(data, default=str)}\n\n"
            if not rows and (CampaignStatus(status).terminal or time.monotonic() > deadline):
                return
            if not rows:
                time.sleep(0.25)

    def list_campaigns(self, principal: Principal, query: CampaignQuery, *, workspace: str | None) -> CampaignPage:
        """One page of the workspace's campaigns, newest first; `next_cursor` is null on the last page.

        One row more than the page is read, so a page that ends exactly at the last campaign says so
        instead of sending the client to an empty page.
        """
        with as_user(self.pool, principal.claims) as conn:
            workspace_id = self._workspace(conn, principal, workspace)
            rows = db.list_campaigns(conn, workspace_id=workspace_id, statuses=query.statuses, kinds=query.kinds,
                                     after=query.after, limit=query.limit + 1)
        items = [CampaignSummary.model_validate(row) for row in rows[:query.limit]]
        if len(rows) <= query.limit:
            return CampaignPage(items=items, next_cursor=None)
        return CampaignPage(items=items, next_cursor=Cursor(items[-1].created_at, items[-1].id).encode())
