"""Token accounting: every call's usage, totalled per node, per model and per campaign, and priced.

Nodes already put `{"node": ..., **usage.as_dict()}` entries in graph state; `usage_entries` builds
those entries from a `Generated` (including the tokens of fallback attempts that were spent and
thrown away), `totals_by` sums them, and `UsageLedger` keeps running totals in memory for callers
that are not graph nodes (the tool belt, the agent loop). Persisting is the caller's business.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from shared.models.pricing import (
    MICRO,
    PRICES_PATH,
    ModelPrice,
    PriceTable,
    PriceVersion,
    cost_micro_usd,
    load_price_table,
)
from shared.ports import Generated, Usage


@dataclass
class UsageTotals:
    """Summed token counts of some calls."""

    calls: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt (cached included) + output + thinking, as Gemini's `totalTokenCount` counts them."""
        return self.prompt_tokens + self.output_tokens + self.thinking_tokens

    def add(self, usage: Usage | Mapping[str, Any]) -> None:
        """Count one call, given as a `Usage` or as its `as_dict()` form."""
        data = usage.as_dict() if isinstance(usage, Usage) else usage
        self.calls += 1
        self.prompt_tokens += int(data.get("prompt_tokens") or 0)
        self.cached_tokens += int(data.get("cached_tokens") or 0)
        self.output_tokens += int(data.get("output_tokens") or 0)
        self.thinking_tokens += int(data.get("thinking_tokens") or 0)

    def as_dict(self) -> dict[str, int]:
        """JSON form for steps, events and campaign summaries."""
        return {"calls": self.calls, "prompt_tokens": self.prompt_tokens, "cached_tokens": self.cached_tokens,
                "output_tokens": self.output_tokens, "thinking_tokens": self.thinking_tokens,
                "total_tokens": self.total_tokens}


def usage_entries(node: str, generated: Generated[Any]) -> list[dict[str, Any]]:
    """State entries for one routed call: the answer's usage, then any tokens spent on failed attempts."""
    entries = [{"node": node, **generated.usage.as_dict()}]
    if generated.route is not None:
        entries[0]["route"] = generated.route.as_dict()
        entries += [{"node": node, **a.usage.as_dict(), "wasted": True}
                    for a in generated.route.attempts if a.usage is not None]
    return entries


def totals_by(entries: Iterable[Mapping[str, Any]], key: Literal["node", "model"] = "node") -> dict[str, UsageTotals]:
    """Sum usage entries (the `usage` list of graph state) by node or by model."""
    totals: dict[str, UsageTotals] = {}
    for entry in entries:
        totals.setdefault(str(entry.get(key) or "unknown"), UsageTotals()).add(entry)
    return totals


def total(entries: Iterable[Mapping[str, Any]]) -> UsageTotals:
    """Sum of all usage entries, e.g. a whole campaign's."""
    result = UsageTotals()
    for entry in entries:
        result.add(entry)
    return result


@dataclass
class UsageLedger:
    """Running totals per campaign and node, safe to share between threads."""

    _entries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, *, campaign_id: str, node: str, usage: Usage) -> None:
        """Count one call of `node` in `campaign_id`."""
        with self._lock:
            self._entries.setdefault(campaign_id, []).append({"node": node, **usage.as_dict()})

    def record_generated(self, *, campaign_id: str, node: str, generated: Generated[Any]) -> None:
        """Count a routed call, including tokens its failed attempts spent."""
        with self._lock:
            self._entries.setdefault(campaign_id, []).extend(usage_entries(node, generated))

    def entries(self, campaign_id: str) -> list[dict[str, Any]]:
        """Every recorded entry of a campaign, oldest first."""
        with self._lock:
            return list(self._entries.get(campaign_id, []))

    def by_node(self, campaign_id: str) -> dict[str, UsageTotals]:
        """Node → totals within one campaign."""
        return totals_by(self.entries(campaign_id), "node")

    def by_model(self, campaign_id: str) -> dict[str, UsageTotals]:
        """Model → totals within one campaign."""
        return totals_by(self.entries(campaign_id), "model")

    def campaign_total(self, campaign_id: str) -> UsageTotals:
        """Totals of one campaign."""
        return total(self.entries(campaign_id))


def load_prices(path: Path = PRICES_PATH) -> dict[str, ModelPrice]:
    """The model prices in effect today (model id → price); the versions live in `shared.models.pricing`."""
    return dict(load_price_table(path).at().models)


def cost_usd(usage: Usage | Mapping[str, Any], prices: Mapping[str, ModelPrice] | None = None) -> float | None:
    """Cost of one call in USD: `cost_micro_usd` in dollars, against today's prices or the `prices` given.

    None when the model has no price in the table (the caller shows "unknown", never a wrong zero).
    """
    table = None
    if prices is not None:
        table = PriceTable(versions=[PriceVersion(effective_from=date(1970, 1, 1), models=dict(prices))])
    micro = cost_micro_usd(usage, table=table)
    return None if micro is None else micro / MICRO
