"""`/api/v1/plan/subscription`: pay the workspace's plan tier monthly by UPI Autopay (PhonePe v2 mandates).

- `POST` `{tier}` (owners; `pro` or `agency`): sets up a mandate for the tier's monthly price plus GST and
  answers with `intent_url`, where the payer approves it in their UPI app. The same request again while it
  waits for approval returns the same mandate; a workspace with a mandate in force gets a 409.
- `GET`: the newest mandate (null when there is none) with its cycles, and the tier in force.
- `DELETE` (owners): cancels the mandate at PhonePe; the tier stays until the paid period ends, then free.

The tier itself changes only when PhonePe confirms (`shared.subscriptions`): active → the tier; a cycle
paid → renewed; unpaid after grace, or a cancelled mandate's period over → free.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

import flask
from pydantic import BaseModel, ConfigDict, Field

from shared.api.spec import WORKSPACE_HEADER, errors, json_content
from shared.auth import Principal, choose_workspace, verify_token
from shared.db.campaigns import memberships
from shared.db.plans import workspace_plan
from shared.db.pool import Pool, as_user, create_pool
from shared.db.subscriptions import CycleRow, CycleState, SubscriptionRow, SubscriptionState
from shared.db.workspace_data import member_role
from shared.errors import Forbidden
from shared.http import Route, json_response, parse_body
from shared.plans import TierName, tier
from shared.settings import Settings, get_settings
from shared.subscriptions.lifecycle import SubscriptionService
from shared.subscriptions.wiring import build_subscription_service

_PREFIX = r"^(?:/api)?/v1"
PaidTier = Literal["pro", "agency"]


class SubscriptionRequest(BaseModel):
    """`POST /api/v1/plan/subscription`: the paid tier to subscribe to."""

    model_config = ConfigDict(extra="forbid")

    tier: PaidTier = Field(description="`pro` or `agency` (free needs no mandate).")


class CycleView(BaseModel):
    """One attempt to collect one month: notified, then redeemed at least 24 h later."""

    cycle: int
    attempt: int
    merchant_order_id: str
    state: CycleState
    amount_paise: int
    period_start: datetime
    period_end: datetime
    redeem_after: datetime | None
    completed_at: datetime | None
    failed_at: datetime | None
    error_code: str | None
    invoice_id: str | None


class SubscriptionView(BaseModel):
    """A UPI Autopay mandate for a plan tier."""

    id: str
    workspace_id: str
    tier: PaidTier
    state: SubscriptionState = Field(description="`pending` until the payer approves at `intent_url`; `active`; "
                                                 "`grace` after a failed month; `cancelled` (the tier stays until "
                                                 "`downgrade_at`); `lapsed`, `ended` or `failed` when over.")
    merchant_subscription_id: str
    amount_paise: int = Field(description="The monthly debit: the tier's price plus GST, in paise.")
    monthly_ai_credits: int
    intent_url: str | None = Field(description="Where the payer approves the mandate (a UPI app link).")
    created_at: datetime
    activated_at: datetime | None
    paid_through: datetime | None = Field(description="End of the last paid month.")
    grace_until: datetime | None
    cancelled_at: datetime | None
    downgrade_at: datetime | None
    ended_at: datetime | None
    reason: str | None
    cycles: list[CycleView]


class SubscriptionStatusView(BaseModel):
    """`GET /api/v1/plan/subscription`: the tier in force and the newest mandate (null: none yet)."""

    workspace_id: str
    tier: TierName
    subscription: SubscriptionView | None


def _view(row: SubscriptionRow, cycles: list[CycleRow]) -> SubscriptionView:
    return SubscriptionView(
        id=row["id"], workspace_id=row["workspace_id"], tier=row["tier"],
        state=row["state"], merchant_subscription_id=row["merchant_subscription_id"],
        amount_paise=row["amount_paise"], monthly_ai_credits=tier(row["tier"]).monthly_ai_credits,
        intent_url=row["intent_url"] if row["state"] == "pending" else None, created_at=row["created_at"],
        activated_at=row["activated_at"], paid_through=row["paid_through"], grace_until=row["grace_until"],
        cancelled_at=row["cancelled_at"], downgrade_at=row["downgrade_at"], ended_at=row["ended_at"],
        reason=row["reason"], cycles=[CycleView(**{k: c[k] for k in CycleView.model_fields}) for c in cycles])  # type: ignore[literal-required]


@dataclass
class SubscriptionsApi:
    """The three operations, independent of HTTP."""

    pool: Pool
    settings: Settings
    subscriptions: SubscriptionService

    def _workspace(self, principal: Principal, requested: str | None, *, owner: bool) -> str:
        with as_user(self.pool, principal.claims) as conn:
            workspace_id = choose_workspace(memberships(conn), principal, requested)
            role = member_role(conn, workspace_id)
        if owner and role != "owner":
            raise Forbidden(f"Only an owner of workspace {workspace_id} may change how its plan is paid; your role "
                            f"is {role!r}.")
        return workspace_id

    def subscribe(self, principal: Principal, requested: str | None, body: SubscriptionRequest) -> SubscriptionView:
        workspace_id = self._workspace(principal, requested, owner=True)
        row = self.subscriptions.subscribe(workspace_id=workspace_id, tier_name=body.tier,
                                           user_id=str(principal.user_id))
        return _view(row, [])

    def status(self, principal: Principal, requested: str | None) -> SubscriptionStatusView:
        workspace_id = self._workspace(principal, requested, owner=False)
        row, cycles = self.subscriptions.current(workspace_id)
        with as_user(self.pool, principal.claims) as conn:
            plan = workspace_plan(conn, workspace_id)
        in_force = (plan["tier"] if plan else None) or self.settings.plan_default_tier
        return SubscriptionStatusView(workspace_id=workspace_id, tier=in_force,
                                      subscription=_view(row, cycles) if row else None)

    def cancel(self, principal: Principal, requested: str | None) -> SubscriptionView:
        workspace_id = self._workspace(principal, requested, owner=True)
        row = self.subscriptions.cancel(workspace_id=workspace_id)
        _, cycles = self.subscriptions.current(workspace_id)
        return _view(row, cycles)


@lru_cache(maxsize=1)
def service() -> SubscriptionsApi:
    """This instance's subscriptions API: its own small pool and the subscription service, built lazily."""
    settings = get_settings()
    pool = create_pool(settings.database_url, max_size=2)
    return SubscriptionsApi(pool=pool, settings=settings,
                            subscriptions=build_subscription_service(settings, pool=pool))


def _principal(request: flask.Request) -> Principal:
    return verify_token(request.headers.get("Authorization"), get_settings())


def post_subscription(request: flask.Request) -> flask.Response:
    """`POST /api/v1/plan/subscription`."""
    principal = _principal(request)
    body = parse_body(request, SubscriptionRequest)
    view = service().subscribe(principal, request.headers.get("X-Workspace-Id"), body)
    return json_response(view.model_dump(mode="json"), 201)


def get_subscription(request: flask.Request) -> flask.Response:
    """`GET /api/v1/plan/subscription`."""
    view = service().status(_principal(request), request.headers.get("X-Workspace-Id"))
    return json_response(view.model_dump(mode="json"))


def delete_subscription(request: flask.Request) -> flask.Response:
    """`DELETE /api/v1/plan/subscription`."""
    view = service().cancel(_principal(request), request.headers.get("X-Workspace-Id"))
    return json_response(view.model_dump(mode="json"))


_PATH = re.compile(_PREFIX + r"/plan/subscription/?$")
ROUTES: list[Route] = [
    ("POST", _PATH, post_subscription),
    ("GET", _PATH, get_subscription),
    ("DELETE", _PATH, delete_subscription),
]

_FORBIDDEN = {"403": {"description": "Only a workspace owner may do this", "content": errors(400)["400"]["content"]}}
PATHS: dict[str, Any] = {
    "/api/v1/plan/subscription": {
        "post": {
            "summary": "Pay the plan monthly by UPI Autopay: set up a PhonePe mandate for a tier",
            "description": "Answers with `intent_url`, where the payer approves the mandate. The tier applies once "
                           "PhonePe confirms it active; each month is notified, then debited 24 h later. The same "
                           "request again while it is pending returns the same mandate; a mandate in force is a "
                           "409 (cancel it first).",
            "parameters": [WORKSPACE_HEADER],
            "requestBody": {"required": True, "content": json_content(SubscriptionRequest)},
            "responses": {"201": {"description": "The mandate, waiting for approval",
                                  "content": json_content(SubscriptionView)},
                          **_FORBIDDEN, **errors(400, 404, 409, 503)},
        },
        "get": {
            "summary": "The tier in force and the workspace's newest UPI Autopay mandate with its months",
            "parameters": [WORKSPACE_HEADER],
            "responses": {"200": {"description": "Tier and mandate (null: none)",
                                  "content": json_content(SubscriptionStatusView)},
                          **errors(400, 404)},
        },
        "delete": {
            "summary": "Cancel the UPI Autopay mandate; the tier stays until the paid month ends",
            "parameters": [WORKSPACE_HEADER],
            "responses": {"200": {"description": "The cancelled mandate", "content": json_content(SubscriptionView)},
                          **_FORBIDDEN, **errors(400, 404, 503)},
        },
    },
}
MODELS: tuple[type, ...] = (SubscriptionRequest, SubscriptionView, SubscriptionStatusView, CycleView)
