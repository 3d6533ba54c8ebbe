"""The costs API on real Postgres: reports priced from stored usage, estimates, audited caps, the campaign's cost."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from shared.api.costs import BudgetUpdate, CampaignBudgetUpdate, CostEstimateRequest, CostsApi
from shared.auth import Principal
from shared.db.pool import connect
from shared.errors import Forbidden, InvalidRequest, NotFound
from shared.models import ModelRouter
from tests.integration.harness import Harness, make_settings
from tests.integration.test_budgets import BUDGET_ENV, PricedBackend

FLASH_CALL = 600 * 0.30 + 200 * 2.50
"""Micro-USD of one `PricedBackend` call on Flash (680)."""


@pytest.fixture
def world(pool: ConnectionPool, migrated_dsn: str) -> Iterator[tuple[Harness, CostsApi]]:
    router = ModelRouter(backend=PricedBackend(), cascades={"fast": ("gemini-2.5-flash",),
                                                           "strong": ("gemini-2.5-flash",)})
    harness = Harness(pool=pool, dsn=migrated_dsn, settings=make_settings(migrated_dsn, **BUDGET_ENV),
                      model=router)  # type: ignore[arg-type]
    yield harness, CostsApi(pool=pool, settings=harness.settings)


def _workspace(principal: Principal) -> str:
    return str(principal.claims["app_metadata"]["workspace_id"])


class TestReport:
    def test_the_month_report_prices_every_stored_call_and_matches_the_ledger(
            self, world: tuple[Harness, CostsApi]) -> None:
        """After a campaign reaches its strategy decision, the report's total is its model and tool calls priced,
        split by day, campaign and node, shown in rupees at the configured rate, and equal to the budget ledger."""
        harness, api = world
        principal = harness.workspace()
        campaign = harness.create(principal)
        harness.pump()
        assert harness.row(campaign)["pending_decision"]["kind"] == "strategy_approval"

        report = api.report(principal, None, None)
        with connect(harness.dsn) as conn:
            calls = conn.execute("SELECT count(*) AS n FROM public.model_usage WHERE campaign_id = %s",
                                 (campaign,)).fetchone()["n"]
        tools = sum(line.cost.micro_usd for line in report.by_node if line.kind == "tool")
        assert report.total.cost.micro_usd == calls * FLASH_CALL + tools and report.total.unpriced == 0
        assert report.total.cost.inr == round(report.total.cost.micro_usd * 88 / 1e6, 2)
        assert [c.campaign_id for c in report.by_campaign] == [str(campaign)]
        assert sum(d.cost.micro_usd for d in report.by_day) == report.total.cost.micro_usd
        assert {("plan", "gemini-2.5-flash")} <= {(n.node, n.model) for n in report.by_node}
        assert report.budget.spent.micro_usd == report.total.cost.micro_usd and report.budget.reserved.micro_usd == 0

        view = harness.api.get_campaign(principal, campaign)
        assert view.cost is not None and view.cost.total.micro_usd == report.total.cost.micro_usd

    def test_a_bad_month_is_a_400_naming_the_field(self, world: tuple[Harness, CostsApi]) -> None:
        """`month` must be YYYY-MM."""
        harness, api = world
        with pytest.raises(InvalidRequest, match="`month`") as caught:
            api.report(harness.workspace(), None, "2026-13")
        assert caught.value.details["field"] == "month"


class TestEstimate:
    def test_a_new_workspace_gets_the_profile_and_one_with_history_its_own_median(
            self, world: tuple[Harness, CostsApi]) -> None:
        """Without history the standard profile prices the brief; with three completed campaigns of the kind,
        the median cost per channel times the brief's channels."""
        harness, api = world
        principal = harness.workspace()
        body = CostEstimateRequest.model_validate({"kind": "campaign", "brief": {
            "title": "Diwali", "objective": "Sell", "channels": ["email", "ad"]}})
        fresh = api.estimate(principal, None, body)
        assert fresh.basis == "profile" and fresh.low.micro_usd <= fresh.expected.micro_usd <= fresh.high.micro_usd
        assert fresh.expected.micro_usd == sum(m.micro_usd for m in fresh.by_node.values()) and fresh.fits

        workspace = _workspace(principal)
        with connect(harness.dsn) as conn:
            for cost, channels in ((10_000, 1), (40_000, 2), (90_000, 3)):
                cid = uuid.uuid4()
                conn.execute("INSERT INTO public.campaigns (id, workspace_id, created_by, kind, brief, status) "
                             "VALUES (%s, %s, %s, 'campaign', %s, 'completed')",
                             (cid, workspace, principal.user_id, Jsonb({"title": "t", "objective": "o",
                                                     "channels": ["email", "ad", "linkedin"][:channels]})))
                conn.execute("INSERT INTO public.model_usage (campaign_id, workspace_id, node, model, cost_micro_usd)"
                             " VALUES (%s, %s, 'plan', 'gemini-2.5-pro', %s)", (cid, workspace, cost))
        made = api.estimate(principal, None, body)
        assert (made.basis, made.samples) == ("history", 3)
        assert (made.low.micro_usd, made.expected.micro_usd, made.high.micro_usd) == (20_000, 40_000, 60_000)


class TestBudgets:
    def test_an_owner_sets_caps_in_rupees_audited_and_null_restores_the_default(
            self, world: tuple[Harness, CostsApi]) -> None:
        """Caps are given in rupees, stored in micro-USD, recorded in the audit log; a member may not change them."""
        harness, api = world
        owner = harness.workspace()
        workspace = _workspace(owner)
        view = api.set_budgets(owner, None, BudgetUpdate.model_validate({"monthly_cap_inr": 880,
                                                                        "campaign_cap_inr": 44}))
        assert (view.monthly.cap.micro_usd, view.monthly.cap_source) == (10_000_000, "workspace")
        assert (view.campaign_cap.micro_usd, view.campaign_cap.inr) == (500_000, 44.0)
        reset = api.set_budgets(owner, None, BudgetUpdate.model_validate({"campaign_cap_inr": None}))
        assert reset.campaign_cap_source == "default" and reset.monthly.cap_source == "workspace"
        with connect(harness.dsn) as conn:
            entries = conn.execute("SELECT details FROM public.audit_log WHERE workspace_id = %s AND "
                                   "action = 'settings.updated' ORDER BY id", (workspace,)).fetchall()
        assert [e["details"]["budget"]["after"]["campaign_cap_micro_usd"] for e in entries] == [500_000, None]

        member = _member_of(harness, workspace)
        with pytest.raises(Forbidden, match="owner"):
            api.set_budgets(member, None, BudgetUpdate.model_validate({"monthly_cap_inr": 1e6}))
        with pytest.raises(ValueError, match="monthly_cap_inr"):
            BudgetUpdate.model_validate({})


def _member_of(harness: Harness, workspace: str) -> Principal:
    user_id = str(uuid.uuid4())
    with connect(harness.dsn) as conn:
        conn.execute("INSERT INTO public.workspace_members (workspace_id, user_id, role) VALUES (%s, %s, 'member')",
                     (workspace, user_id))
    claims: dict[str, Any] = {"sub": user_id, "aud": "authenticated", "role": "authenticated",
                              "app_metadata": {"workspace_id": workspace}}
    return Principal(user_id=uuid.UUID(user_id), claims=claims)


def test_an_owner_gives_one_campaign_its_own_cap_which_the_next_call_obeys(world: tuple[Harness, CostsApi]) -> None:
    """A campaign's own cap (rupees) is stored and audited, overrides the workspace's, and refuses the next call;
    another workspace's or an unknown campaign is a 404, a member's change a 403."""
    harness, api = world
    owner = harness.workspace()
    campaign = harness.create(owner)
    view = api.set_campaign_cap(owner, str(campaign), CampaignBudgetUpdate.model_validate({"cap_inr": 0}))
    assert (view.cap.micro_usd, view.cap_source) == (0, "campaign")
    harness.pump()
    assert harness.row(campaign)["pending_decision"]["payload"]["scope"] == "campaign"
    back = api.set_campaign_cap(owner, str(campaign), CampaignBudgetUpdate.model_validate({"cap_inr": None}))
    assert back.cap_source == "default" and back.cap.micro_usd == 1_000_000
    with connect(harness.dsn) as conn:
        audited = conn.execute("SELECT count(*) AS n FROM public.audit_log WHERE target_type = 'campaign' AND "
                               "target_id = %s", (str(campaign),)).fetchone()["n"]
    assert audited == 2
    with pytest.raises(NotFound):
        api.set_campaign_cap(harness.workspace(), str(campaign), CampaignBudgetUpdate(cap_inr=1))
    with pytest.raises(Forbidden):
        api.set_campaign_cap(_member_of(harness, _workspace(owner)), str(campaign), CampaignBudgetUpdate(cap_inr=1))
