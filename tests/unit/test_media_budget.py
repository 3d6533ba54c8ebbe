"""The strategy's media budget: whole rupees per plan channel that sum to `budget_inr` exactly."""

from __future__ import annotations

import pytest

from shared.campaigns.nodes.planner import bounded_strategy
from shared.campaigns.schemas import Strategy
from shared.economics.media import split_budget


def _strategy(budget: int, split: list[tuple[str, int]]) -> Strategy:
    return Strategy(positioning="p", key_messages=["m"], budget_inr=budget, rationale="r",
                    budget_split=[{"channel": c, "amount_inr": a} for c, a in split])  # type: ignore[misc]


class TestSplitBudget:
    def test_a_tiny_split_is_scaled_up_to_the_budget(self) -> None:
        """The ₹20,000 budget that came with a ₹3 split: the amounts are proportions, the lines sum to ₹20,000."""
        lines = split_budget(20_000, [("email", 2), ("ad", 1)], ["email", "ad"])
        assert lines == [{"channel": "email", "amount_inr": 13_333}, {"channel": "ad", "amount_inr": 6_667}]

    @pytest.mark.parametrize(("budget", "weights"), [(100, [1, 1, 1]), (99_999, [7, 13, 0]), (1_000_001, [3, 3, 3])])
    def test_lines_always_sum_to_the_budget(self, budget: int, weights: list[int]) -> None:
        """Largest remainder: each line is within one rupee of its exact share and the sum is exact."""
        channels = ["email", "ad", "linkedin"]
        lines = split_budget(budget, list(zip(channels, weights, strict=True)), channels)
        assert sum(int(line["amount_inr"]) for line in lines) == budget
        weight = sum(weights)
        for line, w in zip(lines, weights, strict=True):
            assert abs(int(line["amount_inr"]) - budget * w / weight) < 1

    def test_foreign_or_missing_channels_give_an_even_split_over_the_plan(self) -> None:
        """A split naming no plan channel becomes an even split; every plan channel gets a line."""
        assert split_budget(1_000, [("x_thread", 5)], ["email", "ad", "linkedin"]) == [
            {"channel": "email", "amount_inr": 334}, {"channel": "ad", "amount_inr": 333},
            {"channel": "linkedin", "amount_inr": 333}]


class TestBoundedStrategy:
    def test_the_budget_stays_within_the_workspace_maximum_and_the_split_sums_to_it(self) -> None:
        """A model asking ₹50,000 in a workspace capped at ₹25,000 gets ₹25,000, split over the plan's channels."""
        chosen = bounded_strategy(_strategy(50_000, [("email", 30_000), ("ad", 20_000), ("x_thread", 9)]),
                                  channels=["email", "ad"], brief_budget=None, workspace_max=25_000)
        assert chosen.budget_inr == 25_000
        assert [(line.channel, line.amount_inr) for line in chosen.budget_split] == [("email", 15_000),
                                                                                     ("ad", 10_000)]
