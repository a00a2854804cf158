"""Errors a handler raises; the error middleware turns each into a JSON response."""

from __future__ import annotations


class ApiError(Exception):
    """An answer other than success, with a message meant for the client."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class BackendUnavailable(ApiError):
    """A backend (state store, queue, files) cannot take or give data right now: 503.

    The client is told which backend, never the detail (paths, addresses, connection strings):
    that goes to the log.
    """

    RETRY_AFTER_SECONDS = 5

    def __init__(self, backend: str, detail: str) -> None:
        super().__init__(
            503,
            f"{backend} is unavailable, try again later",
            {"Retry-After": str(self.RETRY_AFTER_SECONDS)},
        )
        self.backend = backend
        self.detail = detail
