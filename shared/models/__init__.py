"""Model routing: tiers per task, fallback cascades behind per-model circuit breakers, token accounting.

Build the router with `shared.integrations.gemini.structured_model(settings)` (once per process),
narrow it to a workspace with `router.for_workspace(workspace_settings)`, and read `Generated.route`
for the model that answered and what was tried before it.

The names below are imported from their modules on first use, so that importing one light module of the
package (`shared.models.pricing` from the database layer) does not load the router, LangGraph and LangSmith.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_EXPORTS: dict[str, str] = {
    "AllModelsFailed": "router",
    "BreakerState": "breaker",
    "CircuitBreaker": "breaker",
    "CircuitBreakers": "breaker",
    "FakeClock": "breaker",
    "ModelBackend": "router",
    "ModelCallFailed": "router",
    "ModelPrice": "usage",
    "ModelRouter": "router",
    "PriceTable": "pricing",
    "Routed": "router",
    "TASK_TIERS": "routing",
    "TaskKind": "routing",
    "ToolUsage": "pricing",
    "UsageLedger": "usage",
    "UsageTotals": "usage",
    "WorkspaceModels": "routing",
    "cost_micro_usd": "pricing",
    "cost_usd": "usage",
    "load_price_table": "pricing",
    "load_prices": "usage",
    "micro_usd_to_inr": "pricing",
    "micro_usd_to_usd": "pricing",
    "tier_for": "routing",
    "total": "usage",
    "totals_by": "usage",
    "usage_entries": "usage",
    "workspace_models": "routing",
}
"""Each exported name → the module of the package that defines it."""


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


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
