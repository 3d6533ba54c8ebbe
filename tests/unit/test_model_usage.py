"""Token accounting: per node, per model and per campaign totals, and the price estimate."""

from __future__ import annotations

import math

import pytest
from pydantic import BaseModel

from shared.models import ModelPrice, UsageLedger, cost_usd, load_prices, total, totals_by, usage_entries
from shared.ports import Generated, Route, RouteAttempt, Usage


class Out(BaseModel):
    x: int = 1


def _generated(model: str, prompt: int, *, wasted: Usage | None = None) -> Generated[Out]:
    attempts = ((RouteAttempt(model="gemini-2.5-pro", outcome="invalid_output", usage=wasted),) if wasted else ())
    route = Route(tier="strong", model=model, attempts=(*attempts, RouteAttempt(model=model, outcome="ok")))
    return Generated(value=Out(), usage=Usage(model=model, prompt_tokens=prompt, cached_tokens=10, output_tokens=20,
                                              thinking_tokens=5), route=route)


def test_usage_entries_carry_the_route_and_the_tokens_of_failed_attempts() -> None:
    wasted = Usage(model="gemini-2.5-pro", prompt_tokens=50, output_tokens=9)
    entries = usage_entries("plan", _generated("gemini-2.5-flash", 100, wasted=wasted))

    assert entries[0]["node"] == "plan" and entries[0]["model"] == "gemini-2.5-flash"
    assert entries[0]["route"]["fallbacks"] == 1
    assert entries[1] == {"node": "plan", **wasted.as_dict(), "wasted": True}
    assert usage_entries("x", Generated(value=Out(), usage=Usage(model="m"))) == [{"node": "x", **Usage("m").as_dict()}]


def test_totals_by_node_model_and_campaign() -> None:
    ledger = UsageLedger()
    ledger.record_generated(campaign_id="c1", node="plan", generated=_generated("gemini-2.5-pro", 100))
    ledger.record_generated(campaign_id="c1", node="summarize", generated=_generated("gemini-2.5-flash", 40))
    ledger.record(campaign_id="c1", node="summarize", usage=Usage(model="gemini-2.5-flash", prompt_tokens=60))
    ledger.record(campaign_id="c2", node="plan", usage=Usage(model="gemini-2.5-pro", prompt_tokens=1))

    by_node = ledger.by_node("c1")
    assert by_node["plan"].as_dict() == {"calls": 1, "prompt_tokens": 100, "cached_tokens": 10, "output_tokens": 20,
                                         "thinking_tokens": 5, "total_tokens": 125}
    assert by_node["summarize"].calls == 2 and by_node["summarize"].prompt_tokens == 100
    assert set(ledger.by_model("c1")) == {"gemini-2.5-pro", "gemini-2.5-flash"}
    campaign = ledger.campaign_total("c1")
    assert (campaign.calls, campaign.prompt_tokens, campaign.thinking_tokens) == (3, 200, 10)
    assert ledger.campaign_total("c2").prompt_tokens == 1
    assert total(ledger.entries("c1")).as_dict() == campaign.as_dict()


def test_totals_by_reads_the_usage_list_nodes_already_keep_in_state() -> None:
    state_usage = [{"node": "plan", **Usage("gemini-2.5-pro", 10, 0, 3, 2).as_dict()},
                   {"node": "plan", **Usage("gemini-2.5-pro", 5, 1, 1, 0).as_dict()}]
    assert totals_by(state_usage)["plan"].total_tokens == 21


def test_cost_follows_the_billing_formula_and_is_unknown_for_unpriced_models() -> None:
    prices = {"m": ModelPrice(input=1.0, output=10.0, cached_input=0.1)}
    usage = Usage(model="models/m", prompt_tokens=1_000_000, cached_tokens=200_000, output_tokens=100_000,
                  thinking_tokens=50_000)
    assert math.isclose(cost_usd(usage, prices) or 0, 0.8 + 0.02 + 1.5)
    assert cost_usd(Usage(model="other"), prices) is None
    assert cost_usd(usage.as_dict(), prices) == cost_usd(usage, prices)


def test_the_price_table_loads_from_data() -> None:
    prices = load_prices()
    assert prices["gemini-2.5-pro"].input == pytest.approx(1.25)
    assert cost_usd(Usage(model="gemini-2.5-flash", prompt_tokens=1_000_000)) == pytest.approx(0.30)
