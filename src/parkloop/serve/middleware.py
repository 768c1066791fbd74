"""The API's outer layer, before any route: the body size limit, the JSON-only rule for
bodies, CORS (off unless origins are given) and the request metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import orjson
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Mount, Route

if TYPE_CHECKING:
    from parkloop.serve.service import Service

MAX_BODY_BYTES = 8 * 1024 * 1024
"""request bodies over this are refused (413) before they are read"""
JSON = "application/json"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Guard:
    """Pure ASGI middleware: body size limit, CORS (off unless origins are given), and the
    request metrics (count and latency by route template)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], *,
                 service: Service, cors_origins: list[str] | None,
                 routes: list[BaseRoute]) -> None:
        self.app = app
        self.metrics = service.metrics
        self.cors = set(cors_origins or ())
        self._routes = routes
        self._paths: dict[Any, str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        length = header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            await send_error(send, 413, "body_too_large",
                              f"request bodies are limited to {MAX_BODY_BYTES} bytes")
            self._observe(scope, 413, start)
            return
        kind = header(scope, b"content-type")
        if kind is not None and scope["method"] in ("POST", "PUT", "PATCH") and \
                not is_json(kind):
            await send_error(send, 415, "unsupported_media_type",
                              f"send the body as application/json, not {kind.split(';')[0]!r}")
            self._observe(scope, 415, start)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > MAX_BODY_BYTES:
                    # an HTTPException: FastAPI re-raises it while reading a body, where it
                    # turns any other exception into 400 "There was an error parsing the body"
                    raise StarletteHTTPException(
                        413, f"request bodies are limited to {MAX_BODY_BYTES} bytes")
            return message

        origin = header(scope, b"origin")
        allow = origin is not None and origin in self.cors

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if allow and origin is not None:
                    message.setdefault("headers", []).append(
                        (b"access-control-allow-origin", origin.encode()))
            await send(message)

        try:
            await self.app(scope, limited, sending)
        finally:
            self._observe(scope, status, start)

    def _observe(self, scope: Scope, status: int, start: float) -> None:
        route = scope.get("route")  # FastAPI's routes say which they are
        name = route.path if route is not None else self._path_of(scope.get("endpoint"))
        self.metrics.requests.labels(scope["method"], name, str(status)).inc()
        self.metrics.latency.labels(name).observe(time.perf_counter() - start)

    def _path_of(self, endpoint: Any) -> str:
        """The route template of a plain Starlette route (the hot paths) or a mount (the
        console's files), which leave only their endpoint in the scope."""
        if self._paths is None:  # the app's routes are complete by its first request
            self._paths = {}
            for r in self._routes:
                if isinstance(r, Route):
                    self._paths[r.endpoint] = r.path
                elif isinstance(r, Mount):
                    self._paths[r.app] = r.path + "/{path}"
        return self._paths.get(endpoint, "unmatched")


def is_json(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == JSON or (kind.startswith("application/") and kind.endswith("+json"))


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def send_error(send: Send, status: int, code: str, message: str) -> None:
    body = orjson.dumps({"error": code, "message": message})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


__all__ = ["JSON", "MAX_BODY_BYTES", "Guard", "header", "is_json", "send_error"]
