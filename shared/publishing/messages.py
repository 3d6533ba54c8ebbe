"""The QStash message of the `publish` function (issue 11); import-light, the outbox reads it back."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class PublishMessage(BaseModel):
    """One delivery to the `publish` function: fire publication `publication_id` (issue 11).

    It names the publication's `version` (bumped by every reschedule) and how many create `attempt`s had
    been made when it was sent, so a message for an older time or an earlier attempt is a no-op.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["publish"] = "publish"
    publication_id: UUID
    version: int = Field(ge=1, le=1_000_000)
    attempt: int = Field(default=0, ge=0, le=1000)
    purpose: Literal["fire", "watch"] = "fire"
    """`watch`: sent with `sending`, due when the call is presumed dead; it reconciles a crashed attempt."""

    def dedup_id(self) -> str:
        """QStash deduplication id: one message per (publication, version, attempt, purpose)."""
        return f"pub-{self.publication_id}-v{self.version}-a{self.attempt}-{self.purpose}"
