"""Typed errors. Each says what the user should fix; app.py turns them into OpenAI's error shape once."""

from __future__ import annotations


class HonedError(Exception):
    status_code = 400
    error_type = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class InvalidRequest(HonedError):
    status_code = 400


class NotFound(HonedError):
    status_code = 404
    error_type = "invalid_request_error"


class Conflict(HonedError):
    """The request is well-formed but the resource's state forbids it (e.g. cancelling a finished job)."""

    status_code = 409


class PayloadTooLarge(HonedError):
    status_code = 413


class Unauthorized(HonedError):
    status_code = 401
    error_type = "authentication_error"


class Forbidden(HonedError):
    """The caller is known but not allowed: a web page of another origin, or a request naming a foreign host."""

    status_code = 403
    error_type = "permission_error"


class IllegalTransition(Conflict):
    """A job status change that the job model does not allow."""


class DataError(InvalidRequest):
    """A training file that cannot be used; the message names the line and what to fix."""
