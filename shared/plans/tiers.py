"""The plan tiers as data: what a workspace pays each month in INR and what it may use for it.

A tier's AI credits are its monthly allowance of model and tool spend, priced at list price by the
spend accounting of `shared.models` (one credit is `MICRO_USD_PER_CREDIT` micro-USD, i.e. US$0.001, so
a standard campaign at the ≤ US$0.01 aim costs about 10 credits). The other figures are enforced per
workspace: API requests per minute and campaign starts per day through Upstash rate limits, and the
largest media budget (INR) one campaign may carry.

| tier   | INR / month | AI credits / month | campaign starts / day | API requests / min | max budget (INR) |
|--------|-------------|--------------------|-----------------------|--------------------|------------------|
| free   | 0           | 1,000 (US$1)       | 5                     | 60                 | 25,000           |
| pro    | 2,499       | 20,000 (US$20)     | 50                    | 600                | 5,00,000         |
| agency | 9,999       | 1,00,000 (US$100)  | 500                   | 1,200              | 50,00,000        |

Prices exclude GST (18%, added on the invoice by billing). The allowance stays below the price at the
assumed ₹88/US$ (pro: US$20 of AI for ₹2,499 ≈ US$28), so a tier that uses all its credits still pays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

TierName = Literal["free", "pro", "agency"]
"""Every plan tier, cheapest first."""
TIER_NAMES: tuple[TierName, ...] = get_args(TierName)

LimitName = Literal["api_requests_per_minute", "campaign_starts_per_day", "monthly_ai_credits"]
"""The limits a request can run into; a 429's `details.limit` names one of them."""

MICRO_USD_PER_CREDIT = 1_000
"""One AI credit is US$0.001 of model and tool spend at list price."""


@dataclass(frozen=True, slots=True)
class Tier:
    """One plan tier: its monthly price and the limits it buys."""

    name: TierName
    price_inr_monthly: int
    """Monthly price in rupees, GST excluded."""
    monthly_ai_credits: int
    """AI credits per billing period (see `MICRO_USD_PER_CREDIT`)."""
    campaign_starts_per_day: int
    """Campaigns and moves a workspace may start in any rolling day."""
    api_requests_per_minute: int
    """Requests to the API function a workspace may make per minute."""
    max_budget_inr: int
    """Largest media budget one campaign's strategy may carry."""

    @property
    def monthly_ai_micro_usd(self) -> int:
        """The credit allowance as AI spend in micro-USD (the unit spend is recorded in)."""
        return self.monthly_ai_credits * MICRO_USD_PER_CREDIT


TIERS: dict[TierName, Tier] = {
    "free": Tier(name="free", price_inr_monthly=0, monthly_ai_credits=1_000, campaign_starts_per_day=5,
                 api_requests_per_minute=60, max_budget_inr=25_000),
    "pro": Tier(name="pro", price_inr_monthly=2_499, monthly_ai_credits=20_000, campaign_starts_per_day=50,
                api_requests_per_minute=600, max_budget_inr=500_000),
    "agency": Tier(name="agency", price_inr_monthly=9_999, monthly_ai_credits=100_000,
                   campaign_starts_per_day=500, api_requests_per_minute=1_200, max_budget_inr=5_000_000),
}


def tier(name: str) -> Tier:
    """The tier called `name`; a name that is none raises `ValueError` listing the tiers."""
    if name not in TIERS:
        raise ValueError(f"unknown plan tier {name!r}; tiers: {', '.join(TIER_NAMES)}")
    return TIERS[name]


def credits_for(micro_usd: int) -> int:
    """Whole AI credits that `micro_usd` of spend uses (a started credit counts)."""
    return -(-max(0, micro_usd) // MICRO_USD_PER_CREDIT)
