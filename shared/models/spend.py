"""The budget check every paid call passes through: reserve its worst-case cost first, settle the actual after.

`ModelRouter.with_budget(gate)` and `ToolBelt.with_budget(gate)` take a `SpendGate`; the Postgres one
(`shared.economics.budgets`) reserves atomically against the workspace's monthly cap and the
campaign's cap and raises `shared.errors.BudgetExceeded` when a cap would be passed, before anything
is spent. Every hold must be settled exactly once (settling twice is a no-op).
"""

from __future__ import annotations

from typing import Protocol

from shared.ports import Usage


class Hold(Protocol):
    """A reservation for one call."""

    def settle_model(self, usage: Usage | None) -> None:
        """The model call ended: its usage (None: unknown, the reserved amount counts as spent)."""
        ...

    def settle_tool(self, *, credits: float, cached: bool) -> None:
        """The tool call ended: vendor credits it spent (0 when answered from a cache)."""
        ...

    def cancel(self) -> None:
        """Nothing was spent (the call was never sent, or the vendor does not bill the failure)."""
        ...


class SpendGate(Protocol):
    """Reserves calls of one campaign (or one workspace's non-campaign work) against its caps."""

    def reserve_model(self, model: str) -> Hold:
        """Hold the worst-case cost of one call of `model`; raises `BudgetExceeded` when a cap would pass."""
        ...

    def reserve_tool(self, *, tool: str, vendor: str, credits: float, node: str | None) -> Hold:
        """Hold `credits` of `vendor` for one call of `tool`; raises `BudgetExceeded` when a cap would pass."""
        ...
