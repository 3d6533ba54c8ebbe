"""AI-spend caps on real Postgres: reserve-then-settle is atomic, a campaign pauses on a `budget` decision."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from shared.api.models import Decision
from shared.db import budgets as bdb
from shared.db.pool import as_service, connect
from shared.economics.budgets import PostgresBudgets
from shared.errors import BudgetExceeded
from shared.models import ModelRouter
from shared.ports import Usage
from shared.testing.fakes import ScriptedModel
from tests.integration.harness import Harness, make_settings

FLASH_RESERVE = 1000 * 0.30 + 1000 * 2.50
"""Micro-USD one Flash call reserves with 1,000 prompt + 1,000 output tokens held (2,800)."""
BUDGET_ENV = {"MUSE_BUDGET_RESERVE_PROMPT_TOKENS": "1000", "MUSE_BUDGET_RESERVE_OUTPUT_TOKENS": "1000"}


@dataclass
class PricedBackend:
    """A `ModelBackend` answering from a `ScriptedModel` with fixed, priced token counts per call."""

    scripted: ScriptedModel = field(default_factory=ScriptedModel)
    calls: int = 0

    def generate_once(self, *, model: str, system: str, prompt: str, schema: type[BaseModel],
                      timeout_seconds: float) -> tuple[Any, Usage]:
        self.calls += 1
        value = self.scripted.generate(tier="fast", system=system, prompt=prompt, schema=schema).value
        return value, Usage(model=model, prompt_tokens=600, output_tokens=200)


@pytest.fixture
def world(pool: ConnectionPool, migrated_dsn: str) -> Iterator[tuple[Harness, PricedBackend]]:
    backend = PricedBackend()
    router = ModelRouter(backend=backend, cascades={"fast": ("gemini-2.5-flash",), "strong": ("gemini-2.5-flash",)})
    harness = Harness(pool=pool, dsn=migrated_dsn, settings=make_settings(migrated_dsn, **BUDGET_ENV),
                      model=router)  # type: ignore[arg-type]
    yield harness, backend


def _workspace_id(harness: Harness, principal: Any) -> str:
    return str(principal.claims["app_metadata"]["workspace_id"])


def _spend(pool: ConnectionPool, campaign_id: uuid.UUID) -> bdb.CampaignSpend:
    with as_service(pool) as conn:
        return bdb.campaign_spend(conn, str(campaign_id))


class TestCampaignPause:
    def test_a_cap_reached_mid_campaign_pauses_it_and_raising_it_resumes_it_once(
            self, world: tuple[Harness, PricedBackend], pool: ConnectionPool) -> None:
        """The campaign runs until its next call would pass the cap, parks on a `budget` decision without
        overspending, and approving after the cap is raised resumes it exactly once (a repeated answer is inert)."""
        harness, backend = world
        principal = harness.workspace()
        workspace = _workspace_id(harness, principal)
        with as_service(pool) as conn:
            bdb.set_caps(conn, workspace, monthly=None, campaign=12_000, set_monthly=False, set_campaign=True)
        campaign = harness.create(principal)
        harness.pump()

        row = harness.row(campaign)
        assert row["status"] == "awaiting_decision" and row["pending_decision"]["kind"] == "budget"
        payload = row["pending_decision"]["payload"]
        assert payload["scope"] == "campaign" and payload["cap_micro_usd"] == 12_000 and "PUT /api/v1/budgets" in \
            payload["message"]
        spend = _spend(pool, campaign)
        assert backend.calls >= 1 and spend["reserved"] == 0 and 0 < spend["spent"] <= 12_000
        assert spend["spent"] + payload["needed_micro_usd"] > 12_000

        calls_at_pause = backend.calls
        with as_service(pool) as conn:
            bdb.set_caps(conn, workspace, monthly=None, campaign=1_000_000, set_monthly=False, set_campaign=True)
        answer = Decision(decision_id=row["pending_decision"]["id"], action="approve")
        harness.api.decide(principal, campaign, answer)
        harness.api.decide(principal, campaign, answer)
        harness.pump()

        after = harness.row(campaign)
        assert after["pending_decision"]["kind"] == "strategy_approval", after["status"]
        assert backend.calls > calls_at_pause
        assert harness.events(campaign).count("decision.applied") == 1
        with connect(harness.dsn) as conn:
            costs = conn.execute("SELECT count(*) AS n, count(cost_micro_usd) AS priced, "
                                 "coalesce(sum(cost_micro_usd), 0) AS total FROM public.model_usage "
                                 "WHERE campaign_id = %s", (campaign,)).fetchone()
        assert costs["n"] == costs["priced"] > 0 and costs["total"] == costs["n"] * (600 * 0.30 + 200 * 2.50)

    def test_rejecting_the_budget_decision_cancels_the_campaign(self, world: tuple[Harness, PricedBackend],
                                                                pool: ConnectionPool) -> None:
        """`reject` ends the campaign as failed, its reason naming the budget decision."""
        harness, _ = world
        principal = harness.workspace()
        with as_service(pool) as conn:
            bdb.set_caps(conn, _workspace_id(harness, principal), monthly=None, campaign=0, set_monthly=False,
                         set_campaign=True)
        campaign = harness.create(principal)
        harness.pump()
        pending = harness.row(campaign)["pending_decision"]
        assert pending["kind"] == "budget" and _spend(pool, campaign)["spent"] == 0
        harness.api.decide(principal, campaign, Decision(decision_id=pending["id"], action="reject",
                                                         feedback="too expensive"))
        with pytest.raises(Exception, match="budget decision"):
            harness.pump()
        row = harness.row(campaign)
        assert row["status"] == "failed" and "budget decision" in row["failure_reason"]


class TestConcurrentCampaigns:
    def test_concurrent_campaigns_never_pass_the_workspace_cap_together(
            self, world: tuple[Harness, PricedBackend], pool: ConnectionPool) -> None:
        """Eight campaigns reserving and settling at once against one monthly cap stop at it: the month's spend
        ends within the cap, equal to what the callers settled, with nothing left reserved."""
        harness, _ = world
        principal = harness.workspace()
        workspace = _workspace_id(harness, principal)
        cap = 100_000
        with as_service(pool) as conn:
            bdb.set_caps(conn, workspace, monthly=cap, campaign=None, set_monthly=True, set_campaign=True)
        budgets = PostgresBudgets.from_settings(pool, harness.settings)
        campaigns = [harness.create(principal) for _ in range(8)]
        settled: list[int] = []
        peaks: list[int] = []
        lock = threading.Lock()

        def spend(campaign_id: uuid.UUID) -> None:
            gate = budgets.for_campaign(workspace, str(campaign_id))
            while True:
                try:
                    hold = gate.reserve_model("gemini-2.5-flash")
                except BudgetExceeded as exc:
                    assert exc.details["scope"] == "workspace"
                    return
                with as_service(pool) as conn:
                    month = bdb.period_spend(conn, workspace, bdb.month_of(gate.today()))
                hold.settle_model(Usage("gemini-2.5-flash", prompt_tokens=1000, output_tokens=500))
                with lock:
                    settled.append(1000 * 0.30 + 500 * 2.50)
                    peaks.append(month["spent"] + month["reserved"])

        threads = [threading.Thread(target=spend, args=(c,)) for c in campaigns]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        with as_service(pool) as conn:
            month = bdb.period_spend(conn, workspace, bdb.month_of(budgets.for_campaign(workspace, None).today()))
        assert month == {"spent": sum(settled), "reserved": 0}
        assert max(peaks) <= cap and cap // 2 < month["spent"] <= cap



def test_a_reservation_a_dead_process_left_open_is_settled_at_its_amount(
        world: tuple[Harness, PricedBackend], pool: ConnectionPool) -> None:
    """The sweeper's repair: an old open reservation becomes spend (it may have been billed) and stops being held;
    a fresh one is left to its caller."""
    harness, _ = world
    principal = harness.workspace()
    campaign = harness.create(principal)
    gate = PostgresBudgets.from_settings(pool, harness.settings).for_campaign(_workspace_id(harness, principal),
                                                                              str(campaign))
    old, fresh = gate.reserve_model("gemini-2.5-flash"), gate.reserve_model("gemini-2.5-flash")
    with as_service(pool) as conn:
        conn.execute("UPDATE public.spend_reservations SET created_at = now() - interval '1 hour' WHERE id = %s",
                     (old.reservation_id,))
        assert bdb.settle_stale(conn) == 1
    assert _spend(pool, campaign) == {"cap_micro_usd": None, "spent": FLASH_RESERVE, "reserved": FLASH_RESERVE}
    fresh.cancel()
    old.settle_model(Usage("gemini-2.5-flash", prompt_tokens=1))
    assert _spend(pool, campaign) == {"cap_micro_usd": None, "spent": FLASH_RESERVE, "reserved": 0}


def test_the_strategy_budget_stays_within_the_plan_tier_and_its_split_sums_to_it(
        pool: ConnectionPool, migrated_dsn: str) -> None:
    """A ₹1,00,000 brief in a workspace on the free tier (no plan row: the default) is offered ₹25,000, the tier's
    maximum media budget, split over the plan's channels to the rupee."""
    harness = Harness(pool=pool, dsn=migrated_dsn, settings=make_settings(migrated_dsn, MUSE_PLAN_DEFAULT_TIER="free"))
    principal = harness.workspace()
    campaign = harness.create(principal, budget_inr=100_000, channels=["email", "ad"])
    harness.pump()
    payload = harness.row(campaign)["pending_decision"]["payload"]
    assert payload["budget_inr"] == 25_000
    assert [line["channel"] for line in payload["budget_split"]] == ["email", "ad"]
    assert sum(line["amount_inr"] for line in payload["budget_split"]) == 25_000
