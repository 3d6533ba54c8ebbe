"""What the gate reports: findings with reasons, per-field and per-guideline tallies, the score.

A guideline is tested once per field it applies to. The score is (guideline, field) pairs passed ÷
pairs tested, overall and per field, as Adobe GenStudio computes its brand-guidelines percentage.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from pydantic import BaseModel, Field

from shared.ports import QAFinding, QAVerdict

Layer = Literal["lint", "claims", "judge"]
BLOCKING_LAYERS: frozenset[str] = frozenset({"lint", "claims"})


class Finding(BaseModel):
    """One guideline failed on one field, and how to fix it."""

    field: str
    """Top-level field name, e.g. `posts`."""
    path: str
    """Where exactly, e.g. `posts[2]`."""
    guideline: str
    """Stable id: `banned_terms`, `length`, `voice:warm`, `aspect:clarity`, …"""
    layer: Layer
    message: str
    evidence: str | None = None
    """The offending words, as written."""
    suggestion: str | None = None
    """The replacement or fix, when there is one."""
    blocking: bool = True
    """Deterministic findings block publication whatever the score; judge findings lower the score."""


class FieldReport(BaseModel):
    """The guidelines one field was tested against, how many it met, and its findings."""

    tested: int
    met: int
    score: float
    findings: list[Finding] = Field(default_factory=list)


class GuidelineResult(BaseModel):
    """One guideline across the fields it was tested on ("met" vs "needs attention")."""

    id: str
    layer: Layer
    description: str
    tested_fields: list[str]
    failed_fields: list[str]

    @property
    def met(self) -> bool:
        """No field failed it."""
        return not self.failed_fields


class QAReport(BaseModel):
    """The gate's verdict on one piece of copy."""

    content_type: str
    language: str
    passed: bool
    """No blocking finding and `score` ≥ the configured minimum."""
    score: float
    tested: int
    met: int
    blocking: int
    fields: dict[str, FieldReport]
    guidelines: list[GuidelineResult]
    usage: list[dict[str, Any]] = Field(default_factory=list)
    """Token usage of the judge's calls."""

    def findings(self) -> list[Finding]:
        """Every finding, field by field."""
        return [f for report in self.fields.values() for f in report.findings]


@dataclass
class Ledger:
    """Collects what was tested and what failed while the layers run."""

    tested: dict[tuple[str, str], Layer] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def test(self, guideline: str, field_name: str, layer: Layer, description: str) -> None:
        """Record that `guideline` was tested on `field_name`."""
        self.tested.setdefault((guideline, field_name), layer)
        self.descriptions.setdefault(guideline, description)

    def fail(self, finding: Finding, description: str = "") -> None:
        """Record a failure (and the test it belongs to)."""
        self.test(finding.guideline, finding.field, finding.layer, description or finding.guideline)
        self.findings.append(finding)

    def report(self, *, content_type: str, language: str, field_order: list[str], min_score: float,
               usage: list[dict[str, Any]] | None = None) -> QAReport:
        """Tally into a report (every field of `field_order` appears, tested or not); `passed` needs no
        blocking finding and a score of at least `min_score`."""
        failed = {(f.guideline, f.field) for f in self.findings}
        per_field: dict[str, list[str]] = defaultdict(list)
        for guideline, name in self.tested:
            per_field[name].append(guideline)
        names = list(field_order) + sorted(set(per_field) - set(field_order))
        fields = {}
        for name in names:
            tested = len(per_field[name])
            met = sum(1 for g in per_field[name] if (g, name) not in failed)
            fields[name] = FieldReport(tested=tested, met=met, score=_ratio(met, tested),
                                       findings=[f for f in self.findings if f.field == name])
        guidelines: dict[str, GuidelineResult] = {}
        for (guideline, name), layer in self.tested.items():
            result = guidelines.setdefault(guideline, GuidelineResult(
                id=guideline, layer=layer, description=self.descriptions[guideline], tested_fields=[],
                failed_fields=[]))
            result.tested_fields.append(name)
            if (guideline, name) in failed:
                result.failed_fields.append(name)
        tested = len(self.tested)
        met = tested - len(failed)
        score = _ratio(met, tested)
        blocking = sum(1 for f in self.findings if f.blocking)
        return QAReport(content_type=content_type, language=language, passed=blocking == 0 and score >= min_score,
                        score=score, tested=tested, met=met, blocking=blocking, fields=fields,
                        guidelines=list(guidelines.values()), usage=usage or [])


def _ratio(met: int, tested: int) -> float:
    return 1.0 if tested == 0 else round(met / tested, 4)


class GateReport(BaseModel):
    """The gate's verdict on several pieces of copy (a campaign's channels): passes when every item passes."""

    passed: bool
    score: float
    """Guideline–field pairs met ÷ tested, over every item."""
    tested: int
    met: int
    blocking: int
    items: dict[str, QAReport]
    usage: list[dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def of(cls, items: dict[str, QAReport], usage: list[dict[str, Any]]) -> GateReport:
        """Combine per-item reports."""
        tested = sum(r.tested for r in items.values())
        met = sum(r.met for r in items.values())
        return cls(passed=all(r.passed for r in items.values()), score=_ratio(met, tested), tested=tested, met=met,
                   blocking=sum(r.blocking for r in items.values()), items=items, usage=usage)

    @property
    def failing_items(self) -> list[str]:
        """Draft keys (e.g. `email`, `ad#b`) that did not pass."""
        return sorted(key for key, r in self.items.items() if not r.passed)

    def as_state(self) -> QAVerdict:
        """JSON for graph state; keeps the keys of the earlier gate (`findings` with `draft`/`channel`/`rule`,
        `failing_channels`) so existing readers keep working, plus `failing_drafts` and the full `items`."""
        findings = [cast(QAFinding, {"draft": key, "channel": r.content_type, "rule": f.guideline,
                                        **f.model_dump()})
                    for key, r in self.items.items() for f in r.findings()]
        return {"passed": self.passed, "score": self.score, "tested": self.tested, "met": self.met,
                "blocking": self.blocking, "findings": findings,
                "failing_channels": sorted({self.items[k].content_type for k in self.failing_items}),
                "failing_drafts": self.failing_items,
                "items": {key: r.model_dump(mode="json") for key, r in self.items.items()}}
