"""Model routing: tiers per task, fallback cascades behind per-model circuit breakers, token accounting.

Build the router with `shared.integrations.gemini.structured_model(settings)` (once per process),
narrow it to a workspace with `router.for_workspace(workspace_settings)`, and read `Generated.route`
for the model that answered and what was tried before it.
"""

from shared.models.breaker import BreakerState, CircuitBreaker, CircuitBreakers, FakeClock
from shared.models.pricing import (
    PriceTable,
    ToolUsage,
    cost_micro_usd,
    load_price_table,
    micro_usd_to_inr,
    micro_usd_to_usd,
)
from shared.models.router import AllModelsFailed, ModelBackend, ModelCallFailed, ModelRouter, Routed
from shared.models.routing import TASK_TIERS, TaskKind, WorkspaceModels, tier_for, workspace_models
from shared.models.usage import (
    ModelPrice,
    UsageLedger,
    UsageTotals,
    cost_usd,
    load_prices,
    total,
    totals_by,
    usage_entries,
)

__all__ = (
    "TASK_TIERS",
    "AllModelsFailed",
    "BreakerState",
    "CircuitBreaker",
    "CircuitBreakers",
    "FakeClock",
    "ModelBackend",
    "ModelCallFailed",
    "ModelPrice",
    "ModelRouter",
    "PriceTable",
    "Routed",
    "TaskKind",
    "ToolUsage",
    "UsageLedger",
    "UsageTotals",
    "WorkspaceModels",
    "cost_micro_usd",
    "cost_usd",
    "load_price_table",
    "load_prices",
    "micro_usd_to_inr",
    "micro_usd_to_usd",
    "tier_for",
    "total",
    "totals_by",
    "usage_entries",
    "workspace_models",
)
