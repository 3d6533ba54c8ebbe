"""Which workspace the code running now works for, so caches below the ports can key by it.

Inside a campaign step it is the `workspace_id` of the graph run's metadata (`shared.runtime.step`
sets it on every run, and LangGraph hands each node its run's config); elsewhere a caller may set it
with `workspace_scope`, which wins. Unknown, the caches that need a workspace pass calls through uncached.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from langgraph.config import get_config

_WORKSPACE: ContextVar[str | None] = ContextVar("muse_cache_workspace", default=None)


def current_workspace() -> str | None:
    """The workspace of the running code: the scope's, else the running graph's, else None."""
    scoped = _WORKSPACE.get()
    if scoped is not None:
        return scoped
    try:
        metadata = get_config().get("metadata") or {}
    except RuntimeError:
        return None
    workspace_id = metadata.get("workspace_id")
    return str(workspace_id) if workspace_id else None


@contextmanager
def workspace_scope(workspace_id: str) -> Iterator[None]:
    """Run the block for `workspace_id` (restored on exit, also on errors)."""
    token = _WORKSPACE.set(workspace_id)
    try:
        yield
    finally:
        _WORKSPACE.reset(token)
