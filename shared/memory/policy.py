"""The rules of memory, free of storage: fact identity and merging, retention, route confidence, variant scores.

Postgres (`shared.memory.pg`) and the in-memory fakes (`shared.memory.fakes`) both apply these, so unit
tests of the rules hold for both.

Similarity calibration. Cosine similarities of sentence embeddings are compressed and model-specific:
with multilingual-e5-small two texts on unrelated subjects still score 0.78-0.86 and paraphrases
0.93-0.99, so a raw cosine "above 0.8" means nothing. Each model therefore has a `ModelCalibration`
measured on labelled pairs of passages (both sides embedded as documents):

    match(cos) = clamp((cos - unrelated) / (equivalent - unrelated), 0, 1)

maps "typical of unrelated texts" to 0 and "says the same thing" to 1. Facts merge when the raw cosine
reaches `duplicate`.

Route confidence. A past task is worth reusing when it is the same task *and* its sequence worked:

    confidence = match(cos) × (quality if success else 0)

so a near-identical task whose run scored 0.9 gives 0.9 and is reused (threshold 0.8, strictly
above), a failed or mediocre run (quality ≤ 0.8) is never reused however similar, and a related-but-
different task (e5 cosine ≈ 0.93, match ≈ 0.67) is planned afresh.

Variant score. Per workspace, task type and specialist, each variant's record is smoothed toward a
prior of `prior_runs` pseudo-runs (success rate `prior_success`, quality `prior_quality`):

    success_rate = (successes + prior_runs × prior_success) / (runs + prior_runs)
    mean_quality = (quality_sum + prior_runs × prior_quality) / (runs + prior_runs)
    score        = success_rate × mean_quality

The highest score wins; ties go to the default, then to the order given. Without any history the
default is used. An untried variant keeps the prior's score (0.25 by default), so a variant doing
worse than the prior is replaced by an untried one (bounded exploration) and one or two good runs are
enough to displace the default, but a single lucky run does not outweigh a long good record.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.errors import ConfigurationError
from shared.memory.models import (
    EpisodeKind,
    FactSourceKind,
    RouteDecision,
    SelectionQuery,
    SpecialistChoice,
    TaskMatch,
    VariantStats,
)
from shared.safety.pii import PiiPolicy, mask

# ------------------------------------------------------------------------------------------ calibration


class ModelCalibration(BaseModel):
    """How one embedding model's passage-to-passage cosine similarities map to meaning."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    unrelated: float = Field(ge=-1.0, lt=1.0)
    """Cosine typical of texts on unrelated subjects (maps to match 0)."""
    equivalent: float = Field(gt=-1.0, le=1.0)
    """Cosine from which two texts say the same thing (maps to match 1)."""
    duplicate: float = Field(gt=-1.0, le=1.0)
    """Cosine from which two brand facts are one fact (merged)."""

    @model_validator(mode="after")
    def _ordered(self) -> ModelCalibration:
        if not self.unrelated < self.equivalent:
            raise ValueError(f"unrelated ({self.unrelated}) must be below equivalent ({self.equivalent})")
        return self


CALIBRATIONS: dict[str, ModelCalibration] = {
    # Measured in this repository on labelled pairs (tests/integration/test_memory.py re-checks them):
    # unrelated tasks 0.80-0.86, same task reworded 0.975-0.99; paraphrased facts 0.89-0.98, distinct
    # facts on one subject 0.81-0.90 (a contradiction such as "include"/"exclude GST" reaches 0.94 and is
    # merged, the newer wording superseding the older).
    "multilingual-e5-small": ModelCalibration(unrelated=0.85, equivalent=0.97, duplicate=0.92),
    # Provisional (gemini-embedding-001 is less compressed; not measurable offline): re-measure on real
    # pairs with `measure_calibration` and replace.
    "gemini-embedding-001": ModelCalibration(unrelated=0.60, equivalent=0.92, duplicate=0.90),
}


def calibration_for(model: str, overrides: Mapping[str, ModelCalibration] | None = None) -> ModelCalibration:
    """The calibration of embedding model `model` (by name, without `@dimensions`)."""
    table = {**CALIBRATIONS, **(overrides or {})}
    try:
        return table[model]
    except KeyError:
        raise ConfigurationError(
            f"No similarity calibration for embedding model {model!r} (known: {sorted(table)}); measure one "
            "with shared.memory.policy.measure_calibration and pass it as calibration=ModelCalibration(...)."
        ) from None


def match_score(similarity: float, calibration: ModelCalibration) -> float:
    """Raw cosine rescaled to 0 (unrelated) … 1 (equivalent)."""
    span = calibration.equivalent - calibration.unrelated
    return min(1.0, max(0.0, (similarity - calibration.unrelated) / span))


def route_confidence(match: float, *, success: bool, quality: float) -> float:
    """How sure we are that the past task's sequence fits the new one: match × proven quality."""
    return match * quality if success else 0.0


REUSE_THRESHOLD = 0.8
"""A proven sequence is reused when the best match's confidence is strictly above this."""


def task_match(*, task_id: int, description: str, steps: Sequence[str], plan: dict[str, Any] | None,
               success: bool, quality: float, similarity: float, created_at: datetime,
               calibration: ModelCalibration) -> TaskMatch:
    """A past task scored against the one being routed."""
    match = match_score(similarity, calibration)
    return TaskMatch(task_id=task_id, description=description, steps=list(steps), plan=plan, success=success,
                     quality=quality, similarity=similarity, match=match,
                     confidence=route_confidence(match, success=success, quality=quality), created_at=created_at)


def decide_route(candidates: Sequence[TaskMatch], threshold: float = REUSE_THRESHOLD) -> RouteDecision:
    """Reuse the most confident candidate's steps when its confidence is above `threshold`, else plan.

    Candidates are ranked by confidence, then similarity, then recency.
    """
    ranked = sorted(candidates, key=lambda m: (m.confidence, m.similarity, m.created_at), reverse=True)
    if not ranked:
        return RouteDecision(action="plan", threshold=threshold, reason="no similar past task of this type")
    best = ranked[0]
    if best.confidence > threshold:
        return RouteDecision(
            action="reuse", steps=best.steps, plan=best.plan, confidence=best.confidence, threshold=threshold,
            match=best, candidates=ranked,
            reason=f"task {best.task_id} matches (match {best.match:.2f}, quality {best.quality:.2f}): "
                   f"confidence {best.confidence:.2f} > {threshold}")
    why = ("its run failed" if not best.success
           else f"match {best.match:.2f} × quality {best.quality:.2f} = {best.confidence:.2f} ≤ {threshold}")
    return RouteDecision(action="plan", confidence=best.confidence, threshold=threshold, match=best,
                         candidates=ranked, reason=f"closest past task {best.task_id} is not proven enough: {why}")


def measure_calibration(paraphrases: Sequence[float], unrelated: Sequence[float],
                        related: Sequence[float] = ()) -> ModelCalibration:
    """A calibration from cosines of labelled pairs: paraphrases, unrelated texts, and optionally distinct
    statements on one subject (which must stay apart).

    `unrelated` becomes the 90th percentile of unrelated pairs, `equivalent` the median of paraphrases and
    `duplicate` the midpoint between the 90th percentile of `related` (or `unrelated`) and the 25th
    percentile of paraphrases.
    """
    if not paraphrases or not unrelated:
        raise ValueError("measure_calibration needs at least one paraphrase pair and one unrelated pair")
    apart = related or unrelated
    return ModelCalibration(unrelated=_percentile(unrelated, 0.9), equivalent=_percentile(paraphrases, 0.5),
                            duplicate=(_percentile(apart, 0.9) + _percentile(paraphrases, 0.25)) / 2)


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity (0 for a zero vector)."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


# ------------------------------------------------------------------------------------------------ facts

_SPACE = re.compile(r"\s+")
_EDGE = re.compile(r"^[\s\"'“”‘’`«»(\[]+|[\s\"'“”‘’`«».!?;:,)\]।]+$")

AUTHORITY: dict[FactSourceKind, int] = {"artifact": 1, "decision": 2, "edit": 3, "manual": 3}
"""How much a source's wording counts: a human's edit or note beats a decision, which beats an artifact."""
MAX_SOURCES = 20
"""Source references kept per fact (the newest)."""
MAX_HISTORY = 10
"""Superseded wordings kept per fact (the newest)."""
MAX_FACT_CHARS = 2000
"""Longest stored fact (`memory_facts.fact`)."""
MAX_EPISODE_CHARS = 8000
"""Longest stored episode text (`memory_episodes.content`)."""


def normalize_fact(text: str) -> str:
    """The form two wordings must share to be the same fact: NFKC, case-folded, single spaces, no quotes
    or end punctuation around it."""
    text = unicodedata.normalize("NFKC", text)
    text = _SPACE.sub(" ", text).strip()
    return _EDGE.sub("", text).casefold()


def fact_hash(text: str) -> str:
    """sha256 (hex) of the normalized fact."""
    return hashlib.sha256(normalize_fact(text).encode()).hexdigest()


def clean_fact(text: str) -> str:
    """The wording stored: whitespace collapsed, otherwise as written."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def without_pii(text: str, policy: PiiPolicy, limit: int = MAX_FACT_CHARS) -> str:
    """A fact or episode with its personal data masked by the workspace's privacy policy (DPDP Act), kept
    within the stored length even when a placeholder is longer than what it replaced."""
    return mask(text, policy)[:limit]


def is_duplicate(similarity: float, calibration: ModelCalibration) -> bool:
    """Whether a new fact this close to a stored one is the same fact (merge) rather than a new one."""
    return similarity >= calibration.duplicate


def new_wording_wins(new: FactSourceKind, kept: FactSourceKind) -> bool:
    """On a merge, the newer wording replaces the kept one unless its source is weaker."""
    return AUTHORITY[new] >= AUTHORITY[kept]


# -------------------------------------------------------------------------------------------- retention


class Retention(BaseModel):
    """How long each kind of episode is kept; None keeps it until deleted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    interaction: timedelta | None = None
    outcome: timedelta | None = None
    task: timedelta | None = timedelta(days=30)
    critique: timedelta | None = timedelta(days=7)

    def expires_at(self, kind: EpisodeKind, at: datetime) -> datetime | None:
        """When an episode of `kind` that happened `at` expires (None: never)."""
        if at.tzinfo is None:
            raise ValueError(f"Episode time {at.isoformat()} has no timezone; pass an aware datetime (UTC).")
        keep: timedelta | None = getattr(self, kind)
        return None if keep is None else at + keep


DEFAULT_RETENTION = Retention()

# ------------------------------------------------------------------------------------------- selection


class SelectionPrior(BaseModel):
    """The prior each variant's record is smoothed toward (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prior_runs: float = Field(default=2.0, gt=0)
    prior_success: float = Field(default=0.5, ge=0, le=1)
    prior_quality: float = Field(default=0.5, ge=0, le=1)


def variant_stats(task_type: str, specialist: str, variant: str, runs: int, successes: int, quality_sum: float,
                  prior: SelectionPrior) -> VariantStats:
    """A variant's record with its smoothed success rate, quality and score."""
    n = runs + prior.prior_runs
    success_rate = (successes + prior.prior_runs * prior.prior_success) / n
    mean_quality = (quality_sum + prior.prior_runs * prior.prior_quality) / n
    return VariantStats(task_type=task_type, specialist=specialist, variant=variant, runs=runs, successes=successes,
                        quality_sum=quality_sum, success_rate=success_rate, mean_quality=mean_quality,
                        score=success_rate * mean_quality)


def choose_variant(variants: Sequence[str], default: str,
                   stats: Mapping[str, VariantStats]) -> tuple[str, Literal["no_history", "best_score"]]:
    """(variant, reason): the default without history, else the best score (ties: default, then order)."""
    if not any(stats[v].runs for v in variants):
        return default, "no_history"
    ordered = [default, *[v for v in variants if v != default]]
    best = max(ordered, key=lambda v: (stats[v].score, -ordered.index(v)))
    return best, "best_score"


def select_variant(query: SelectionQuery, counts: Mapping[str, tuple[int, int, float]],
                   prior: SelectionPrior) -> SpecialistChoice:
    """The choice for `query` given each variant's (runs, successes, quality sum); absent variants have none."""
    stats = {v: variant_stats(query.task_type, query.specialist, v, *counts.get(v, (0, 0, 0.0)), prior=prior)
             for v in query.variants}
    variant, reason = choose_variant(query.variants, query.default, stats)
    return SpecialistChoice(variant=variant, reason=reason, scores=stats)
