"""`GET /api/v1/plan`: the workspace's plan tier, its AI credits this period and its limits; the API's rate gate.

Changing a plan is billing's business (issue 10, UPI Autopay), through `shared.plans.set_workspace_tier`
(audited as `plan.changed`), not an API operation. `limit_api_requests` is the API edge's check of the
caller's workspace's requests per minute (`shared.api.app.dispatch` runs it before every operation).

Over a limit the API answers 429 with `Retry-After` and an `ErrorBody` whose `details.limit` names it:
`api_requests_per_minute`, `campaign_starts_per_day` or `monthly_ai_credits` (the period's credits are
used up: new campaigns are refused until the next period, `Retry-After` reaches it).
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any

import flask
from pydantic import BaseModel, Field

from shared.api.spec import WORKSPACE_HEADER, errors, json_content
from shared.auth import Principal, verify_token
from shared.db.pool import as_user, create_pool
from shared.errors import MuseError
from shared.http import Route, json_response
from shared.plans import MICRO_USD_PER_CREDIT, TIERS, PlanGate, Tier, TierName, plan_state, rate_limiter
from shared.settings import get_settings

_PREFIX = r"^(?:/api)?/v1"


class PlanLimits(BaseModel):
    """What a tier allows."""

    monthly_ai_credits: int = Field(description=f"AI credits per period; one credit is {MICRO_USD_PER_CREDIT} "
                                                "micro-USD (US$0.001) of model and tool spend at list price.")
    campaign_starts_per_day: int
    api_requests_per_minute: int
    max_budget_inr: int = Field(description="Largest media budget (INR) one campaign may carry.")


class TierView(BaseModel):
    """One plan tier: its monthly price (INR, GST excluded) and limits."""

    tier: TierName
    price_inr_monthly: int
    limits: PlanLimits


class CreditsView(BaseModel):
    """The AI credits of the current period."""

    allowance: int
    used: int
    remaining: int
    spent_micro_usd: int = Field(description="The month's settled AI spend, at list price.")
    reserved_micro_usd: int = Field(description="Spend reserved by calls in flight (counted as used).")


class PlanView(BaseModel):
    """The workspace's plan in force: tier, period, credits and limits, and the tiers there are."""

    workspace_id: str
    tier: TierName
    price_inr_monthly: int
    period_start: datetime
    period_end: datetime
    credits: CreditsView
    limits: PlanLimits
    tiers: list[TierView]


def _limits(tier: Tier) -> PlanLimits:
    return PlanLimits(monthly_ai_credits=tier.monthly_ai_credits, campaign_starts_per_day=tier.campaign_starts_per_day,
                      api_requests_per_minute=tier.api_requests_per_minute, max_budget_inr=tier.max_budget_inr)


@lru_cache(maxsize=1)
def service() -> PlanGate:
    """This instance's plan gate: its own small pool and the Upstash rate limiter."""
    settings = get_settings()
    return PlanGate(pool=create_pool(settings.database_url, max_size=2), settings=settings,
                    limiter=rate_limiter(settings))


def _principal(request: flask.Request) -> Principal:
    return verify_token(request.headers.get("Authorization"), get_settings())


def limit_api_requests(request: flask.Request, gate: PlanGate) -> None:
    """Count the request against its workspace's requests per minute (429 over it). A request without a
    usable token or workspace is not counted here: the operation refuses it (or serves it, if public)."""
    if not request.headers.get("Authorization"):
        return
    try:
        principal = _principal(request)
    except MuseError:
        return
    gate.limit_api_requests(principal, request.headers.get("X-Workspace-Id"))


def get_plan(request: flask.Request) -> flask.Response:
    """`GET /api/v1/plan`."""
    principal = _principal(request)
    gate = service()
    workspace_id, _ = gate.place(principal, request.headers.get("X-Workspace-Id"))
    with as_user(gate.pool, principal.claims) as conn:
        state = plan_state(conn, workspace_id, default_tier=gate.settings.plan_default_tier)
    view = PlanView(
        workspace_id=workspace_id, tier=state.tier.name, price_inr_monthly=state.tier.price_inr_monthly,
        period_start=state.period_start, period_end=state.period_end,
        credits=CreditsView(allowance=state.tier.monthly_ai_credits, used=state.used_credits,
                            remaining=state.remaining_credits, spent_micro_usd=state.spent_micro_usd,
                            reserved_micro_usd=state.reserved_micro_usd),
        limits=_limits(state.tier),
        tiers=[TierView(tier=t.name, price_inr_monthly=t.price_inr_monthly, limits=_limits(t)) for t in TIERS.values()])
    return json_response(view.model_dump(mode="json"))


ROUTES: list[Route] = [
    ("GET", re.compile(_PREFIX + r"/plan/?$"), get_plan),
]

PATHS: dict[str, Any] = {
    "/api/v1/plan": {"get": {
        "summary": "The workspace's plan: tier, AI credits used and left this period, rate limits",
        "description": "Over a limit, operations answer 429 with `Retry-After`; `details.limit` names it "
                       "(`api_requests_per_minute`, `campaign_starts_per_day`, `monthly_ai_credits`). "
                       "Plans change through billing, not this API.",
        "parameters": [WORKSPACE_HEADER],
        "responses": {"200": {"description": "The plan in force", "content": json_content(PlanView)},
                      **errors(400, 401, 404, 429)},
    }},
}
MODELS: tuple[type, ...] = (PlanView, PlanLimits, TierView, CreditsView)
