"""Research condensation for the campaign graph: one call when it fits, recursive map-reduce when not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.ports import StructuredModel
from shared.summarize import estimate_tokens, summarize_findings


@dataclass
class RecursiveSummarizer:
    """`Summarizer` over `shared.summarize`: claims keep their source ids at every level."""

    model: StructuredModel
    budget_tokens: int = 1_500
    single_call_tokens: int = 12_000
    """Findings up to this size are condensed in one call by the node itself."""

    def needed(self, findings: list[dict[str, Any]]) -> bool:
        """Whether the findings are too long for one prompt."""
        return sum(estimate_tokens(f"{f.get('title', '')} {f.get('content', '')}") for f in findings) \
            > self.single_call_tokens

    def summarize(self, findings: list[dict[str, Any]], *,
                  objective: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        result = summarize_findings(findings, self.model, self.budget_tokens, focus=objective)
        summary = {"key_findings": result.key_findings(), "opportunities": [], "risks": [],
                   "summary": result.summary, "rounds": result.rounds, "model_calls": result.model_calls}
        return summary, [{"node": "summarize", **result.usage.as_usage().as_dict()}]
