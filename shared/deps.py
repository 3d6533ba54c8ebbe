"""Run dependencies of the campaign graph, passed to nodes as LangGraph's run context."""

from __future__ import annotations

from dataclasses import dataclass

from shared.campaigns.context import CampaignContext
from shared.ports import (
    ArtifactStore,
    Canon,
    KnowledgeSearch,
    PlanMemory,
    QualityGate,
    StructuredModel,
    Summarizer,
    WebSearch,
    WorkspaceStore,
)
from shared.tools.belt import ToolBelt


@dataclass(frozen=True)
class Deps:
    """Everything a node may use besides its state; every service is a Protocol.

    `campaign` is the typed context of the campaign being advanced, loaded at the start of each step.
    The optional services fall back to simpler built-in behaviour when absent.
    """

    model: StructuredModel
    web: WebSearch
    knowledge: KnowledgeSearch
    workspaces: WorkspaceStore
    artifacts: ArtifactStore
    campaign: CampaignContext | None = None
    plans: PlanMemory | None = None
    summarizer: Summarizer | None = None
    canon: Canon | None = None
    qa: QualityGate | None = None
    tools: ToolBelt | None = None
    """The validated tool belt the specialists search through."""
