"""The self-correction loop's rules: when copy passes, when failing fields are rewritten, when a human decides.

Only fields with findings are rewritten, each with the critique of its own findings; every other field
is kept verbatim (`merge_rewrite` enforces that whatever the writer returns).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from shared.qa.judge import ASPECTS, CritiqueAspect
from shared.qa.report import GateReport, QAReport
from shared.safety.untrusted import quote_json


class SelfCorrectionConfig(BaseModel):
    """How the QA loop corrects itself (defaults as in the orchestration design, seed 003)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_iterations: int = Field(3, ge=0, le=10)
    """Rewrites allowed before a human decides."""
    min_quality_score: float = Field(0.8, ge=0, le=1)
    """Copy passes with no blocking finding and at least this score."""
    improvement_threshold: float = Field(0.1, ge=0, le=1)
    """A rewrite must close at least this share of the remaining gap to 1.0, or a human decides."""
    critique_aspects: list[CritiqueAspect] = Field(default_factory=lambda: cast(list[CritiqueAspect], list(ASPECTS)),
                                                   max_length=5)
    """Aspects the judge critiques besides the kit's own guidelines."""
    store_failures: bool = True
    """Keep failed attempts (findings and score) for learning."""

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None) -> SelfCorrectionConfig:
        """The config in a workspace's settings JSON under `self_correction` (defaults for what is missing)."""
        return cls.model_validate((settings or {}).get("self_correction") or {})


class CorrectionPlan(BaseModel):
    """What to do after a QA run, and for a rewrite, which fields with which critique."""

    action: Literal["pass", "rewrite", "human"]
    reason: str
    iteration: int
    """Rewrites done before this QA run."""
    score: float
    rewrites: dict[str, dict[str, list[str]]] = Field(default_factory=dict)
    """Item (channel) → field → critique lines; only failing fields. Also filled for `human`, to show."""
    store_failure: bool = False
    failures: list[dict[str, Any]] = Field(default_factory=list)
    """The failed attempt's findings, compact, when `store_failure`."""

    def fields_of(self, item: str) -> list[str]:
        """Fields of `item` to rewrite."""
        return list(self.rewrites.get(item, {}))


def plan_correction(report: GateReport | QAReport, config: SelfCorrectionConfig, *, iteration: int,
                    previous_score: float | None = None) -> CorrectionPlan:
    """Decide pass / rewrite / human from a `GateReport` (or one `QAReport`) and the loop's history.

    `iteration` counts rewrites already made; `previous_score` is the score before the last rewrite.
    Improvement is the share of the previous gap to a perfect score that the last rewrite closed:
    (score − previous) ÷ (1 − previous).
    """
    items: dict[str, QAReport] = ({report.content_type: report} if isinstance(report, QAReport)
                                  else dict(report.items))
    score = report.score
    if report.passed:
        return CorrectionPlan(action="pass", reason=f"Score {score:.2f} with no blocking finding.",
                              iteration=iteration, score=score)
    rewrites = {key: fields for key, item in items.items() if (fields := critique(item))}
    store = config.store_failures
    failures = [{"item": key, "field": f.field, "path": f.path, "guideline": f.guideline, "layer": f.layer,
                 "message": f.message} for key, item in items.items() for f in item.findings()] if store else []
    base = {"iteration": iteration, "score": score, "rewrites": rewrites, "store_failure": store,
            "failures": failures}
    if iteration >= config.max_iterations:
        return CorrectionPlan(action="human", reason=f"Still failing after {iteration} rewrite(s) (limit "
                                                     f"{config.max_iterations}); a human decides.", **base)
    if previous_score is not None:
        gap = 1.0 - previous_score
        gained = (score - previous_score) / gap if gap > 0 else 0.0
        if gained < config.improvement_threshold:
            return CorrectionPlan(action="human", reason=f"The last rewrite moved the score from {previous_score:.2f}"
                                                         f" to {score:.2f}, closing {max(gained, 0):.0%} of the gap "
                                                         f"(needs {config.improvement_threshold:.0%}); a human "
                                                         "decides.", **base)
    if not rewrites:
        return CorrectionPlan(action="human", reason=f"Score {score:.2f} is below {config.min_quality_score:.2f} "
                                                     "but no field has a finding to fix; a human decides.", **base)
    blocking = sum(i.blocking for i in items.values())
    return CorrectionPlan(action="rewrite", reason=f"Score {score:.2f} (minimum {config.min_quality_score:.2f}), "
                                                   f"{blocking} blocking finding(s): rewrite "
                                                   f"{sum(len(f) for f in rewrites.values())} field(s).", **base)


def critique(report: QAReport) -> dict[str, list[str]]:
    """Field → what to fix, blocking findings first; fields without findings are absent."""
    out: dict[str, list[str]] = {}
    for name, field in report.fields.items():
        ordered = sorted(field.findings, key=lambda f: not f.blocking)
        lines = list(dict.fromkeys(f.message for f in ordered))
        if lines:
            out[name] = lines
    return out


def rewrite_instructions(plan: CorrectionPlan, item: str, current: Mapping[str, Any]) -> str:
    """The prompt section that asks the writer to rewrite only `item`'s failing fields."""
    fields = plan.rewrites.get(item, {})
    if not fields:
        return ""
    keep = [name for name in current if name not in fields]
    lines = [f"Rewrite only these fields: {', '.join(fields)}."]
    if keep:
        lines.append(f"Return every other field ({', '.join(keep)}) exactly as it is now.")
    lines.append("Current copy:\n" + quote_json(dict(current), source="copy", label="current draft"))
    for name, critiques in fields.items():
        lines.append(f"Fix in `{name}`:\n- " + "\n- ".join(critiques))
    return "\n".join(lines)


def merge_rewrite(current: Mapping[str, Any], rewritten: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """`current` with only `fields` taken from `rewritten` (a field the writer omitted stays as it was)."""
    chosen = set(fields)
    return {name: rewritten.get(name, value) if name in chosen else value for name, value in current.items()}
