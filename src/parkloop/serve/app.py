"""The REST API: FastAPI routes over a :class:`~parkloop.serve.service.Service`.

Everything is under ``/v1`` and described by the OpenAPI document at ``/openapi.json``
(browsable at ``/docs``). The three hottest paths, ``GET /healthz``, ``GET /readyz`` and
``GET /v1/devices/{device_id}/car``, are plain Starlette endpoints: FastAPI's per-request
parameter machinery would double their cost, and they take no body. They are documented in the
same OpenAPI document from the same response models.

Auth: ``Authorization: Bearer TOKEN``. A device token reads and writes its own device only; the
admin token everything. A missing or unknown token gets 401; another device's token gets 404
whether or not the device exists, so nothing leaks about other devices. Errors are JSON
``{"error": CODE, "message": ONE LINE}``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request
from starlette.responses import Response
from starlette.routing import Route

from parkloop.serve import auth
from parkloop.serve.console import add_console
from parkloop.serve.driver import add_driver
from parkloop.serve.errors import add_error_handlers, error_response
from parkloop.serve.middleware import JSON, Guard, header
from parkloop.serve.models import Error
from parkloop.serve.openapi import document_plain_routes
from parkloop.serve.routes import api_routes
from parkloop.serve.service import Service

log = logging.getLogger("parkloop.serve")


class _Answer(Response):
    """A car answer: JSON bytes made by the live pipeline, never cached (headers built
    without Starlette's general-purpose header handling: this is the hottest path)."""

    def init_headers(self, headers: Any = None) -> None:
        self.raw_headers = [(b"content-length", str(len(self.body)).encode()),
                            (b"content-type", b"application/json"),
                            (b"cache-control", b"no-store")]


def create_app(store_path: Path, *, cors_origins: list[str] | None = None,
               loop_interval_s: float | None = None, workers: int = 0) -> FastAPI:
    """The parkloop API over the store at ``store_path`` (started on the app's lifespan);
    ``loop_interval_s``, ``workers``: see :class:`Service`."""
    service = Service(store_path, loop_interval_s=loop_interval_s, workers=workers)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        service.start()
        if service.new_admin_token:
            log.warning("generated the admin token (shown once, stored only as a digest): %s",
                        service.new_admin_token)
        try:
            yield
        finally:
            await asyncio.to_thread(service.close)

    app = FastAPI(title="parkloop", version="1", lifespan=lifespan,
                  description=(__doc__ or "").split("\n\n", 1)[-1],
                  responses={400: {"model": Error}, 401: {"model": Error},
                             415: {"model": Error}, 422: {"model": Error}})
    app.state.service = service

    # hot paths: plain endpoints --------------------------------------------------------
    async def healthz(_: Request) -> Response:
        return Response(b'{"ok":true}', media_type=JSON)

    async def readyz(_: Request) -> Response:
        pipeline = service.pipeline
        workers = pipeline.status() if pipeline else []
        body = {"ready": service.ready,
                "reason": None if service.ready else service.not_ready_reason,
                "model_version": pipeline.model_version if pipeline else None,
                "rules_version": pipeline.rules.identity if pipeline else None,
                "raw_watermark": pipeline.watermark if pipeline else None,
                "raw_committed": service.committed,
                "shards": pipeline.shards_map if pipeline else None,
                "workers": [dataclasses.asdict(w) for w in workers]}
        return Response(orjson.dumps(body), 200 if service.ready else 503, media_type=JSON)

    async def car(request: Request) -> Response:
        device_id = request.path_params["device_id"]
        who = auth.who(service, header(request.scope, b"authorization"))
        if who is None:
            return error_response(*auth.UNAUTHORIZED)
        pipeline = service.pipeline
        if who != device_id:
            if who != auth.ADMIN:
                return error_response(*auth.NOT_FOUND)
            if not service.device_known(device_id):
                return error_response(404, "not_found", f"no device {device_id!r}")
        if pipeline is None or not service.ready:
            return error_response(503, "not_ready", service.not_ready_reason)
        body = pipeline.answers.get(device_id)
        return _Answer(body if body is not None else pipeline.unknown_answer(device_id))

    app.router.routes[:0] = [Route("/healthz", healthz, methods=["GET"]),
                             Route("/readyz", readyz, methods=["GET"]),
                             Route("/v1/devices/{device_id}/car", car, methods=["GET"])]

    # everything else: routers ------------------------------------------------------------
    routes, admin_required = api_routes(service)
    app.include_router(routes)
    add_console(app, service, admin_required)
    add_driver(app, service)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(service.metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    add_error_handlers(app, log)
    document_plain_routes(app)
    app.add_middleware(Guard, service=service, cors_origins=cors_origins,
                       routes=app.router.routes)
    return app


def from_env() -> FastAPI:
    """The app for the store ``parkloop serve`` names in the environment (Granian imports
    the app by name in its worker)."""
    import os

    from parkloop.cli.serve import CORS_ENV, LOOP_ENV, SERVE_STORE_ENV, WORKERS_ENV

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    origins = [o for o in os.environ.get(CORS_ENV, "").split(",") if o]
    interval = os.environ.get(LOOP_ENV)
    return create_app(Path(os.environ[SERVE_STORE_ENV]), cors_origins=origins,
                      loop_interval_s=float(interval) if interval else None,
                      workers=int(os.environ.get(WORKERS_ENV) or 0))


__all__ = ["create_app", "from_env"]
