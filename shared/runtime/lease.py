"""A lease heartbeat: while a step runs, its lease is renewed so only a dead holder's lease expires."""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from shared.db.threads import Grant, ThreadRepository

log = logging.getLogger("muse.lease")


class Heartbeat:
    """Renews `grant` every `seconds / 3` until stopped (use as a context manager).

    Short leases heal crashes fast; the heartbeat keeps a live step's lease from expiring under a long
    model call. A renewal that finds the lease gone stops quietly: the step's fenced commit fails.
    """

    def __init__(self, threads: ThreadRepository, grant: Grant, seconds: float) -> None:
        self.threads = threads
        self.grant = grant
        self.seconds = seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{grant.campaign_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                if not self.threads.renew(self.grant, self.seconds):
                    return
            except Exception:  # a failed renewal is retried at the next beat; the fence guards correctness
                log.warning("lease renewal failed for %s", self.grant.campaign_id, exc_info=True)
