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
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from fastapi import Body, Depends, FastAPI, Query, Request
from fastapi import Path as InPath
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from parkloop.errors import (
    BatchConflict,
    DeviceAlreadyRegistered,
    ParkloopError,
    RegistryError,
    RejectedInput,
    StoreFull,
    UnknownModelVersion,
)
from parkloop.raw.events import ID_PATTERN, parse_events
from parkloop.serve.console_api import add_console
from parkloop.serve.errors import ApiError
from parkloop.serve.service import Service
from parkloop.serve.tokens import token_digest

log = logging.getLogger("parkloop.serve")

MAX_BODY_BYTES = 8 * 1024 * 1024
"""request bodies over this are refused (413) before they are read"""
MAX_EVENTS = 20_000
"""events per POSTed batch at most (larger batches: 413, nothing stored)"""

ADMIN = "\x00admin"
"""who an admin token is (not a valid device id, so it never clashes with one)"""
_JSON = "application/json"
_ID = ID_PATTERN.pattern

Since = Annotated[int | None, Query(ge=0, description="only rows from this time on, ms")]
Limit = Annotated[int, Query(ge=1, le=1000, description="the newest rows, at most")]


# --- response and request models (the OpenAPI document is made of these) ---------------------

class Error(BaseModel):
    error: str = Field(description="stable error code")
    message: str = Field(description="what was wrong, in one line")


class CarAnswerOut(BaseModel):
    """Where the device's car is. ``status``: ``parked`` (at lat/lon since ``parked_at``),
    ``driven_away`` (a vehicle leg started from where it was parked), or ``unknown``."""

    device_id: str
    status: Literal["parked", "driven_away", "unknown"]
    parked: bool
    lat: float | None
    lon: float | None
    parked_at: str | None = Field(description="when the car stopped, UTC ISO 8601")
    p_parked: float | None = Field(description="the model's p(parked) of that leg end")
    known_since: str | None = Field(description="when the server first gave this answer")
    reason: str
    model_version: str | None = Field(description="registry version of the model behind it")
    rules_version: str = Field(description="rules identity of the facts it read")


class Health(BaseModel):
    ok: bool


class Ready(BaseModel):
    ready: bool
    reason: str | None = None
    model_version: str | None = None
    rules_version: str | None = None
    raw_watermark: int | None = Field(
        default=None, description="the newest raw batch the live answers include")
    raw_committed: int | None = Field(default=None, description="the newest raw batch stored")


class EventsIn(BaseModel):
    """A batch of one device's events. Storing is idempotent per ``batch_id``: a retry with the
    same content is a duplicate and stored once; other content under a stored id is refused
    (409)."""

    model_config = ConfigDict(extra="forbid")
    batch_id: str = Field(pattern=_ID, max_length=128)
    events: list[Any] = Field(
        max_length=MAX_EVENTS, description="events as in docs/raw-schema.md: fix, activity, "
        "vehicle_link, label, feedback; invalid ones are quarantined with their reasons")


class Rejected(BaseModel):
    seq: int
    kind: str | None
    reason: str
    detail: str


class EventsOut(BaseModel):
    device_id: str
    batch_id: str
    status: Literal["stored", "duplicate"]
    batch_no: int
    n_events: int
    n_stored: int
    n_quarantined: int
    reasons: dict[str, int] = Field(description="quarantined events by reason")
    rejected: list[Rejected] = Field(description="the first 100 quarantined events")


class FeedbackIn(BaseModel):
    """A person's word on a parking answer: ``parked`` true ("yes, here") or false ("no")."""

    model_config = ConfigDict(extra="forbid")
    parked_at: Annotated[int, Field(ge=-(2**53), le=2**53)] | str = Field(
        description="parked_at of the answer: ms or ISO 8601")
    lat: StrictFloat = Field(ge=-90, le=90)
    lon: StrictFloat = Field(ge=-180, le=180)
    parked: StrictBool
    model_version: str | None = Field(default=None, max_length=128)
    rules_version: str | None = Field(default=None, max_length=128)
    feedback_id: str | None = Field(
        default=None, pattern=_ID, max_length=128,
        description="idempotency key; defaults to one derived from the content")
    t: Annotated[int, Field(ge=-(2**53), le=2**53)] | str | None = Field(
        default=None, description="when the person said it: ms or ISO 8601; default: when "
        "the server received it")


class LoopRunOut(BaseModel):
    started: bool


class DeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device_id: str = Field(pattern=_ID, max_length=128)


class DeviceOut(BaseModel):
    device_id: str
    token: str = Field(description="shown once; only its SHA-256 digest is stored")


class FactsOut(BaseModel):
    device_id: str
    rules_version: str
    rows: list[dict[str, Any]] = Field(
        description="newest last; `final` false marks rows later events may still change")


class ModelOut(BaseModel):
    version: str
    is_champion: bool
    created_ms: int | None = None
    tags: dict[str, str] = {}
    metrics: dict[str, float] = {}


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="published through the API", max_length=500)


class ChampionOut(BaseModel):
    champion: str | None


class RulesOut(BaseModel):
    name: str
    identity: str
    serving: bool


class _Answer(Response):
    """A car answer: JSON bytes made by the live pipeline, never cached (headers built
    without Starlette's general-purpose header handling: this is the hottest path)."""

    def init_headers(self, headers: Any = None) -> None:
        self.raw_headers = [(b"content-length", str(len(self.body)).encode()),
                            (b"content-type", b"application/json"),
                            (b"cache-control", b"no-store")]


# --- errors -------------------------------------------------------------------------------

def _error(status: int, code: str, message: str,
           headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps({"error": code, "message": message}), status,
                    headers=headers, media_type=_JSON)


_UNAUTHORIZED = (401, "unauthorized", "send a valid token as `Authorization: Bearer TOKEN`")
_NOT_FOUND = (404, "not_found", "no such device for this token")
_FORBIDDEN = (403, "forbidden", "this needs the admin token")


def _who(service: Service, authorization: str | None) -> str | None:
    """The device a bearer token belongs to, :data:`ADMIN`, or None."""
    if not authorization or authorization[:7].lower() != "bearer ":
        return None
    token = authorization[7:].strip()
    if not token or len(token) > 512:
        return None
    digest = token_digest(token)
    device = service.device_of(digest, recheck=False)
    if device is not None:
        return device
    if service.tokens.is_admin(token):
        return ADMIN
    return service.device_of(digest)  # a token issued a moment ago, or none


def _may_read(service: Service, who: str | None, device_id: str) -> None:
    """Raise unless ``who`` may use ``device_id``: 401 without a valid token, 404 for another
    device's token (exists or not), 404 for the admin asking about an unknown device."""
    if who is None:
        raise ApiError(*_UNAUTHORIZED)
    if who == ADMIN:
        if not service.device_known(device_id):
            raise ApiError(404, "not_found", f"no device {device_id!r}")
        return
    if who != device_id:
        raise ApiError(*_NOT_FOUND)


def _may_write(who: str | None, device_id: str) -> None:
    """Raise unless ``who`` may send events for ``device_id``: its own token, or the admin's
    (which may send for a device that has none yet)."""
    if who is None:
        raise ApiError(*_UNAUTHORIZED)
    if who != ADMIN and who != device_id:
        raise ApiError(*_NOT_FOUND)


# --- the app ------------------------------------------------------------------------------

def create_app(store_path: Path, *, cors_origins: list[str] | None = None,
               loop_interval_s: float | None = None) -> FastAPI:
    """The parkloop API over the store at ``store_path`` (started on the app's lifespan);
    ``loop_interval_s``: see :class:`Service`."""
    service = Service(store_path, loop_interval_s=loop_interval_s)

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
        return Response(b'{"ok":true}', media_type=_JSON)

    async def readyz(_: Request) -> Response:
        live = service.live
        body = {"ready": service.ready,
                "reason": None if service.ready else service.not_ready_reason,
                "model_version": live.model_version if live else None,
                "rules_version": live.rules.identity if live else None,
                "raw_watermark": live.watermark if live else None,
                "raw_committed": service.committed}
        return Response(orjson.dumps(body), 200 if service.ready else 503, media_type=_JSON)

    async def car(request: Request) -> Response:
        device_id = request.path_params["device_id"]
        who = _who(service, _header(request.scope, b"authorization"))
        if who is None:
            return _error(*_UNAUTHORIZED)
        live = service.live
        if who != device_id:
            if who != ADMIN:
                return _error(*_NOT_FOUND)
            if not service.device_known(device_id):
                return _error(404, "not_found", f"no device {device_id!r}")
        if live is None or not service.ready:
            return _error(503, "not_ready", service.not_ready_reason)
        body = live.answers.get(device_id)
        return _Answer(body if body is not None else live.unknown_answer(device_id))

    app.router.routes[:0] = [Route("/healthz", healthz, methods=["GET"]),
                             Route("/readyz", readyz, methods=["GET"]),
                             Route("/v1/devices/{device_id}/car", car, methods=["GET"])]

    # everything else: FastAPI routes -----------------------------------------------------
    async def who_is(request: Request) -> str | None:
        return _who(service, request.headers.get("authorization"))

    async def token_required(request: Request) -> None:
        """401 before the request's input is judged (FastAPI runs dependencies first)."""
        if await who_is(request) is None:
            raise ApiError(*_UNAUTHORIZED)

    auth = [Depends(token_required)]

    def admin_only(who: str | None) -> None:
        if who is None:
            raise ApiError(*_UNAUTHORIZED)
        if who != ADMIN:
            raise ApiError(*_FORBIDDEN)

    @app.post("/v1/devices/{device_id}/events",
              dependencies=auth, response_model=EventsOut, tags=["devices"],
              openapi_extra={"requestBody": {"required": True, "content": {_JSON: {
                  "schema": EventsIn.model_json_schema(ref_template="#/components/schemas/"
                                                       "{model}")}}}},
              responses={404: {"model": Error}, 409: {"model": Error},
                         413: {"model": Error}})
    async def post_events(device_id: str, request: Request) -> Response:
        """Store a batch of the device's events (durable when answered)."""
        _may_write(await who_is(request), device_id)
        body = await _json_body(request)
        batch_in = _validate(EventsIn, body)
        return await _store(device_id, batch_in.batch_id, batch_in.events)

    @app.post("/v1/devices/{device_id}/feedback", dependencies=auth, response_model=EventsOut,
              tags=["devices"], responses={404: {"model": Error}, 409: {"model": Error}})
    async def post_feedback(device_id: str, feedback: FeedbackIn, request: Request
                            ) -> Response:
        """Say whether a parking answer was right; stored as a raw ``feedback`` event."""
        _may_write(await who_is(request), device_id)
        said = feedback.model_dump(exclude={"feedback_id", "t"})
        event = {"kind": "feedback", "t": int(time.time() * 1000) if feedback.t is None
                 else feedback.t, **{k: v for k, v in said.items() if v is not None}}
        batch_id = feedback.feedback_id or "feedback-" + hashlib.sha256(orjson.dumps(
            said, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]
        try:
            return await _store(device_id, batch_id, [event])
        except ApiError as exc:
            # a retry stamped with another receiving time says the same: a duplicate
            if exc.status != 409 or feedback.t is not None:
                raise
            earlier = await asyncio.to_thread(_stored_feedback, device_id, batch_id, event)
            if earlier is None:
                raise
            return Response(orjson.dumps(earlier), 200, media_type=_JSON)

    def _stored_feedback(device_id: str, batch_id: str, event: dict[str, Any]
                         ) -> dict[str, Any] | None:
        """The reply for feedback stored earlier under ``batch_id`` with the same content
        but its receiving time, or None."""
        con = service.cursor()
        try:
            row = con.execute("""
                SELECT b.batch_no, b.n_events, f.parked_at_ms, f.lat, f.lon, f.parked,
                       f.model_version, f.rules_version
                FROM raw_batch b JOIN raw_feedback f ON f.batch_no = b.batch_no
                WHERE b.device_id = ? AND b.batch_id = ?""", [device_id, batch_id]).fetchone()
        finally:
            con.close()
        if row is None:
            return None
        parsed = parse_events(device_id, batch_id, [event]).tables["feedback"].to_pylist()[0]
        keys = ("parked_at_ms", "lat", "lon", "parked", "model_version", "rules_version")
        if tuple(row[2:]) != tuple(parsed[k] for k in keys):
            return None
        return {"device_id": device_id, "batch_id": batch_id, "status": "duplicate",
                "batch_no": row[0], "n_events": row[1], "n_stored": 0, "n_quarantined": 0,
                "reasons": {}, "rejected": []}

    async def _store(device_id: str, batch_id: str, events: list[Any]) -> Response:
        try:
            batch = parse_events(device_id, batch_id, events)
        except RejectedInput as exc:
            raise ApiError(422, "invalid_batch", str(exc)) from None
        try:
            stored = await asyncio.wrap_future(service.writer.submit(batch))
        except BatchConflict as exc:
            raise ApiError(409, "batch_conflict", str(exc)) from None
        r = stored.result
        if r.status == "conflict":
            raise ApiError(409, "batch_conflict",
                           f"batch {batch_id!r} of {device_id!r} was stored earlier with other "
                           "content; send new content under a new batch id")
        return Response(orjson.dumps({
            "device_id": r.device_id, "batch_id": r.batch_id, "status": r.status,
            "batch_no": r.batch_no, "n_events": r.n_events, "n_stored": r.n_stored,
            "n_quarantined": r.n_quarantined, "reasons": r.reasons,
            "rejected": stored.rejected}), 200, media_type=_JSON)

    def _facts(table: str, device_id: str, since_ms: int | None, limit: int) -> Response:
        live = service.live
        if live is None or not service.ready:
            raise ApiError(503, "not_ready", service.not_ready_reason)
        view = live.view(device_id)
        rows: list[dict[str, Any]] = []
        if view is not None:
            if table == "facts_place":
                rows = [dict(r, final=False) for r in view.places.to_pylist()]
            else:
                rows = [dict(r, final=True) for r in view.final[table].to_pylist()] + \
                       [dict(r, final=False) for r in view.provisional[table].to_pylist()]
            key = {"facts_stop": "started_ms", "facts_leg": "started_ms",
                   "facts_place": "last_ms"}[table]
            if since_ms is not None:
                rows = [r for r in rows if r[key] >= since_ms]
            rows = rows[-limit:]
        return Response(orjson.dumps({"device_id": device_id,
                                      "rules_version": live.rules.identity, "rows": rows},
                                     option=orjson.OPT_SERIALIZE_NUMPY), media_type=_JSON)

    for path, table, what in (("stops", "facts_stop", "stops"),
                              ("legs", "facts_leg", "legs (vehicle and foot)"),
                              ("places", "facts_place", "places (clusters of its stops)")):
        def make(table: str = table) -> Callable[..., Awaitable[Response]]:
            async def read(device_id: str, request: Request, since: Since = None,
                           limit: Limit = 100) -> Response:
                _may_read(service, await who_is(request), device_id)
                return _facts(table, device_id, since, limit)
            return read
        app.get(f"/v1/devices/{{device_id}}/{path}", dependencies=auth, response_model=FactsOut,
                tags=["facts"], summary=f"The device's recent {what}",
                responses={404: {"model": Error}, 503: {"model": Error}})(make())

    @app.get("/v1/devices/{device_id}/leg-ends",
             dependencies=auth, response_model=FactsOut, tags=["facts"],
             summary="The device's vehicle-leg ends as the model judged them",
             responses={404: {"model": Error}, 503: {"model": Error}})
    async def leg_ends(device_id: str, request: Request, since: Since = None,
                       limit: Limit = 100) -> Response:
        """Each leg end's p(parked), call (parked or not) and model version: the
        interpretations the car answer is made of."""
        _may_read(service, await who_is(request), device_id)
        live = service.live
        if live is None or not service.ready:
            raise ApiError(503, "not_ready", service.not_ready_reason)
        rows = [r for r in live.judged(device_id)
                if since is None or r["ended_ms"] >= since][-limit:]
        return Response(orjson.dumps({"device_id": device_id,
                                      "rules_version": live.rules.identity, "rows": rows}),
                        media_type=_JSON)

    # admin ------------------------------------------------------------------------------
    @app.post("/v1/devices",
              dependencies=auth, response_model=DeviceOut, status_code=201, tags=["admin"],
              responses={403: {"model": Error}, 409: {"model": Error}})
    async def register_device(device: DeviceIn, request: Request) -> Response:
        """Register a device and get its token (shown once)."""
        admin_only(await who_is(request))
        token = await asyncio.to_thread(service.tokens.register, device.device_id)
        await asyncio.to_thread(service.reload_tokens)
        return Response(orjson.dumps({"device_id": device.device_id, "token": token}), 201,
                        media_type=_JSON)

    @app.get("/v1/models", dependencies=auth, response_model=list[ModelOut], tags=["admin"],
             responses={403: {"model": Error}})
    async def list_models(request: Request) -> list[dict[str, Any]]:
        """The registry's model versions."""
        admin_only(await who_is(request))
        versions = await asyncio.to_thread(service.registry.versions)
        return [{"version": v.version, "is_champion": v.is_champion,
                 "created_ms": v.created_ms, "tags": v.tags, "metrics": v.metrics}
                for v in versions]

    @app.post("/v1/models/{version}/publish",
              dependencies=auth, response_model=ChampionOut, tags=["admin"],
              responses={403: {"model": Error}, 404: {"model": Error}})
    async def publish(version: Annotated[str, InPath(max_length=32)], request: Request,
                      why: Annotated[ReasonIn | None, Body()] = None) -> dict[str, Any]:
        """Make a version the champion; the running server switches to it."""
        admin_only(await who_is(request))
        reason = why.reason if why else "published through the API"
        await asyncio.to_thread(service.registry.publish, version, reason=reason,
                                actor="api")
        service.publish_seen()
        return {"champion": version}

    @app.post("/v1/models/rollback", dependencies=auth, response_model=ChampionOut, tags=["admin"],
              responses={403: {"model": Error}, 409: {"model": Error}})
    async def rollback(request: Request,
                       why: Annotated[ReasonIn | None, Body()] = None) -> dict[str, Any]:
        """Make the previous champion the champion again."""
        admin_only(await who_is(request))
        reason = why.reason if why else "rolled back through the API"
        target = await asyncio.to_thread(service.registry.rollback, reason=reason,
                                         actor="api")
        service.publish_seen()
        return {"champion": target}

    @app.get("/v1/rules", dependencies=auth, response_model=list[RulesOut], tags=["admin"],
             responses={403: {"model": Error}})
    async def rules(request: Request) -> list[dict[str, Any]]:
        """The rules versions this store can build, and which one is served."""
        admin_only(await who_is(request))
        from parkloop.facts.catalog import list_versions

        serving = service.live.rules.identity if service.live else None
        found = await asyncio.to_thread(list_versions, None, service.store_path)
        return [{"name": r["name"], "identity": r["identity"],
                 "serving": r["identity"] == serving} for r in found]

    @app.post("/v1/loop/run", dependencies=auth, status_code=202, response_model=LoopRunOut,
              tags=["admin"], responses={403: {"model": Error}, 409: {"model": Error}})
    async def loop_run(request: Request) -> dict[str, Any]:
        """Start a loop pass now (it runs in the background: see GET /v1/loop/history)."""
        admin_only(await who_is(request))
        if not service.loop.trigger():
            raise ApiError(409, "loop_running", "a loop pass is running already")
        return {"started": True}

    @app.get("/v1/loop/history", dependencies=auth, response_model=list[dict[str, Any]],
             tags=["admin"], responses={403: {"model": Error}})
    async def loop_history(request: Request, last: Annotated[int, Query(ge=0, le=10_000)] = 100
                           ) -> list[dict[str, Any]]:
        """The loop's audit records, oldest first (the ``last`` ones; 0: all): every pass's
        monitors and thresholds, what fired, what was trained, the gate's figures, the
        decision."""
        admin_only(await who_is(request))
        from parkloop.loop.audit import history

        records = await asyncio.to_thread(history, service.store_path)
        return records[-last:] if last else records

    async def admin_required(request: Request) -> None:
        admin_only(await who_is(request))

    add_console(app, service, admin_required)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(service.metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    # errors -----------------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> Response:
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Response:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):  # as POST .../events
            return _error(400, "malformed_json", _explain(exc.errors()))
        return _error(422, "invalid_request", _explain(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
            exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(ParkloopError)
    async def parkloop_error(_: Request, exc: ParkloopError) -> Response:
        status, code = (404, "unknown_model_version") if isinstance(exc, UnknownModelVersion) \
            else (409, "registry") if isinstance(exc, RegistryError) \
            else (409, "already_registered") if isinstance(exc, DeviceAlreadyRegistered) \
            else (507, "store_full") if isinstance(exc, StoreFull) \
            else (422, "rejected") if isinstance(exc, RejectedInput) else (500, "internal")
        if status == 500:
            log.error("request failed: %s", exc)
        return _error(status, code, str(exc))

    @app.exception_handler(Exception)
    async def crashed(_: Request, exc: Exception) -> Response:
        log.exception("request failed")
        return _error(500, "internal", "the server failed on this request; it is logged")

    _document_plain_routes(app)
    app.add_middleware(_Guard, service=service, cors_origins=cors_origins,
                       routes=app.router.routes)
    return app


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"the body is not JSON: {exc}") from None


def _validate(model: type[EventsIn], body: Any) -> EventsIn:
    from pydantic import ValidationError

    try:
        return model.model_validate(body)
    except ValidationError as exc:
        status = 413 if any(e["type"] == "too_long" and e["loc"][:1] == ("events",)
                            for e in exc.errors()) else 422
        raise ApiError(status, "batch_too_large" if status == 413 else "invalid_request",
                       _explain(exc.errors())) from None


def _explain(errors: Any) -> str:
    parts = []
    for e in list(errors)[:5]:
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    more = len(list(errors)) - 5
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _document_plain_routes(app: FastAPI) -> None:
    """Put the plain endpoints into the OpenAPI document, from their response models."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(title=app.title, version=app.version, description=app.description,
                           routes=app.routes)
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for model in (CarAnswerOut, Health, Ready, Error):
            schemas[model.__name__] = model.model_json_schema(
                ref_template="#/components/schemas/{model}")

        def ok(model: type[BaseModel], *others: tuple[int, type[BaseModel]]
               ) -> dict[str, Any]:
            out = {"200": {"description": "OK", "content": {_JSON: {"schema": {
                "$ref": f"#/components/schemas/{model.__name__}"}}}}}
            for status, m in others:
                out[str(status)] = {"description": m.__doc__ or m.__name__, "content": {
                    _JSON: {"schema": {"$ref": f"#/components/schemas/{m.__name__}"}}}}
            return out

        spec["paths"]["/healthz"] = {"get": {
            "summary": "Alive (cheap, no auth)", "operationId": "healthz", "security": [],
            "tags": ["ops"], "responses": ok(Health)}}
        spec["paths"]["/readyz"] = {"get": {
            "summary": "Ready to answer (503 while the raw log is replayed)",
            "operationId": "readyz", "tags": ["ops"], "security": [],
            "responses": ok(Ready, (503, Ready))}}
        spec["paths"]["/v1/devices/{device_id}/car"] = {"get": {
            "summary": "Where the device's car is parked", "operationId": "car",
            "tags": ["devices"],
            "description": CarAnswerOut.__doc__,
            "parameters": [{"name": "device_id", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "security": [{"bearer": []}],
            "responses": ok(CarAnswerOut, (401, Error), (404, Error), (503, Error))}}
        for operations in spec["paths"].values():  # one id rule, documented everywhere
            for operation in operations.values():
                for parameter in operation.get("parameters", []):
                    if parameter["name"] == "device_id":
                        parameter["schema"].update(pattern=_ID, maxLength=128)
        spec["components"]["securitySchemes"] = {"bearer": {"type": "http",
                                                            "scheme": "bearer"}}
        spec["security"] = [{"bearer": []}]
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _Guard:
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
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            await _send_error(send, 413, "body_too_large",
                              f"request bodies are limited to {MAX_BODY_BYTES} bytes")
            self._observe(scope, 413, start)
            return
        kind = _header(scope, b"content-type")
        if kind is not None and scope["method"] in ("POST", "PUT", "PATCH") and \
                not _is_json(kind):
            await _send_error(send, 415, "unsupported_media_type",
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

        origin = _header(scope, b"origin")
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


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == _JSON or (kind.startswith("application/") and kind.endswith("+json"))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    body = orjson.dumps({"error": code, "message": message})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def from_env() -> FastAPI:
    """The app for the store ``parkloop serve`` names in the environment (Granian imports
    the app by name in its worker)."""
    import os

    from parkloop.cli.serve import CORS_ENV, LOOP_ENV, STORE_ENV

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    origins = [o for o in os.environ.get(CORS_ENV, "").split(",") if o]
    interval = os.environ.get(LOOP_ENV)
    return create_app(Path(os.environ[STORE_ENV]), cors_origins=origins,
                      loop_interval_s=float(interval) if interval else None)
