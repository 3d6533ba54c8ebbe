"""Plan tiers as data, billing periods, the credit gate and the limiter's fail-open behaviour (no network)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from shared.chat.campaign_tools import CampaignToolOutput, CreateCampaignInput, Proposals, campaign_tools
from shared.errors import QuotaExceeded
from shared.plans import TIER_NAMES, TIERS, PlanState, RateLimiter, current_period, ensure_credits, tier
from shared.plans.tiers import MICRO_USD_PER_CREDIT, credits_for
from shared.tools.belt import ToolContext

USD_INR = 88


def test_each_tier_buys_more_of_everything_than_the_one_below() -> None:
    ordered = [TIERS[name] for name in TIER_NAMES]
    assert [t.name for t in ordered] == ["free", "pro", "agency"]
    for lower, higher in zip(ordered, ordered[1:], strict=False):
        for figure in ("price_inr_monthly", "monthly_ai_credits", "campaign_starts_per_day",
                       "api_requests_per_minute", "max_budget_inr"):
            assert getattr(lower, figure) < getattr(higher, figure), (figure, lower.name, higher.name)


def test_a_paid_tier_covers_its_ai_allowance() -> None:
    """Using every credit of a paid tier still leaves margin at the assumed rupee rate."""
    for name in ("pro", "agency"):
        plan = TIERS[name]
        allowance_inr = plan.monthly_ai_micro_usd / 1_000_000 * USD_INR
        assert allowance_inr < plan.price_inr_monthly, name


def test_an_unknown_tier_names_the_tiers() -> None:
    assert tier("pro").api_requests_per_minute == 600
    with pytest.raises(ValueError, match="free, pro, agency"):
        tier("enterprise")


def test_a_started_credit_counts() -> None:
    assert credits_for(0) == 0
    assert credits_for(1) == 1
    assert credits_for(MICRO_USD_PER_CREDIT) == 1
    assert credits_for(MICRO_USD_PER_CREDIT + 1) == 2
    assert credits_for(-5) == 0


@pytest.mark.parametrize(("now", "start", "end"), [
    (datetime(2026, 1, 31, 23, 59, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)),
    (datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
    (datetime(2027, 3, 1, 2, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))), datetime(2027, 2, 1, tzinfo=UTC),
     datetime(2027, 3, 1, tzinfo=UTC)),
])
def test_the_period_is_the_calendar_month_in_utc(now: datetime, start: datetime, end: datetime) -> None:
    """The month the spend ledger keeps; 02:00 IST on 1 March is still February in UTC."""
    assert current_period(now) == (start, end)


def _state(used_micro_usd: int, *, name: str = "free") -> PlanState:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    return PlanState(workspace_id="w", tier=tier(name), period_start=start, period_end=start + timedelta(days=30),
                     spent_micro_usd=used_micro_usd - 1, reserved_micro_usd=1)


def test_credits_left_let_work_start() -> None:
    state = _state(TIERS["free"].monthly_ai_micro_usd - 1)
    assert state.remaining_credits == 0 and not state.exhausted
    ensure_credits(state)


def test_used_up_credits_refuse_new_work_until_the_next_period() -> None:
    state = _state(TIERS["free"].monthly_ai_micro_usd)
    now = state.period_end - timedelta(hours=2)
    with pytest.raises(QuotaExceeded) as refused:
        ensure_credits(state, now=now)
    assert refused.value.retry_after_seconds == 7200
    assert refused.value.details["limit"] == "monthly_ai_credits"
    assert refused.value.details["used"] == 1_000 and refused.value.details["allowed"] == 1_000
    assert "1000 AI credits of its free plan" in refused.value.message


@dataclass
class DownRedis:
    """An Upstash client whose every command fails, counting the attempts."""

    calls: int = 0

    def eval(self, *args: Any) -> Any:
        self.calls += 1
        raise ConnectionError("connection refused")


@dataclass
class Clock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_limiter_outage_lets_requests_through_and_rests(caplog: pytest.LogCaptureFixture) -> None:
    redis, clock = DownRedis(), Clock()
    limiter = RateLimiter(redis=redis, cooldown_seconds=10, clock=clock)  # type: ignore[arg-type]
    verdict = limiter.enforce("api_requests_per_minute", "w", TIERS["free"])
    assert verdict.allowed and not verdict.checked and redis.calls == 1
    assert "rate limiter unavailable" in caplog.text
    clock.now += 9
    assert limiter.enforce("campaign_starts_per_day", "w", TIERS["free"]).allowed and redis.calls == 1
    clock.now += 2
    assert limiter.enforce("campaign_starts_per_day", "w", TIERS["free"]).allowed and redis.calls == 2


@dataclass
class StartsUsedUp:
    """A campaign service whose workspace has used today's starts."""

    def create(self, kind: str, brief: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        raise QuotaExceeded("The free plan allows 5 campaign starts per day; this workspace has used them.",
                            retry_after_seconds=3600, details={"limit": "campaign_starts_per_day"})


def test_the_chat_create_tool_tells_the_model_a_start_was_refused_and_why() -> None:
    tools = {tool.name: tool for tool in campaign_tools(StartsUsedUp(), Proposals(turn=1),  # type: ignore[arg-type]
                                                        idempotency_key=lambda: "turn-1")}
    args = CreateCampaignInput.model_validate({"kind": "move", "brief": {"title": "Diwali", "objective": "Sell",
                                                                         "channels": ["email"]}})
    result = tools["create_campaign"].run(args, ToolContext(workspace_id="w"))
    assert isinstance(result, CampaignToolOutput)
    told = result.model_dump()
    assert told["created"] is False and told["limit"] == "campaign_starts_per_day"
    assert told["retry_after_seconds"] == 3600 and "5 campaign starts per day" in told["message"]
