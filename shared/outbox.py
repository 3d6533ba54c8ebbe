"""Sending what the outbox holds: every QStash message Muse sends is a committed `step_outbox` row first.

A writer commits its state change and its messages together, then calls `Outbox.publish` with the
rows it wrote. If it dies in between, the sweeper publishes the rows later; QStash deduplicates a
row published twice by its `dedup_id`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from shared.db import outbox as db
from shared.db.pool import Pool, as_service
from shared.domain import OutboxItem, OutboxRow
from shared.errors import MuseError
from shared.messages import PublishMessage, StepMessage, SubscriptionMessage
from shared.queue import Deliverable, StepQueue

log = logging.getLogger("muse.outbox")

KNOWN_PARSERS: dict[str, Callable[[Any], Deliverable]] = {"publish": PublishMessage.model_validate,
                                                          "subscriptions": SubscriptionMessage.model_validate}
"""Functions whose messages are not `StepMessage`s and that every outbox reads back (the sweeper too)."""


def item(function: str, message: Deliverable, *, not_before: datetime | None = None,
         dedup_suffix: str = "") -> OutboxItem:
    """An outbox item for `message`, deduplicated by the message's own id (plus `dedup_suffix`)."""
    return {"function": function, "message": message.model_dump(mode="json", exclude_none=True),
            "dedup_id": f"{message.dedup_id()}{dedup_suffix}", "not_before": not_before}


@dataclass
class Outbox:
    """Publishes committed outbox rows and marks them published.

    A row's message is read back as the model its function receives: `StepMessage` unless `parsers`
    names another (the knowledge base's `ingest` rounds).
    """

    pool: Pool
    queue: StepQueue
    parsers: Mapping[str, Callable[[Any], Deliverable]] = field(default_factory=dict)

    def publish(self, rows: list[OutboxRow], *, strict: bool = False) -> int:
        """Publish `rows` in order; returns how many reached QStash.

        A row that cannot be published stays unpublished for the sweeper (or raises, when `strict`).
        """
        done: list[int] = []
        try:
            for row in rows:
                function = row["function"]
                parse = self.parsers.get(function) or KNOWN_PARSERS.get(function, StepMessage.model_validate)
                message = parse(row["message"])
                self.queue.publish(row["function"], message, dedup_id=row["dedup_id"], not_before=row["not_before"])
                done.append(row["id"])
        except MuseError as exc:
            if strict:
                raise
            log.warning("outbox row left for the sweeper: %s", exc.message)
        finally:
            db.mark_published(self.pool, done)
        return len(done)

    def send(self, campaign_id: UUID | None, items: list[OutboxItem]) -> int:
        """Write `items` in their own transaction, then publish them (for senders with no other change)."""
        with as_service(self.pool) as conn:
            rows = db.add(conn, campaign_id, items)
        return self.publish(rows)
