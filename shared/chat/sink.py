"""The Postgres `EventSink`: each event committed as it is emitted, then handed to in-process listeners.

A turn runs in a worker thread; the response streaming it (and any reconnect served by the same
instance) reads the turn's `Feed`, which holds the committed events in order, so a stream in this
process never polls the table. A stream in another instance reads `chat_events` instead: both see
exactly what was committed, with the same ids.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from pydantic import TypeAdapter

from shared.conversations.events import TERMINAL_KINDS, Done, ErrorEvent, TurnEvent
from shared.db import chat as db
from shared.db.pool import Pool, as_service

EVENTS: TypeAdapter[TurnEvent] = TypeAdapter(TurnEvent)


def stored_event(row: db.StoredEvent) -> TurnEvent:
    """The `TurnEvent` a `chat_events` row holds."""
    return EVENTS.validate_python({"kind": row.kind, **row.data})


@dataclass(frozen=True)
class Emitted:
    """One committed event of a turn, with its id (the SSE `id:`)."""

    id: int
    turn_id: str
    event: TurnEvent


@dataclass
class Feed:
    """The committed events of one turn in this process, in order; readers wait on it for more."""

    conversation_id: str
    turn_id: str
    events: list[Emitted] = field(default_factory=list)
    closed: bool = False
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def publish(self, emitted: Emitted) -> None:
        with self._changed:
            self.events.append(emitted)
            if emitted.event.kind in TERMINAL_KINDS:
                self.closed = True
            self._changed.notify_all()

    def close(self) -> None:
        """No more events will come (the turn ended, or its writer lost the turn)."""
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    def after(self, cursor: int, timeout: float) -> tuple[list[Emitted], bool]:
        """Events with an id above `cursor` (waiting up to `timeout` for one), and whether the feed is closed."""
        with self._changed:
            self._changed.wait_for(lambda: self.closed or (bool(self.events) and self.events[-1].id > cursor),
                                   timeout=timeout)
            return [e for e in self.events if e.id > cursor], self.closed


class Listeners:
    """The feeds of the turns running in this process, by conversation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._feeds: dict[str, Feed] = {}

    def add(self, feed: Feed) -> None:
        """Make `feed` the conversation's running turn in this process."""
        with self._lock:
            self._feeds[feed.conversation_id] = feed

    def get(self, conversation_id: str) -> Feed | None:
        with self._lock:
            return self._feeds.get(conversation_id)

    def drop(self, feed: Feed) -> None:
        """Forget `feed` (readers holding it keep reading it)."""
        feed.close()
        with self._lock:
            if self._feeds.get(feed.conversation_id) is feed:
                del self._feeds[feed.conversation_id]


class TurnEnded(Exception):
    """The turn was ended by someone else (healed as dead) before this writer's terminal event."""


@dataclass
class PostgresEventSink:
    """`EventSink` of one turn: commits every event to `chat_events`, then publishes it on the turn's feed.

    Emitting is serialized, so ids and the feed's order agree even when tools emit from several threads.
    """

    pool: Pool
    conversation_id: str
    turn_id: str
    workspace_id: str
    feed: Feed
    ended: bool = False
    """A terminal event was committed (or refused) through this sink: later events are refused."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def emit(self, event: TurnEvent) -> int:
        """Commit `event` as the turn's next event and return its id.

        Terminal events go through `finish`, which also ends the turn; emitting one here does the same.
        Raises `TurnEnded` once the turn has ended (e.g. interrupted by a shutdown while a node still ran).
        """
        if isinstance(event, Done | ErrorEvent):
            return self.finish(event)
        with self._lock, self.pool.connection() as conn:
            if self.ended:
                raise TurnEnded(self.turn_id)
            event_id = db.append(conn, conversation_id=self.conversation_id, turn_id=self.turn_id,
                                 workspace_id=self.workspace_id, kind=event.kind, data=event.data())
            self.feed.publish(Emitted(event_id, self.turn_id, event))
        return event_id

    def finish(self, event: Done | ErrorEvent) -> int:
        """Commit the terminal `event` and end the turn in one transaction (`done` or `failed`).

        Raises `TurnEnded` (storing nothing) if the turn had already been ended, e.g. healed as dead
        while this writer was cut off from the database: a turn has exactly one terminal event.
        """
        status = "done" if isinstance(event, Done) else "failed"
        error = event.code if isinstance(event, ErrorEvent) else None
        with self._lock:
            if self.ended:
                raise TurnEnded(self.turn_id)
            self.ended = True
            try:
                with as_service(self.pool) as conn:
                    event_id = db.append(conn, conversation_id=self.conversation_id, turn_id=self.turn_id,
                                         workspace_id=self.workspace_id, kind=event.kind, data=event.data())
                    if not db.finish(conn, self.turn_id, status=status, error=error):
                        raise TurnEnded(self.turn_id)
            except TurnEnded:
                self.feed.close()
                raise
            self.feed.publish(Emitted(event_id, self.turn_id, event))
        return event_id
