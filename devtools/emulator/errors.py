"""The API's error vocabulary: one exception type and the JSON body every error response uses."""

from __future__ import annotations

from typing import Any

#: HTTP status for each error ``type`` the real API documents (api/errors, read 2026-12-01).
STATUS_BY_ERROR_TYPE: dict[str, int] = {
    "invalid_request_error": 400,
    "conflict_error": 409,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

ERROR_TYPE_BY_STATUS: dict[int, str] = {status: kind for kind, status in STATUS_BY_ERROR_TYPE.items()}
ERROR_TYPE_BY_STATUS[503] = "api_error"

#: Default messages for faults injected by status code.
DEFAULT_MESSAGES: dict[str, str] = {
    "rate_limit_error": "Number of requests has exceeded your rate limit (emulated fault).",
    "api_error": "Internal server error (emulated fault).",
    "overloaded_error": "Overloaded (emulated fault).",
    "timeout_error": "Request timed out (emulated fault).",
}


class ApiError(Exception):
    """An error the API reports to the client as ``{"type": "error", "error": {...}}``."""

    def __init__(
        self,
        error_type: str,
        message: str,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status or STATUS_BY_ERROR_TYPE.get(error_type, 400)
        self.headers = headers or {}
        self.details = details

    def error_object(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.error_type, "message": self.message}
        if self.details:
            error["details"] = self.details
        return error


def error_body(error: ApiError, request_id: str | None) -> dict[str, Any]:
    return {"type": "error", "error": error.error_object(), "request_id": request_id}


def invalid_request(message: str) -> ApiError:
    return ApiError("invalid_request_error", message)


def not_found(message: str) -> ApiError:
    return ApiError("not_found_error", message)
