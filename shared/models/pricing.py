"""What a call costs, in integer micro-USD, from the versioned price table (`prices.json`).

One price per million tokens is one micro-USD per token, so a model call costs
`Σ tokens × USD-per-1M` micro-USD: exact for every realistic call, summed without float drift,
rounded half-up once per call. The table holds versions with an `effective_from` date; a call is
priced by the version in effect on the (UTC) day it was made, so a price change never reprices old
usage. Cached work is priced as such: Gemini's cached prompt tokens at the cache-read price, a
web search answered from our cache at zero credits.

`cost_micro_usd` prices both kinds of call: a model call's `Usage` (or its `as_dict()` form, which
also covers embeddings: their tokens are `prompt_tokens`) and a tool call's `ToolUsage`. It answers
None for a model or tool the table does not know, so callers show "unknown", never a wrong zero.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.ports import Usage

PRICES_PATH = Path(__file__).with_name("prices.json")
MICRO = 1_000_000
_P = TypeVar("_P")


class TokenPrice(BaseModel):
    """USD per million tokens of each kind; thinking tokens bill at `thinking` (Gemini: the output price)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: Decimal = Field(ge=0)
    cached_input: Decimal = Field(ge=0)
    output: Decimal = Field(ge=0)
    thinking: Decimal | None = Field(None, ge=0)

    @property
    def thinking_price(self) -> Decimal:
        """The thinking-token price, the output price when the table does not name one."""
        return self.output if self.thinking is None else self.thinking


class LongContextPrice(TokenPrice):
    """The prices that apply to a whole call whose prompt exceeds `above_prompt_tokens`."""

    above_prompt_tokens: int = Field(gt=0)


class ModelPrice(TokenPrice):
    """One generative model's prices, with optional long-context prices and explicit-cache storage."""

    cache_storage_per_hour: Decimal = Field(Decimal(0), ge=0)
    """USD per million cached tokens per hour held by `caches.create`."""
    long_context: LongContextPrice | None = None

    def for_prompt(self, prompt_tokens: int) -> TokenPrice:
        """The token prices of a call with this many prompt tokens."""
        if self.long_context is not None and prompt_tokens > self.long_context.above_prompt_tokens:
            return self.long_context
        return self


class EmbeddingPrice(BaseModel):
    """USD per million input tokens of an embedding model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: Decimal = Field(ge=0)


class ToolPrice(BaseModel):
    """A credit-billed tool (Tavily): USD per credit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    usd_per_credit: Decimal = Field(ge=0)


class PriceVersion(BaseModel):
    """The prices in effect from one UTC day until the next version's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    effective_from: date
    source: str = ""
    models: dict[str, ModelPrice]
    embeddings: dict[str, EmbeddingPrice] = Field(default_factory=dict)
    tools: dict[str, ToolPrice] = Field(default_factory=dict)

    def model(self, name: str) -> ModelPrice | None:
        """A model's price by exact id or, for a dated/suffixed id (`gemini-2.5-flash-preview-09-2025`), by the
        longest table id it extends; `models/` prefixes are ignored."""
        return _lookup(self.models, name)

    def embedding(self, name: str) -> EmbeddingPrice | None:
        """An embedding model's price, looked up like `model`."""
        return _lookup(self.embeddings, name)


class PriceTable(BaseModel):
    """Every price version, oldest first; `at(when)` picks the one in effect."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    note: str = ""
    versions: list[PriceVersion] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> PriceTable:
        dates = [v.effective_from for v in self.versions]
        if dates != sorted(dates) or len(set(dates)) != len(dates):
            raise ValueError("price versions must be listed oldest first with distinct effective_from dates")
        return self

    def at(self, when: date | datetime | None = None) -> PriceVersion:
        """The version in effect on `when`'s UTC day (now when None); before the first version, the first."""
        day = _utc_day(when)
        current = self.versions[0]
        for version in self.versions:
            if version.effective_from <= day:
                current = version
        return current


@dataclass(frozen=True)
class ToolUsage:
    """One billed tool call: the vendor's credits, or a hit of our own cache (no credits spent)."""

    tool: str
    """The priced vendor, a key of the table's `tools` (e.g. `tavily`)."""
    credits: float = 0.0
    cached: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON form stored with tool usage."""
        return {"tool": self.tool, "credits": self.credits, "cached": self.cached}


@lru_cache(maxsize=4)
def load_price_table(path: Path = PRICES_PATH) -> PriceTable:
    """The price table from its data file; edit the file (add a version) when a vendor's prices change."""
    return PriceTable.model_validate(json.loads(path.read_text(encoding="utf-8")))


def cost_micro_usd(usage: Usage | ToolUsage | Mapping[str, Any], *, at: date | datetime | None = None,
                   table: PriceTable | None = None) -> int | None:
    """The cost of one call in micro-USD, or None when its model or tool has no price.

    A model call: `(prompt − cached)·input + cached·cached_input + output·output + thinking·thinking`
    at the long-context prices when the prompt is above the model's threshold. An embedding call (its
    model is in `embeddings`): `prompt_tokens·input`. A tool call: `credits·usd_per_credit`, zero when
    it was answered from our cache.
    """
    version = (table or load_price_table()).at(at)
    data = usage.as_dict() if isinstance(usage, Usage | ToolUsage) else usage
    if data.get("tool"):
        return _tool_cost(version, data)
    model = str(data.get("model") or "")
    prompt = int(data.get("prompt_tokens") or 0)
    price = version.model(model)
    if price is None:
        embedding = version.embedding(model)
        return None if embedding is None else _round(prompt * embedding.input)
    tokens = price.for_prompt(prompt)
    cached = min(int(data.get("cached_tokens") or 0), prompt)
    return _round((prompt - cached) * tokens.input + cached * tokens.cached_input
                  + int(data.get("output_tokens") or 0) * tokens.output
                  + int(data.get("thinking_tokens") or 0) * tokens.thinking_price)


def cache_storage_micro_usd(model: str, tokens: int, seconds: float, *, at: date | datetime | None = None,
                            table: PriceTable | None = None) -> int | None:
    """What holding `tokens` in a Gemini explicit cache for `seconds` costs, or None for an unpriced model."""
    price = (table or load_price_table()).at(at).model(model)
    if price is None:
        return None
    return _round(tokens * price.cache_storage_per_hour * Decimal(str(seconds)) / 3600)


def micro_usd_to_inr(micro_usd: int, usd_inr: float) -> float:
    """Micro-USD shown in rupees at `usd_inr` rupees per dollar, rounded half-up to the paisa."""
    rupees = Decimal(micro_usd) * Decimal(str(usd_inr)) / MICRO
    return float(rupees.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def micro_usd_to_usd(micro_usd: int) -> float:
    """Micro-USD as dollars (exact to six decimals)."""
    return float(Decimal(micro_usd) / MICRO)


def _tool_cost(version: PriceVersion, data: Mapping[str, Any]) -> int | None:
    price = version.tools.get(str(data["tool"]))
    if price is None:
        return None
    if data.get("cached"):
        return 0
    return _round(Decimal(str(data.get("credits") or 0)) * price.usd_per_credit * MICRO)


def _lookup(prices: Mapping[str, _P], name: str) -> _P | None:
    name = name.removeprefix("models/")
    if name in prices:
        return prices[name]
    extended = [key for key in prices if name.startswith(key + "-")]
    return prices[max(extended, key=len)] if extended else None


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _utc_day(when: date | datetime | None) -> date:
    if when is None:
        return datetime.now(UTC).date()
    if isinstance(when, datetime):
        return (when.astimezone(UTC) if when.tzinfo else when).date()
    return when
