"""One SDK client per API key: a workspace that brings its own Gemini or Tavily key gets its own client."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, MutableMapping
from typing import TypeVar

C = TypeVar("C")


def client_for_key(clients: MutableMapping[str, C], key: str, connect: Callable[[str], C]) -> C:
    """The client of `key`, made once (kept under the key's digest, so no key sits in a mapping in the clear)."""
    name = hashlib.sha256(key.encode()).hexdigest()
    found = clients.get(name)
    if found is None:
        found = clients.setdefault(name, connect(key))
    return found
