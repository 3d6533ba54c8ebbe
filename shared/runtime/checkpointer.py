"""LangGraph's Postgres checkpointer, made safe for many stateless writers.

Three things on top of `PostgresSaver`:
- pooler-safe connections (see `shared.db.pool`), no pipeline mode;
- strict deserialization: msgpack payloads may only rebuild LangGraph's own safe types;
- fencing: while a step holds a campaign's lease, every checkpoint write first locks the campaign
  row and checks the step's fencing token in the same transaction, so a step whose lease expired
  (a Cloud Run timeout that kept running) can never write over its successor;
- one commit per step: a step's checkpoint writes go into one open transaction (`StepWrites`) that
  the step's outcome (status, events, outbox) then joins, so the thread head and the campaign row
  can never disagree, whatever instant a crash picks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from psycopg import Cursor
from psycopg.rows import DictRow, dict_row

from shared.db.batch import execute_batch
from shared.db.pool import Conn, Pool
from shared.errors import UpstreamUnavailable

_FENCE_CHECK = """
SELECT 1 FROM public.campaigns
WHERE id = %s AND fence = %s AND lease_until > now()
FOR UPDATE
"""
T = TypeVar("T")


@dataclass(frozen=True)
class Fence:
    """The lease a step holds: the campaign (= thread id) and the token it was granted."""

    campaign_id: str
    token: int


class LeaseLost(UpstreamUnavailable):
    """The step's lease expired and was granted to another delivery; this step must stop."""

    code = "lease_lost"


class StepWrites:
    """The one transaction of a step: its checkpoint writes, then its outcome, committed together.

    The connection is taken at the first write (reads during the run use the pool), the campaign
    row is locked and its fence checked, and nothing is visible until `commit`. A step that dies
    or fails before then leaves the thread exactly as it found it.
    """

    def __init__(self, pool: Pool, fence: Fence) -> None:
        self.pool = pool
        self.fence = fence
        self._lock = threading.RLock()
        self._conn: Conn | None = None

    @contextmanager
    def cursor(self) -> Iterator[Cursor[DictRow]]:
        """A cursor inside the step's transaction (opened and fenced on first use)."""
        with self._lock:
            conn = self._open()
            with conn.cursor(binary=True, row_factory=dict_row) as cur:
                yield cur

    def _open(self) -> Conn:
        if self._conn is not None:
            return self._conn
        conn = self.pool.getconn()
        try:
            _, locked = execute_batch(conn, [("BEGIN", None),
                                             (_FENCE_CHECK, (self.fence.campaign_id, self.fence.token))])
            if not locked:
                raise LeaseLost(
                    f"Lease on campaign {self.fence.campaign_id} (fence {self.fence.token}) expired before the "
                    "checkpoint was saved; the delivery now holding it continues the thread."
                )
        except BaseException:
            self._close(commit=False, conn=conn)
            raise
        self._conn = conn
        return conn

    def commit(self, write: Callable[[Conn], T]) -> T:
        """Run `write` (the outcome) in the step's transaction and commit everything."""
        with self._lock:
            conn = self._open()
            try:
                result = write(conn)
            except BaseException:
                self.rollback()
                raise
            self._conn = None
            self._close(commit=True, conn=conn)
            return result

    def rollback(self) -> None:
        """Discard the step's writes (no-op when it wrote nothing)."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                self._close(commit=False, conn=conn)

    def _close(self, *, commit: bool, conn: Conn) -> None:
        try:
            conn.execute("COMMIT" if commit else "ROLLBACK")
        finally:
            self.pool.putconn(conn)


_active_writes: ContextVar[StepWrites | None] = ContextVar("muse_active_writes", default=None)


@contextmanager
def fenced(writes: StepWrites) -> Iterator[None]:
    """Within this block, checkpoint writes go into the step's transaction, which checks its fence first."""
    token = _active_writes.set(writes)
    try:
        yield
    finally:
        _active_writes.reset(token)


def strict_serializer() -> JsonPlusSerializer:
    """A serializer that refuses to rebuild arbitrary Python objects from checkpoint bytes."""
    return JsonPlusSerializer(pickle_fallback=False, allowed_msgpack_modules=None)


class FencedPostgresSaver(PostgresSaver):
    """`PostgresSaver` whose writes join the active `StepWrites` (fenced; see module docstring)."""

    @contextmanager
    def _cursor(self, *, pipeline: bool = False) -> Iterator[Cursor[DictRow]]:
        writes = _active_writes.get()
        if pipeline and writes is not None:
            with writes.cursor() as cur:
                yield cur
            return
        with super()._cursor(pipeline=pipeline) as cur:
            yield cur


def create_checkpointer(pool: Pool) -> FencedPostgresSaver:
    """The checkpointer every step function compiles its graph with (tables come from the setup step)."""
    saver = FencedPostgresSaver(pool, serde=strict_serializer())
    saver.supports_pipeline = False
    return saver
