"""The strategy's media budget, made consistent: whole rupees per channel that sum to `budget_inr` exactly.

Rounding rule (largest remainder): each channel gets `floor(budget × weight / Σ weights)` rupees, then the
rupees left over go one each to the channels with the largest fractional parts (ties: plan order). The
model's amounts are the weights, so only their proportions count; a split that names no plan channel, or
only zeros, becomes an even split over the plan's channels. Every channel of the plan gets a line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction


def split_budget(budget_inr: int, weights: Iterable[tuple[str, int]],
                 channels: Sequence[str]) -> list[dict[str, int | str]]:
    """`budget_split` lines (`{"channel", "amount_inr"}`) over `channels`, in plan order, summing to `budget_inr`.

    `weights` are the proposed `(channel, amount)` pairs; amounts for channels outside the plan are dropped
    and repeated channels add up.
    """
    if budget_inr < 0:
        raise ValueError(f"budget_inr must be at least 0, got {budget_inr}")
    order = list(dict.fromkeys(channels))
    if not order:
        return []
    share: dict[str, int] = dict.fromkeys(order, 0)
    for channel, amount in weights:
        if channel in share and amount > 0:
            share[channel] += amount
    if not any(share.values()):
        share = dict.fromkeys(order, 1)
    return [{"channel": c, "amount_inr": a} for c, a in _largest_remainder(budget_inr, share).items()]


def _largest_remainder(total: int, share: Mapping[str, int]) -> dict[str, int]:
    weight = sum(share.values())
    exact = {c: Fraction(total * w, weight) for c, w in share.items()}
    amounts = {c: int(q) for c, q in exact.items()}
    left = total - sum(amounts.values())
    by_remainder = sorted(exact, key=lambda c: (-(exact[c] - amounts[c]), list(share).index(c)))
    for channel in by_remainder[:left]:
        amounts[channel] += 1
    return amounts
