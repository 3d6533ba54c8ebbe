"""What the model answers (`SummaryDraft`) and what summarization returns (`SummaryResult`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from shared.ports import Usage


class DraftClaim(BaseModel):
    """One claim as the model writes it, citing the tags it was shown."""

    text: str = Field(description="One self-contained sentence stating a finding from the input.")
    cites: list[str] = Field(
        default_factory=list,
        description="Tags of the passages (S1, S2, ...) or earlier claims (C1, C2, ...) this claim rests on.",
    )


class SummaryDraft(BaseModel):
    """The structured answer of every summarization call."""

    claims: list[DraftClaim]


class Claim(BaseModel):
    """A summarized claim and the original sources it rests on."""

    text: str
    source_ids: list[str] = Field(min_length=1)


class Citation(BaseModel):
    """A source the final summary cites."""

    source_id: str
    title: str = ""
    url: str | None = None


class UsageTotal(BaseModel):
    """Token usage summed over every model call of one summarization."""

    model: str = ""
    prompt_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0

    def plus(self, usage: Usage) -> UsageTotal:
        """This total with one more call's usage added."""
        return UsageTotal(
            model=self.model or usage.model,
            prompt_tokens=self.prompt_tokens + usage.prompt_tokens,
            cached_tokens=self.cached_tokens + usage.cached_tokens,
            output_tokens=self.output_tokens + usage.output_tokens,
            thinking_tokens=self.thinking_tokens + usage.thinking_tokens,
        )

    def as_usage(self) -> Usage:
        """The same numbers as the `Usage` that artifacts and events store."""
        return Usage(model=self.model, prompt_tokens=self.prompt_tokens, cached_tokens=self.cached_tokens,
                     output_tokens=self.output_tokens, thinking_tokens=self.thinking_tokens)


class SummaryResult(BaseModel):
    """A summary within its token budget, every claim citing original source ids, and what it cost."""

    summary: str
    """The claims as a bulleted text, each followed by its source ids in brackets."""
    claims: list[Claim]
    citations: list[Citation]
    """The distinct sources the claims cite, in order of first citation."""
    rounds: int
    """Sequential model rounds (map, each merge level, any compression); grows with log(input size)."""
    model_calls: int
    calls_per_round: list[int]
    chunks: int
    input_tokens: int
    summary_tokens: int
    dropped_citations: int = 0
    """Cited tags or ids the model invented (not in that call's input); removed."""
    dropped_claims: int = 0
    """Claims left with no valid citation; removed."""
    trimmed_claims: int = 0
    """Claims cut because an answer overran its token target."""
    usage: UsageTotal

    def key_findings(self) -> list[dict[str, Any]]:
        """The claims in the campaign graph's `KeyFinding` shape: `{"claim", "source_ids"}`."""
        return [{"claim": c.text, "source_ids": list(c.source_ids)} for c in self.claims]
