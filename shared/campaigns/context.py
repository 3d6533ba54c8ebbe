"""Binding one step's campaign into the graph's run context."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from shared.db.threads import Grant
from shared.db.workspaces import campaign_context
from shared.deps import Deps
from shared.plans.tiers import tier


def load_step_context(deps: Deps, grant: Grant, *, default_tier: str | None = None) -> Deps:
    """The instance's `deps` for the campaign of `grant`: its typed context and its workspace's models.

    The context is built from what the lease already read (workspace settings, brand kit and plan tier,
    no extra round trip) plus the workspace's specialist track record; the model applies the
    workspace's `models` overrides. The media budget's maximum is the workspace's `max_budget_inr` within
    its tier's (`default_tier` for a workspace without a plan). `budget` is the campaign's gate: every
    model and paid tool call of the step, in any thread the graph runs it, is reserved against its caps.
    """
    workspace_id = str(grant.workspace_id)
    context = campaign_context(workspace_id, grant.workspace_settings, grant.brand_kit,
                               user_id=str(grant.created_by) if grant.created_by else None)
    context = replace(context, agent_performance=deps.plans.performance(workspace_id, grant.kind),
                      budget_constraints=media_constraints(context.budget_constraints,
                                                           getattr(grant, "plan_tier", None) or default_tier))
    budget = deps.budgets.for_campaign(workspace_id, str(grant.campaign_id)) if deps.budgets else None
    return replace(deps, campaign=context, model=deps.model.for_workspace(context.settings), budget=budget)


def media_constraints(constraints: dict[str, Any], plan_tier: str | None) -> dict[str, Any]:
    """The workspace's budget constraints with `max_budget_inr` no higher than its plan tier allows."""
    if plan_tier is None:
        return constraints
    limit = tier(plan_tier).max_budget_inr
    own = constraints.get("max_budget_inr")
    return {**constraints, "max_budget_inr": limit if own is None else min(int(own), limit)}
