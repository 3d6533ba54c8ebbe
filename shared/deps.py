"""Run dependencies of the campaign graph, passed to nodes as LangGraph's run context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn, cast

from shared.models.spend import Budgets, SpendGate
from shared.ports import (
    ArtifactStore,
    CampaignContext,
    Canon,
    KnowledgeSearch,
    PlanMemory,
    QualityGate,
    RoutableModel,
    Summarizer,
    WebSearch,
    WorkspaceStore,
)
from shared.tools.belt import ToolBelt

if TYPE_CHECKING:
    from shared.memory.ports import MemoryStores
    from shared.publishing.scheduling import PublicationScheduler


@dataclass(frozen=True)
class Deps:
    """Everything a node may use besides its state; every service is a Protocol and every one is required.

    Production builds one per instance (`shared.runtime.wiring.build_deps`) and tests build the same
    wiring with a few boundary pieces replaced (`DepsOverrides`), so a node has exactly one path.
    """

    model: RoutableModel
    web: WebSearch
    knowledge: KnowledgeSearch
    workspaces: WorkspaceStore
    artifacts: ArtifactStore
    plans: PlanMemory
    summarizer: Summarizer
    canon: Canon
    qa: QualityGate
    tools: ToolBelt
    """The validated tool belt the specialists search through."""
    publishing: PublicationScheduler
    """Schedules the released artifacts' publications (`shared.publishing.engine.Publisher`)."""
    campaign: CampaignContext
    """The campaign being advanced. The instance's Deps holds `NO_CAMPAIGN`; each step binds its own
    (`shared.campaigns.context.load_step_context`)."""
    budgets: Budgets | None = None
    """AI-spend caps (`shared.economics.budgets`), making each campaign's gate. None (a test's choice): no caps."""
    budget: SpendGate | None = None
    """The gate of the campaign being advanced (bound with `campaign`); every model and paid tool call of the
    step, in any of its threads, is reserved against it first (`shared.models.spend.current_budget`)."""


@dataclass(frozen=True)
class DepsOverrides:
    """The boundary pieces a test (or benchmark) replaces when building the production `Deps`.

    Everything not named here is built exactly as in production, on top of the replacements: the
    summarizer, QA gate, tool belt and plan memory all call the overriding model, the tool belt
    searches through the overriding search ports, and the plan memory keeps its facts, episodes and
    routes in the overriding stores.
    """

    model: RoutableModel | None = None
    web: WebSearch | None = None
    knowledge: KnowledgeSearch | None = None
    publishing: PublicationScheduler | None = None
    """Where the execute node schedules publications (e.g. a publisher with fake adapters and a recording queue)."""
    memory: MemoryStores | None = None
    """Where plan memory keeps facts, episodes, task routes and variant records (e.g.
    `shared.memory.fakes.fake_memory()` instead of Postgres with the deployment's embedder)."""


class _NoCampaign:
    """`Deps.campaign` before a step binds one: every read fails, naming what is missing."""

    def __getattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"`Deps.campaign.{name}` read outside a step: the engine binds each step's campaign "
                             "with `shared.campaigns.context.load_step_context`.")


NO_CAMPAIGN = cast(CampaignContext, _NoCampaign())
"""The campaign of the instance-wide `Deps`, which no node ever sees."""
