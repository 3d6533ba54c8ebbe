"""A cheap, conservative token estimate used to size chunks and prompts without calling the model."""

from __future__ import annotations

import math


def estimate_tokens(text: str) -> int:
    """Tokens of `text`: the larger of 1.3 per word and 1 per 4 characters.

    Gemini's tokenizer averages about 1.3 tokens per English word; scripts such as Devanagari or Tamil
    use more tokens per word, which the character bound catches. Over-estimating only makes chunks a
    little smaller, under-estimating could overflow a context window, so the larger bound wins.
    """
    if not text:
        return 0
    return estimate_counts(len(text.split()), len(text))


def estimate_counts(words: int, chars: int) -> int:
    """`estimate_tokens` of a text with `words` words and `chars` characters."""
    return max(math.ceil(words * 1.3), math.ceil(chars / 4))
