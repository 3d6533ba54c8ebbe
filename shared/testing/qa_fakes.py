"""A fake model for the QA judge: answers per guideline id, so concurrent judge calls stay deterministic."""

from __future__ import annotations

import re
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from shared.ports import Generated, ModelTier, Usage
from shared.qa.judge import JudgeVerdict

T = TypeVar("T", bound=BaseModel)
_GUIDELINE = re.compile(r"^Guideline id: (\S+)$", re.MULTILINE)


@dataclass
class GuidelineJudge:
    """`StructuredModel` answering `JudgeVerdict` calls by the guideline id in the prompt.

    Each `script(guideline, ...)` answer is used by one call, in order; unscripted calls find no
    violation. An answer may be an exception to raise.
    """

    answers: dict[str, deque[list[dict[str, Any]] | Exception]] = field(default_factory=lambda: defaultdict(deque))
    calls: list[tuple[str, str]] = field(default_factory=list)
    """(guideline id, prompt) per call."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, guideline: str, *answers: list[dict[str, Any]] | Exception) -> None:
        """Queue violation lists (or errors) for the next calls about `guideline`."""
        self.answers[guideline].extend(answers)

    def generate(self, *, tier: ModelTier, system: str, prompt: str, schema: type[T]) -> Generated[T]:
        if schema is not JudgeVerdict:
            raise AssertionError(f"GuidelineJudge only answers JudgeVerdict, not {schema.__name__}")
        match = _GUIDELINE.search(prompt)
        assert match, "judge prompt without a guideline id"
        guideline = match.group(1)
        with self._lock:
            self.calls.append((guideline, prompt))
            queued = self.answers[guideline].popleft() if self.answers[guideline] else []
        if isinstance(queued, Exception):
            raise queued
        value = schema.model_validate({"violations": queued})
        return Generated(value=value, usage=Usage(model=f"judge-{tier}", prompt_tokens=len(prompt) // 4,
                                                  output_tokens=5))

    @property
    def guidelines_asked(self) -> list[str]:
        """Guideline ids asked, sorted (call order is concurrent)."""
        return sorted(g for g, _ in self.calls)
