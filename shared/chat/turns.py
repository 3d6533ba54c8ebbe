"""A conversation's one running turn: claim it, keep its lease alive, end it, heal it when its process died.

The slot is taken atomically in Postgres (a partial unique index on running turns), so a second turn
on the same conversation is a 409 naming the running one from whichever instance it reaches. The
running turn renews its lease every third of `lease_seconds`; a turn whose lease ran out (its
process was killed, or a Cloud Run instance lost its CPU) is marked failed with a retryable `error`
event, by the sweeper or by the next request on the conversation, and the conversation is free again.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from shared.conversations.events import ErrorEvent
from shared.db import chat as db
from shared.db.pool import Pool, as_service
from shared.errors import Conflict

log = logging.getLogger("muse.chat")

LOST = ErrorEvent.model_validate(db.LOST_TURN)
"""The terminal event of a turn healed after its process died (validated here: what the database layer
writes for it is a valid `ErrorEvent`)."""


class TurnRunning(Conflict):
    """Another turn is running on the conversation; wait for its terminal event, then send again."""

    code = "turn_running"

    def __init__(self, conversation_id: str, turn_id: str) -> None:
        super().__init__(
            f"Conversation {conversation_id} is answering turn {turn_id}; follow it at "
            f"GET /api/v1/chat/{conversation_id}/events and send your message after its `done` or `error`.",
            details={"conversationId": conversation_id, "turnId": turn_id,
                     "events": f"/api/v1/chat/{conversation_id}/events"})
        self.turn_id = turn_id


def claim_turn(pool: Pool, *, turn_id: str, conversation_id: str, workspace_id: str, lease_seconds: float,
               wall_seconds: float) -> None:
    """Take the conversation's running slot for the new turn `turn_id`.

    A running turn whose lease ran out is healed first (its process is gone); a live one raises
    `TurnRunning` naming it.
    """
    for _ in range(2):
        if db.claim(pool, turn_id=turn_id, conversation_id=conversation_id, workspace_id=workspace_id,
                    lease_seconds=lease_seconds, wall_seconds=wall_seconds):
            return
        current = db.running(pool, conversation_id)
        if current is None:
            continue
        if not current.expired:
            raise TurnRunning(conversation_id, current.id)
        heal_turn(pool, current.id)
    current = db.running(pool, conversation_id)
    raise TurnRunning(conversation_id, current.id if current else "(just started)")


def heal_turn(pool: Pool, turn_id: str) -> int | None:
    """End `turn_id` as failed with the `LOST` event if it still runs with an expired lease; the event's id."""
    with as_service(pool) as conn:
        row = db.expired_turn(conn, turn_id)
        return db.heal(conn, row) if row is not None else None


def heal_expired_turns(pool: Pool, *, grace_seconds: float = 0.0) -> int:
    """End every running turn whose lease ran out `grace_seconds` ago (what the sweeper runs); how many."""
    healed = db.heal_expired(pool, grace_seconds=grace_seconds)
    if healed:
        log.warning("healed %d chat turns whose process died", healed)
    return healed


@dataclass
class LeaseKeeper:
    """Renews a running turn's lease every third of `lease_seconds` until stopped (a daemon thread).

    `lost` is set when a renewal is refused: the turn was healed as dead (its terminal event exists), or
    it ran a lease past its wall-time deadline (a node stuck beyond every timeout; the lease runs out and
    the turn is healed). Either way the turn must stop.
    """

    pool: Pool
    turn_id: str
    lease_seconds: float
    lost: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> LeaseKeeper:
        threading.Thread(target=self._run, name=f"chat-lease-{self.turn_id[:8]}", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                if not db.renew(self.pool, self.turn_id, self.lease_seconds):
                    self.lost.set()
                    return
            except Exception:  # a blip: the next renewal may succeed before the lease runs out
                log.warning("could not renew the lease of chat turn %s", self.turn_id, exc_info=True)
