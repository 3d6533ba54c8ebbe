"""Research condensation for the campaign graph: one call when it fits, recursive map-reduce when not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.campaigns import prompts
from shared.campaigns.schemas import ResearchSummary
from shared.models.usage import usage_entries
from shared.ports import StructuredModel
from shared.summarize import estimate_tokens, summarize_findings


@dataclass
class RecursiveSummarizer:
    """`Summarizer` over `shared.summarize`: claims keep their source ids at every level."""

    model: StructuredModel
    budget_tokens: int = 1_500
    single_call_tokens: int = 12_000
    """Findings up to this size are condensed in one call (fast tier); longer ones recursively."""

    def summarize(self, findings: list[dict[str, Any]], *,
                  objective: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(ResearchSummary as JSON, usage entries); citations of ids not among `findings` are dropped."""
        size = sum(estimate_tokens(f"{f.get('title', '')} {f.get('content', '')}") for f in findings)
        if size > self.single_call_tokens:
            return self._recursively(findings, objective)
        sources = [{"id": f["source_id"], "title": f["title"], "content": f["content"][:1200]} for f in findings]
        out = self.model.generate(tier="fast", system=prompts.SUMMARIZER, schema=ResearchSummary,
                                  prompt=prompts.summary_prompt(objective, sources))
        known = {s["id"] for s in sources}
        summary = out.value.model_dump()
        for finding in summary["key_findings"]:
            finding["source_ids"] = [s for s in finding["source_ids"] if s in known]
        return summary, usage_entries("summarize", out)

    def _recursively(self, findings: list[dict[str, Any]],
                     objective: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        result = summarize_findings(findings, self.model, self.budget_tokens, focus=objective)
        summary = {"key_findings": result.key_findings(), "opportunities": [], "risks": [],
                   "summary": result.summary, "rounds": result.rounds, "model_calls": result.model_calls}
        return summary, [{"node": "summarize", **result.usage.as_usage().as_dict()}]
