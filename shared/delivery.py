"""The one QStash delivery edge: verify → parse → failure callback → reply.

Every QStash-driven function (the graph steps, the sweeper, ingest) receives its deliveries through
`deliver`, so signature checks, JSON parsing and QStash's failure callbacks are handled once.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from qstash import Receiver

from shared.errors import PermanentStepError
from shared.queue import verify_delivery


@dataclass(frozen=True)
class Reply:
    """What a function answers QStash."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class FailureCallback(BaseModel):
    """QStash's failure callback: it gave up on a message after its last retry (reference §1.7)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: int | None = None
    body: str | None = None
    retried: int | None = None
    sourceMessageId: str
    sourceBody: str | None = None
    dlqId: str

    def source(self) -> bytes:
        """The body of the message QStash gave up on."""
        return _b64(self.sourceBody)

    def answer(self) -> str:
        """The last answer the function gave, for the failure reason (truncated)."""
        return _b64(self.body).decode("utf-8", "replace")[:500]


def _b64(value: str | None) -> bytes:
    try:
        return base64.b64decode(value or "")
    except (binascii.Error, ValueError):
        return b""


def is_failure_callback(raw: object) -> bool:
    """A failure callback carries the id of its source message and of the DLQ entry."""
    return isinstance(raw, dict) and "sourceMessageId" in raw and "dlqId" in raw


def deliver(receiver: Receiver, *, url: str, body: bytes, signature: str | None,
            on_message: Callable[[Any], Reply], on_failure: Callable[[FailureCallback], Reply]) -> Reply:
    """Verify the delivery was signed by QStash for `url`, then hand its JSON to the right handler."""
    verify_delivery(receiver, body=body, signature=signature, url=url)
    try:
        raw = json.loads(body)
    except ValueError as exc:
        raise PermanentStepError(f"The delivery body is not JSON: {exc}. QStash relays what was published.") from exc
    if is_failure_callback(raw):
        try:
            callback = FailureCallback.model_validate(raw)
        except ValidationError:
            return Reply(200, {"status": "ignored", "reason": "malformed failure callback"})
        return on_failure(callback)
    return on_message(raw)
