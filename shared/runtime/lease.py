"""A lease heartbeat: while a step runs, its lease is renewed so only a dead holder's lease expires."""

from __future__ import annotations

import logging
import os
import threading
import time
from types import TracebackType

from shared.db.threads import Grant, ThreadRepository

log = logging.getLogger("muse.lease")


class Heartbeat:
    """Renews `grant` every `seconds / 3` until stopped (use as a context manager).

    Short leases heal crashes fast; the heartbeat keeps a live step's lease from expiring under a long
    model call. A renewal that finds the lease gone stops quietly: the step's fenced commit fails.

    Entering and leaving cost no thread start: every heartbeat of the process is kept by one shared
    daemon thread (`_Beats`), so a step that ends before its first beat never touches a thread.
    """

    def __init__(self, threads: ThreadRepository, grant: Grant, seconds: float) -> None:
        self.threads = threads
        self.grant = grant
        self.seconds = seconds
        self.interval = seconds / 3

    def __enter__(self) -> Heartbeat:
        _BEATS.add(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        _BEATS.remove(self)

    def beat(self) -> bool:
        """Renew once; False when the lease is gone (no further beats)."""
        try:
            return self.threads.renew(self.grant, self.seconds)
        except Exception:  # a failed renewal is retried at the next beat; the fence guards correctness
            log.warning("lease renewal failed for %s", self.grant.campaign_id, exc_info=True)
            return True


class _Beats:
    """The process's heartbeats and the one daemon thread that renews each when it falls due.

    The thread starts with the first heartbeat that lives long enough to need it (and again in a
    forked child, which inherits no threads); it sleeps while no heartbeat is due.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[Heartbeat, float] = {}
        self._thread: threading.Thread | None = None
        self._pid = 0

    def add(self, heartbeat: Heartbeat) -> None:
        with self._cond:
            at = time.monotonic() + heartbeat.interval
            earlier = all(at < other for other in self._due.values())
            self._due[heartbeat] = at
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="lease-heartbeats", daemon=True)
                self._thread.start()
            elif earlier:
                self._cond.notify()

    def remove(self, heartbeat: Heartbeat) -> None:
        with self._cond:
            self._due.pop(heartbeat, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [h for h, at in self._due.items() if at <= now]
                if not due:
                    self._cond.wait(min(self._due.values(), default=now + 3600) - now)
                    continue
                for heartbeat in due:
                    self._due[heartbeat] = now + heartbeat.interval
            for heartbeat in due:
                if not heartbeat.beat():
                    self.remove(heartbeat)


_BEATS = _Beats()
