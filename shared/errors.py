"""One error hierarchy for Muse: each error knows its code, HTTP status and whether a retry can help.

The edges (`shared.http`) turn these into JSON responses; for QStash deliveries a non-retryable
error becomes `489` with `Upstash-NonRetryable-Error: true`, a retryable one a 5xx or a 429.
"""

from __future__ import annotations

from typing import Any, ClassVar


class MuseError(Exception):
    """Base of every error raised on purpose."""

    code: ClassVar[str] = "internal_error"
    http_status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        """The JSON body clients receive."""
        body: dict[str, Any] = {"error": {"code": self.code, "message": self.message}}
        if self.details:
            body["error"]["details"] = self.details
        return body


class InvalidRequest(MuseError):
    """The caller sent something we cannot process; the message says what to change."""

    code = "invalid_request"
    http_status = 400


class Unauthorized(MuseError):
    """Missing or invalid credentials: bearer token, QStash signature or webhook Authorization."""

    code = "unauthorized"
    http_status = 401


class Forbidden(MuseError):
    """The caller is a member of the workspace but their role may not do this (e.g. only owners erase data)."""

    code = "forbidden"
    http_status = 403


class NotFound(MuseError):
    """The resource does not exist in the caller's workspace."""

    code = "not_found"
    http_status = 404


class Conflict(MuseError):
    """The request does not fit the resource's current state (e.g. no decision is pending)."""

    code = "conflict"
    http_status = 409


class ThreadBusy(MuseError):
    """Another step holds the campaign's lease; QStash should deliver again a little later."""

    code = "thread_busy"
    http_status = 429
    retryable = True

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message, details={"retry_after_seconds": retry_after_seconds})
        self.retry_after_seconds = retry_after_seconds


class PayloadTooLarge(MuseError):
    """The request carries more than a configured limit allows; the message names the limit and its setting."""

    code = "payload_too_large"
    http_status = 413


class Unprocessable(MuseError):
    """Well-formed but refused, e.g. an `Idempotency-Key` reused with a different body."""

    code = "unprocessable"
    http_status = 422


class QuotaExceeded(MuseError):
    """A per-workspace quota or rate limit is used up; retry after `retry_after_seconds`."""

    code = "quota_exceeded"
    http_status = 429
    retryable = True

    def __init__(self, message: str, *, retry_after_seconds: int, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details={**(details or {}), "retry_after_seconds": retry_after_seconds})
        self.retry_after_seconds = retry_after_seconds


class BudgetExceeded(QuotaExceeded):
    """An AI-spend cap (the workspace's month or one campaign) would be passed by the next call.

    Nothing was spent for that call. A campaign pauses on a `budget` decision (raise the cap or cancel);
    elsewhere it is a 429 naming the cap (`details.scope`, `cap_usd`, `spent_usd`).
    """

    code = "budget_exceeded"


class UpstreamUnavailable(MuseError):
    """A dependency (model, search, PhonePe, QStash, Postgres) failed in a way a retry may fix."""

    code = "upstream_unavailable"
    http_status = 503
    retryable = True


class PermanentStepError(MuseError):
    """A step can never succeed (bad message, impossible state); the campaign is marked failed."""

    code = "permanent_step_error"
    http_status = 489


class ConfigurationError(MuseError):
    """The deployment is misconfigured; fix the named setting."""

    code = "configuration_error"
    http_status = 500
