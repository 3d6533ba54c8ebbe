"""What a brief will cost before it runs: from the workspace's own history when it has enough, else a profile.

History: at least `MIN_HISTORY` completed campaigns of the same kind; the estimate is the median cost per
channel × the brief's channels (low/high: the cheapest and dearest per channel seen). Profile: the calls a
campaign makes per node (below, measured on the standard campaign of `infra/bench_costs.py`), priced at
the deployment's fast/strong models; low leaves out the memory calls, high adds one full QA revision.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from shared.db.costs import PastCampaign
from shared.models.pricing import PriceTable, ToolUsage, cost_micro_usd, load_price_table

MIN_HISTORY = 3
Basis = Literal["history", "profile"]


@dataclass(frozen=True)
class NodeCalls:
    """The model calls of one node: how many (fixed + per channel-variant), on which tier, of what size."""

    node: str
    tier: Literal["fast", "strong"]
    fixed: int
    per_channel: int
    prompt_tokens: int
    output_tokens: int


PROFILE: tuple[NodeCalls, ...] = (
    NodeCalls("plan", "strong", 1, 0, 200, 100),
    NodeCalls("review", "fast", 1, 0, 320, 40),
    NodeCalls("summarize", "fast", 1, 0, 180, 100),
    NodeCalls("strategy", "strong", 1, 0, 400, 50),
    NodeCalls("brief", "strong", 0, 1, 620, 160),
    NodeCalls("content", "fast", 0, 1, 320, 30),
    NodeCalls("qa", "fast", 2, 1, 300, 80),
    NodeCalls("memory", "fast", 4, 0, 250, 25),
)
"""Model calls of a campaign by node (`per_channel` counts each channel's variant), with their mean prompt and
output tokens as measured on the standard campaign of `infra/bench_costs.py` against the Gemini emulator. Real
Gemini answers are longer (and think), so a workspace's own history replaces the profile once it has some."""
SEARCHES = {"campaign": 1, "move": 1}
"""Tavily credits of the research step as measured (its searches after the web-search and semantic caches)."""


@dataclass(frozen=True)
class Estimate:
    """A brief's expected AI cost in micro-USD, with its range and how it was made."""

    basis: Basis
    samples: int
    expected: int
    low: int
    high: int
    by_node: dict[str, int]


def estimate(kind: str, channels: int, variants: int, history: Sequence[PastCampaign], *, fast_model: str,
             strong_model: str, prices: PriceTable | None = None) -> Estimate:
    """The estimate for a brief of `kind` with `channels` channels and `variants` variants each."""
    usable = [h for h in history if h["channels"] > 0 and h["cost_micro_usd"] > 0]
    profile = _profile(kind, channels * variants, fast_model, strong_model, prices or load_price_table())
    if len(usable) >= MIN_HISTORY:
        per_channel = [h["cost_micro_usd"] / h["channels"] for h in usable]
        return Estimate(basis="history", samples=len(usable), expected=round(statistics.median(per_channel) * channels),
                        low=round(min(per_channel) * channels), high=round(max(per_channel) * channels),
                        by_node=profile)
    expected = sum(profile.values())
    revision = profile.get("content", 0) + profile.get("qa", 0)
    return Estimate(basis="profile", samples=len(usable), expected=expected,
                    low=expected - profile.get("memory", 0), high=expected + revision, by_node=profile)


def _profile(kind: str, channel_variants: int, fast: str, strong: str, prices: PriceTable) -> dict[str, int]:
    costs: dict[str, int] = {}
    for calls in PROFILE:
        n = calls.fixed + calls.per_channel * channel_variants
        each = cost_micro_usd({"model": fast if calls.tier == "fast" else strong,
                               "prompt_tokens": calls.prompt_tokens, "output_tokens": calls.output_tokens},
                              table=prices) or 0
        costs[calls.node] = n * each
    costs["web_search"] = cost_micro_usd(ToolUsage("tavily", credits=SEARCHES.get(kind, 5)), table=prices) or 0
    return costs
