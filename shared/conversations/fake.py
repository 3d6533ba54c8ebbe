"""A deterministic chat model for tests and benchmarks: summaries by `ExtractiveModel`, short replies."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import BaseModel

from shared.ports import Generated, ModelTier, Usage
from shared.summarize.fake import ExtractiveModel
from shared.summarize.schemas import SummaryDraft
from shared.summarize.tokens import estimate_tokens

T = TypeVar("T", bound=BaseModel)


@dataclass
class EchoChatModel:
    """Answers `SummaryDraft` through `summarizer` and any single-string reply schema with a fixed-size echo.

    `chat_prompts` keeps every chat prompt, so tests can check what the model was shown; set
    `fail_next_chat` to make the next chat call raise (a crash between nodes).
    """

    summarizer: ExtractiveModel = field(default_factory=ExtractiveModel)
    reply_words: int = 30
    keep_prompts: bool = True
    chat_prompts: list[str] = field(default_factory=list)
    chat_calls: int = 0
    fail_next_chat: Exception | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def generate(self, *, tier: ModelTier, system: str, prompt: str, schema: type[T]) -> Generated[T]:
        if issubclass(schema, SummaryDraft):
            return self.summarizer.generate(tier=tier, system=system, prompt=prompt, schema=schema)
        with self._lock:
            self.chat_calls += 1
            if self.keep_prompts:
                self.chat_prompts.append(prompt)
            failure, self.fail_next_chat = self.fail_next_chat, None
        if failure is not None:
            raise failure
        last = prompt.splitlines()[-1] if prompt else ""
        words = f"Reply {self.chat_calls} to '{last[:60]}': ".split()
        filler = [f"point{i}" for i in range(max(0, self.reply_words - len(words)))]
        (name,) = schema.model_fields
        value = schema.model_validate({name: " ".join(words + filler)})
        return Generated(value=value, usage=Usage(model=f"echo-{tier}", prompt_tokens=estimate_tokens(prompt),
                                                   output_tokens=self.reply_words))
