"""A workspace's own model and search keys (Gemini, Tavily): stored sealed, used before the project's.

`WorkspaceKeys.get(workspace_id, service)` is the key a workspace set, or None (then the project key is
used). Each instance remembers an answer (a key, or that there is none) for `MUSE_WORKSPACE_KEY_CACHE_SECONDS`,
so a model call costs no database round trip; a change made on this instance is seen at once, one made on
another after at most that long. `current(service)` is the key of the workspace the running code works for
(`shared.caching.scope.current_workspace`: a campaign step's, or a `workspace_scope`).

A stored key that does not open (no keyring configured, a retired key id, tampering) is logged and treated
as absent, so the project key serves the call; it is never returned half-read.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal, get_args

from shared.caching.scope import current_workspace
from shared.db import channels as db
from shared.db.pool import Conn, Pool, as_service
from shared.errors import ConfigurationError
from shared.security.envelope import Binding, Keyring, SecretUnreadable
from shared.settings import Settings

log = logging.getLogger("muse.security.keys")

KeyService = Literal["gemini", "tavily"]
KEY_SERVICES: tuple[KeyService, ...] = get_args(KeyService)


def binding(workspace_id: str, service: KeyService) -> Binding:
    """Where a workspace key is sealed to: its workspace, its service, the `api_key` field."""
    return Binding(workspace_id, service, "api_key")


def fingerprint(key: str) -> str:
    """A short one-way name of a key, for caching clients per key (never shown, never logged)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


@dataclass
class WorkspaceKeys:
    """Reads, caches, stores and removes workspace keys over one pool."""

    pool: Pool
    settings: Settings
    clock: Callable[[], float] = time.monotonic
    _cache: dict[tuple[str, str], tuple[float, str | None]] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @cached_property
    def keyring(self) -> Keyring:
        """The deployment's keyring, built when a key is first sealed or opened."""
        return Keyring.from_settings(self.settings)

    def get(self, workspace_id: str, service: KeyService) -> str | None:
        """The workspace's own key for `service`, or None."""
        now = self.clock()
        with self._lock:
            cached = self._cache.get((workspace_id, service))
        if cached is not None and cached[0] > now:
            return cached[1]
        key = self._read(workspace_id, service)
        with self._lock:
            self._cache[(workspace_id, service)] = (now + self.settings.workspace_key_cache_seconds, key)
        return key

    def current(self, service: KeyService) -> str | None:
        """The key of the workspace the running code works for; None outside a workspace or without one."""
        workspace_id = current_workspace()
        return None if workspace_id is None else self.get(workspace_id, service)

    def _read(self, workspace_id: str, service: KeyService) -> str | None:
        with as_service(self.pool) as conn:
            sealed = db.workspace_key(conn, workspace_id, service)
            if sealed is None:
                return None
            try:
                key = self.keyring.open(sealed, binding(workspace_id, service))
                if self.keyring.needs_rewrap(sealed):
                    db.rewrap_workspace_key(conn, workspace_id, service,
                                            self.keyring.rewrap(sealed, binding(workspace_id, service)))
            except (SecretUnreadable, ConfigurationError) as exc:
                log.error("workspace %s's own %s key cannot be read, the project key is used: %s", workspace_id,
                          service, exc.message)
                return None
        return key

    def put(self, conn: Conn, *, workspace_id: str, service: KeyService, api_key: str, user_id: str) -> None:
        """Seal and store the key on the caller's service connection (in its transaction)."""
        db.put_workspace_key(conn, workspace_id=workspace_id, service=service,
                             secret=self.keyring.seal(api_key, binding(workspace_id, service)), updated_by=user_id)
        self.forget(workspace_id, service)

    def delete(self, conn: Conn, *, workspace_id: str, service: KeyService) -> bool:
        """Remove the key; whether there was one."""
        removed = db.delete_workspace_key(conn, workspace_id, service)
        self.forget(workspace_id, service)
        return removed

    def forget(self, workspace_id: str, service: KeyService) -> None:
        """Drop this instance's cached answer."""
        with self._lock:
            self._cache.pop((workspace_id, service), None)


def workspace_key_lookup(settings: Settings, pool: Pool) -> Callable[[KeyService], str | None]:
    """`WorkspaceKeys(pool, settings).current`: what the Gemini and Tavily clients ask before each call."""
    return WorkspaceKeys(pool=pool, settings=settings).current
