"""The shapes memory is written and read in; validated here, at the boundary, before anything is embedded."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

EpisodeKind = Literal["interaction", "outcome", "task", "critique"]
"""What an episode remembers: an exchange with a user, a campaign's result, a task run, a QA critique."""
FactSourceKind = Literal["artifact", "decision", "edit", "manual"]
"""Where a brand fact was learnt: an approved artifact, a decision, a human edit, or typed in by a member."""
RouteAction = Literal["reuse", "plan"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$")


def _workspace(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError(f"workspace_id {value!r} is not a UUID; pass the workspace's id, not its slug") from None


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{value!r} is not a valid name; use 1-100 of [A-Za-z0-9_.:/-], starting alphanumeric")
    return value


WorkspaceId = Annotated[str, AfterValidator(_workspace)]
Name = Annotated[str, AfterValidator(_name)]
"""A task type, specialist or variant name (e.g. `campaign`, `web_research`, `gemini-2.5-pro`)."""
Score = Annotated[float, Field(ge=0.0, le=1.0)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FactSource(_Frozen):
    """Where a fact came from; `ref` points at it (artifact id, decision id...) for the audit trail."""

    kind: FactSourceKind
    ref: str | None = Field(default=None, max_length=200)
    campaign_id: str | None = Field(default=None, max_length=64)


class FactsIn(_Frozen):
    """A batch of facts to learn."""

    workspace_id: WorkspaceId
    facts: list[Annotated[str, Field(min_length=1, max_length=2000)]] = Field(max_length=100)
    source: FactSource


class LearnResult(_Frozen):
    """What learning one fact did: `added` a new fact, `merged` it into a near-duplicate (the kept wording
    may be the new one), or `confirmed` an identical one."""

    fact_id: int
    fact: str
    """The wording memory keeps after this call."""
    action: Literal["added", "merged", "confirmed"]
    similarity: float | None = None
    """Cosine similarity to the fact it merged into (None when added or identical)."""
    superseded: str | None = None
    """The wording the new one replaced, when a merge kept the new wording."""


class Fact(_Frozen):
    """A remembered brand fact, as recalled."""

    id: int
    fact: str
    source: FactSourceKind
    confirmations: int
    """How many times it was learnt (a merge or an identical fact adds one)."""
    similarity: float
    updated_at: datetime


class EpisodeIn(_Frozen):
    """One episode to remember."""

    workspace_id: WorkspaceId
    kind: EpisodeKind
    text: str = Field(min_length=1, max_length=8000)
    data: dict[str, Any] = Field(default_factory=dict)
    key: str | None = Field(default=None, min_length=1, max_length=200)
    """Idempotency key: recording the same (kind, key) again returns the first episode."""
    at: datetime | None = None
    """When it happened (default now); retention counts from here. Must be timezone-aware."""


class Episode(_Frozen):
    """A remembered episode, as recalled."""

    id: int
    kind: EpisodeKind
    text: str
    data: dict[str, Any]
    created_at: datetime
    expires_at: datetime | None
    similarity: float


class TaskOutcome(_Frozen):
    """How a task went: the sequence it used and the result, stored for memory-aware routing."""

    workspace_id: WorkspaceId
    task_type: Name
    description: str = Field(min_length=1, max_length=8000)
    steps: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(min_length=1, max_length=50)
    success: bool
    quality: Score
    plan: dict[str, Any] | None = None
    """The whole plan (e.g. `Plan.model_dump()`), so a reuse can restore more than the step names."""
    campaign_id: str | None = Field(default=None, max_length=64)
    reused_from: int | None = None
    """The task whose sequence this run reused (from `RouteDecision.match.task_id`)."""
    key: str | None = Field(default=None, min_length=1, max_length=200)
    """Idempotency key (e.g. the campaign id): storing the same outcome twice keeps the first."""
    at: datetime | None = None


class RouteQuery(_Frozen):
    """A task to route."""

    workspace_id: WorkspaceId
    task_type: Name
    description: str = Field(min_length=1, max_length=8000)


class TaskMatch(_Frozen):
    """A past task of the workspace similar to the one being routed."""

    task_id: int
    description: str
    steps: list[str]
    plan: dict[str, Any] | None
    success: bool
    quality: float
    similarity: float
    """Raw cosine similarity of the two descriptions."""
    match: float
    """`similarity` rescaled by the model's calibration: 0 = unrelated, 1 = the same task."""
    confidence: float
    """`match` × the past outcome's quality (0 if it failed); reuse needs more than the threshold."""
    created_at: datetime


class RouteDecision(_Frozen):
    """Whether to reuse a proven step sequence or plan afresh, and why."""

    action: RouteAction
    steps: list[str] = Field(default_factory=list)
    """The proven sequence when `action` is `reuse`; empty for `plan`."""
    plan: dict[str, Any] | None = None
    confidence: float = 0.0
    """Confidence of the best match (0 without any)."""
    threshold: float
    match: TaskMatch | None = None
    """The best match, also when it was not good enough to reuse."""
    candidates: list[TaskMatch] = Field(default_factory=list)
    """Similar past tasks, best first, for the planner's context."""
    reason: str


class VariantStats(_Frozen):
    """The record of one specialist variant in one workspace and task type, and its smoothed score."""

    task_type: str
    specialist: str
    variant: str
    runs: int
    successes: int
    quality_sum: float
    success_rate: float
    """Smoothed: (successes + prior) / (runs + prior runs)."""
    mean_quality: float
    """Smoothed the same way."""
    score: float
    """success_rate × mean_quality; the variant with the highest score is picked."""


class SelectionQuery(_Frozen):
    """A choice among a specialist's variants; `variants` is deduplicated and must contain `default`."""

    workspace_id: WorkspaceId
    task_type: Name
    specialist: Name
    variants: list[Name] = Field(min_length=1, max_length=20)
    default: Name

    @model_validator(mode="after")
    def _default_is_a_variant(self) -> SelectionQuery:
        if self.default not in self.variants:
            raise ValueError(f"default variant {self.default!r} is not among variants {self.variants}; add it")
        object.__setattr__(self, "variants", list(dict.fromkeys(self.variants)))
        return self


class SpecialistChoice(_Frozen):
    """Which variant of a specialist to run, with the numbers behind the choice."""

    variant: str
    reason: Literal["no_history", "best_score"]
    scores: dict[str, VariantStats]


class SpecialistRun(_Frozen):
    """One run of a specialist variant, to record."""

    workspace_id: WorkspaceId
    task_type: Name
    specialist: Name
    variant: Name
    success: bool
    quality: Score
    run_key: str | None = Field(default=None, min_length=1, max_length=200)
    """Idempotency key (e.g. campaign id + step + specialist): a retried step is counted once."""


class PurgeReport(_Frozen):
    """How many expired rows a purge deleted."""

    episodes: int = 0
    specialist_runs: int = 0
