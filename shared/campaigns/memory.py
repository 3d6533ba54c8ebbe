"""The campaign graph's view of workspace memory: reuse proven plans, remember every outcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.memory.models import FactSource
from shared.memory.ports import SemanticMemory, TaskRouter
from shared.ports import ReusedPlan


@dataclass
class MemoryPlans:
    """`PlanMemory` over the memory library's task router (semantic similarity of past tasks)."""

    router: TaskRouter
    semantic: SemanticMemory | None = None

    def lookup(self, workspace_id: str, task_type: str, description: str) -> ReusedPlan | None:
        decision = self.router.route(workspace_id, task_type, description)
        if decision.action != "reuse" or not decision.plan or decision.match is None:
            return None
        return ReusedPlan(task_id=str(decision.match.task_id), plan=decision.plan, confidence=decision.confidence)

    def remember(self, workspace_id: str, task_type: str, description: str, *, plan: dict[str, Any],
                 success: bool, quality: float, campaign_id: str) -> None:
        self.router.store_outcome(workspace_id, task_type=task_type, description=description,
                                  steps=list(plan.get("specialists") or []), success=success, quality=quality,
                                  plan=plan, campaign_id=campaign_id, key=campaign_id)
        if self.semantic is not None and success and plan.get("angles"):
            self.semantic.learn(workspace_id, [f"Angle that shipped: {a}" for a in plan["angles"]],
                                FactSource(kind="artifact", ref=campaign_id, campaign_id=campaign_id))
