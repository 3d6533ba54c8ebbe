"""History compaction: a rolling summary of everything old plus a verbatim window of what is recent.

Chat conversations and campaign histories (feedback, decisions, events) are compacted the same way.
Items after the summary's watermark stay verbatim; once there are more than `trigger_items` of them,
all but the newest `window_items` are folded into the summary by `shared.summarize` with the old
summary as `prior`, so the new claims keep citing the original items (`msg:<seq>`, `event:<id>`).
What a model sees per turn is then bounded: the summary's budget plus at most `trigger_items` items.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from shared.ports import StructuredModel
from shared.summarize import Claim, Source, SummarizeConfig, SummaryResult, summarize


class HistoryItem(BaseModel):
    """One entry of a history: a chat message, a campaign event, a piece of human feedback."""

    seq: int
    role: str
    text: str


class RollingSummary(BaseModel):
    """Cited claims about every item up to and including `through_seq`."""

    claims: list[Claim] = Field(default_factory=list)
    through_seq: int = -1
    folded_items: int = 0


@dataclass(frozen=True)
class CompactionPolicy:
    """When to compact and how large the summary may be."""

    window_items: int = 12
    """Items kept verbatim after a compaction."""
    trigger_items: int = 24
    """Compact once more items than this follow the summary."""
    summary_budget_tokens: int = 600
    max_citations_per_claim: int = 8
    """A claim keeps its newest ids only, so the summary (and its checkpoint blob) stays bounded."""
    source_prefix: str = "msg:"
    focus: str | None = None
    config: SummarizeConfig = field(default_factory=SummarizeConfig)

    def __post_init__(self) -> None:
        if not 0 < self.window_items < self.trigger_items:
            raise ValueError("Need 0 < window_items < trigger_items.")


@dataclass(frozen=True)
class Compaction:
    """The new summary, the items still verbatim, and the summarization that produced it (if any ran)."""

    summary: RollingSummary
    window: list[HistoryItem]
    result: SummaryResult | None = None


def needs_compaction(unsummarized: int, policy: CompactionPolicy) -> bool:
    """Whether `unsummarized` items after the summary call for a compaction."""
    return unsummarized > policy.trigger_items


def compact(
    summary: RollingSummary,
    unsummarized: Sequence[HistoryItem],
    model: StructuredModel,
    policy: CompactionPolicy,
) -> Compaction:
    """Fold all but the newest `window_items` of `unsummarized` (oldest first) into `summary`."""
    items = sorted(unsummarized, key=lambda item: item.seq)
    fold = items[: max(0, len(items) - policy.window_items)]
    if not fold:
        return Compaction(summary=summary, window=items)
    sources = [Source(id=f"{policy.source_prefix}{item.seq}", text=f"{item.role}: {item.text}") for item in fold]
    result = summarize(sources, model, policy.summary_budget_tokens, focus=policy.focus, prior=summary.claims,
                       config=policy.config)
    claims = [_newest_citations(c, policy.max_citations_per_claim) for c in result.claims] or summary.claims
    folded = RollingSummary(claims=claims, through_seq=fold[-1].seq, folded_items=summary.folded_items + len(fold))
    return Compaction(summary=folded, window=items[len(fold):], result=result)


def render_context(summary: RollingSummary, window: Sequence[HistoryItem]) -> str:
    """What a model is shown of a history: the summary's claims, then the recent items verbatim."""
    parts: list[str] = []
    if summary.claims:
        parts.append("Summary of earlier history:")
        parts.extend(f"- {claim.text}" for claim in summary.claims)
    if window:
        parts.append("Recent history:")
        parts.extend(f"{item.role}: {item.text}" for item in window)
    return "\n".join(parts)


def events_as_history(events: Sequence[Mapping[str, Any]]) -> list[HistoryItem]:
    """Campaign events (`campaign_events` rows: id, type, data) as history items; cite them as `event:<id>`."""
    return [
        HistoryItem(seq=int(e["id"]), role=str(e["type"]), text=json.dumps(e.get("data") or {}, ensure_ascii=False))
        for e in events
    ]


def _newest_citations(claim: Claim, limit: int) -> Claim:
    if len(claim.source_ids) <= limit:
        return claim
    newest = sorted(claim.source_ids, key=_seq_of)[-limit:]
    return Claim(text=claim.text, source_ids=newest)


def _seq_of(source_id: str) -> tuple[int, str]:
    tail = source_id.rsplit(":", 1)[-1]
    return (int(tail), source_id) if tail.isdigit() else (-1, source_id)
