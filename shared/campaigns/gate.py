"""The campaign graph's QA gate: the layered gate of `shared.qa` plus its self-correction rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.ports import BrandKit, QAResult, StructuredModel
from shared.qa import gate
from shared.qa.correction import SelfCorrectionConfig, plan_correction


@dataclass
class LayeredGate:
    """`QualityGate`: deterministic lint, claims check against the research, a model judge per guideline."""

    model: StructuredModel | None = None
    """The fast tier for the judge; None skips the judge layer."""

    def review(self, drafts: dict[str, dict[str, Any]], *, kit: BrandKit, sources: list[dict[str, Any]],
               iteration: int = 0, previous_score: float | None = None,
               settings: dict[str, Any] | None = None, languages: dict[str, str] | None = None) -> QAResult:
        config = SelfCorrectionConfig.from_settings(settings)
        texts = [f"{s.get('title', '')}\n{s.get('content', '')}" for s in sources]
        report = gate.review(drafts, kit, languages=languages, sources=texts, model=self.model, config=config)
        plan = plan_correction(report, config, iteration=iteration, previous_score=previous_score)
        return QAResult(**report.as_state(), usage=report.usage, decision=plan.action, reason=plan.reason,
                        rewrites=plan.rewrites, max_iterations=config.max_iterations)
