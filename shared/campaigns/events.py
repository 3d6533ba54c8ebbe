"""Readable progress events derived from node updates (what the SSE stream shows)."""

from __future__ import annotations

from typing import Any


def describe(node: str, update: dict[str, Any] | None) -> dict[str, Any]:
    """A small, human-meaningful summary of what `node` just did."""
    update = update or {}
    data: dict[str, Any] = {"node": node}
    if node == "plan" and "plan" in update:
        data |= {"channels": update["plan"]["channels"], "queries": update["plan"]["research_queries"]}
    elif node in ("research_web", "research_knowledge"):
        found = update.get("web_findings") or update.get("knowledge_findings") or []
        data |= {"sources": len(found)}
    elif node == "summarize" and "research_summary" in update:
        data |= {"findings": len(update["research_summary"]["key_findings"])}
    elif node == "strategy" and "strategy" in update:
        data |= {"positioning": update["strategy"]["positioning"], "budget_inr": update["strategy"]["budget_inr"]}
    elif node == "approve_strategy":
        data |= {"approval": update.get("approval")}
    elif node == "content" and "drafts" in update:
        data |= {"revision": update.get("qa_revisions", 0), "channels": sorted(update["drafts"])}
    elif node == "qa_gate" and "qa" in update:
        qa = update["qa"]
        data |= {"passed": qa["passed"], "score": qa["score"], "outcome": update.get("qa_outcome"),
                 "findings": qa["findings"]}
    elif node == "execute":
        data |= {"published": update.get("published", [])}
    return data
