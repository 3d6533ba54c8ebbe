"""In-memory memory ports for unit tests, applying the same rules (`shared.memory.policy`) as Postgres.

`HashingEmbedder` stands in for a real model: a feature-hashed bag of words, so texts that share words
are similar and others are not, with its own calibration (`HASHING_CALIBRATION`). A settable `clock`
lets tests move time past retention.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.memory.models import (
    Episode,
    EpisodeIn,
    EpisodeKind,
    Fact,
    FactsIn,
    FactSource,
    LearnResult,
    PurgeReport,
    RouteDecision,
    RouteQuery,
    SelectionQuery,
    SpecialistChoice,
    SpecialistRun,
    TaskOutcome,
    VariantStats,
)
from shared.memory.policy import (
    DEFAULT_RETENTION,
    MAX_EPISODE_CHARS,
    MAX_HISTORY,
    MAX_SOURCES,
    REUSE_THRESHOLD,
    ModelCalibration,
    Retention,
    SelectionPrior,
    clean_fact,
    cosine,
    decide_route,
    fact_hash,
    is_duplicate,
    new_wording_wins,
    select_variant,
    task_match,
    variant_stats,
    without_pii,
)
from shared.safety.pii import REDACT, PiiPolicy

HASHING_CALIBRATION = ModelCalibration(unrelated=0.1, equivalent=0.9, duplicate=0.75)
"""Bag-of-words cosine: texts without common words score about 0, one extra word in ten about 0.9."""
_WORD = re.compile(r"[^\W_]+")


@dataclass
class HashingEmbedder:
    """A deterministic `Embedder` for tests: feature-hashed words and bigrams, L2-normalized."""

    model: str = "hashing"
    dimensions: int = 256
    calls: int = 0

    def embed(self, texts: list[str], *, task: str = "RETRIEVAL_DOCUMENT") -> list[list[float]]:
        """One vector per text; `task` is ignored (queries and documents share one space)."""
        self.calls += 1
        return [self._vector(text) for text in texts]

    def _vector(self, text: str) -> list[float]:
        words = [w.casefold() for w in _WORD.findall(text)] or ["<empty>"]
        vector = [0.0] * self.dimensions
        features = [(w, 1.0) for w in words] + [(f"{a} {b}", 0.5) for a, b in itertools.pairwise(words)]
        for feature, weight in features:
            number = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "big")
            vector[(number >> 1) % self.dimensions] += weight if number & 1 else -weight
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]


@dataclass
class ManualClock:
    """A clock tests move by hand."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 23, 9, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now


@dataclass
class _Stored:
    workspace_id: str
    text: str
    vector: list[float]


@dataclass
class _StoredFact(_Stored):
    id: int
    text_hash: str
    source: str
    sources: list[dict[str, Any]]
    history: list[dict[str, Any]] = field(default_factory=list)
    confirmations: int = 1
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class _StoredEpisode(_Stored):
    id: int
    kind: EpisodeKind
    data: dict[str, Any]
    key: str | None
    created_at: datetime
    expires_at: datetime | None
    task: TaskOutcome | None = None


@dataclass
class InMemorySemanticMemory:
    """`SemanticMemory` in a list."""

    embedder: HashingEmbedder = field(default_factory=HashingEmbedder)
    calibration: ModelCalibration = HASHING_CALIBRATION
    clock: Callable[[], datetime] = field(default_factory=ManualClock)
    facts: list[_StoredFact] = field(default_factory=list)
    privacy: dict[str, PiiPolicy] = field(default_factory=dict)
    """Workspace id → its personal-data policy (default: redact), as `workspace_privacy` holds it."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def learn(self, workspace_id: str, facts: Sequence[str], source: FactSource) -> list[LearnResult]:
        """Confirm identical facts, merge near-duplicates, add the rest (as `PgSemanticMemory.learn_in`)."""
        batch = FactsIn(workspace_id=workspace_id, facts=list(facts), source=source)
        entry = {**batch.source.model_dump(exclude_none=True), "at": self.clock().isoformat()}
        results = []
        with self._lock:
            for raw in batch.facts:
                text = without_pii(clean_fact(raw), self.privacy.get(batch.workspace_id, REDACT))
                text_hash = fact_hash(text)
                [vector] = self.embedder.embed([text])
                own = [f for f in self.facts if f.workspace_id == batch.workspace_id]
                same = next((f for f in own if f.text_hash == text_hash), None) or next(
                    (f for f in own if any(h["hash"] == text_hash for h in f.history)), None)
                if same is not None:
                    same.confirmations += 1
                    same.sources = [*same.sources, entry][-MAX_SOURCES:]
                    results.append(LearnResult(fact_id=same.id, fact=same.text, action="confirmed"))
                    continue
                near = max(own, key=lambda f: cosine(vector, f.vector), default=None)
                similarity = cosine(vector, near.vector) if near else 0.0
                if near is not None and is_duplicate(similarity, self.calibration):
                    near.confirmations += 1
                    near.sources = [*near.sources, entry][-MAX_SOURCES:]
                    near.updated_at = self.clock()
                    if new_wording_wins(batch.source.kind, near.source):  # type: ignore[arg-type]
                        old = near.text
                        near.history = [*near.history, {"fact": old, "hash": near.text_hash, "source": near.source,
                                                        "until": entry["at"]}][-MAX_HISTORY:]
                        near.text, near.text_hash, near.vector, near.source = text, text_hash, vector, batch.source.kind
                        results.append(LearnResult(fact_id=near.id, fact=text, action="merged",
                                                   similarity=similarity, superseded=old))
                    else:
                        results.append(LearnResult(fact_id=near.id, fact=near.text, action="merged",
                                                   similarity=similarity))
                    continue
                stored = _StoredFact(workspace_id=batch.workspace_id, text=text, vector=vector,
                                     id=len(self.facts) + 1, text_hash=text_hash, source=batch.source.kind,
                                     sources=[entry], updated_at=self.clock())
                self.facts.append(stored)
                results.append(LearnResult(fact_id=stored.id, fact=text, action="added"))
        return results

    def recall(self, workspace_id: str, query: str, k: int = 5) -> list[Fact]:
        """The `k` facts of the workspace closest to `query`."""
        [vector] = self.embedder.embed([query], task="RETRIEVAL_QUERY")
        scored = sorted(((cosine(vector, f.vector), f) for f in self.facts if f.workspace_id == workspace_id),
                        key=lambda pair: (-pair[0], pair[1].id))
        return [Fact(id=f.id, fact=f.text, source=f.source, confirmations=f.confirmations,
                     similarity=s, updated_at=f.updated_at) for s, f in scored[:k]]


@dataclass
class InMemoryEpisodicMemory:
    """`EpisodicMemory` in a list; expiry follows `retention` against `clock`."""

    embedder: HashingEmbedder = field(default_factory=HashingEmbedder)
    retention: Retention = DEFAULT_RETENTION
    clock: Callable[[], datetime] = field(default_factory=ManualClock)
    episodes: list[_StoredEpisode] = field(default_factory=list)
    privacy: dict[str, PiiPolicy] = field(default_factory=dict)
    """Workspace id → its personal-data policy (default: redact), as `workspace_privacy` holds it."""
    _next_id: int = field(default=0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, workspace_id: str, kind: EpisodeKind, text: str, data: dict[str, Any] | None = None, *,
               key: str | None = None, at: datetime | None = None) -> int:
        """Remember one episode; a repeated (kind, `key`) returns the first one's id."""
        return self._record(EpisodeIn(workspace_id=workspace_id, kind=kind, text=text, data=data or {}, key=key,
                                      at=at)).id

    def recall(self, workspace_id: str, query: str, k: int = 5,
               kinds: Sequence[EpisodeKind] | None = None) -> list[Episode]:
        """The `k` unexpired episodes of the workspace closest to `query`."""
        [vector] = self.embedder.embed([query], task="RETRIEVAL_QUERY")
        scored = sorted(((cosine(vector, e.vector), e) for e in self._live(workspace_id)
                         if not kinds or e.kind in kinds), key=lambda pair: (-pair[0], -pair[1].id))
        return [Episode(id=e.id, kind=e.kind, text=e.text, data=e.data, created_at=e.created_at,
                        expires_at=e.expires_at, similarity=s) for s, e in scored[:k]]

    def purge_expired(self) -> PurgeReport:
        """Delete every expired episode."""
        with self._lock:
            now = self.clock()
            kept = [e for e in self.episodes if e.expires_at is None or e.expires_at > now]
            deleted = len(self.episodes) - len(kept)
            self.episodes[:] = kept
        return PurgeReport(episodes=deleted)

    def _record(self, episode: EpisodeIn, task: TaskOutcome | None = None) -> _StoredEpisode:
        with self._lock:
            if episode.key is not None:
                for stored in self.episodes:
                    if (stored.workspace_id, stored.kind, stored.key) == (episode.workspace_id, episode.kind,
                                                                          episode.key):
                        return stored
            at = episode.at or self.clock()
            text = without_pii(episode.text, self.privacy.get(episode.workspace_id, REDACT), MAX_EPISODE_CHARS)
            [vector] = self.embedder.embed([text])
            self._next_id += 1
            stored = _StoredEpisode(workspace_id=episode.workspace_id, text=text, vector=vector,
                                    id=self._next_id, kind=episode.kind, data=episode.data, key=episode.key,
                                    created_at=at, expires_at=self.retention.expires_at(episode.kind, at), task=task)
            self.episodes.append(stored)
            return stored

    def _live(self, workspace_id: str) -> list[_StoredEpisode]:
        now = self.clock()
        return [e for e in self.episodes
                if e.workspace_id == workspace_id and (e.expires_at is None or e.expires_at > now)]


@dataclass
class InMemoryTaskRouter:
    """`TaskRouter` over an `InMemoryEpisodicMemory` (task outcomes are its `task` episodes)."""

    episodes: InMemoryEpisodicMemory = field(default_factory=InMemoryEpisodicMemory)
    calibration: ModelCalibration = HASHING_CALIBRATION
    threshold: float = REUSE_THRESHOLD
    candidates: int = 5

    def route(self, workspace_id: str, task_type: str, description: str) -> RouteDecision:
        """Reuse the proven sequence of the most confident similar past task, or plan."""
        query = RouteQuery(workspace_id=workspace_id, task_type=task_type, description=description)
        [vector] = self.episodes.embedder.embed([query.description])
        tasks = [(cosine(vector, e.vector), e) for e in self.episodes._live(query.workspace_id)
                 if e.task is not None and e.task.task_type == query.task_type]
        tasks.sort(key=lambda pair: (-pair[0], -pair[1].id))
        matches = [task_match(task_id=e.id, description=e.text, steps=e.task.steps, plan=e.task.plan,
                              success=e.task.success, quality=e.task.quality, similarity=s, created_at=e.created_at,
                              calibration=self.calibration)
                   for s, e in tasks[:self.candidates] if e.task is not None]
        return decide_route(matches, self.threshold)

    def store_outcome(self, workspace_id: str, *, task_type: str, description: str, steps: Sequence[str],
                      success: bool, quality: float, plan: dict[str, Any] | None = None,
                      campaign_id: str | None = None, reused_from: int | None = None,
                      key: str | None = None, at: datetime | None = None) -> int:
        """Remember how a task went, as a `task` episode."""
        outcome = TaskOutcome(workspace_id=workspace_id, task_type=task_type, description=description,
                              steps=list(steps), success=success, quality=quality, plan=plan,
                              campaign_id=campaign_id, reused_from=reused_from, key=key, at=at)
        episode = EpisodeIn(workspace_id=outcome.workspace_id, kind="task", text=outcome.description,
                            data={"task_type": outcome.task_type, "steps": outcome.steps, "success": outcome.success,
                                  "quality": outcome.quality, "campaign_id": outcome.campaign_id},
                            key=outcome.key, at=outcome.at)
        return self.episodes._record(episode, task=outcome).id


@dataclass
class InMemorySpecialistSelector:
    """`SpecialistSelector` over a dict of counts."""

    prior: SelectionPrior = field(default_factory=SelectionPrior)
    counts: dict[tuple[str, str, str, str], list[float]] = field(default_factory=dict)
    run_keys: set[tuple[str, str]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def pick(self, workspace_id: str, task_type: str, specialist: str, variants: Sequence[str],
             default: str) -> SpecialistChoice:
        """The variant with the best smoothed success rate × quality; `default` without history."""
        query = SelectionQuery(workspace_id=workspace_id, task_type=task_type, specialist=specialist,
                               variants=list(variants), default=default)
        counts: Mapping[str, tuple[int, int, float]] = {
            variant: (int(c[0]), int(c[1]), c[2]) for (ws, tt, sp, variant), c in self.counts.items()
            if (ws, tt, sp) == (query.workspace_id, query.task_type, query.specialist)}
        return select_variant(query, counts, self.prior)

    def record(self, workspace_id: str, task_type: str, specialist: str, variant: str, *, success: bool,
               quality: float, run_key: str | None = None) -> bool:
        """Count one run; False if `run_key` was already counted."""
        run = SpecialistRun(workspace_id=workspace_id, task_type=task_type, specialist=specialist, variant=variant,
                            success=success, quality=quality, run_key=run_key)
        with self._lock:
            if run.run_key is not None:
                if (run.workspace_id, run.run_key) in self.run_keys:
                    return False
                self.run_keys.add((run.workspace_id, run.run_key))
            count = self.counts.setdefault((run.workspace_id, run.task_type, run.specialist, run.variant),
                                           [0, 0, 0.0])
            count[0] += 1
            count[1] += int(run.success)
            count[2] += run.quality
        return True

    def performance(self, workspace_id: str, task_type: str | None = None) -> list[VariantStats]:
        """Every counted variant of the workspace with its smoothed score."""
        return [variant_stats(tt, sp, variant, int(c[0]), int(c[1]), c[2], self.prior)
                for (ws, tt, sp, variant), c in sorted(self.counts.items())
                if ws == workspace_id and (task_type is None or tt == task_type)]


@dataclass(frozen=True)
class FakeMemory:
    """Every memory port in memory, sharing one clock and embedder."""

    semantic: InMemorySemanticMemory
    episodic: InMemoryEpisodicMemory
    router: InMemoryTaskRouter
    selector: InMemorySpecialistSelector
    clock: ManualClock


def fake_memory(*, retention: Retention = DEFAULT_RETENTION) -> FakeMemory:
    """A fresh in-memory memory for one test."""
    clock, embedder = ManualClock(), HashingEmbedder()
    episodic = InMemoryEpisodicMemory(embedder=embedder, retention=retention, clock=clock)
    return FakeMemory(semantic=InMemorySemanticMemory(embedder=embedder, clock=clock), episodic=episodic,
                      router=InMemoryTaskRouter(episodes=episodic), selector=InMemorySpecialistSelector(),
                      clock=clock)
