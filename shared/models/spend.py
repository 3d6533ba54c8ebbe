"""The budget check every paid call passes through: reserve its worst-case cost first, settle the actual after.

`ModelRouter.with_budget(gate)` and `ToolBelt.with_budget(gate)` take a `SpendGate`; the Postgres one
(`shared.economics.budgets`) reserves atomically against the workspace's monthly cap and the
campaign's cap and raises `shared.errors.BudgetExceeded` when a cap would be passed, before anything
is spent. Every hold must be settled exactly once (settling twice is a no-op).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, copy_context
from typing import Any, Protocol, TypeVar

from langgraph.runtime import get_runtime

from shared.ports import Usage

R = TypeVar("R")


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

    def reserve_model(self, model: str, *, prompt_chars: int | None = None) -> Hold:
        """Hold the worst-case cost of one call of `model` (a prompt of `prompt_chars` characters, when known);
        raises `BudgetExceeded` when a cap would pass."""
        ...

    def reserve_tool(self, *, tool: str, vendor: str, credits: float, node: str | None) -> Hold:
        """Hold `credits` of `vendor` for one call of `tool`; raises `BudgetExceeded` when a cap would pass."""
        ...


class Budgets(Protocol):
    """Makes the gate of each campaign (one per process, `Deps.budgets`)."""

    def for_campaign(self, workspace_id: str, campaign_id: str | None) -> SpendGate:
        """The gate every paid call of this campaign (None: the workspace's other work) passes."""
        ...


_BUDGET: ContextVar[SpendGate | None] = ContextVar("muse_budget", default=None)


def current_budget() -> SpendGate | None:
    """The gate of the work running now, or None (calls are then not capped).

    A `budget_scope` wins; inside a campaign graph run it is the step's campaign gate, `budget` of the run's
    context (`Deps.budget`, bound by `load_step_context`), so it never outlives the run.
    """
    scoped = _BUDGET.get()
    if scoped is not None:
        return scoped
    try:
        runtime = get_runtime()
    except RuntimeError:
        return None
    return getattr(getattr(runtime, "context", None), "budget", None)


@contextmanager
def budget_scope(gate: SpendGate | None) -> Iterator[None]:
    """Run the block with `gate` as the current budget (restored on exit)."""
    token = _BUDGET.set(gate)
    try:
        yield
    finally:
        _BUDGET.reset(token)


def with_caller_context(fn: Callable[..., R]) -> Callable[..., R]:
    """`fn` running, in whatever thread calls it, with the context variables of the caller of this function.

    For thread pools (`executor.map(with_caller_context(f), items)`): the budget, cache scope and trace of the
    step then reach the worker threads' model calls. Each call runs in its own copy.
    """
    parent = copy_context()

    def run(*args: Any, **kwargs: Any) -> R:
        return parent.copy().run(fn, *args, **kwargs)

    return run
