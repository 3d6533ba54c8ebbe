"""Reciprocal rank fusion: merging ranked lists whose scores are not comparable (cosine vs. ts_rank)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

RRF_K = 60
"""The constant of Cormack, Clarke & Büttcher (2009): damps the head of each list so no single list dominates."""


def reciprocal_rank_fusion(rankings: Sequence[Sequence[K]], *, k: int = RRF_K,
                           weights: Sequence[float] | None = None) -> list[tuple[K, float]]:
    """Fuse best-first rankings into one: each item scores `sum(weight / (k + rank))` over the lists it is in.

    Ranks start at 1; an item repeated within one list counts at its best rank only. Ties are broken by
    the best rank an item reached in any list, then by first appearance, so the result is deterministic.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings; give one weight per ranking")
    scores: dict[K, float] = {}
    best: dict[K, int] = {}
    order: dict[K, int] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        seen: set[K] = set()
        for rank, item in enumerate(ranking, start=1):
            if item in seen:
                continue
            seen.add(item)
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
            best[item] = min(best.get(item, rank), rank)
            order.setdefault(item, len(order))
    return sorted(scores.items(), key=lambda pair: (-pair[1], best[pair[0]], order[pair[0]]))
