"""The conditional edges of the campaign graph: where a campaign goes after a node.

Every step function evaluates them (an edge leaving its own node may lead to another function's),
so this module stays as light as the graph itself.
"""

from __future__ import annotations

from langgraph.types import Send

from shared.campaigns.festivals import anchored
from shared.campaigns.state import CampaignState


def dispatch_specialists(state: CampaignState) -> list[Send] | str:
    """Run every planned specialist that has not run yet, concurrently; then summarize."""
    done = set(state.get("specialists_run") or [])
    pending = [s for s in state["plan"]["specialists"] if s not in done]
    if not pending:
        return "summarize"
    brief = anchored(state["brief"], state.get("campaign_id"))
    return [Send("specialist", {"specialist": s, "plan": state["plan"], "brief": brief,
                                "workspace_id": state["workspace_id"]}) for s in pending]


def after_approval(state: CampaignState) -> str:
    """Approved strategies go to the brief writer; rejected ones back to the planner."""
    return "brief" if state.get("approval") == "approved" else "plan"


def after_qa(state: CampaignState) -> str:
    """Route by the QA outcome."""
    return {"passed": "await_payment", "revise": "content", "human": "qa_review"}[state["qa_outcome"]]


def after_review(state: CampaignState) -> str:
    """A human-approved review goes to funding; a rejected one back to the writers."""
    return "await_payment" if state["qa_outcome"] == "passed" else "content"
