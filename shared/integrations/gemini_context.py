"""Gemini explicit context caching: a stable prompt part sent once (`caches.create`) and referenced after.

When a caller declares a shared context (`shared.models.context.shared_context`) and a prompt contains
it, `ContextCaches.split` finds (or creates) a cache of the system instruction + that text for the
model, and the call sends only the rest of the prompt with `cached_content` (the API takes no system
instruction beside a cache, so it lives in the cache). Gemini then bills the cached tokens at its
cached-input price and reports them as `cached_content_token_count`.

A cache is worth it only above the model's minimum size (`min_tokens`, estimated at 4 characters a
token). Caches live `ttl_seconds` on Google's side; this process remembers their names per model and
content hash, and one thread creates a cache while the others of the same call wait for it. A failed
creation is remembered for a minute (the calls go inline meanwhile); a cache that vanished is
forgotten by the backend, which then sends the call inline (`GeminiBackend.generate_once`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.lazy import lazy_module

if TYPE_CHECKING:
    from google import genai
    from google.genai import errors as genai_errors
    from google.genai import types
else:
    genai_errors = lazy_module("google.genai.errors")
    types = lazy_module("google.genai.types")

log = logging.getLogger("muse.integrations.gemini_context")
RETRY_AFTER_FAILURE_SECONDS = 60.0


@dataclass(frozen=True)
class Split:
    """A call's prompt without the cached part, and the cache holding the system instruction and that part."""

    cache_name: str
    rest: str


@dataclass
class ContextCaches:
    """The explicit context caches this process created, by model and content hash."""

    ttl_seconds: int = 600
    min_tokens: int = 1024
    clock: Callable[[], float] = time.monotonic
    created: int = field(default=0, init=False)
    _names: dict[tuple[str, str], tuple[str | None, float]] = field(default_factory=dict, init=False)
    _locks: dict[tuple[str, str], threading.Lock] = field(default_factory=dict, init=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, init=False)

    def split(self, client: genai.Client, *, model: str, system: str, prompt: str, shared: str | None) -> Split | None:
        """The cached form of a call, or None when it goes inline (no shared part in the prompt, too small,
        or the cache could not be created)."""
        if not shared or shared not in prompt or len(shared) // 4 < self.min_tokens:
            return None
        name = self._name(client, model, system, shared)
        if name is None:
            return None
        return Split(cache_name=name, rest=prompt.replace(shared, "", 1).strip() or ".")

    def forget(self, model: str, system: str, shared: str) -> None:
        """Drop a cache the API no longer knows (expired or deleted); the next call creates it again."""
        with self._guard:
            self._names.pop(self._key(model, system, shared), None)

    @staticmethod
    def _key(model: str, system: str, shared: str) -> tuple[str, str]:
        return model, hashlib.sha256(f"{system}\x00{shared}".encode()).hexdigest()

    def _name(self, client: genai.Client, model: str, system: str, shared: str) -> str | None:
        key = self._key(model, system, shared)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            known = self._names.get(key)
            if known is not None and known[1] > self.clock():
                return known[0]
            config = types.CreateCachedContentConfig(
                contents=[shared], system_instruction=system, ttl=f"{self.ttl_seconds}s",
                display_name=f"muse-{key[1][:16]}")
            try:
                cache = client.caches.create(model=model, config=config)
            except Exception as exc:  # any failure: the calls go inline, never fail
                log.warning("Gemini context cache for %s not created, calls go inline for %.0f s: %s", model,
                            RETRY_AFTER_FAILURE_SECONDS, exc)
                self._names[key] = (None, self.clock() + RETRY_AFTER_FAILURE_SECONDS)
                return None
            self.created += 1
            self._names[key] = (cache.name, self.clock() + self.ttl_seconds - 30)
            return cache.name
