"""The semantic cache of research queries: a workspace's earlier search answers a paraphrase of it.

Each workspace keeps an index of its last `entries` research queries (query, float16 embedding, the
key of the exact answer) under `workspace_key(workspace_id, "semantic:<model>")`. A new query is
embedded (through the query-embedding cache) and served the answer of the most similar earlier query
when their cosine similarity is at least the calibrated `threshold` and both name the same numbers
(years, prices, sizes). The number guard exists because embeddings barely tell "trends 2025" from
"trends 2026" (0.983 on the labelled set with multilingual-e5-small).

The threshold is calibrated by `calibrate` on `infra/data/research_query_pairs.json` (paraphrase and
non-paraphrase pairs): the lowest value that lets no non-paraphrase through, plus a margin. It depends
on the embedding model: the index key names the model, so a change of model starts a new index.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

from shared.caching.best_effort import ChatCache
from shared.integrations.cache import workspace_key
from shared.integrations.tavily import SemanticHit
from shared.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")

CALIBRATED_MODEL = "multilingual-e5-small"
"""The embedding model the default threshold (`MUSE_SEMANTIC_CACHE_THRESHOLD`) was calibrated for."""
PAIRS_PATH = Path(__file__).resolve().parents[2] / "infra" / "data" / "research_query_pairs.json"
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def threshold_for(model: str, configured: float, *, explicit: bool) -> float:
    """The threshold to use with embedding `model`: the configured one when it was calibrated for this
    model or set explicitly, else 1 (the semantic cache stays off rather than guess)."""
    return configured if explicit or model == CALIBRATED_MODEL else 1.0


class QueryEmbedder(Protocol):
    """What the cache needs of an embedder (`shared.db.knowledge.Embedder`)."""

    def embed(self, texts: list[str], *, task: str = ...) -> list[list[float]]: ...


class LabelledPair(TypedDict):
    """Two research queries and whether one may be answered with the other's results."""

    a: str
    b: str
    paraphrase: bool


class Calibration(TypedDict):
    """What `calibrate` found on a labelled set."""

    threshold: float
    pairs: int
    paraphrases: int
    paraphrase_hits: int
    false_hits: int
    highest_non_paraphrase: float


def numbers_of(query: str) -> frozenset[str]:
    """The numbers a query names (two queries must name the same ones to share an answer)."""
    return frozenset(n.replace(",", "") for n in _NUMBER.findall(query))


def same_intent(a: str, b: str, similarity: float, threshold: float) -> bool:
    """Whether a query with `similarity` to another may be answered with its results."""
    return similarity >= threshold and numbers_of(a) == numbers_of(b)


def _pack(vector: Sequence[float]) -> str:
    unit = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(unit)) or 1.0
    return base64.b64encode((unit / norm).astype(np.float16).tobytes()).decode()


def _unpack(packed: str) -> np.ndarray[Any, Any]:
    return np.frombuffer(base64.b64decode(packed), dtype=np.float16).astype(np.float32)


@dataclass
class SemanticQueryCache:
    """Per-workspace nearest-query lookup over Redis; every failure is a miss (see `ChatCache`)."""

    cache: ChatCache
    embedder: QueryEmbedder
    model: str
    threshold: float
    entries: int = 64
    ttl_seconds: int = 6 * 3600

    def index_key(self, workspace_id: str, kind: str) -> str:
        """Where a workspace's index of research queries of one `kind` (e.g. `web:5`) lives."""
        return workspace_key(workspace_id, f"semantic:{self.model}:{kind}")

    def _vector(self, query: str) -> list[float] | None:
        try:
            return self.embedder.embed([query], task="RETRIEVAL_QUERY")[0]
        except Exception:
            return None

    def _index(self, workspace_id: str, kind: str) -> list[dict[str, Any]]:
        raw = self.cache.get("semantic", self.index_key(workspace_id, kind))
        return [e for e in raw if isinstance(e, dict) and {"q", "v", "k"} <= e.keys()] if isinstance(raw, list) else []

    def lookup(self, workspace_id: str, kind: str, query: str) -> SemanticHit | None:
        """The closest earlier query of the workspace (of `kind`) with the same intent, or None."""
        if self.threshold >= 1.0:
            return None
        index = self._index(workspace_id, kind)
        if not index:
            return None
        vector = self._vector(query)
        if vector is None:
            return None
        probe = np.asarray(vector, dtype=np.float32)
        probe /= float(np.linalg.norm(probe)) or 1.0
        best: SemanticHit | None = None
        for entry in index:
            try:
                stored = _unpack(entry["v"])
            except (ValueError, TypeError):
                continue
            if stored.shape != probe.shape:
                continue
            similarity = float(stored @ probe)
            if same_intent(query, entry["q"], similarity, self.threshold) and (
                    best is None or similarity > best.similarity):
                best = SemanticHit(query=entry["q"], similarity=similarity, answer_key=entry["k"])
        return best

    def remember(self, workspace_id: str, kind: str, query: str, answer_key: str) -> bool:
        """Add `query` (answered under `answer_key`) to the workspace's index; False when it could not be.

        Read-modify-write: two concurrent searches of one workspace may each drop the other's entry,
        which costs a later hit, never a wrong one."""
        if self.threshold >= 1.0:
            return False
        vector = self._vector(query)
        if vector is None:
            return False
        index = [e for e in self._index(workspace_id, kind) if e["q"] != query]
        index.append({"q": query, "v": _pack(vector), "k": answer_key})
        return self.cache.put("semantic", self.index_key(workspace_id, kind), index[-self.entries:],
                              ttl_seconds=self.ttl_seconds)


def load_pairs(path: Path = PAIRS_PATH) -> list[LabelledPair]:
    """The labelled research-query pairs."""
    return list(json.loads(path.read_text())["pairs"])


def pair_similarities(embedder: QueryEmbedder, pairs: Sequence[LabelledPair]) -> list[float]:
    """Cosine similarity of each pair's queries under `embedder`."""
    left = np.asarray(embedder.embed([p["a"] for p in pairs], task="RETRIEVAL_QUERY"), dtype=np.float32)
    right = np.asarray(embedder.embed([p["b"] for p in pairs], task="RETRIEVAL_QUERY"), dtype=np.float32)
    left /= np.linalg.norm(left, axis=1, keepdims=True)
    right /= np.linalg.norm(right, axis=1, keepdims=True)
    return [float(s) for s in (left * right).sum(axis=1)]


def evaluate(pairs: Sequence[LabelledPair], similarities: Sequence[float], threshold: float) -> Calibration:
    """How a threshold fares on labelled pairs (with the number guard of `same_intent`)."""
    served = [same_intent(p["a"], p["b"], s, threshold) for p, s in zip(pairs, similarities, strict=True)]
    guarded = [s for p, s in zip(pairs, similarities, strict=True)
               if not p["paraphrase"] and numbers_of(p["a"]) == numbers_of(p["b"])]
    return Calibration(
        threshold=threshold, pairs=len(pairs), paraphrases=sum(p["paraphrase"] for p in pairs),
        paraphrase_hits=sum(hit and p["paraphrase"] for hit, p in zip(served, pairs, strict=True)),
        false_hits=sum(hit and not p["paraphrase"] for hit, p in zip(served, pairs, strict=True)),
        highest_non_paraphrase=round(max(guarded, default=0.0), 4))


def calibrate(pairs: Sequence[LabelledPair], similarities: Sequence[float], *, margin: float = 0.002) -> Calibration:
    """The lowest threshold (to 3 decimals) above every non-paraphrase that passes the number guard, plus
    `margin`, and how it fares on the same pairs."""
    guarded = [s for p, s in zip(pairs, similarities, strict=True)
               if not p["paraphrase"] and numbers_of(p["a"]) == numbers_of(p["b"])]
    threshold = min(1.0, math.ceil((max(guarded, default=0.0) + margin) * 1000) / 1000)
    return evaluate(pairs, similarities, threshold)
