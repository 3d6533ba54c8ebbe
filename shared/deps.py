"""Run dependencies of the campaign graph, passed to nodes as LangGraph's run context."""

from __future__ import annotations

from dataclasses import dataclass

from shared.ports import ArtifactStore, KnowledgeSearch, StructuredModel, WebSearch, WorkspaceStore


@dataclass(frozen=True)
class Deps:
    """Everything a node may use besides its state; every field is a Protocol."""

    model: StructuredModel
    web: WebSearch
    knowledge: KnowledgeSearch
    workspaces: WorkspaceStore
    artifacts: ArtifactStore
