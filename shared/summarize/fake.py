"""A deterministic summarizing model with a real context limit, for tests and benchmarks.

`ExtractiveModel` answers `SummaryDraft` requests the way a well-behaved model would: it reads the
tagged passages and claims of the prompt, writes at most the number of claims asked for (each the
opening words of a group of consecutive inputs) and cites the group's tags. It rejects a prompt larger
than its context window, as Gemini does with a 400, so a caller that overflows fails loudly.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import BaseModel

from shared.ports import Generated, ModelTier, Usage
from shared.summarize.schemas import SummaryDraft
from shared.summarize.tokens import estimate_tokens

T = TypeVar("T", bound=BaseModel)

_LINE = re.compile(r"^\[([SC]\d+)\] (?:\([^)]*\) )?(.*)$")
_MAX_CLAIMS = re.compile(r"Write at most (\d+) claims")
_MAX_WORDS = re.compile(r"at most (\d+) words")


class ContextWindowExceeded(ValueError):
    """The prompt is larger than the model's context window."""


@dataclass
class ExtractiveModel:
    """`StructuredModel` for `SummaryDraft` with a context window, optional latency and bad citations."""

    context_tokens: int = 32_768
    latency_seconds: float = 0.0
    invalid_citation_every: int = 0
    """If set, every n-th claim also cites a tag that was not in the prompt."""
    calls: int = 0
    max_in_flight: int = 0
    largest_prompt_tokens: int = 0
    prompts: list[str] = field(default_factory=list)
    _in_flight: int = 0
    _claims_written: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def generate(self, *, tier: ModelTier, system: str, prompt: str, schema: type[T]) -> Generated[T]:
        if not issubclass(schema, SummaryDraft):
            raise TypeError(f"ExtractiveModel only answers SummaryDraft, not {schema.__name__}")
        tokens = estimate_tokens(system) + estimate_tokens(prompt)
        if tokens > self.context_tokens:
            raise ContextWindowExceeded(
                f"The input token count ({tokens}) exceeds the maximum number of tokens ({self.context_tokens}).")
        with self._lock:
            self.calls += 1
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            self.largest_prompt_tokens = max(self.largest_prompt_tokens, tokens)
            self.prompts.append(prompt)
        try:
            if self.latency_seconds:
                time.sleep(self.latency_seconds)
            answer = self._answer(system, prompt)
        finally:
            with self._lock:
                self._in_flight -= 1
        value = schema.model_validate(answer)
        usage = Usage(model=f"extractive-{tier}", prompt_tokens=tokens,
                      output_tokens=estimate_tokens(json.dumps(answer)))
        return Generated(value=value, usage=usage)

    def _answer(self, system: str, prompt: str) -> dict[str, object]:
        items = [m.groups() for line in prompt.splitlines() if (m := _LINE.match(line))]
        limit = int(m.group(1)) if (m := _MAX_CLAIMS.search(prompt)) else 5
        words = int(m.group(1)) if (m := _MAX_WORDS.search(system)) else 40
        count = min(limit, len(items))
        claims = []
        for index in range(count):
            group = items[index * len(items) // count:(index + 1) * len(items) // count]
            cites = [tag for tag, _ in group]
            with self._lock:
                self._claims_written += 1
                if self.invalid_citation_every and self._claims_written % self.invalid_citation_every == 0:
                    cites.append("S9999")
            claims.append({"text": " ".join(group[0][1].split()[:words]), "cites": cites})
        return {"claims": claims}


def synthetic_document(words: int, *, seed: int = 7) -> str:
    """A deterministic document: paragraphs of 60–200 words, sentences of 8–25, English-like word lengths."""
    rng = random.Random(seed)
    letters = "etaoinshrdlucmfwypvbgk"
    vocabulary = ["".join(rng.choice(letters) for _ in range(rng.choice((2, 3, 3, 4, 4, 5, 5, 6, 7, 8, 9))))
                  for _ in range(3000)]
    paragraphs: list[str] = []
    total = 0
    while total < words:
        sentences: list[str] = []
        size = rng.randint(60, 200)
        while sum(len(s.split()) for s in sentences) < size:
            sentence = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(8, 25)))
            sentences.append(sentence.capitalize() + ".")
        paragraph = " ".join(sentences)
        paragraphs.append(paragraph)
        total += len(paragraph.split())
    return "\n\n".join(paragraphs)
