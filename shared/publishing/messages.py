"""The QStash message of the `publish` function (issue 11). It lives in `shared.messages` with the other QStash
messages, so the outbox (which reads every function's rows back) imports no function's package."""

from __future__ import annotations

from shared.messages import PublishMessage

__all__ = ["PublishMessage"]
