"""The memory ports over Postgres and pgvector, embedding with the deployment's `Embedder`.

Each class works as the service (`as_service`, explicit workspace filters) for the campaign graph, and
offers `*_in(conn, ...)` variants that run on the caller's transaction, e.g. `as_user` for API routes,
where row-level security keeps every workspace's memory to its members.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter

from shared.db import memory as db
from shared.db import privacy as privacy_db
from shared.db.knowledge import Embedder, embedding_key
from shared.db.pool import Pool, as_service
from shared.errors import ConfigurationError
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
    WorkspaceId,
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
    calibration_for,
    clean_fact,
    decide_route,
    fact_hash,
    is_duplicate,
    new_wording_wins,
    select_variant,
    task_match,
    variant_stats,
    without_pii,
)
from shared.safety.pii import PiiPolicy, mask_data

DOCUMENT = "RETRIEVAL_DOCUMENT"
QUERY = "RETRIEVAL_QUERY"
EMBED_BATCH = 32


def utcnow() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


_workspace = TypeAdapter(WorkspaceId).validate_python
MAX_RECALL = 50


def _k(k: int) -> int:
    if not 1 <= k <= MAX_RECALL:
        raise ValueError(f"k={k} is out of range; ask for 1 to {MAX_RECALL} memories")
    return k


def _without_pii(episode: EpisodeIn, policy: PiiPolicy) -> EpisodeIn:
    """The episode with personal data in its text masked by the workspace's privacy policy."""
    return episode.model_copy(update={"text": without_pii(episode.text, policy, MAX_EPISODE_CHARS)})


def _insert_episode(conn: Any, episode: EpisodeIn, vector: list[float], *, key: str, retention: Retention,
                    clock: Callable[[], datetime]) -> tuple[int, bool, datetime]:
    """(id, whether new, when it happened) of an episode written with its retention."""
    at = episode.at or clock()
    episode_id, new = db.insert_episode(conn, episode.workspace_id, kind=episode.kind, content=episode.text,
                                        data=episode.data, dedupe_key=episode.key, key=key, vector=vector,
                                        created_at=at, expires_at=retention.expires_at(episode.kind, at))
    return episode_id, new, at


@dataclass
class _Embedding:
    """The embedder, its vector-space key and its similarity calibration."""

    pool: Pool
    embedder: Embedder
    calibrations: Mapping[str, ModelCalibration] | None = None
    """Overrides of `shared.memory.policy.CALIBRATIONS`, by model name."""
    key: str = field(init=False)
    calibration: ModelCalibration = field(init=False)

    def __post_init__(self) -> None:
        self.key = embedding_key(self.embedder)
        self.calibration = calibration_for(self.embedder.model, self.calibrations)

    def embed(self, texts: Sequence[str], task: str) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), EMBED_BATCH):
            vectors.extend(self.embedder.embed(list(texts[start:start + EMBED_BATCH]), task=task))
        if len(vectors) != len(texts) or any(len(v) != self.embedder.dimensions for v in vectors):
            raise ConfigurationError(f"The embedder returned vectors that are not {len(texts)} × "
                                     f"{self.embedder.dimensions}; check MUSE_EMBEDDING_DIMENSIONS.")
        return vectors


def _source_entry(source: FactSource, at: datetime) -> dict[str, Any]:
    return {**source.model_dump(exclude_none=True), "at": at.isoformat()}


@dataclass
class PgSemanticMemory(_Embedding):
    """`SemanticMemory` in `memory_facts`: deduplicated by normalized-text hash, then by embedding similarity."""

    clock: Callable[[], datetime] = utcnow

    def learn(self, workspace_id: str, facts: Sequence[str], source: FactSource) -> list[LearnResult]:
        """Remember `facts` (see `learn_in`); embeds before opening the transaction."""
        batch = FactsIn(workspace_id=workspace_id, facts=list(facts), source=source)
        if not batch.facts:
            return []
        with as_service(self.pool) as conn:
            policy = privacy_db.policy_of(conn, batch.workspace_id)
        prepared = self._prepare(batch, policy)
        with as_service(self.pool) as conn:
            return self._learn(conn, batch, prepared)

    def learn_in(self, conn: Any, workspace_id: str, facts: Sequence[str], source: FactSource) -> list[LearnResult]:
        """Remember `facts` on the caller's transaction, one result per fact, in order.

        A wording seen before (the normalized text of a fact's current or superseded wording) confirms that
        fact; a fact whose cosine similarity to the closest stored one reaches the model's `duplicate`
        threshold is merged into it, its wording replacing the stored one unless it comes from a weaker
        source; anything else is added. Learning is serialized per workspace, so concurrent batches never
        add the same fact twice. Personal data in a fact is masked by the workspace's privacy policy before
        it is embedded or stored.
        """
        batch = FactsIn(workspace_id=workspace_id, facts=list(facts), source=source)
        return self._learn(conn, batch, self._prepare(batch, privacy_db.policy_of(conn, batch.workspace_id)))

    def recall(self, workspace_id: str, query: str, k: int = 5) -> list[Fact]:
        """The `k` facts closest to `query`, best first."""
        [vector] = self.embed([query], QUERY)
        with as_service(self.pool) as conn:
            return self._recall(conn, _workspace(workspace_id), vector, k)

    def recall_in(self, conn: Any, workspace_id: str, query: str, k: int = 5) -> list[Fact]:
        """`recall` on the caller's transaction."""
        [vector] = self.embed([query], QUERY)
        return self._recall(conn, _workspace(workspace_id), vector, k)

    def _prepare(self, batch: FactsIn, policy: PiiPolicy) -> list[tuple[str, str, list[float]]]:
        cleaned = [without_pii(clean_fact(text), policy) for text in batch.facts]
        unique = list(dict.fromkeys(cleaned))
        vectors = dict(zip(unique, self.embed(unique, DOCUMENT), strict=True))
        return [(text, fact_hash(text), vectors[text]) for text in cleaned]

    def _learn(self, conn: Any, batch: FactsIn, prepared: list[tuple[str, str, list[float]]]) -> list[LearnResult]:
        ws, source = batch.workspace_id, batch.source
        entry = _source_entry(source, self.clock())
        results: list[LearnResult] = []
        if not prepared:
            return results
        db.lock_facts(conn, ws)
        for text, text_hash, vector in prepared:
            same = db.fact_by_hash(conn, ws, text_hash)
            if same is not None:
                db.confirm_fact(conn, same["id"], [*same["sources"], entry][-MAX_SOURCES:])
                results.append(LearnResult(fact_id=same["id"], fact=same["fact"], action="confirmed"))
                continue
            nearest = db.nearest_facts(conn, ws, key=self.key, vector=vector, k=1)
            if nearest and is_duplicate(float(nearest[0]["similarity"]), self.calibration):
                near = nearest[0]
                similarity = float(near["similarity"])
                sources = [*near["sources"], entry][-MAX_SOURCES:]
                if new_wording_wins(source.kind, near["source"]):
                    history = [*near["history"], {"fact": near["fact"], "hash": near["text_hash"],
                                                  "source": near["source"], "until": entry["at"]}][-MAX_HISTORY:]
                    db.reword_fact(conn, near["id"], fact=text, text_hash=text_hash, source=source.kind,
                                   sources=sources, history=history, key=self.key, vector=vector)
                    results.append(LearnResult(fact_id=near["id"], fact=text, action="merged", similarity=similarity,
                                               superseded=near["fact"]))
                else:
                    db.confirm_fact(conn, near["id"], sources)
                    results.append(LearnResult(fact_id=near["id"], fact=near["fact"], action="merged",
                                               similarity=similarity))
                continue
            fact_id = db.insert_fact(conn, ws, fact=text, text_hash=text_hash, source=source.kind, sources=[entry],
                                     key=self.key, vector=vector)
            results.append(LearnResult(fact_id=fact_id, fact=text, action="added"))
        return results

    def _recall(self, conn: Any, workspace_id: str, vector: list[float], k: int) -> list[Fact]:
        rows = db.nearest_facts(conn, workspace_id, key=self.key, vector=vector, k=_k(k))
        return [Fact(id=r["id"], fact=r["fact"], source=r["source"], confirmations=r["confirmations"],
                     similarity=float(r["similarity"]), updated_at=r["updated_at"]) for r in rows]


@dataclass
class PgEpisodicMemory(_Embedding):
    """`EpisodicMemory` in `memory_episodes`, expiring by `retention` (task history 30 days, critiques 7)."""

    retention: Retention = DEFAULT_RETENTION
    clock: Callable[[], datetime] = utcnow

    def record(self, workspace_id: str, kind: EpisodeKind, text: str, data: dict[str, Any] | None = None, *,
               key: str | None = None, at: datetime | None = None) -> int:
        """Remember one episode as the service; returns its id (the first one's for a repeated `key`).

        Personal data in its text is masked by the workspace's privacy policy before it is embedded or stored.
        """
        episode = EpisodeIn(workspace_id=workspace_id, kind=kind, text=text, data=data or {}, key=key, at=at)
        with as_service(self.pool) as conn:
            episode = _without_pii(episode, privacy_db.policy_of(conn, episode.workspace_id))
        [vector] = self.embed([episode.text], DOCUMENT)
        with as_service(self.pool) as conn:
            return self._record(conn, episode, vector)[0]

    def record_in(self, conn: Any, workspace_id: str, kind: EpisodeKind, text: str,
                  data: dict[str, Any] | None = None, *, key: str | None = None, at: datetime | None = None) -> int:
        """`record` on the caller's transaction."""
        episode = EpisodeIn(workspace_id=workspace_id, kind=kind, text=text, data=data or {}, key=key, at=at)
        episode = _without_pii(episode, privacy_db.policy_of(conn, episode.workspace_id))
        [vector] = self.embed([episode.text], DOCUMENT)
        return self._record(conn, episode, vector)[0]

    def recall(self, workspace_id: str, query: str, k: int = 5,
               kinds: Sequence[EpisodeKind] | None = None) -> list[Episode]:
        """The `k` unexpired episodes closest to `query`, best first."""
        [vector] = self.embed([query], QUERY)
        with as_service(self.pool) as conn:
            return self._recall(conn, _workspace(workspace_id), vector, k, kinds)

    def recall_in(self, conn: Any, workspace_id: str, query: str, k: int = 5,
                  kinds: Sequence[EpisodeKind] | None = None) -> list[Episode]:
        """`recall` on the caller's transaction."""
        [vector] = self.embed([query], QUERY)
        return self._recall(conn, _workspace(workspace_id), vector, k, kinds)

    def purge_expired(self) -> PurgeReport:
        """Delete expired episodes (with their task records) and expired specialist run keys."""
        with as_service(self.pool) as conn:
            return PurgeReport(**db.purge_expired(conn))

    def _record(self, conn: Any, episode: EpisodeIn, vector: list[float]) -> tuple[int, bool, datetime]:
        return _insert_episode(conn, episode, vector, key=self.key, retention=self.retention, clock=self.clock)

    def _recall(self, conn: Any, workspace_id: str, vector: list[float], k: int,
                kinds: Sequence[EpisodeKind] | None) -> list[Episode]:
        rows = db.recall_episodes(conn, workspace_id, key=self.key, vector=vector, k=_k(k), kinds=kinds)
        return [Episode(id=r["id"], kind=r["kind"], text=r["content"], data=r["data"], created_at=r["created_at"],
                        expires_at=r["expires_at"], similarity=float(r["similarity"])) for r in rows]


@dataclass
class PgTaskRouter(_Embedding):
    """`TaskRouter` over the workspace's `task` episodes and their `memory_tasks` records.

    Descriptions are compared passage to passage (both embedded as documents), which is what the
    calibration was measured on; see `shared.memory.policy` for the confidence formula.
    """

    threshold: float = REUSE_THRESHOLD
    candidates: int = 5
    """How many similar past tasks are scored (and returned to the planner)."""
    retention: Retention = DEFAULT_RETENTION
    clock: Callable[[], datetime] = utcnow

    def route(self, workspace_id: str, task_type: str, description: str) -> RouteDecision:
        """Reuse the proven sequence of the most confident similar past task, or plan."""
        query = RouteQuery(workspace_id=workspace_id, task_type=task_type, description=description)
        [vector] = self.embed([query.description], DOCUMENT)
        with as_service(self.pool) as conn:
            return self._route(conn, query, vector)

    def route_in(self, conn: Any, workspace_id: str, task_type: str, description: str) -> RouteDecision:
        """`route` on the caller's transaction."""
        query = RouteQuery(workspace_id=workspace_id, task_type=task_type, description=description)
        [vector] = self.embed([query.description], DOCUMENT)
        return self._route(conn, query, vector)

    def store_outcome(self, workspace_id: str, *, task_type: str, description: str, steps: Sequence[str],
                      success: bool, quality: float, plan: dict[str, Any] | None = None,
                      campaign_id: str | None = None, reused_from: int | None = None,
                      key: str | None = None, at: datetime | None = None) -> int:
        """Remember how a task went, as a `task` episode (kept as task history) with its routing record."""
        outcome = TaskOutcome(workspace_id=workspace_id, task_type=task_type, description=description,
                              steps=list(steps), success=success, quality=quality, plan=plan,
                              campaign_id=campaign_id, reused_from=reused_from, key=key, at=at)
        with as_service(self.pool) as conn:
            policy = privacy_db.policy_of(conn, outcome.workspace_id)
        outcome = outcome.model_copy(update={"description": without_pii(outcome.description, policy, MAX_EPISODE_CHARS),
                                             "plan": None if outcome.plan is None else mask_data(outcome.plan, policy)})
        [vector] = self.embed([outcome.description], DOCUMENT)
        episode = EpisodeIn(workspace_id=outcome.workspace_id, kind="task", text=outcome.description,
                            data={"task_type": outcome.task_type, "steps": outcome.steps, "success": outcome.success,
                                  "quality": outcome.quality, "campaign_id": outcome.campaign_id},
                            key=outcome.key, at=outcome.at)
        with as_service(self.pool) as conn:
            episode_id, new, created_at = _insert_episode(conn, episode, vector, key=self.key,
                                                          retention=self.retention, clock=self.clock)
            if new:
                db.insert_task(conn, outcome.workspace_id, episode_id=episode_id, task_type=outcome.task_type,
                               steps=outcome.steps, plan=outcome.plan, success=outcome.success,
                               quality=outcome.quality, reused_from=outcome.reused_from, created_at=created_at)
        return episode_id

    def _route(self, conn: Any, query: RouteQuery, vector: list[float]) -> RouteDecision:
        rows = db.similar_tasks(conn, query.workspace_id, task_type=query.task_type, key=self.key, vector=vector,
                                k=self.candidates)
        matches = [task_match(task_id=r["episode_id"], description=r["content"], steps=r["steps"], plan=r["plan"],
                              success=r["success"], quality=float(r["quality"]), similarity=float(r["similarity"]),
                              created_at=r["created_at"], calibration=self.calibration) for r in rows]
        return decide_route(matches, self.threshold)


@dataclass
class PgSpecialistSelector:
    """`SpecialistSelector` over `memory_specialist_stats` (counts are atomic upserts; keyed runs count once)."""

    pool: Pool
    prior: SelectionPrior = field(default_factory=SelectionPrior)

    def pick(self, workspace_id: str, task_type: str, specialist: str, variants: Sequence[str],
             default: str) -> SpecialistChoice:
        """The variant with the best smoothed success rate × quality; `default` without any history."""
        query = SelectionQuery(workspace_id=workspace_id, task_type=task_type, specialist=specialist,
                               variants=list(variants), default=default)
        with as_service(self.pool) as conn:
            rows = db.specialist_stats(conn, query.workspace_id, task_type=query.task_type,
                                       specialist=query.specialist)
        return select_variant(query, {r["variant"]: (r["runs"], r["successes"], float(r["quality_sum"]))
                                      for r in rows}, self.prior)

    def record(self, workspace_id: str, task_type: str, specialist: str, variant: str, *, success: bool,
               quality: float, run_key: str | None = None) -> bool:
        """Count one run; False if `run_key` was already counted."""
        run = SpecialistRun(workspace_id=workspace_id, task_type=task_type, specialist=specialist, variant=variant,
                            success=success, quality=quality, run_key=run_key)
        with as_service(self.pool) as conn:
            return db.record_run(conn, run.workspace_id, task_type=run.task_type, specialist=run.specialist,
                                 variant=run.variant, success=run.success, quality=run.quality, run_key=run.run_key)

    def performance(self, workspace_id: str, task_type: str | None = None) -> list[VariantStats]:
        """Every counted variant of the workspace with its smoothed score."""
        with as_service(self.pool) as conn:
            rows = db.specialist_stats(conn, _workspace(workspace_id), task_type=task_type)
        return [variant_stats(r["task_type"], r["specialist"], r["variant"], r["runs"], r["successes"],
                              float(r["quality_sum"]), self.prior) for r in rows]


@dataclass(frozen=True)
class PgMemory:
    """Every memory port over one pool and embedder, as the graph's dependencies need them."""

    semantic: PgSemanticMemory
    episodic: PgEpisodicMemory
    router: PgTaskRouter
    selector: PgSpecialistSelector


def build_memory(pool: Pool, embedder: Embedder, *,
                 calibrations: Mapping[str, ModelCalibration] | None = None,
                 retention: Retention = DEFAULT_RETENTION) -> PgMemory:
    """The memory of a deployment; pass `shared.integrations.embeddings.embedder_from_settings(settings)`.

    Raises `ConfigurationError` at once if the embedder's model has no similarity calibration.
    """
    return PgMemory(
        semantic=PgSemanticMemory(pool, embedder, calibrations),
        episodic=PgEpisodicMemory(pool, embedder, calibrations, retention=retention),
        router=PgTaskRouter(pool, embedder, calibrations, retention=retention),
        selector=PgSpecialistSelector(pool),
    )


def reembed_memory(pool: Pool, embedder: Embedder, *, workspace_id: str | None = None,
                   batch: int = 64) -> int:
    """Re-embed every fact and episode stored under another model (after a model switch); returns how many.

    Runs in short transactions of `batch` rows, so it can be interrupted and resumed. Until a row is
    re-embedded, recall and routing (which read only the configured model's vectors) do not see it.
    """
    key = embedding_key(embedder)
    total = 0
    for table in ("facts", "episodes"):
        while True:
            with as_service(pool) as conn:
                rows = db.stale_embeddings(conn, table, key=key, limit=batch, workspace_id=workspace_id)
                if rows:
                    vectors = embedder.embed([r["text"] for r in rows], task=DOCUMENT)
                    db.replace_embeddings(conn, table, key, [(r["id"], v) for r, v in zip(rows, vectors, strict=True)])
            total += len(rows)
            if len(rows) < batch:
                break
    return total
