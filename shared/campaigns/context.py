"""Binding one step's campaign into the graph's run context."""

from __future__ import annotations

from dataclasses import replace

from shared.db.threads import Grant
from shared.db.workspaces import campaign_context
from shared.deps import Deps


def load_step_context(deps: Deps, grant: Grant) -> Deps:
    """The instance's `deps` for the campaign of `grant`: its typed context and its workspace's models.

    The context is built from what the lease already read (workspace settings and brand kit, no
    extra round trip) plus the workspace's specialist track record; the model applies the
    workspace's `models` overrides. `budget` is the campaign's gate: every model and paid tool
    call of the step, in any thread the graph runs it, is reserved against its caps.
    """
    workspace_id = str(grant.workspace_id)
    context = campaign_context(workspace_id, grant.workspace_settings, grant.brand_kit,
                               user_id=str(grant.created_by) if grant.created_by else None)
    context = replace(context, agent_performance=deps.plans.performance(workspace_id, grant.kind))
    budget = deps.budgets.for_campaign(workspace_id, str(grant.campaign_id)) if deps.budgets else None
    return replace(deps, campaign=context, model=deps.model.for_workspace(context.settings), budget=budget)
