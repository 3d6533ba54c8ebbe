"""Readable progress events derived from node updates (what the SSE stream shows)."""

from __future__ import annotations

from typing import Any


def research_risk(tool_runs: list[dict[str, Any]]) -> dict[str, Any]:
    """What the injection screening of a specialist's web results found: the worst level, and each
    dropped result with its findings (spans in the result's `title` + newline + `content`)."""
    dropped = [item for run in tool_runs for item in run.get("screened") or []]
    return {"level": "high" if dropped else "none", "dropped": dropped}


def describe(node: str, update: dict[str, Any] | None) -> dict[str, Any]:
    """A small, human-meaningful summary of what `node` just did."""
    update = update or {}
    data: dict[str, Any] = {"node": node}
    if node == "plan" and "plan" in update:
        data |= {"channels": update["plan"]["channels"], "specialists": update["plan"]["specialists"],
                 "queries": update["plan"]["research_queries"]}
    elif node == "specialist":
        data |= {"specialist": (update.get("specialists_run") or ["?"])[0],
                 "sources": len(update.get("findings") or []), "tools": update.get("tool_runs") or [],
                 "risk": research_risk(update.get("tool_runs") or [])}
    elif node == "review" and "plan" in update:
        data |= {"specialists": update["plan"]["specialists"], "angles": update["plan"].get("angles", []),
                 "changes": len(update.get("course_changes") or [])}
    elif node == "summarize" and "research_summary" in update:
        data |= {"findings": len(update["research_summary"]["key_findings"])}
    elif node == "strategy" and "strategy" in update:
        data |= {"positioning": update["strategy"]["positioning"], "budget_inr": update["strategy"]["budget_inr"]}
    elif node == "approve_strategy":
        data |= {"approval": update.get("approval")}
    elif node == "brief" and "briefs" in update:
        data |= {"channels": sorted(update["briefs"])}
    elif node == "content" and "drafts" in update:
        data |= {"revision": update.get("qa_revisions", 0), "drafts": sorted(update["drafts"])}
    elif node == "qa_gate" and "qa" in update:
        qa = update["qa"]
        data |= {"passed": qa["passed"], "score": qa["score"], "outcome": update.get("qa_outcome"),
                 "findings": qa["findings"]}
    elif node == "execute":
        data |= {"published": update.get("published", [])}
    models = [u for u in update.get("usage") or [] if not u.get("wasted")]
    if models:
        data["models"] = sorted({u["model"] for u in models})
        data["fallbacks"] = sum((u.get("route") or {}).get("fallbacks", 0) for u in models)
    return data
