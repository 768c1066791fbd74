"""The one table from an error to the API's answer: its HTTP status and stable code. The
message is the error's own line. Answers are ``{"error": CODE, "message": LINE}``;
:func:`add_error_handlers` is the one place the app turns errors into them."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from parkloop.errors import (
    ApiError,
    BatchConflict,
    DeviceAlreadyRegistered,
    InvalidBatch,
    ParkloopError,
    RegistryError,
    RejectedInput,
    StoreFull,
    UnknownModelVersion,
)

HTTP_ANSWERS: dict[type[ParkloopError], tuple[int, str]] = {
    InvalidBatch: (422, "invalid_batch"),
    BatchConflict: (409, "batch_conflict"),
    DeviceAlreadyRegistered: (409, "already_registered"),
    RejectedInput: (422, "rejected"),
    UnknownModelVersion: (404, "unknown_model_version"),
    RegistryError: (409, "registry"),
    StoreFull: (507, "store_full"),
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


def error_response(status: int, code: str, message: str) -> Response:
    """``{"error": CODE, "message": LINE}`` with ``status``."""
    return Response(orjson.dumps({"error": code, "message": message}), status,
                    media_type="application/json")


def explain(errors: Any) -> str:
    """Pydantic's validation errors in one line: where and what, the first five."""
    parts = []
    for e in list(errors)[:5]:
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    more = len(list(errors)) - 5
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def add_error_handlers(app: FastAPI, log: logging.Logger) -> None:
    """Answer every error a request raises: parkloop's by :data:`HTTP_ANSWERS`, the
    framework's by :data:`FRAMEWORK_CODES`, anything else 500 (logged with its traceback)."""

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Response:
        status = 400 if any(e.get("type") == "json_invalid" for e in exc.errors()) else 422
        return error_response(status, FRAMEWORK_CODES[status], explain(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return error_response(exc.status_code,
                              FRAMEWORK_CODES.get(exc.status_code, "http_error"),
                              str(exc.detail))

    @app.exception_handler(ParkloopError)
    async def parkloop_error(_: Request, exc: ParkloopError) -> Response:
        status, code = http_answer(exc)
        if status == 500:
            log.error("request failed: %s", exc)
        return error_response(status, code, str(exc))

    @app.exception_handler(Exception)
    async def crashed(_: Request, exc: Exception) -> Response:
        log.exception("request failed")
        return error_response(500, "internal",
                              "the server failed on this request; it is logged")


__all__ = ["FRAMEWORK_CODES", "HTTP_ANSWERS", "ApiError", "add_error_handlers",
           "error_response", "explain", "http_answer"]
