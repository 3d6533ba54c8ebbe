"""INR plan tiers (free / pro / agency), their monthly AI credit allowances and per-workspace rate limits.

`tiers` is the tier table (data), `account` a workspace's plan in force (tier, period, credits used,
read from the spend accounting of `shared.models`) and the audited tier change billing calls,
`limiter` the Upstash rate limits (official `upstash-ratelimit` SDK, failing open), and `gate` where
the API enforces them.
"""

from shared.plans.account import PlanState, current_period, ensure_credits, plan_state, set_workspace_tier
from shared.plans.gate import PlanGate
from shared.plans.limiter import RateLimiter, Verdict, rate_limiter
from shared.plans.tiers import MICRO_USD_PER_CREDIT, TIER_NAMES, TIERS, LimitName, Tier, TierName, tier

__all__ = ["MICRO_USD_PER_CREDIT", "TIERS", "TIER_NAMES", "LimitName", "PlanGate", "PlanState", "RateLimiter", "Tier",
           "TierName", "Verdict", "current_period", "ensure_credits", "plan_state", "rate_limiter",
           "set_workspace_tier", "tier"]
