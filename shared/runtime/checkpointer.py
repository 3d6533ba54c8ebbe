"""LangGraph's Postgres checkpointer, made safe for many stateless writers.

Three things on top of `PostgresSaver`:
- pooler-safe connections (see `shared.db.pool`), no pipeline mode;
- strict deserialization: msgpack payloads may only rebuild LangGraph's own safe types;
- fencing: while a step holds a campaign's lease, every checkpoint write first locks the campaign
  row and checks the step's fencing token in the same transaction, so a step whose lease expired
  (a Cloud Run timeout that kept running) can never write over its successor.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from psycopg_pool import ConnectionPool

from shared.errors import UpstreamUnavailable

_FENCE_CHECK = """
SELECT 1 FROM public.campaigns
WHERE id = %s AND fence = %s AND lease_until > now()
FOR SHARE
"""


@dataclass(frozen=True)
class Fence:
    """The lease a step holds: the campaign (= thread id) and the token it was granted."""

    campaign_id: str
    token: int


class LeaseLost(UpstreamUnavailable):
    """The step's lease expired and was granted to another delivery; this step must stop."""

    code = "lease_lost"


_active_fence: ContextVar[Fence | None] = ContextVar("muse_active_fence", default=None)


@contextmanager
def fenced(fence: Fence) -> Iterator[None]:
    """Within this block, checkpoint writes require `fence` to still be the campaign's lease."""
    token = _active_fence.set(fence)
    try:
        yield
    finally:
        _active_fence.reset(token)


def strict_serializer() -> JsonPlusSerializer:
    """A serializer that refuses to rebuild arbitrary Python objects from checkpoint bytes."""
    return JsonPlusSerializer(pickle_fallback=False, allowed_msgpack_modules=None)


class FencedPostgresSaver(PostgresSaver):
    """`PostgresSaver` whose writes are fenced by the active `Fence` (see module docstring)."""

    @contextmanager
    def _cursor(self, *, pipeline: bool = False) -> Iterator[Any]:
        fence = _active_fence.get()
        with super()._cursor(pipeline=pipeline) as cur:
            if pipeline and fence is not None:
                cur.execute(_FENCE_CHECK, (fence.campaign_id, fence.token))
                if cur.fetchone() is None:
                    raise LeaseLost(
                        f"Lease on campaign {fence.campaign_id} (fence {fence.token}) expired before the "
                        "checkpoint was saved; the delivery now holding it continues the thread."
                    )
            yield cur


def create_checkpointer(pool: ConnectionPool) -> FencedPostgresSaver:
    """The checkpointer every step function compiles its graph with (tables come from the setup step)."""
    saver = FencedPostgresSaver(pool, serde=strict_serializer())
    saver.supports_pipeline = False
    return saver
