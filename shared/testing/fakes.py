"""In-memory fakes of the ports nodes use: a scripted model, canned search, a recording queue."""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from shared.campaigns.schemas import (
    AdCopy,
    ContentBrief,
    EmailCopy,
    InstagramCaption,
    LandingPage,
    LinkedInPost,
    Plan,
    PlanReview,
    ResearchSummary,
    Strategy,
    VideoScript,
    XThread,
)
from shared.memory.extract import ExtractedFacts
from shared.ports import Finding, Generated, ModelTier, Usage
from shared.qa.judge import JudgeVerdict
from shared.safety.injection import InjectionVerdict

T = TypeVar("T", bound=BaseModel)

DEFAULTS: dict[type[BaseModel], dict[str, Any]] = {
    Plan: {"objective": "Grow festive sales", "audience": "Urban tea lovers", "channels": ["email", "ad"],
           "kpis": ["orders"], "research_queries": ["diwali gifting trends", "tea gift competitors"]},
    PlanReview: {"changes": [], "angles": []},
    JudgeVerdict: {"violations": []},
    ExtractedFacts: {"facts": []},
    InjectionVerdict: {"injection": False, "confidence": 0.0, "reason": "not scripted: treated as ordinary content"},
    ContentBrief: {"channel": "email", "goal": "Sell gift boxes", "audience": "Urban tea lovers",
                   "key_message": "A gift with a story", "proof_points": ["40 growers"], "tone": ["warm"],
                   "call_to_action": "Shop the box"},
    ResearchSummary: {"key_findings": [{"claim": "Gifting peaks before Diwali", "source_ids": ["web:1"]}],
                      "opportunities": ["gift boxes"], "risks": ["discount wars"]},
    Strategy: {"positioning": "The thoughtful Diwali gift", "key_messages": ["Single-origin, grower-named"],
               "budget_inr": 20000, "budget_split": [{"channel": "email", "amount_inr": 20000}],
               "rationale": "Provenance sells gifts"},
    EmailCopy: {"subject": "A gift with a story", "preheader": "Straight from our growers", "body": "Tea worth giving.",
                "cta": "Shop the box"},
    LinkedInPost: {"text": "Our growers, our story."},
    XThread: {"posts": ["Diwali, steeped in provenance."]},
    InstagramCaption: {"caption": "Gift calm this Diwali.", "hashtags": ["#diwali"]},
    AdCopy: {"headline": "The Diwali tea gift", "description": "Four single-origin teas in one box."},
    LandingPage: {"headline": "Gift calm this Diwali", "subheadline": "Single-origin teas from our growers",
                  "body": "## The problem\nGifts feel generic.\n## How it works\nPick a box.\n## Proof\nLoved by "
                          "tea drinkers.", "cta": "Shop the box"},
    VideoScript: {"hook": "This Diwali, gift a ritual.", "script": "SCENE 1 - Visual: a tin opens / VO: Calm, "
                  "steeped. / Text: Festive Gift Box", "cta": "Shop the box"},
}


@dataclass
class ScriptedModel:
    """`StructuredModel` answering from per-schema scripts, else from `DEFAULTS`; records every prompt."""

    scripts: dict[type[BaseModel], deque[dict[str, Any] | Exception]] = field(
        default_factory=lambda: defaultdict(deque))
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, schema: type[BaseModel], *answers: dict[str, Any] | Exception) -> None:
        """Queue answers (or errors to raise) for the next calls with `schema`."""
        self.scripts[schema].extend(answers)

    def generate(self, *, tier: ModelTier, system: str, prompt: str, schema: type[T]) -> Generated[T]:
        with self._lock:
            self.calls.append((tier, schema.__name__, prompt))
            queued = self.scripts[schema].popleft() if self.scripts[schema] else None
        if isinstance(queued, Exception):
            raise queued
        value = schema.model_validate(queued if queued is not None else DEFAULTS[schema])
        return Generated(value=value, usage=Usage(model=f"scripted-{tier}", prompt_tokens=len(prompt) // 4,
                                                  output_tokens=10))

    def for_workspace(self, workspace_settings: Mapping[str, Any] | None) -> ScriptedModel:
        """The same script whatever models a workspace names (the scripts are the test's, not the workspace's)."""
        return self


@dataclass
class CannedSearch:
    """`WebSearch` and `KnowledgeSearch` returning fixed findings; counts calls."""

    findings: list[Finding] = field(default_factory=lambda: [
        Finding(source_id="web:1", title="Diwali gifting 2026", content="Gift boxes sell out early.")])
    calls: int = 0

    def search(self, *args: Any, **kwargs: Any) -> list[Finding]:
        self.calls += 1
        return list(self.findings)


@dataclass
class RecordingQueue:
    """`StepQueue` that keeps published messages, deduplicating by id like QStash."""

    published: list[tuple[str, Any, int | None]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, function: str, message: Any, *, dedup_id: str | None = None,
                not_before: datetime | None = None) -> str:
        key = dedup_id or message.dedup_id()
        with self.lock:
            if key not in self.seen:
                self.seen.add(key)
                delay = None if not_before is None else max(1, round((not_before - datetime.now(UTC)).total_seconds()))
                self.published.append((function, message, delay))
            return f"msg_{len(self.published)}"

    @property
    def messages(self) -> list[Any]:
        """The published messages, in order."""
        return [message for _, message, _ in self.published]
