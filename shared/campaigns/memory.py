"""The campaign graph's view of workspace memory.

- routing: reuse the plan of a similar past task that succeeded, and remember every outcome;
- semantic memory: brand facts learnt from approved artifacts and human decisions;
- episodic memory: campaign outcomes and QA critiques, recalled into the planner's and writers' context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.memory.extract import FactExtractor
from shared.memory.models import FactSource
from shared.memory.ports import EpisodicMemory, SemanticMemory, SpecialistSelector, TaskRouter
from shared.models.usage import usage_entries
from shared.ports import ReusedPlan


@dataclass
class MemoryPlans:
    """`PlanMemory` over the memory library (semantic similarity of past tasks, facts and episodes)."""

    router: TaskRouter
    semantic: SemanticMemory
    episodic: EpisodicMemory
    selector: SpecialistSelector
    extractor: FactExtractor

    def pick_variant(self, workspace_id: str, task_type: str, specialist: str, variants: list[str],
                     default: str) -> str:
        """The specialist variant with the best record here (the default without history)."""
        return self.selector.pick(workspace_id, task_type, specialist, variants, default).variant

    def performance(self, workspace_id: str, task_type: str) -> dict[str, Any]:
        """Track record of each specialist variant here: `{specialist: {variant: {runs, successes, score}}}`."""
        out: dict[str, Any] = {}
        for stats in self.selector.performance(workspace_id, task_type):
            out.setdefault(stats.specialist, {})[stats.variant] = {
                "runs": stats.runs, "successes": stats.successes,
                "mean_quality": round(stats.quality_sum / stats.runs, 3) if stats.runs else None}
        return out

    def record_variant(self, workspace_id: str, task_type: str, specialist: str, variant: str, *, success: bool,
                       quality: float, run_key: str) -> None:
        """Count one run of a variant (once per `run_key`)."""
        self.selector.record(workspace_id, task_type, specialist, variant, success=success, quality=quality,
                             run_key=run_key)

    def lookup(self, workspace_id: str, task_type: str, description: str) -> ReusedPlan | None:
        decision = self.router.route(workspace_id, task_type, description)
        if decision.action != "reuse" or not decision.plan or decision.match is None:
            return None
        return ReusedPlan(task_id=str(decision.match.task_id), plan=decision.plan, confidence=decision.confidence)

    def recall(self, workspace_id: str, query: str, *, k: int = 5) -> list[str]:
        """Brand facts and past outcomes close to `query`, as short lines for a prompt."""
        facts = [f"Fact: {f.fact}" for f in self.semantic.recall(workspace_id, query, k)]
        return facts + [f"Before: {e.text}" for e in self.episodic.recall(workspace_id, query, k, kinds=["outcome"])]

    def remember(self, workspace_id: str, task_type: str, description: str, *, plan: dict[str, Any],
                 success: bool, quality: float, campaign_id: str) -> None:
        self.router.store_outcome(workspace_id, task_type=task_type, description=description,
                                  steps=list(plan.get("specialists") or []), success=success, quality=quality,
                                  plan=plan, campaign_id=campaign_id, key=campaign_id)
        outcome = (f"{description} — {'shipped' if success else 'failed'} on {', '.join(plan.get('channels', []))}"
                   f" with QA score {quality:.2f}" + (f"; angles: {'; '.join(plan['angles'])}"
                                                      if plan.get("angles") else ""))
        self.episodic.record(workspace_id, "outcome", outcome, {"campaign_id": campaign_id, "plan": plan},
                             key=f"outcome:{campaign_id}")

    def learn_from_artifacts(self, workspace_id: str, drafts: dict[str, dict[str, Any]], *,
                             campaign_id: str) -> list[dict[str, Any]]:
        """Learn brand facts from approved, published copy; returns the usage of the extraction calls."""
        usage: list[dict[str, Any]] = []
        for key, content in drafts.items():
            extracted = self.extractor.from_artifact(content, channel=key.partition("#")[0])
            usage += usage_entries(f"memory:{key}", extracted)
            if extracted.value.facts:
                self.semantic.learn(workspace_id, extracted.value.facts,
                                    FactSource(kind="artifact", ref=f"{campaign_id}:{key}", campaign_id=campaign_id))
        return usage

    def learn_from_decision(self, workspace_id: str, *, kind: str, action: str, payload: dict[str, Any],
                            campaign_id: str, decision_id: str) -> list[dict[str, Any]]:
        """Learn brand facts from a human approval or edit (rejections teach through feedback instead)."""
        if action not in ("approve", "edit"):
            return []
        extracted = self.extractor.from_decision(kind=kind, action=action, payload=payload)
        if extracted.value.facts:
            self.semantic.learn(workspace_id, extracted.value.facts,
                                FactSource(kind="edit" if action == "edit" else "decision", ref=decision_id,
                                           campaign_id=campaign_id))
        return usage_entries("memory:decision", extracted)

    def record_critiques(self, workspace_id: str, findings: list[dict[str, Any]], *, campaign_id: str,
                         iteration: int) -> None:
        """Keep QA critiques (7 days) so writers can avoid repeating them."""
        for i, finding in enumerate(findings[:20]):
            self.episodic.record(workspace_id, "critique", f"{finding['draft']}.{finding['field']}: "
                                 f"{finding['message']}", {"rule": finding.get("rule"), "campaign_id": campaign_id},
                                 key=f"{campaign_id}:{iteration}:{i}")
