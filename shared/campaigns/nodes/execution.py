"""Execution's node: release the approved, funded copy, schedule its publications, remember what the campaign did."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from shared.campaigns.state import CampaignState
from shared.deps import Deps


def execute(state: CampaignState, runtime: Runtime[Deps]) -> dict[str, Any]:
    """Release every draft once (only a paid campaign's), schedule one publication per target, then remember.

    Publishing itself happens later, each publication at its time through the `publish` function; the
    campaign waits at step `publishing` while any is left to fire (`publications_pending`).
    """
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
    scheduled = deps.publishing.schedule(campaign_id=state["campaign_id"], workspace_id=state["workspace_id"],
                                         draft_keys=sorted(state["drafts"]), brief=state["brief"],
                                         workspace_settings=deps.campaign.settings)
    return {"published": sorted(state["drafts"]), "usage": usage,
            "publications_pending": int(scheduled["pending"])}
