"""The API's FastAPI routes (all but the three plain hot paths of :mod:`parkloop.serve.app`):
each parses its request, calls a plain function (:mod:`parkloop.serve.queries`, the
service, the registry), and formats the answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi import Path as InPath
from pydantic import ValidationError
from starlette.responses import Response

from parkloop.errors import ApiError, BatchConflict
from parkloop.raw.events import parse_events
from parkloop.serve import auth, queries
from parkloop.serve.errors import explain
from parkloop.serve.middleware import JSON
from parkloop.serve.models import (
    ChampionOut,
    DeviceIn,
    DeviceOut,
    Error,
    EventsIn,
    EventsOut,
    FactsOut,
    FeedbackIn,
    LoopRunOut,
    ModelOut,
    ReasonIn,
    RulesOut,
)
from parkloop.serve.pipeline import ASK_TIMEOUT_S

if TYPE_CHECKING:
    from parkloop.serve.pipeline import Pipeline
    from parkloop.serve.service import Service

Since = Annotated[int | None, Query(ge=0, description="only rows from this time on, ms")]
Limit = Annotated[int, Query(ge=1, le=1000, description="the newest rows, at most")]


def api_routes(service: Service) -> tuple[APIRouter, Callable[[Request], Awaitable[None]]]:
    """The routes over ``service``, and the admin-only dependency (for other routers)."""
    router = APIRouter()

    async def who_is(request: Request) -> str | None:
        return auth.who(service, request.headers.get("authorization"))

    async def token_required(request: Request) -> None:
        """401 before the request's input is judged (FastAPI runs dependencies first)."""
        if await who_is(request) is None:
            raise ApiError(*auth.UNAUTHORIZED)

    async def admin_required(request: Request) -> None:
        auth.admin_only(await who_is(request))

    token = [Depends(token_required)]

    def ready_pipeline() -> Pipeline:
        pipeline = service.pipeline
        if pipeline is None or not service.ready:
            raise ApiError(503, "not_ready", service.not_ready_reason)
        return pipeline

    async def from_worker(fut: Future[Any]) -> Any:
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), ASK_TIMEOUT_S)
        except TimeoutError as exc:
            raise ApiError(503, "not_ready", f"the device's pipeline worker is busy or "
                           f"restarting ({exc or 'no reply'}); try again") from None

    async def store(device_id: str, batch_id: str, events: list[Any]) -> Response:
        batch = parse_events(device_id, batch_id, events)
        stored = await asyncio.wrap_future(service.writer.submit(batch))
        if stored.result.status == "conflict":
            raise BatchConflict(device_id, batch_id, None, batch.digest())
        return _json(queries.store_reply(stored))

    # devices -------------------------------------------------------------------------------
    @router.post("/v1/devices/{device_id}/events",
                 dependencies=token, response_model=EventsOut, tags=["devices"],
                 openapi_extra={"requestBody": {"required": True, "content": {JSON: {
                     "schema": EventsIn.model_json_schema(ref_template="#/components/schemas/"
                                                          "{model}")}}}},
                 responses={404: {"model": Error}, 409: {"model": Error},
                            413: {"model": Error}})
    async def post_events(device_id: str, request: Request) -> Response:
        """Store a batch of the device's events (durable when answered)."""
        auth.may_write(await who_is(request), device_id)
        batch_in = _events_in(await _json_body(request))
        return await store(device_id, batch_in.batch_id, batch_in.events)

    @router.post("/v1/devices/{device_id}/feedback", dependencies=token,
                 response_model=EventsOut, tags=["devices"],
                 responses={404: {"model": Error}, 409: {"model": Error}})
    async def post_feedback(device_id: str, feedback: FeedbackIn, request: Request
                            ) -> Response:
        """Say whether a parking answer was right; stored as a raw ``feedback`` event."""
        auth.may_write(await who_is(request), device_id)
        derived, event = queries.feedback_event(
            feedback.model_dump(exclude={"feedback_id", "t"}),
            int(time.time() * 1000) if feedback.t is None else feedback.t)
        batch_id = feedback.feedback_id or derived
        try:
            return await store(device_id, batch_id, [event])
        except BatchConflict:
            # a retry stamped with another receiving time says the same: a duplicate
            if feedback.t is not None:
                raise
            earlier = await asyncio.to_thread(_with_cursor, service, queries.stored_feedback,
                                              device_id, batch_id, event)
            if earlier is None:
                raise
            return _json(earlier)

    for path, table, what in (("stops", "facts_stop", "stops"),
                              ("legs", "facts_leg", "legs (vehicle and foot)"),
                              ("places", "facts_place", "places (clusters of its stops)")):
        def make(table: str = table) -> Callable[..., Awaitable[Response]]:
            async def read(device_id: str, request: Request, since: Since = None,
                           limit: Limit = 100) -> Response:
                auth.may_read(service, await who_is(request), device_id)
                pipeline = ready_pipeline()
                view = await from_worker(pipeline.view(device_id))
                return _json({"device_id": device_id, "rules_version": pipeline.rules.identity,
                              "rows": queries.fact_rows(view, table, since, limit)})
            return read
        router.get(f"/v1/devices/{{device_id}}/{path}", dependencies=token,
                   response_model=FactsOut, tags=["facts"], summary=f"The device's recent {what}",
                   responses={404: {"model": Error}, 503: {"model": Error}})(make())

    @router.get("/v1/devices/{device_id}/leg-ends",
                dependencies=token, response_model=FactsOut, tags=["facts"],
                summary="The device's vehicle-leg ends as the model judged them",
                responses={404: {"model": Error}, 503: {"model": Error}})
    async def leg_ends(device_id: str, request: Request, since: Since = None,
                       limit: Limit = 100) -> Response:
        """Each leg end's p(parked), call (parked or not) and model version: the
        interpretations the car answer is made of."""
        auth.may_read(service, await who_is(request), device_id)
        pipeline = ready_pipeline()
        judged = await from_worker(pipeline.judged(device_id))
        return _json({"device_id": device_id, "rules_version": pipeline.rules.identity,
                      "rows": queries.judged_rows(judged, since, limit)})

    # admin ---------------------------------------------------------------------------------
    @router.post("/v1/devices",
                 dependencies=token, response_model=DeviceOut, status_code=201, tags=["admin"],
                 responses={403: {"model": Error}, 409: {"model": Error}})
    async def register_device(device: DeviceIn, request: Request) -> Response:
        """Register a device and get its token (shown once)."""
        auth.admin_only(await who_is(request))
        issued = await asyncio.to_thread(service.tokens.register, device.device_id)
        await asyncio.to_thread(service.reload_tokens)
        return _json({"device_id": device.device_id, "token": issued}, 201)

    @router.get("/v1/models", dependencies=token, response_model=list[ModelOut],
                tags=["admin"], responses={403: {"model": Error}})
    async def list_models(request: Request) -> list[dict[str, Any]]:
        """The registry's model versions."""
        auth.admin_only(await who_is(request))
        versions = await asyncio.to_thread(service.registry.versions)
        return [{"version": v.version, "is_champion": v.is_champion,
                 "created_ms": v.created_ms, "tags": v.tags, "metrics": v.metrics}
                for v in versions]

    @router.post("/v1/models/{version}/publish",
                 dependencies=token, response_model=ChampionOut, tags=["admin"],
                 responses={403: {"model": Error}, 404: {"model": Error}})
    async def publish(version: Annotated[str, InPath(max_length=32)], request: Request,
                      why: Annotated[ReasonIn | None, Body()] = None) -> dict[str, Any]:
        """Make a version the champion; the running server switches to it."""
        auth.admin_only(await who_is(request))
        reason = why.reason if why else "published through the API"
        await asyncio.to_thread(service.registry.publish, version, reason=reason,
                                actor="api")
        service.publish_seen()
        return {"champion": version}

    @router.post("/v1/models/rollback", dependencies=token, response_model=ChampionOut,
                 tags=["admin"], responses={403: {"model": Error}, 409: {"model": Error}})
    async def rollback(request: Request,
                       why: Annotated[ReasonIn | None, Body()] = None) -> dict[str, Any]:
        """Make the previous champion the champion again."""
        auth.admin_only(await who_is(request))
        reason = why.reason if why else "rolled back through the API"
        target = await asyncio.to_thread(service.registry.rollback, reason=reason,
                                         actor="api")
        service.publish_seen()
        return {"champion": target}

    @router.get("/v1/rules", dependencies=token, response_model=list[RulesOut], tags=["admin"],
                responses={403: {"model": Error}})
    async def rules(request: Request) -> list[dict[str, Any]]:
        """The rules versions this store can build, and which one is served."""
        auth.admin_only(await who_is(request))
        from parkloop.facts.catalog import list_versions

        serving = service.pipeline.rules.identity if service.pipeline else None
        found = await asyncio.to_thread(list_versions, None, service.store_path)
        return [{"name": r["name"], "identity": r["identity"],
                 "serving": r["identity"] == serving} for r in found]

    @router.post("/v1/loop/run", dependencies=token, status_code=202,
                 response_model=LoopRunOut, tags=["admin"],
                 responses={403: {"model": Error}, 409: {"model": Error}})
    async def loop_run(request: Request) -> dict[str, Any]:
        """Start a loop pass now (it runs in the background: see GET /v1/loop/history)."""
        auth.admin_only(await who_is(request))
        if not service.loop.trigger():
            raise ApiError(409, "loop_running", "a loop pass is running already")
        return {"started": True}

    @router.get("/v1/loop/history", dependencies=token, response_model=list[dict[str, Any]],
                tags=["admin"], responses={403: {"model": Error}})
    async def loop_history(request: Request,
                           last: Annotated[int, Query(ge=0, le=10_000)] = 100
                           ) -> list[dict[str, Any]]:
        """The loop's audit records, oldest first (the ``last`` ones; 0: all): every pass's
        monitors and thresholds, what fired, what was trained, the gate's figures, the
        decision."""
        auth.admin_only(await who_is(request))
        from parkloop.loop.audit import history

        records = await asyncio.to_thread(history, service.store_path)
        return records[-last:] if last else records

    return router, admin_required


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status,
                    media_type=JSON)


def _with_cursor(service: Service, read: Callable[..., Any], *args: Any) -> Any:
    con = service.cursor()
    try:
        return read(con, *args)
    finally:
        con.close()


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"the body is not JSON: {exc}") from None


def _events_in(body: Any) -> EventsIn:
    """The batch a POST sent: 413 for too many events, 422 for anything else wrong."""
    try:
        return EventsIn.model_validate(body)
    except ValidationError as exc:
        status = 413 if any(e["type"] == "too_long" and e["loc"][:1] == ("events",)
                            for e in exc.errors()) else 422
        raise ApiError(status, "batch_too_large" if status == 413 else "invalid_request",
                       explain(exc.errors())) from None


__all__ = ["Limit", "Since", "api_routes"]
