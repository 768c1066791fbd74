"""The one table from an error to the API's answer: its HTTP status and stable code. The
message is the error's own line. Answers are ``{"error": CODE, "message": LINE}``."""

from __future__ import annotations

from parkloop.errors import (
    ApiError,
    BatchConflict,
    DeviceAlreadyRegistered,
    InvalidBatch,
    ParkloopError,
    RegistryError,
    RejectedInput,
    UnknownModelVersion,
)

HTTP_ANSWERS: dict[type[ParkloopError], tuple[int, str]] = {
    InvalidBatch: (422, "invalid_batch"),
    BatchConflict: (409, "batch_conflict"),
    DeviceAlreadyRegistered: (409, "already_registered"),
    RejectedInput: (422, "rejected"),
    UnknownModelVersion: (404, "unknown_model_version"),
    RegistryError: (409, "registry"),
    ParkloopError: (500, "internal"),
}
"""error class -> (status, code); an error takes its nearest class's row (an
:class:`ApiError` carries its own)"""

FRAMEWORK_CODES = {400: "malformed_json", 404: "not_found", 405: "method_not_allowed",
                   413: "body_too_large", 415: "unsupported_media_type",
                   422: "invalid_request"}
"""codes of the answers the web framework gives by itself (no route, a body it cannot
read), by status; any other status: ``http_error``"""


def http_answer(exc: ParkloopError) -> tuple[int, str]:
    """The status and code the API answers ``exc`` with.

    >>> http_answer(InvalidBatch("bad id"))
    (422, 'invalid_batch')
    >>> http_answer(ApiError(403, "forbidden", "this needs the admin token"))
    (403, 'forbidden')
    """
    if isinstance(exc, ApiError):
        return exc.status, exc.code
    nearest = next(cls for cls in type(exc).__mro__ if cls in HTTP_ANSWERS)
    return HTTP_ANSWERS[nearest]


__all__ = ["FRAMEWORK_CODES", "HTTP_ANSWERS", "ApiError", "http_answer"]
