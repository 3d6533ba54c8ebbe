"""The one error type of the QStash API: a client error answered as `{"error": message}`."""

from __future__ import annotations


class ApiError(Exception):
    """A client error answered as `{"error": message}` with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
