"""A stable context shared by several model calls, declared by the caller so the backend can cache it.

A caller whose prompts all contain the same large text (the QA judge: brand kit + copy, asked once per
guideline) runs the calls inside `shared_context(text)`. Prompts stay whole, so every model port and
fake sees what it always saw; the Gemini backend alone may send that text once as an explicit context
cache (`caches.create`) and each call as the rest of its prompt (`shared.integrations.gemini_context`).
The variable travels into worker threads that copy the caller's context (`with_caller_context`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_SHARED: ContextVar[str | None] = ContextVar("muse_shared_context", default=None)


def current_shared_context() -> str | None:
    """The stable text the running calls share, or None."""
    return _SHARED.get()


@contextmanager
def shared_context(text: str) -> Iterator[None]:
    """Declare `text` as the stable part of the prompts of the calls made in the block."""
    token = _SHARED.set(text)
    try:
        yield
    finally:
        _SHARED.reset(token)
