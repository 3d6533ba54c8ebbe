"""The price table and `cost_micro_usd`: every kind of call, cached work, versions and rounding."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from shared.models.pricing import (
    PriceTable,
    ToolUsage,
    cache_storage_micro_usd,
    cost_micro_usd,
    load_price_table,
    micro_usd_to_inr,
)
from shared.ports import Usage


def _table() -> PriceTable:
    return PriceTable.model_validate({"versions": [
        {"effective_from": "2026-01-01",
         "models": {"m": {"input": 1.0, "cached_input": 0.1, "output": 10.0, "thinking": 20.0,
                          "long_context": {"above_prompt_tokens": 1000, "input": 2.0, "cached_input": 0.2,
                                           "output": 15.0}},
                    "m-lite": {"input": 0.5, "cached_input": 0.05, "output": 1.0}},
         "embeddings": {"e": {"input": 0.15}},
         "tools": {"tavily": {"usd_per_credit": 0.008}}},
        {"effective_from": "2026-06-01",
         "models": {"m": {"input": 3.0, "cached_input": 0.3, "output": 30.0}}},
    ]})


class TestModelCalls:
    def test_each_token_kind_is_billed_at_its_own_price(self) -> None:
        """Uncached prompt, cached prompt, output and thinking tokens each pay their own per-million price."""
        usage = Usage("models/m", prompt_tokens=900, cached_tokens=400, output_tokens=100, thinking_tokens=10)
        assert cost_micro_usd(usage, at=date(2026, 2, 1), table=_table()) == 500 * 1 + 40 + 1000 + 200

    def test_a_cached_prompt_costs_less_than_the_same_prompt_uncached(self) -> None:
        """Gemini's cached tokens are priced at the cache-read price, not the input price."""
        table = load_price_table()
        cold = cost_micro_usd(Usage("gemini-2.5-flash", prompt_tokens=10_000), table=table) or 0
        warm = cost_micro_usd(Usage("gemini-2.5-flash", prompt_tokens=10_000, cached_tokens=9_000), table=table)
        assert (cold, warm) == (3000, 300 + 270)

    def test_long_prompts_use_the_long_context_prices(self) -> None:
        """Above the threshold every token of the call pays the long-context price; thinking falls back to output."""
        usage = Usage("m", prompt_tokens=1001, output_tokens=10, thinking_tokens=10)
        assert cost_micro_usd(usage, at=date(2026, 2, 1), table=_table()) == 2002 + 150 + 150

    def test_the_version_in_effect_on_the_day_prices_the_call(self) -> None:
        """A price change applies from its effective date; earlier calls keep the old price."""
        usage, table = Usage("m", prompt_tokens=1000), _table()
        assert cost_micro_usd(usage, at=date(2026, 5, 31), table=table) == 1000
        assert cost_micro_usd(usage, at=datetime(2026, 6, 1, 0, 30, tzinfo=UTC), table=table) == 3000
        assert cost_micro_usd(usage, at=date(2025, 1, 1), table=table) == 1000

    def test_suffixed_ids_take_the_longest_matching_price_and_unknown_models_are_none(self) -> None:
        """`m-lite-001` is priced as `m-lite`, not `m`; a model not in the table costs None, never zero."""
        table = _table()
        assert cost_micro_usd(Usage("m-lite-001", prompt_tokens=1000), at=date(2026, 2, 1), table=table) == 500
        assert cost_micro_usd(Usage("other", prompt_tokens=1000), table=table) is None

    def test_embeddings_are_priced_by_input_tokens(self) -> None:
        """An embedding call's tokens are its prompt tokens at the embedding price, rounded half-up."""
        assert cost_micro_usd({"model": "e", "prompt_tokens": 10}, at=date(2026, 2, 1), table=_table()) == 2

    def test_the_shipped_table_prices_every_default_model(self) -> None:
        """The models the settings route to by default all have prices today."""
        for model in ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-embedding-001"):
            assert cost_micro_usd(Usage(model, prompt_tokens=1_000_000)) is not None
        assert cost_micro_usd(Usage("gemini-2.5-pro", prompt_tokens=100_000)) == 125_000


class TestToolCalls:
    def test_a_search_costs_its_credits_and_a_cache_hit_costs_nothing(self) -> None:
        """Tavily bills credits; a search answered from our cache spent none and is priced at zero."""
        assert cost_micro_usd(ToolUsage("tavily", credits=2)) == 16_000
        assert cost_micro_usd(ToolUsage("tavily", credits=2, cached=True)) == 0
        assert cost_micro_usd({"tool": "unknown", "credits": 1}) is None


class TestTableAndMoney:
    def test_versions_must_be_in_order(self) -> None:
        """A table whose versions are out of order or share a date is refused when loaded."""
        with pytest.raises(ValueError, match="oldest first"):
            PriceTable.model_validate({"versions": [{"effective_from": "2026-02-01", "models": {}},
                                                    {"effective_from": "2026-01-01", "models": {}}]})

    def test_explicit_cache_storage_is_priced_per_token_hour(self) -> None:
        """Holding 1M tokens of Flash for 30 minutes costs half the hourly storage price."""
        assert cache_storage_micro_usd("gemini-2.5-flash", 1_000_000, 1800) == 500_000

    def test_inr_is_rounded_half_up_to_the_paisa(self) -> None:
        """Micro-USD shown in rupees at a configured rate, to two decimals."""
        assert micro_usd_to_inr(12_345, 88.0) == 1.09
        assert micro_usd_to_inr(50_000, 88.0) == 4.4
