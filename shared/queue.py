"""QStash at both ends: publishing the next step and verifying the signature of each delivery.

Import-light (no graph stack) because the PhonePe webhook uses it on its cold-start path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from qstash import QStash, Receiver
from qstash.errors import QStashError, SignatureError
from qstash.message import FlowControl

from shared.errors import Unauthorized, UpstreamUnavailable
from shared.settings import Settings


class Deliverable(Protocol):
    """A message a function receives through QStash: a pydantic model that names its own deduplication id."""

    def dedup_id(self) -> str: ...

    def model_dump(self, *, mode: str = ..., exclude_none: bool = ...) -> dict[str, Any]: ...


class StepQueue(Protocol):
    """Sends a message to a function, at least once, deduplicated by the message's id."""

    def publish(self, function: str, message: Deliverable, *, dedup_id: str | None = None,
                not_before: datetime | None = None) -> str:
        """Publish (deduplicated by `dedup_id`, default the message's own) and return the provider's message id.

        `not_before` delays delivery until that instant.
        """
        ...


@dataclass
class QStashStepQueue:
    """`StepQueue` over the official `qstash` SDK (the cloud service or the local emulator).

    Messages of one campaign share a flow-control key with parallelism 1, so QStash itself delivers a
    thread's messages one at a time.
    """

    client: QStash
    settings: Settings

    def publish(self, function: str, message: Deliverable, *, dedup_id: str | None = None,
                not_before: datetime | None = None) -> str:
        url = self.settings.function_url(function)
        options: dict[str, Any] = {
            "url": url,
            "body": message.model_dump(mode="json", exclude_none=True),
            "deduplication_id": dedup_id or message.dedup_id(),
            "retries": self.settings.qstash_retries,
            "failure_callback": url,
        }
        flow = self.flow_control(function, message)
        if flow is not None:
            options["flow_control"] = flow
        if not_before is not None:
            options["not_before"] = int(not_before.timestamp())
        try:
            response = self.client.message.publish_json(**options)
        except QStashError as exc:
            raise UpstreamUnavailable(f"QStash refused to publish to {url!r}: {exc}") from exc
        except OSError as exc:
            raise UpstreamUnavailable(f"QStash at {self.settings.qstash_url!r} is unreachable: {exc}") from exc
        return response.message_id  # type: ignore[union-attr]

    def flow_control(self, function: str, message: Deliverable) -> FlowControl | None:
        """The QStash flow control of `message`: one at a time per campaign; per workspace for ingest rounds.

        Ingest rounds of one workspace share the key `ingest-<workspace id>` with parallelism
        `MUSE_KNOWLEDGE_INGEST_PARALLELISM` (and optionally a rate per minute), so one workspace's big
        upload waits in its own line while other workspaces' rounds are delivered as they come.
        """
        campaign_id = getattr(message, "campaign_id", None)
        if campaign_id is not None:
            return {"key": f"campaign-{campaign_id}", "parallelism": 1}
        workspace_id = getattr(message, "workspace_id", None)
        if function != "ingest" or workspace_id is None:
            return None
        flow: FlowControl = {"key": f"ingest-{workspace_id}",
                             "parallelism": self.settings.knowledge_ingest_parallelism}
        if self.settings.knowledge_ingest_rate_per_minute:
            flow["rate"] = self.settings.knowledge_ingest_rate_per_minute
            flow["period"] = 60
        return flow


def qstash_queue(settings: Settings) -> QStashStepQueue:
    """The queue for this deployment (`QSTASH_URL` selects cloud or emulator)."""
    client = QStash(settings.qstash_token.get_secret_value(), base_url=settings.qstash_url)
    return QStashStepQueue(client=client, settings=settings)


def qstash_receiver(settings: Settings) -> Receiver:
    """The official verifier with the current and next signing keys."""
    return Receiver(
        current_signing_key=settings.qstash_current_signing_key.get_secret_value(),
        next_signing_key=settings.qstash_next_signing_key.get_secret_value(),
    )


def verify_delivery(receiver: Receiver, *, body: bytes, signature: str | None, url: str) -> None:
    """Raise `Unauthorized` unless QStash signed exactly this body for exactly this URL (`sub`)."""
    if not signature:
        raise Unauthorized("Missing `Upstash-Signature` header: only QStash may call step functions.")
    try:
        receiver.verify(signature=signature, body=body.decode("utf-8"), url=url, clock_tolerance=5)
    except (SignatureError, UnicodeDecodeError, KeyError, AttributeError, TypeError) as exc:
        raise Unauthorized(
            f"Invalid QStash signature for {url!r}: {exc}. Check QSTASH_*_SIGNING_KEY and that the "
            "function's public URL in MUSE_FUNCTION_URLS matches the URL QStash delivers to."
        ) from exc
