"""The sweeper: heals what a crash left behind, run by a QStash schedule every minute.

Each pass is idempotent and only ever *sends* messages (through the outbox, deduplicated); the step
engine decides whether a message still applies, so a sweep racing a live step changes nothing.

1. Committed outbox rows nobody published (writer died between commit and publish) are published.
2. A thread whose lease expired with a holder still named (the holder died mid-step) gets the
   message that holder was working on again, once per fence.
3. A live thread nothing moved for `stall_seconds` is nudged: its latest start/continue re-sent,
   a recorded but unapplied user decision re-sent, an open payment reconciled through Order Status.
4. A chat turn whose lease ran out (its process died mid-turn) is ended with a retryable `error`
   event, so its conversation takes new messages again (`shared.db.chat.heal_expired`).
5. An AI-spend reservation a dead process never settled is settled at its reserved amount, so it stops
   holding the caps (`shared.db.budgets.settle_stale`).
6. A refund nothing moved for `stall_seconds` that is still in progress at PhonePe (or completed without its
   credit note) is looked at again by the payments function (`shared.payments.refunds`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from qstash import QStash, Receiver

from shared.db import budgets as budgets_db
from shared.db import chat as chat_db
from shared.db import outbox as outbox_db
from shared.db import refunds as refunds_db
from shared.db.pool import as_service, create_pool
from shared.db.threads import StalledThread, ThreadRepository
from shared.delivery import FailureCallback, Reply, deliver
from shared.domain import CampaignStatus, OutboxItem
from shared.errors import PermanentStepError, UpstreamUnavailable
from shared.knowledge.models import IngestMessage
from shared.messages import StepMessage
from shared.outbox import Outbox, item
from shared.payments.confirmation import reconcile_message
from shared.payments.refunds import refund_message
from shared.queue import qstash_queue, qstash_receiver
from shared.settings import Settings, get_settings

log = logging.getLogger("muse.sweeper")

SCHEDULE_ID = "muse-sweeper"
SWEEP_CRON = "* * * * *"


class SweepMessage(BaseModel):
    """The body of the sweeper's scheduled delivery."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["sweep"] = "sweep"


@dataclass
class SweepReport:
    """What one pass did."""

    published: int = 0
    redriven: int = 0
    nudged: int = 0
    turns_healed: int = 0
    reservations_settled: int = 0
    refunds_rechecked: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"published": self.published, "redriven": self.redriven, "nudged": self.nudged,
                "turns_healed": self.turns_healed, "reservations_settled": self.reservations_settled,
                "refunds_rechecked": self.refunds_rechecked}


@dataclass
class Sweeper:
    """One sweep pass over the database (see module docstring)."""

    threads: ThreadRepository
    outbox: Outbox
    receiver: Receiver
    url: str
    publish_grace_seconds: float
    lease_grace_seconds: float
    stall_seconds: float

    def handle(self, body: bytes, signature: str | None) -> Reply:
        """One verified scheduled delivery → one pass."""
        return deliver(self.receiver, url=self.url, body=body, signature=signature, on_message=self._on_message,
                       on_failure=self._on_failure)

    def _on_message(self, raw: Any) -> Reply:
        try:
            SweepMessage.model_validate(raw)
        except ValidationError as exc:
            raise PermanentStepError(f"Invalid sweep message: {exc.errors(include_url=False)}") from exc
        return Reply(200, {"status": "swept", **self.sweep().as_dict()})

    @staticmethod
    def _on_failure(callback: FailureCallback) -> Reply:
        return Reply(200, {"status": "ignored", "reason": "the next scheduled sweep runs anyway"})

    def sweep(self) -> SweepReport:
        """Run the six repairs once."""
        report = SweepReport()
        report.published = self.outbox.publish(
            outbox_db.unpublished(self.threads.pool, older_than_seconds=self.publish_grace_seconds))
        for campaign_id, fence, lease_message in self.threads.expired_leases(grace_seconds=self.lease_grace_seconds):
            try:
                message = StepMessage.model_validate(lease_message["message"])
            except (KeyError, ValidationError):
                self.threads.mark_redriven(campaign_id, fence)
                continue
            try:
                sent = self.outbox.send(campaign_id, [item(lease_message["function"], message,
                                                           dedup_suffix=f"-redrive-{fence}")])
            except Exception:  # one thread's trouble must not stop the sweep of the others
                log.exception("could not re-drive campaign %s", campaign_id)
                continue
            if sent:
                self.threads.mark_redriven(campaign_id, fence)
                report.redriven += 1
        for thread in self.threads.stalled(idle_seconds=self.stall_seconds):
            try:
                items = self._nudge(thread)
                if items and self.outbox.send(thread.campaign_id, items):
                    report.nudged += 1
            except Exception:  # one thread's trouble must not stop the sweep of the others
                log.exception("could not nudge campaign %s", thread.campaign_id)
            self.threads.touch(thread.campaign_id, thread.fence)
        try:
            report.turns_healed = chat_db.heal_expired(self.threads.pool, grace_seconds=self.lease_grace_seconds)
        except Exception:  # the chat's trouble must not stop the campaign repairs of the next pass
            log.exception("could not heal dead chat turns")
        try:
            with as_service(self.threads.pool) as conn:
                report.reservations_settled = budgets_db.settle_stale(conn)
        except Exception:  # budget repairs must not stop the campaign repairs of the next pass
            log.exception("could not settle stale budget reservations")
        try:
            report.refunds_rechecked = self._recheck_refunds()
        except Exception:  # refund repairs must not stop the campaign repairs of the next pass
            log.exception("could not re-check unsettled refunds")
        if any(report.as_dict().values()):
            log.info("sweep: %s", report.as_dict())
        return report

    def _recheck_refunds(self) -> int:
        """Ask the payments function to look again at refunds nothing moved for `stall_seconds`."""
        with as_service(self.threads.pool) as conn:
            stale = refunds_db.unsettled(conn, idle_seconds=self.stall_seconds)
            if stale:
                refunds_db.touch(conn, stale)
        bucket = int(time.time() // max(self.stall_seconds, 1))
        items = [item("payments", refund_message(refund_id, event="sweep"), dedup_suffix=f"-sweep-{bucket}")
                 for refund_id in stale]
        return self.outbox.send(None, items) if items else 0

    def _nudge(self, thread: StalledThread) -> list[OutboxItem]:
        suffix = f"-nudge-{thread.fence}-{int(time.time() // max(self.stall_seconds, 1))}"
        if thread.status in (CampaignStatus.QUEUED, CampaignStatus.RUNNING):
            row = outbox_db.continuation(self.threads.pool, thread.campaign_id, thread.head)
            if row is None:
                return []
            return [item(row["function"], StepMessage.model_validate(row["message"]), dedup_suffix=suffix)]
        pending = thread.pending_decision
        if thread.status == CampaignStatus.AWAITING_DECISION and pending and thread.decided is not None:
            message = StepMessage(kind="resume", campaign_id=thread.campaign_id, decision_id=pending["id"],
                                  resume=thread.decided)
            return [item(pending["function"], message, dedup_suffix=suffix)]
        if thread.status == CampaignStatus.AWAITING_PAYMENT and thread.merchant_order_id:
            return [item("payments", reconcile_message(thread.merchant_order_id), dedup_suffix=suffix)]
        return []


def ensure_schedule(settings: Settings, client: QStash) -> str:
    """Create (or update) the QStash schedule that runs the sweeper every minute; returns its id."""
    url = settings.function_url("sweeper")
    try:
        return client.schedule.create_json(destination=url, cron=SWEEP_CRON, body=SweepMessage().model_dump(),
                                           schedule_id=SCHEDULE_ID, retries=0)
    except Exception as exc:
        raise UpstreamUnavailable(f"Could not create the sweeper schedule for {url!r}: {exc}") from exc


def build_sweeper(settings: Settings) -> Sweeper:
    """The sweeper of this deployment; it imports no graph stack (it only reads rows and sends messages)."""
    pool = create_pool(settings.database_url, max_size=2)
    outbox = Outbox(pool=pool, queue=qstash_queue(settings), parsers={"ingest": IngestMessage.model_validate})
    return Sweeper(threads=ThreadRepository(pool), outbox=outbox, receiver=qstash_receiver(settings),
                   url=settings.function_url("sweeper"), publish_grace_seconds=settings.sweep_publish_grace_seconds,
                   lease_grace_seconds=settings.sweep_lease_grace_seconds, stall_seconds=settings.stall_seconds)


@cache
def sweeper_runtime() -> Sweeper:
    """The sweeper of this instance (built once, reused while the instance is warm)."""
    return build_sweeper(get_settings())
