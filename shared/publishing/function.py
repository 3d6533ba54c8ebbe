"""The `publish` function's delivery edge: verify QStash's signature, then fire one publication.

Import-light: no graph stack, no platform SDK until a publication needs its adapter.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any
from uuid import UUID

import langsmith
from pydantic import ValidationError
from qstash import Receiver

from shared.db.pool import create_pool
from shared.delivery import FailureCallback, Reply, deliver
from shared.errors import PermanentStepError
from shared.outbox import item
from shared.publishing.engine import FUNCTION, Publisher
from shared.publishing.messages import PublishMessage
from shared.publishing.wiring import build_publisher
from shared.queue import qstash_receiver
from shared.settings import Settings, get_settings
from shared.tracing import end_campaign_run, flush, langsmith_client

log = logging.getLogger("muse.publish")


@dataclass
class PublishFunction:
    """One instance of the `publish` function."""

    publisher: Publisher
    receiver: Receiver
    url: str
    tracer: langsmith.Client | None
    """Ends the campaign's LangSmith root run when its last publication completes it (None: tracing off)."""
    project: str
    trace_flush_seconds: float

    def handle(self, body: bytes, signature: str | None) -> Reply:
        """One QStash delivery: a `PublishMessage`, or QStash's failure callback for one."""
        return deliver(self.receiver, url=self.url, body=body, signature=signature, on_message=self._on_message,
                       on_failure=self._on_failure)

    def _on_message(self, raw: Any) -> Reply:
        try:
            message = PublishMessage.model_validate(raw)
        except ValidationError as exc:
            raise PermanentStepError(f"Invalid publish message: {exc.errors(include_url=False)}") from exc
        result = self.publisher.fire(message)
        if result.get("campaign_completed") and self.tracer is not None:
            end_campaign_run(self.tracer, UUID(result["campaign_id"]), project=self.project, status="completed")
            flush(self.tracer, self.trace_flush_seconds)
        return Reply(200, result)

    def _on_failure(self, callback: FailureCallback) -> Reply:
        """QStash gave up on a delivery that kept failing transiently: send it again after the call timeout,
        so a publication is never left behind by an outage (the message itself decides whether it still applies)."""
        try:
            source = PublishMessage.model_validate_json(callback.source())
        except (ValueError, ValidationError):
            return Reply(200, {"status": "ignored", "reason": "failure callback for an unknown message"})
        if callback.status is not None and callback.status < 500 and callback.status != 429:
            log.warning("publish of %s was refused for good: %s", source.publication_id, callback.answer())
            return Reply(200, {"status": "ignored", "reason": callback.answer()})
        due = self.publisher.clock() + timedelta(seconds=self.publisher.policy.call_timeout_seconds)
        self.publisher.outbox.send(None, [item(FUNCTION, source, not_before=due,
                                               dedup_suffix=f"-again-{callback.dlqId[:40]}")])
        return Reply(200, {"status": "rescheduled", "at": due.isoformat()})


def build_publish_function(settings: Settings) -> PublishFunction:
    """The `publish` function of this deployment."""
    pool = create_pool(settings.database_url, max_size=settings.database_pool_max)
    return PublishFunction(publisher=build_publisher(settings, pool), receiver=qstash_receiver(settings),
                           url=settings.function_url(FUNCTION), tracer=langsmith_client(settings),
                           project=settings.langsmith_project, trace_flush_seconds=settings.trace_flush_seconds)


@cache
def publish_function() -> PublishFunction:
    """The `publish` function of this instance (built once, reused while the instance is warm)."""
    return build_publish_function(get_settings())
