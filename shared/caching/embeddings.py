"""The query-embedding cache: an embedder whose query vectors are kept in Upstash Redis.

Wraps any embedder of `shared.integrations.embeddings` (Gemini or the local multilingual-e5); built in
`shared.runtime.wiring`. Lives here rather than beside the embedders so that imports flow one way
(`shared.caching` builds on `shared.integrations`).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from shared.caching.best_effort import ChatCache
from shared.integrations.embeddings import QUERY_TASKS
from shared.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")


class Embedder(Protocol):
    """What `CachedEmbedder` wraps (`shared.db.knowledge.Embedder`)."""

    model: str
    dimensions: int

    def embed(self, texts: list[str], *, task: str = ...) -> list[list[float]]: ...


@dataclass
class CachedEmbedder:
    """An embedder whose query embeddings are cached in Upstash Redis, keyed by model and text hash.

    Only query tasks (`QUERY_TASKS`) are cached: queries repeat (the same research query, the same
    chat question), passages are embedded once at ingest. A vector depends on nothing but the model,
    its dimension, the task and the text, so the key holds no workspace data beyond a hash of the text
    and is shared by all workspaces. Vectors are stored as float32 bytes (the local model's own precision).
    The cache is best effort: an outage is a miss.
    """

    inner: Embedder
    cache: ChatCache
    ttl_seconds: int = 30 * 86400
    model: str = field(init=False)
    dimensions: int = field(init=False)

    def __post_init__(self) -> None:
        self.model = self.inner.model
        self.dimensions = self.inner.dimensions

    def key(self, text: str, task: str) -> str:
        """Where the embedding of `text` for `task` is cached."""
        digest = hashlib.sha256(text.encode()).hexdigest()
        return f"emb:{self.inner.model}:{self.inner.dimensions}:{task}:{digest}"

    def embed(self, texts: list[str], *, task: str = "RETRIEVAL_DOCUMENT") -> list[list[float]]:
        """One vector per text; query vectors from the cache when it has them, the rest from the model."""
        if task not in QUERY_TASKS or self.ttl_seconds == 0 or not texts:
            return self.inner.embed(texts, task=task)
        vectors: list[list[float] | None] = []
        for text in texts:
            raw = self.cache.get("embedding", self.key(text, task))
            vectors.append(_unpack(raw, self.inner.dimensions))
        missing = [i for i, v in enumerate(vectors) if v is None]
        if missing:
            fresh = self.inner.embed([texts[i] for i in missing], task=task)
            for i, vector in zip(missing, fresh, strict=True):
                vectors[i] = vector
                self.cache.put("embedding", self.key(texts[i], task),
                               base64.b64encode(np.asarray(vector, dtype=np.float32).tobytes()).decode(),
                               ttl_seconds=self.ttl_seconds)
        return [v for v in vectors if v is not None]


def _unpack(raw: Any, dimensions: int) -> list[float] | None:
    if not isinstance(raw, str):
        return None
    try:
        vector = np.frombuffer(base64.b64decode(raw), dtype=np.float32)
    except ValueError:
        return None
    return [float(x) for x in vector] if vector.shape == (dimensions,) else None
