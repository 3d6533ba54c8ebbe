"""Protocols of a workspace's memory, as the campaign graph sees it.

Postgres implementations live in `shared.memory.pg`, in-memory ones for unit tests in
`shared.memory.fakes`. Every call is scoped to one workspace; arguments are validated by the pydantic
models of `shared.memory.models` (a bad one raises `pydantic.ValidationError` naming the field).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from shared.memory.models import (
    Episode,
    EpisodeKind,
    Fact,
    FactSource,
    LearnResult,
    PurgeReport,
    RouteDecision,
    SpecialistChoice,
    VariantStats,
)


class SemanticMemory(Protocol):
    """Evergreen brand facts, learnt from approved artifacts, decisions and edits, never duplicated."""

    def learn(self, workspace_id: str, facts: Sequence[str], source: FactSource) -> list[LearnResult]:
        """Remember `facts`: an identical fact is confirmed, a near-duplicate merged, anything else added."""
        ...

    def recall(self, workspace_id: str, query: str, k: int = 5) -> list[Fact]:
        """The `k` facts closest to `query`, best first."""
        ...


class EpisodicMemory(Protocol):
    """Specific past interactions, campaign outcomes, task history (30 days) and critiques (7 days)."""

    def record(self, workspace_id: str, kind: EpisodeKind, text: str, data: dict[str, Any] | None = None, *,
               key: str | None = None, at: datetime | None = None) -> int:
        """Remember one episode (expiring by its kind's retention); returns its id.

        With `key`, recording the same (kind, key) again returns the first episode's id.
        """
        ...

    def recall(self, workspace_id: str, query: str, k: int = 5,
               kinds: Sequence[EpisodeKind] | None = None) -> list[Episode]:
        """The `k` unexpired episodes closest to `query` (of `kinds`, if given), best first."""
        ...

    def purge_expired(self) -> PurgeReport:
        """Delete every expired episode (of all workspaces)."""
        ...


class TaskRouter(Protocol):
    """Memory-aware routing: reuse a proven step sequence for a task seen before, else plan."""

    threshold: float

    def route(self, workspace_id: str, task_type: str, description: str) -> RouteDecision:
        """`reuse` with the steps of the most similar past task of `task_type` when its confidence is above
        `threshold`, else `plan` (with the similar tasks as candidates for the planner's context)."""
        ...

    def store_outcome(self, workspace_id: str, *, task_type: str, description: str, steps: Sequence[str],
                      success: bool, quality: float, plan: dict[str, Any] | None = None,
                      campaign_id: str | None = None, reused_from: int | None = None,
                      key: str | None = None, at: datetime | None = None) -> int:
        """Remember how a task went (kept 30 days, as task history); returns its task id."""
        ...


class SpecialistSelector(Protocol):
    """Adaptive selection of a specialist's variant by its track record in the workspace."""

    def pick(self, workspace_id: str, task_type: str, specialist: str, variants: Sequence[str],
             default: str) -> SpecialistChoice:
        """The variant with the best smoothed success rate × quality; `default` without history."""
        ...

    def record(self, workspace_id: str, task_type: str, specialist: str, variant: str, *, success: bool,
               quality: float, run_key: str | None = None) -> bool:
        """Count one run; False if `run_key` was already counted."""
        ...

    def performance(self, workspace_id: str, task_type: str | None = None) -> list[VariantStats]:
        """Every variant's record (of `task_type`, if given), for the context's `agent_performance`."""
        ...


class MemoryStores(Protocol):
    """Every memory port of a deployment in one bundle (`shared.memory.pg.PgMemory`, or `FakeMemory` in tests)."""

    @property
    def semantic(self) -> SemanticMemory: ...

    @property
    def episodic(self) -> EpisodicMemory: ...

    @property
    def router(self) -> TaskRouter: ...

    @property
    def selector(self) -> SpecialistSelector: ...
