"""The Postgres `SpendGate`: reserve each paid call's worst case against the workspace's month and the campaign.

A reservation and its settlement are each one short transaction of their own (never the step's), so
what one campaign holds is visible at once to every other campaign of the workspace, and money spent
by a step that later rolls back still counts. The reserved amount of a model call is its model's price
for its prompt (a token per character; `budget_reserve_prompt_tokens` when the caller does not say) and
`budget_reserve_output_tokens` of answer; a model with no price reserves at the dearest model's price, so
an unknown model never slips past a cap. An answer longer than its reserve is still settled at its actual
cost, so a cap can be passed by that excess (raise `MUSE_BUDGET_RESERVE_OUTPUT_TOKENS` to bound it).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Literal

from shared.db import budgets as db
from shared.db.pool import Pool, as_service
from shared.errors import BudgetExceeded
from shared.models.pricing import MICRO, PriceTable, ToolUsage, cost_micro_usd, load_price_table, micro_usd_to_inr
from shared.ports import Usage
from shared.settings import Settings

BudgetScope = Literal["workspace", "campaign"]


def usd_to_micro(usd: float) -> int:
    """Dollars (a setting or an API value) as integer micro-USD."""
    return round(usd * MICRO)


@dataclass(frozen=True)
class BudgetDefaults:
    """The deployment's caps and per-call reserve, from settings."""

    monthly_cap_micro_usd: int
    campaign_cap_micro_usd: int
    reserve_prompt_tokens: int
    reserve_output_tokens: int
    usd_inr_rate: float

    @classmethod
    def from_settings(cls, settings: Settings) -> BudgetDefaults:
        """The `MUSE_BUDGET_*` and `MUSE_USD_INR_RATE` settings."""
        return cls(monthly_cap_micro_usd=usd_to_micro(settings.budget_monthly_cap_usd),
                   campaign_cap_micro_usd=usd_to_micro(settings.budget_campaign_cap_usd),
                   reserve_prompt_tokens=settings.budget_reserve_prompt_tokens,
                   reserve_output_tokens=settings.budget_reserve_output_tokens,
                   usd_inr_rate=settings.usd_inr_rate)


@dataclass
class _PostgresHold:
    """One reservation; settles (or cancels) once."""

    gate: CampaignBudget
    reservation_id: uuid.UUID
    model: str | None = None
    tool: str | None = None
    vendor: str | None = None
    node: str | None = None
    amount: int = 0
    """Micro-USD reserved."""
    done: bool = False

    def settle_model(self, usage: Usage | None) -> None:
        """Spend the call's priced usage (None or an unpriced model: the reserved amount); recorded in
        `model_usage` too when the gate says so (`CampaignBudget.usage_node`)."""
        actual = None
        priced = None
        if usage is not None:
            priced = usage if usage.model else Usage(self.model or "", usage.prompt_tokens, usage.cached_tokens,
                                                     usage.output_tokens, usage.thinking_tokens)
            actual = cost_micro_usd(priced, table=self.gate.prices)
        self._settle(actual, model_usage=priced or Usage(model=self.model or ""))

    def settle_tool(self, *, credits: float, cached: bool) -> None:
        """Spend the tool call's credits (0 for a cache hit) and record its usage row."""
        actual = cost_micro_usd(ToolUsage(self.vendor or "", credits=credits, cached=cached), table=self.gate.prices)
        self._settle(actual, tool_usage=(credits, cached))

    def cancel(self) -> None:
        """Nothing was spent."""
        self._settle(0)

    def _settle(self, actual: int | None, tool_usage: tuple[float, bool] | None = None,
                model_usage: Usage | None = None) -> None:
        if self.done:
            return
        self.done = True
        gate = self.gate
        with as_service(gate.pool) as conn:
            db.settle(conn, self.reservation_id, actual)
            if model_usage is not None and gate.usage_node is not None:
                db.record_model_usage(conn, reservation_id=self.reservation_id, workspace_id=gate.workspace_id,
                                      campaign_id=gate.campaign_id, node=gate.usage_node, usage=model_usage,
                                      cost_micro_usd=self.amount if actual is None else actual)
            if tool_usage is not None and self.tool is not None:
                db.record_tool_usage(conn, reservation_id=self.reservation_id, workspace_id=gate.workspace_id,
                                     campaign_id=gate.campaign_id, node=self.node or "?", tool=self.tool,
                                     vendor=self.vendor or "?", credits=tool_usage[0], cached=tool_usage[1],
                                     cost_micro_usd=actual)


@dataclass(frozen=True)
class CampaignBudget:
    """The `SpendGate` of one campaign (or, with `campaign_id` None, of a workspace's other work)."""

    pool: Pool
    workspace_id: str
    campaign_id: str | None
    defaults: BudgetDefaults
    prices: PriceTable = field(default_factory=load_price_table)
    today: Callable[[], date] = field(default=lambda: datetime.now(UTC).date())
    usage_node: str | None = None
    """Record each settled model call in `model_usage` under this node (`GET /api/v1/costs` reads it): for work
    no step records the usage of, such as chat turns (`chat`). None: the caller records it (campaign steps)."""

    def reserve_model(self, model: str, *, prompt_chars: int | None = None) -> _PostgresHold:
        """Hold the worst-case cost of one call of `model`."""
        amount = self.model_reserve(model, prompt_chars=prompt_chars)
        return self._reserve(amount, _PostgresHold(self, uuid.uuid4(), model=model, amount=amount))

    def reserve_tool(self, *, tool: str, vendor: str, credits: float, node: str | None) -> _PostgresHold:
        """Hold `credits` of `vendor` (priced by the table; an unpriced vendor holds nothing)."""
        amount = cost_micro_usd(ToolUsage(vendor, credits=credits), table=self.prices) or 0
        return self._reserve(amount, _PostgresHold(self, uuid.uuid4(), tool=tool, vendor=vendor, node=node))

    def model_reserve(self, model: str, *, prompt_chars: int | None = None) -> int:
        """Micro-USD held for one call of `model` (the dearest priced model's if `model` has no price).

        A known prompt counts as one token per character (no tokenizer makes more of ordinary text), else
        `reserve_prompt_tokens`; the answer as `reserve_output_tokens`.
        """
        d = self.defaults
        prompt = d.reserve_prompt_tokens if prompt_chars is None else prompt_chars
        tokens = {"prompt_tokens": prompt, "output_tokens": d.reserve_output_tokens}
        amount = cost_micro_usd({"model": model, **tokens}, table=self.prices)
        if amount is None:
            amount = max(cost_micro_usd({"model": m, **tokens}, table=self.prices) or 0
                         for m in self.prices.at().models)
        return amount

    def _reserve(self, amount: int, hold: _PostgresHold) -> _PostgresHold:
        d = self.defaults
        with as_service(self.pool) as conn:
            answer = db.reserve(conn, reservation_id=hold.reservation_id, workspace_id=self.workspace_id,
                                campaign_id=self.campaign_id, period=db.month_of(self.today()), amount=amount,
                                default_monthly=d.monthly_cap_micro_usd, default_campaign=d.campaign_cap_micro_usd)
        if not answer["ok"]:
            raise self._exceeded(answer, amount)
        return hold

    def _exceeded(self, answer: db.Reserved, amount: int) -> BudgetExceeded:
        scope = answer["scope"] or "workspace"
        cap, spent, reserved = answer["cap"] or 0, answer["spent"] or 0, answer["reserved"] or 0
        rate = self.defaults.usd_inr_rate
        what = "this month's AI-spend cap of the workspace" if scope == "workspace" else "the campaign's AI-spend cap"
        message = (f"The next call (up to ₹{micro_usd_to_inr(amount, rate):.2f}) would pass {what} "
                   f"(₹{micro_usd_to_inr(cap, rate):.2f}; ₹{micro_usd_to_inr(spent, rate):.2f} spent, "
                   f"₹{micro_usd_to_inr(reserved, rate):.2f} held by calls in flight). Raise the cap "
                   "(PUT /api/v1/budgets) or cancel.")
        details = {"scope": scope, "cap_micro_usd": cap, "spent_micro_usd": spent, "reserved_micro_usd": reserved,
                   "needed_micro_usd": amount, "campaign_id": self.campaign_id}
        retry = _seconds_to_next_month(self.today()) if scope == "workspace" else 3600
        return BudgetExceeded(message, retry_after_seconds=retry, details=details)


@dataclass(frozen=True)
class PostgresBudgets:
    """Makes each step's gate; one per process (held by `Deps.budgets`)."""

    pool: Pool
    defaults: BudgetDefaults

    @classmethod
    def from_settings(cls, pool: Pool, settings: Settings) -> PostgresBudgets:
        """The deployment's budgets over `pool`."""
        return cls(pool, BudgetDefaults.from_settings(settings))

    def for_campaign(self, workspace_id: str, campaign_id: str | None) -> CampaignBudget:
        """The gate every paid call of this campaign passes."""
        return CampaignBudget(self.pool, workspace_id, campaign_id, self.defaults)


def _seconds_to_next_month(today: date) -> int:
    first = date(today.year + today.month // 12, today.month % 12 + 1, 1)
    return max(1, int((datetime(first.year, first.month, 1, tzinfo=UTC) - datetime.now(UTC)).total_seconds()))
