"""Protocols for everything a graph node reaches outside itself.

Nodes see only these types (through `Deps`); the cloud implementations live in
`shared.integrations` and `shared.db`, and tests replace the boundary ones (model, search, memory
stores) with the fakes of `shared.testing` through `shared.deps.DepsOverrides`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, NotRequired, Protocol, TypedDict, TypeVar

from pydantic import BaseModel

ModelTier = Literal["fast", "strong"]
T = TypeVar("T", bound=BaseModel)


@dataclass(frozen=True)
class Usage:
    """Token usage of one model call, as Gemini reports it."""

    model: str
    prompt_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON form stored on artifacts and events."""
        return {
            "model": self.model,
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "output_tokens": self.output_tokens,
            "thinking_tokens": self.thinking_tokens,
        }


AttemptOutcome = Literal[
    "ok", "timeout", "rate_limited", "server_error", "unreachable", "not_found", "invalid_output", "circuit_open"
]
"""How one model of a tier's cascade fared; every outcome but `ok` moves on to the next model."""


@dataclass(frozen=True)
class RouteAttempt:
    """One model tried for a call."""

    model: str
    outcome: AttemptOutcome
    latency_ms: float = 0.0
    detail: str = ""
    usage: Usage | None = None
    """Tokens spent by the attempt when it consumed any without succeeding (e.g. `invalid_output`)."""

    def as_dict(self) -> dict[str, Any]:
        """JSON form recorded on the step."""
        return {"model": self.model, "outcome": self.outcome, "latency_ms": round(self.latency_ms, 1),
                "detail": self.detail, "usage": self.usage.as_dict() if self.usage else None}


@dataclass(frozen=True)
class Route:
    """Which model of a tier's cascade answered a call, and everything tried before it."""

    tier: ModelTier
    model: str
    attempts: tuple[RouteAttempt, ...] = ()

    @property
    def fallbacks(self) -> int:
        """How many models were passed over before `model` answered."""
        return sum(1 for attempt in self.attempts if attempt.outcome != "ok")

    def as_dict(self) -> dict[str, Any]:
        """JSON form recorded on the step."""
        return {"tier": self.tier, "model": self.model, "fallbacks": self.fallbacks,
                "attempts": [attempt.as_dict() for attempt in self.attempts]}


@dataclass(frozen=True)
class Generated(Generic[T]):
    """A structured model answer and what it cost."""

    value: T
    usage: Usage
    route: Route | None = None
    """How the model router chose the model; None for implementations without routing."""


class StructuredModel(Protocol):
    """A language model that answers with an instance of a pydantic schema."""

    def generate(self, *, tier: ModelTier, system: str, prompt: str, schema: type[T]) -> Generated[T]:
        """Ask the model of `tier`; raise `UpstreamUnavailable` on transient failures."""
        ...


class RoutableModel(StructuredModel, Protocol):
    """A `StructuredModel` whose per-tier model cascades a workspace may override (`ModelRouter`)."""

    def for_workspace(self, workspace_settings: Mapping[str, Any] | None) -> RoutableModel:
        """This model with the workspace's `models` settings applied (itself when they name none)."""
        ...


@dataclass(frozen=True)
class Finding:
    """One piece of research with its citation."""

    source_id: str
    title: str
    content: str
    url: str | None = None
    score: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON form kept in graph state."""
        return {"source_id": self.source_id, "title": self.title, "content": self.content,
                "url": self.url, "score": self.score}


class WebSearch(Protocol):
    """Searches the public web (Tavily)."""

    def search(self, query: str, *, max_results: int = 5) -> list[Finding]:
        """Return findings for `query`, best first."""
        ...


class KnowledgeSearch(Protocol):
    """Searches a workspace's own knowledge base (pgvector)."""

    def search(self, workspace_id: str, query: str, *, k: int = 5) -> list[Finding]:
        """Return the `k` chunks closest to `query`, only from `workspace_id`."""
        ...


@dataclass(frozen=True)
class BrandKit:
    """The part of a workspace's brand kit the spine's QA gate checks."""

    voice: list[str] = field(default_factory=list)
    banned_terms: dict[str, str] = field(default_factory=dict)
    """Banned term → the substitution to use instead."""
    required_disclaimers: dict[str, str] = field(default_factory=dict)
    """Channel → disclaimer text that must appear in that channel's copy."""


@dataclass(frozen=True)
class WorkspacePolicy:
    """A workspace's rules for the runtime."""

    decision_timeout_seconds: int = 86_400
    auto_approve_max_budget_inr: int | None = None
    """On timeout, a strategy whose budget is at most this is approved; None means expire instead."""
    qa_max_revisions: int = 2


@dataclass(frozen=True)
class CampaignContext:
    """Who a campaign is for and under which rules it runs; passed as run context, never global."""

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


class WorkspaceStore(Protocol):
    """Reads workspace configuration."""

    def brand_kit(self, workspace_id: str) -> BrandKit:
        """The workspace's brand kit (empty if none was saved)."""
        ...

    def policy(self, workspace_id: str) -> WorkspacePolicy:
        """The workspace's runtime rules (defaults if none were set)."""
        ...

    def context(self, workspace_id: str, user_id: str | None = None) -> CampaignContext:
        """The context of a campaign of this workspace (brand, policy, preferences)."""
        ...


class ArtifactStore(Protocol):
    """Keeps the content a campaign produces; every write is idempotent per (campaign, channel)."""

    def save_draft(self, *, campaign_id: str, workspace_id: str, channel: str, variant: str,
                   content: dict[str, Any], usage: Usage, revision: int) -> None:
        """Create or replace the draft of one channel's variant."""
        ...

    def publish(self, *, campaign_id: str, channel: str, variant: str) -> bool:
        """Mark one variant published; False if it already was."""
        ...


@dataclass(frozen=True)
class ReusedPlan:
    """A proven plan of a similar past task of the workspace."""

    task_id: str
    plan: dict[str, Any]
    confidence: float


class PlanMemory(Protocol):
    """Memory-aware routing: reuse what worked for similar tasks, and remember every outcome."""

    def lookup(self, workspace_id: str, task_type: str, description: str) -> ReusedPlan | None:
        """A plan to reuse when a similar past task succeeded with confidence above the threshold."""
        ...

    def remember(self, workspace_id: str, task_type: str, description: str, *, plan: dict[str, Any],
                 success: bool, quality: float, campaign_id: str) -> None:
        """Store the outcome of a task."""
        ...

    def recall(self, workspace_id: str, query: str, *, k: int = 5) -> list[str]:
        """Brand facts and past outcomes close to `query`, as prompt lines."""
        ...

    def learn_from_artifacts(self, workspace_id: str, drafts: dict[str, dict[str, Any]], *,
                             campaign_id: str) -> list[dict[str, Any]]:
        """Learn brand facts from published copy; returns usage entries."""
        ...

    def learn_from_decision(self, workspace_id: str, *, kind: str, action: str, payload: dict[str, Any],
                            campaign_id: str, decision_id: str) -> list[dict[str, Any]]:
        """Learn brand facts from an approval or edit; returns usage entries."""
        ...

    def record_critiques(self, workspace_id: str, findings: list[dict[str, Any]], *, campaign_id: str,
                         iteration: int) -> None:
        """Remember QA critiques for a while."""
        ...

    def pick_variant(self, workspace_id: str, task_type: str, specialist: str, variants: list[str],
                     default: str) -> str:
        """Adaptive selection: the variant with the best success rate × quality here."""
        ...

    def record_variant(self, workspace_id: str, task_type: str, specialist: str, variant: str, *, success: bool,
                       quality: float, run_key: str) -> None:
        """Count one run of a variant."""
        ...

    def performance(self, workspace_id: str, task_type: str) -> dict[str, Any]:
        """Track record of every specialist variant (the context's `agent_performance`)."""
        ...


class Summarizer(Protocol):
    """Condenses findings of any length into cited key findings."""

    def summarize(self, findings: list[dict[str, Any]], *,
                  objective: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(ResearchSummary as JSON, usage entries); every finding cites only ids of `findings`."""
        ...


class Canon(Protocol):
    """Frameworks, templates and compliance rules per content type (data, cached, versioned)."""

    def fetch(self, content_type: str) -> dict[str, Any]:
        """The canon entry of `content_type` (empty if none)."""
        ...


class QAFinding(TypedDict):
    """A finding as graph state and API payloads carry it: which draft, channel and rule, then the finding."""

    draft: str
    channel: str
    rule: str
    field: str
    path: str
    guideline: str
    layer: Literal["lint", "claims", "judge"]
    message: str
    evidence: str | None
    suggestion: str | None
    blocking: bool


class QAVerdict(TypedDict):
    """The QA gate's verdict as JSON (`shared.qa.report.GateReport.as_state`)."""

    passed: bool
    score: float
    tested: int
    met: int
    blocking: int
    findings: list[QAFinding]
    failing_channels: list[str]
    failing_drafts: list[str]
    items: dict[str, dict[str, Any]]


class QAResult(QAVerdict):
    """What the campaign's QA gate returns and `CampaignState.qa` holds: the verdict plus what to do next."""

    usage: NotRequired[list[dict[str, Any]]]
    """Token usage of the judge's calls; the node moves it to the step's usage."""
    decision: Literal["pass", "rewrite", "human"]
    reason: str
    rewrites: dict[str, dict[str, list[str]]]
    """Draft key → field → critique lines for a targeted rewrite."""
    max_iterations: int


class QualityGate(Protocol):
    """The layered QA gate over a campaign's drafts."""

    def review(self, drafts: dict[str, dict[str, Any]], *, kit: BrandKit, sources: list[dict[str, Any]],
               iteration: int = 0, previous_score: float | None = None,
               settings: dict[str, Any] | None = None, languages: dict[str, str] | None = None) -> QAResult:
        """The verdict and what to do next (`decision`: pass, rewrite or human); `iteration` rewrites were made
        so far, `previous_score` is the score before the last; `languages` maps draft keys to the language each
        is checked in (English when absent)."""
        ...
