"""Prompt text of summarization calls; passages are tagged `S<n>`, earlier claims `C<n>`.

Passages (web pages, documents, conversation messages) and earlier claims condensed from them are
untrusted: each list is quoted as one untrusted block, with its header as the block's first line.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.safety.untrusted import quote, with_rule

PASSAGES_HEADER = "Passages:"
CLAIMS_HEADER = "Claims to merge:"

_SYSTEM = (
    "You condense research and conversations for Muse, a marketing assistant for Indian brands. "
    "Answer with claims: each one self-contained sentence of at most {claim_words} words stating a fact, "
    "number, decision or finding from the input. Cite every claim with the tags of the passages (S1, S2, ...) "
    "or earlier claims (C1, C2, ...) it rests on, using only tags listed in the input. Merge claims that say "
    "the same thing and keep all their tags. Never state a number or a name that is not in the input."
)


def system(claim_words: int) -> str:
    """The system instruction of every summarization call."""
    return with_rule(_SYSTEM.format(claim_words=claim_words))


def build(
    *,
    focus: str | None,
    max_claims: int,
    target_tokens: int,
    claims: Sequence[tuple[str, str]],
    passages: Sequence[tuple[str, str, str]],
) -> str:
    """The user prompt: limits, then the earlier claims `(tag, text)`, then passages `(tag, title, text)`."""
    lines: list[str] = []
    if focus:
        lines.append(f"Focus: {focus}")
    lines.append(f"Write at most {max_claims} claims (about {target_tokens} tokens in total), most important first.")
    if claims:
        listed = [CLAIMS_HEADER, *(f"[{tag}] {text}" for tag, text in claims)]
        lines.append(quote("\n".join(listed), source="research", label="claims to merge"))
    if passages:
        listed = [PASSAGES_HEADER]
        previous_title = None
        for tag, title, text in passages:
            heading = f"({title}) " if title and title != previous_title else ""
            previous_title = title
            listed.append(f"[{tag}] {heading}{text}")
        lines.append(quote("\n".join(listed), source="research", label="passages"))
    return "\n".join(lines)
