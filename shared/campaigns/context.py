"""The typed context every node of a campaign sees, loaded once per step from the workspace."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.ports import BrandKit, WorkspacePolicy


@dataclass(frozen=True)
class CampaignContext:
    """Who the campaign is for and under which rules it runs; passed as run context, never global."""

    workspace_id: str
    user_id: str | None = None
    brand: BrandKit = field(default_factory=BrandKit)
    icps: list[str] = field(default_factory=list)
    """Ideal customer profiles / personas from the brand kit."""
    past_successes: list[str] = field(default_factory=list)
    """What worked before (episodic memory of this workspace)."""
    preferences: dict[str, Any] = field(default_factory=dict)
    """Workspace preferences (tone, channels, languages)."""
    agent_performance: dict[str, Any] = field(default_factory=dict)
    """Track record of specialist variants for this workspace."""
    quality_thresholds: dict[str, float] = field(default_factory=dict)
    budget_constraints: dict[str, Any] = field(default_factory=dict)
    policy: WorkspacePolicy = field(default_factory=WorkspacePolicy)
    settings: dict[str, Any] = field(default_factory=dict)
    """The workspace's raw settings (model overrides per tier, self-correction config)."""
