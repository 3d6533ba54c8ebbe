"""Execution's node: publish the approved, funded copy and remember what the campaign did."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from shared.campaigns.state import CampaignState
from shared.deps import Deps


def execute(state: CampaignState, runtime: Runtime[Deps]) -> dict[str, Any]:
    """Publish every draft exactly once, then remember what this campaign did."""
    deps = runtime.context
    for key in state["drafts"]:
        channel, _, variant = key.partition("#")
        deps.artifacts.publish(campaign_id=state["campaign_id"], channel=channel, variant=variant or "a")
    description = f"{state['kind']}: {state['brief']['title']}. {state['brief']['objective']}"
    qa = state.get("qa")
    deps.plans.remember(state["workspace_id"], state["kind"], description, plan=state["plan"],
                        success=True, quality=float(qa["score"]) if qa else 1.0,
                        campaign_id=state["campaign_id"])
    usage = deps.plans.learn_from_artifacts(state["workspace_id"], state["drafts"], campaign_id=state["campaign_id"])
    return {"published": sorted(state["drafts"]), "usage": usage}
