"""Money in the API: what the workspace's AI work cost, what a brief will cost, and the AI-spend caps.

- `GET /api/v1/costs?month=YYYY-MM` (default: the current UTC month): total, by day, by campaign, by node
  and model (tools as `vendor:tool`), and the month's cap with what is spent and held by calls in flight.
- `POST /api/v1/costs/estimate` (the body of `POST /api/v1/campaigns`): the expected cost of the brief
  before it runs, from the workspace's completed campaigns when it has 3 or more of the kind, else from
  the standard profile, and whether it fits the caps.
- `GET /api/v1/budgets`, `PUT /api/v1/budgets` (owners; audited as `settings.updated`): the monthly
  workspace cap and the per-campaign cap, in rupees; `null` returns a cap to the deployment's default.
- `PUT /api/v1/campaigns/{campaign_id}/budget` (owners; audited): one campaign's own cap; `null` returns it to
  the workspace's.

Amounts are kept in micro-USD (`micro_usd`) and shown in US dollars and in rupees at `MUSE_USD_INR_RATE`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any, Literal
from uuid import UUID

import flask
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.api.models import Money
from shared.api.spec import WORKSPACE_HEADER, errors, json_content, uuid_path
from shared.auth import Principal, choose_workspace, verify_token
from shared.campaigns.schemas import Brief
from shared.db import audit
from shared.db import budgets as bdb
from shared.db import campaigns as campaigns_db
from shared.db import costs as cdb
from shared.db.campaigns import memberships
from shared.db.pool import Conn, Pool, as_runtime, as_user, create_pool
from shared.db.workspace_data import member_role
from shared.economics.budgets import usd_to_micro
from shared.economics.estimate import Basis, estimate
from shared.errors import Forbidden, InvalidRequest, NotFound
from shared.http import Route, json_response, parse_body
from shared.models.pricing import MICRO, micro_usd_to_inr, micro_usd_to_usd
from shared.settings import Settings, get_settings

_PREFIX = r"^(?:/api)?/v1"
_MONTH = re.compile(r"^(20[2-9][0-9])-(0[1-9]|1[0-2])$")
MAX_CAP_INR = 10_000_000


class CostLineView(BaseModel):
    """Calls and their cost; `unpriced` calls had a model without a price (not in the cost)."""

    calls: int
    cost: Money
    unpriced: int = 0


class DayCost(CostLineView):
    """One UTC day."""

    day: date


class CampaignCost(CostLineView):
    """One campaign (`campaign_id` null: work outside campaigns)."""

    campaign_id: str | None
    title: str | None
    kind: str | None


class NodeCost(CostLineView):
    """One node and model (or tool, `vendor:tool`)."""

    node: str
    model: str
    kind: Literal["model", "tool"]


class SpendView(BaseModel):
    """A cap and what counts against it."""

    cap: Money
    cap_source: Literal["workspace", "campaign", "default"]
    spent: Money
    reserved: Money = Field(description="Held by calls in flight (settled at their actual cost when they end).")
    remaining: Money


class CostReport(BaseModel):
    """`GET /api/v1/costs`."""

    workspace_id: str
    month: str
    period_start: datetime
    period_end: datetime
    usd_inr_rate: float
    total: CostLineView
    budget: SpendView
    by_day: list[DayCost]
    by_campaign: list[CampaignCost]
    by_node: list[NodeCost]


class CostEstimateRequest(BaseModel):
    """`POST /api/v1/costs/estimate`: the body `POST /api/v1/campaigns` would get."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["campaign", "move"] = "campaign"
    brief: Brief


class CostEstimate(BaseModel):
    """What the brief is expected to cost in AI spend, and whether it fits the caps."""

    workspace_id: str
    kind: Literal["campaign", "move"]
    channels: int
    basis: Basis = Field(description="`history`: the workspace's completed campaigns of the kind (median cost "
                                     "per channel); `profile`: the standard campaign's calls at list prices.")
    samples: int
    expected: Money
    low: Money
    high: Money
    by_node: dict[str, Money]
    campaign_cap: Money
    month_remaining: Money
    fits: bool = Field(description="`high` is within the campaign cap and what is left of the month's cap.")


class BudgetView(BaseModel):
    """`GET /api/v1/budgets`: the caps in force and the current month's spend."""

    workspace_id: str
    month: str
    usd_inr_rate: float
    monthly: SpendView
    campaign_cap: Money
    campaign_cap_source: Literal["workspace", "default"]


class BudgetUpdate(BaseModel):
    """`PUT /api/v1/budgets`: the caps to change, in rupees; `null` returns a cap to the default."""

    model_config = ConfigDict(extra="forbid")

    monthly_cap_inr: float | None = Field(default=None, ge=0, le=MAX_CAP_INR, allow_inf_nan=False,
                                          description="The workspace's AI spend per calendar month (UTC).")
    campaign_cap_inr: float | None = Field(default=None, ge=0, le=MAX_CAP_INR, allow_inf_nan=False,
                                           description="One campaign's AI spend.")

    @model_validator(mode="after")
    def _names_one(self) -> BudgetUpdate:
        if not self.model_fields_set:
            raise ValueError("send `monthly_cap_inr` and/or `campaign_cap_inr` (a number of rupees, or null for "
                             "the default)")
        return self


class CampaignBudgetUpdate(BaseModel):
    """`PUT /api/v1/campaigns/{campaign_id}/budget`: the campaign's own cap in rupees; `null`: the workspace's."""

    model_config = ConfigDict(extra="forbid")

    cap_inr: float | None = Field(ge=0, le=MAX_CAP_INR, allow_inf_nan=False,
                                  description="This campaign's AI spend cap (null: the workspace's campaign cap).")


class CampaignBudgetView(BaseModel):
    """A campaign's AI-spend cap in force and what counts against it."""

    campaign_id: str
    cap: Money
    cap_source: Literal["campaign", "workspace", "default"]
    spent: Money
    reserved: Money


def _month(raw: str | None) -> tuple[str, datetime, datetime]:
    if raw is None:
        today = datetime.now(UTC)
        raw = f"{today.year:04d}-{today.month:02d}"
    match = _MONTH.match(raw)
    if match is None:
        raise InvalidRequest(f"`month` {raw!r} must be a month as YYYY-MM (2020-01 to 2099-12), e.g. 2026-12.",
                             details={"field": "month", "value": raw[:40]})
    year, month = int(match[1]), int(match[2])
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return raw, start, end


@dataclass
class CostsApi:
    """Costs, estimates and caps, independent of HTTP."""

    pool: Pool
    settings: Settings

    def money(self, micro_usd: int) -> Money:
        """An amount in the three units."""
        return Money(micro_usd=micro_usd, usd=micro_usd_to_usd(micro_usd),
                     inr=micro_usd_to_inr(micro_usd, self.settings.usd_inr_rate))

    def _line(self, row: Any) -> dict[str, Any]:
        return {"calls": row["calls"], "cost": self.money(int(row["cost_micro_usd"])), "unpriced": row["unpriced"]}

    def _caps(self, conn: Conn, workspace_id: str) -> tuple[int, str, int, str]:
        stored = bdb.caps(conn, workspace_id)
        monthly, campaign = stored["monthly_cap_micro_usd"], stored["campaign_cap_micro_usd"]
        return (usd_to_micro(self.settings.budget_monthly_cap_usd) if monthly is None else monthly,
                "default" if monthly is None else "workspace",
                usd_to_micro(self.settings.budget_campaign_cap_usd) if campaign is None else campaign,
                "default" if campaign is None else "workspace")

    def _monthly(self, conn: Conn, workspace_id: str, start: datetime) -> SpendView:
        cap, source, _, _ = self._caps(conn, workspace_id)
        spend = bdb.period_spend(conn, workspace_id, start.date())
        left = max(0, cap - spend["spent"] - spend["reserved"])
        return SpendView(cap=self.money(cap), cap_source=source,
                         spent=self.money(spend["spent"]), reserved=self.money(spend["reserved"]),
                         remaining=self.money(left))

    def report(self, principal: Principal, workspace: str | None, month: str | None) -> CostReport:
        """The month's costs of the caller's workspace."""
        label, start, end = _month(month)
        with as_user(self.pool, principal.claims) as conn:
            workspace_id = choose_workspace(memberships(conn), principal, workspace)
            total = cdb.total(conn, workspace_id, start, end)
            days = cdb.by_day(conn, workspace_id, start, end)
            campaigns = cdb.by_campaign(conn, workspace_id, start, end)
            nodes = cdb.by_node(conn, workspace_id, start, end)
            budget = self._monthly(conn, workspace_id, start)
        return CostReport(
            workspace_id=workspace_id, month=label, period_start=start, period_end=end,
            usd_inr_rate=self.settings.usd_inr_rate, total=CostLineView(**self._line(total)), budget=budget,
            by_day=[DayCost(day=r["day"], **self._line(r)) for r in days],
            by_campaign=[CampaignCost(campaign_id=str(r["campaign_id"]) if r["campaign_id"] else None,
                                      title=r["title"], kind=r["campaign_kind"], **self._line(r)) for r in campaigns],
            by_node=[NodeCost(node=r["node"], model=r["model"], kind=r["kind"], **self._line(r)) for r in nodes])

    def estimate(self, principal: Principal, workspace: str | None, body: CostEstimateRequest) -> CostEstimate:
        """The brief's expected cost and whether it fits the caps."""
        channels = len(set(body.brief.channels or [])) or (2 if body.kind == "move" else 3)
        _, start, _ = _month(None)
        with as_user(self.pool, principal.claims) as conn:
            workspace_id = choose_workspace(memberships(conn), principal, workspace)
            history = cdb.history(conn, workspace_id, body.kind)
            monthly = self._monthly(conn, workspace_id, start)
            _, _, campaign_cap, _ = self._caps(conn, workspace_id)
        made = estimate(body.kind, channels, body.brief.variants, history, fast_model=self.settings.model_fast,
                        strong_model=self.settings.model_strong)
        return CostEstimate(
            workspace_id=workspace_id, kind=body.kind, channels=channels, basis=made.basis, samples=made.samples,
            expected=self.money(made.expected), low=self.money(made.low), high=self.money(made.high),
            by_node={node: self.money(cost) for node, cost in made.by_node.items()},
            campaign_cap=self.money(campaign_cap), month_remaining=monthly.remaining,
            fits=made.high <= campaign_cap and made.high <= monthly.remaining.micro_usd)

    def budgets(self, principal: Principal, workspace: str | None) -> BudgetView:
        """The caps in force and this month's spend."""
        label, start, _ = _month(None)
        with as_user(self.pool, principal.claims) as conn:
            workspace_id = choose_workspace(memberships(conn), principal, workspace)
            return self._budget_view(conn, workspace_id, label, start)

    def _budget_view(self, conn: Conn, workspace_id: str, label: str, start: datetime) -> BudgetView:
        _, _, campaign_cap, campaign_source = self._caps(conn, workspace_id)
        return BudgetView(workspace_id=workspace_id, month=label, usd_inr_rate=self.settings.usd_inr_rate,
                          monthly=self._monthly(conn, workspace_id, start), campaign_cap=self.money(campaign_cap),
                          campaign_cap_source=campaign_source)

    def set_budgets(self, principal: Principal, workspace: str | None, body: BudgetUpdate) -> BudgetView:
        """Change the caps (owners only) and record before and after in the audit log, in one transaction."""
        rate = self.settings.usd_inr_rate
        label, start, _ = _month(None)

        def micro(inr: float | None) -> int | None:
            return None if inr is None else round(inr / rate * MICRO)

        with as_user(self.pool, principal.claims) as conn:
            workspace_id = choose_workspace(memberships(conn), principal, workspace)
            role = member_role(conn, workspace_id)
            if role != "owner":
                raise Forbidden(f"Only an owner of workspace {workspace_id} may change its AI-spend caps; "
                                f"your role is {role!r}.")
            as_runtime(conn)
            before = bdb.caps(conn, workspace_id)
            after = bdb.set_caps(conn, workspace_id, monthly=micro(body.monthly_cap_inr),
                                 campaign=micro(body.campaign_cap_inr),
                                 set_monthly="monthly_cap_inr" in body.model_fields_set,
                                 set_campaign="campaign_cap_inr" in body.model_fields_set)
            if after != before:
                audit.record(conn, workspace_id=workspace_id, actor=str(principal.user_id), action="settings.updated",
                             target_type="workspace_settings", target_id=workspace_id,
                             details={"budget": {"before": dict(before), "after": dict(after),
                                                 "usd_inr_rate": rate}})
            return self._budget_view(conn, workspace_id, label, start)


    def set_campaign_cap(self, principal: Principal, campaign_id: str,
                         body: CampaignBudgetUpdate) -> CampaignBudgetView:
        """Give one campaign its own cap (owners of its workspace only), audited; a campaign paused on a `budget`
        decision goes on once the decision is approved."""
        rate = self.settings.usd_inr_rate
        cap = None if body.cap_inr is None else round(body.cap_inr / rate * MICRO)
        with as_user(self.pool, principal.claims) as conn:
            row = campaigns_db.get_campaign(conn, UUID(campaign_id))
            if row is None:
                raise NotFound(f"Campaign {campaign_id} does not exist in your workspaces.")
            workspace_id = str(row["workspace_id"])
            role = member_role(conn, workspace_id)
            if role != "owner":
                raise Forbidden(f"Only an owner of workspace {workspace_id} may change a campaign's AI-spend cap; "
                                f"your role is {role!r}.")
            as_runtime(conn)
            before = bdb.campaign_spend(conn, campaign_id)["cap_micro_usd"]
            bdb.set_campaign_cap(conn, workspace_id=workspace_id, campaign_id=campaign_id, cap=cap)
            if before != cap:
                audit.record(conn, workspace_id=workspace_id, actor=str(principal.user_id), action="settings.updated",
                             target_type="campaign", target_id=campaign_id,
                             details={"budget": {"before": {"cap_micro_usd": before}, "after": {"cap_micro_usd": cap},
                                                 "usd_inr_rate": rate}})
            spend = bdb.campaign_spend(conn, campaign_id)
            _, _, workspace_cap, workspace_source = self._caps(conn, workspace_id)
        in_force = spend["cap_micro_usd"] if spend["cap_micro_usd"] is not None else workspace_cap
        source = "campaign" if spend["cap_micro_usd"] is not None else workspace_source
        return CampaignBudgetView(campaign_id=campaign_id, cap=self.money(in_force),
                                  cap_source=source,
                                  spent=self.money(spend["spent"]), reserved=self.money(spend["reserved"]))


@lru_cache(maxsize=1)
def service() -> CostsApi:
    """This instance's costs API: its own small pool, opened lazily."""
    settings = get_settings()
    return CostsApi(pool=create_pool(settings.database_url, max_size=2), settings=settings)


def _principal(request: flask.Request) -> Principal:
    return verify_token(request.headers.get("Authorization"), get_settings())


def _one(request: flask.Request, name: str) -> str | None:
    values = request.args.getlist(name)
    if len(values) > 1:
        raise InvalidRequest(f"Send `{name}` at most once; got {values!r}.", details={"field": name})
    return values[0] if values else None


def get_costs(request: flask.Request) -> flask.Response:
    """`GET /api/v1/costs`."""
    principal = _principal(request)
    report = service().report(principal, request.headers.get("X-Workspace-Id"), _one(request, "month"))
    return json_response(report.model_dump(mode="json"))


def post_estimate(request: flask.Request) -> flask.Response:
    """`POST /api/v1/costs/estimate`."""
    principal = _principal(request)
    body = parse_body(request, CostEstimateRequest)
    made = service().estimate(principal, request.headers.get("X-Workspace-Id"), body)
    return json_response(made.model_dump(mode="json"))


def get_budgets(request: flask.Request) -> flask.Response:
    """`GET /api/v1/budgets`."""
    view = service().budgets(_principal(request), request.headers.get("X-Workspace-Id"))
    return json_response(view.model_dump(mode="json"))


def put_budgets(request: flask.Request) -> flask.Response:
    """`PUT /api/v1/budgets`."""
    principal = _principal(request)
    body = parse_body(request, BudgetUpdate)
    view = service().set_budgets(principal, request.headers.get("X-Workspace-Id"), body)
    return json_response(view.model_dump(mode="json"))


def put_campaign_budget(request: flask.Request, campaign_id: str) -> flask.Response:
    """`PUT /api/v1/campaigns/{campaign_id}/budget`."""
    principal = _principal(request)
    try:
        UUID(campaign_id)
    except ValueError as exc:
        raise InvalidRequest(f"{campaign_id!r} is not a campaign id; campaign ids are UUIDs.",
                             details={"field": "campaign_id"}) from exc
    body = parse_body(request, CampaignBudgetUpdate)
    view = service().set_campaign_cap(principal, str(UUID(campaign_id)), body)
    return json_response(view.model_dump(mode="json"))


ROUTES: list[Route] = [
    ("GET", re.compile(_PREFIX + r"/costs/?$"), get_costs),
    ("POST", re.compile(_PREFIX + r"/costs/estimate/?$"), post_estimate),
    ("GET", re.compile(_PREFIX + r"/budgets/?$"), get_budgets),
    ("PUT", re.compile(_PREFIX + r"/budgets/?$"), put_budgets),
    ("PUT", re.compile(_PREFIX + r"/campaigns/(?P<campaign_id>[^/]+)/budget/?$"), put_campaign_budget),
]

_FORBIDDEN = {"403": {"description": "Only a workspace owner may do this", "content": errors(400)["400"]["content"]}}
PATHS: dict[str, Any] = {
    "/api/v1/costs": {"get": {
        "summary": "The workspace's AI costs of a month: total, by day, by campaign, by node and model",
        "parameters": [{"name": "month", "in": "query", "required": False, "description": "YYYY-MM (UTC); "
                        "default: the current month", "schema": {"type": "string", "pattern": _MONTH.pattern}},
                       WORKSPACE_HEADER],
        "responses": {"200": {"description": "The month's costs", "content": json_content(CostReport)},
                      **errors(400, 401, 404)},
    }},
    "/api/v1/costs/estimate": {"post": {
        "summary": "The expected AI cost of a brief before it runs (the body of POST /api/v1/campaigns)",
        "parameters": [WORKSPACE_HEADER],
        "requestBody": {"required": True, "content": json_content(CostEstimateRequest)},
        "responses": {"200": {"description": "The estimate", "content": json_content(CostEstimate)},
                      **errors(400, 401, 404)},
    }},
    "/api/v1/budgets": {
        "get": {"summary": "The AI-spend caps in force and this month's spend",
                "parameters": [WORKSPACE_HEADER],
                "responses": {"200": {"description": "Caps and spend", "content": json_content(BudgetView)},
                              **errors(400, 401, 404)}},
        "put": {"summary": "Change the monthly and per-campaign AI-spend caps, in rupees (owners only; audited)",
                "description": "A campaign paused on a `budget` decision goes on when the decision is approved "
                               "after the cap is raised.",
                "parameters": [WORKSPACE_HEADER],
                "requestBody": {"required": True, "content": json_content(BudgetUpdate)},
                "responses": {"200": {"description": "The caps in force", "content": json_content(BudgetView)},
                              **errors(400, 401, 404), **_FORBIDDEN}},
    },
    "/api/v1/campaigns/{campaign_id}/budget": {"put": {
        "summary": "Give one campaign its own AI-spend cap, in rupees (owners only; audited)",
        "parameters": [uuid_path("campaign_id")],
        "requestBody": {"required": True, "content": json_content(CampaignBudgetUpdate)},
        "responses": {"200": {"description": "The campaign's cap in force",
                              "content": json_content(CampaignBudgetView)},
                      **errors(400, 401, 404), **_FORBIDDEN},
    }},
}
MODELS: tuple[type, ...] = (CampaignBudgetUpdate, CampaignBudgetView, CostReport, CostEstimateRequest, CostEstimate,
                            BudgetView, BudgetUpdate, CostLineView, DayCost, CampaignCost, NodeCost, SpendView)
