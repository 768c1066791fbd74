"""The operator console's HTTP face: the page (``serve/web/``, public files, no data) at
``/console/`` and its admin-only JSON routes under ``/v1/console/`` (see docs/console.md).

Every route reads; none writes. Device routes compute facts from raw events
(:mod:`parkloop.serve.console.data`) in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi import Path as InPath
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from parkloop.errors import ApiError, ParkloopError
from parkloop.facts.catalog import list_versions
from parkloop.facts.rules import RulesVersion, available, load_rules
from parkloop.loop.audit import history
from parkloop.loop.config import BAD_SIDE, load_config
from parkloop.serve.console import data as console
from parkloop.serve.console import models as m

if TYPE_CHECKING:
    import duckdb

    from parkloop.serve.service import Service

WEB = Path(__file__).parents[1] / "web"
"""the page: index.html, its scripts and styles, and the vendored libraries"""

Rules = Annotated[str | None, Query(max_length=64, description="a rules version's name "
                                    "(default: the one served)")]
Device = Annotated[str, InPath(max_length=128)]


def add_console(app: FastAPI, service: Service,
                admin: Callable[[Request], Awaitable[None]]) -> None:
    """Mount the page and add the console's routes (``admin``: the admin-only dependency)."""
    facts = console.Facts()
    devices: dict[int, list[dict[str, Any]]] = {}
    """the devices list as of the newest stored batch (a scan of every fix: read once per
    batch stored, not once per page view)"""
    api = APIRouter(prefix="/v1/console", dependencies=[Depends(admin)], tags=["console"],
                    default_response_class=_Json, responses={
                        403: {"description": "not the admin token"},
                        404: {"description": "no such device, rules version or model version"}})

    def rules_named(name: str | None) -> RulesVersion:
        pipeline = service.pipeline
        if name is None:
            return pipeline.rules if pipeline is not None else load_rules(service.default_rules,
                                                                  service.store_path)
        if name not in available(service.store_path):
            raise ApiError(404, "not_found", f"no rules version {name!r}; available: "
                           f"{', '.join(available(service.store_path))}")
        return load_rules(name, service.store_path)

    def read(work: Callable[[duckdb.DuckDBPyConnection], Any]) -> Awaitable[Any]:
        def run() -> Any:
            con = service.cursor()
            try:
                return work(con)
            finally:
                con.close()
        return asyncio.to_thread(run)

    def listed(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
        committed = service.committed
        if committed not in devices:
            devices.clear()
            devices[committed] = _devices(con)
        return devices[committed]

    @api.get("/overview", response_model=m.Overview)
    async def overview() -> Response:
        """The devices, the rules versions, and what is served."""
        def work(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
            pipeline = service.pipeline
            serving = pipeline.rules.identity if pipeline else None
            return {"serving": {"model_version": pipeline.model_version if pipeline else None,
                                "rules_version": serving, "ready": service.ready},
                    "rules": [{"name": r["name"], "identity": r["identity"],
                               "serving": r["identity"] == serving}
                              for r in list_versions(None, service.store_path)],
                    "devices": listed(con)}
        return _Json(await read(work))

    @api.get("/devices/{device_id}", response_model=m.DeviceView)
    async def device(device_id: Device, rules: Rules = None,
                     from_ms: Annotated[int | None, Query(ge=0)] = None,
                     to_ms: Annotated[int | None, Query(ge=0)] = None,
                     points: Annotated[int, Query(ge=100, le=20_000)] = console.DEFAULT_POINTS
                     ) -> Response:
        """A device's raw fixes, cleaned track, facts and p(parked) in a time range."""
        def work(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
            start = time.perf_counter()
            f = facts.of(con, device_id, rules_named(rules))
            view = console.device_view(f, service.pipeline, device_id, from_ms=from_ms,
                                       to_ms=to_ms, points=points)
            return view | {"seconds": round(time.perf_counter() - start, 4)}
        return _Json(await read(work))

    @api.get("/devices/{device_id}/leg-ends/{ended_ms}", response_model=m.LegEndDetail)
    async def leg_end(device_id: Device, ended_ms: Annotated[int, InPath(ge=0)],
                      rules: Rules = None) -> Response:
        """A vehicle-leg end's features, p(parked) and lineage."""
        def work(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
            f = facts.of(con, device_id, rules_named(rules))
            return console.leg_end_detail(con, f, service.pipeline, device_id, ended_ms)
        return _Json(await read(work))

    @api.get("/devices/{device_id}/diff", response_model=m.Diff)
    async def rules_diff(device_id: Device,
                         a: Annotated[str | None, Query(max_length=64)] = None,
                         b: Annotated[str | None, Query(max_length=64)] = None) -> Response:
        """A device's stops and leg ends under two rules versions, and what changed."""
        def work(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
            ra = rules_named(a)
            if b is None:
                others = [n for n in available(service.store_path) if n != ra.name]
                if not others:
                    raise ApiError(404, "not_found", "only one rules version is available")
                rb = rules_named(others[0])
            else:
                rb = rules_named(b)
            return console.diff(facts.of(con, device_id, ra), facts.of(con, device_id, rb),
                                device_id)
        return _Json(await read(work))

    @api.get("/models", response_model=m.Models)
    async def models() -> Response:
        """The registry's versions with their metrics and plots, and the champion's history."""
        return _Json(await asyncio.to_thread(_models, service))

    @api.get("/models/{version}/report", response_class=Response,
             responses={200: {"content": {"text/markdown": {}}, "description": "report.md"}})
    async def report(version: Annotated[str, InPath(max_length=32)]) -> Response:
        """A version's training report (Markdown)."""
        path = await asyncio.to_thread(_artifact, service, version, "report.md")
        return FileResponse(path, media_type="text/markdown; charset=utf-8")

    @api.get("/models/{version}/plots/{name}", response_class=Response,
             responses={200: {"content": {"image/png": {}}, "description": "the plot"}})
    async def plot(version: Annotated[str, InPath(max_length=32)],
                   name: Annotated[str, InPath(max_length=64)]) -> Response:
        """One of a version's report plots (PNG)."""
        from parkloop.interpret.report import PLOTS  # matplotlib: on the first ask only

        if name not in PLOTS:
            raise ApiError(404, "not_found", f"no plot {name!r}; plots: {', '.join(PLOTS)}")
        path = await asyncio.to_thread(_artifact, service, version, name)
        return FileResponse(path, media_type="image/png")

    @api.get("/loop", response_model=m.Loop)
    async def loop(last: Annotated[int, Query(ge=0, le=100_000)] = 500) -> Response:
        """The loop's thresholds and its audit records (the ``last`` ones; 0: all)."""
        def work() -> dict[str, Any]:
            config = load_config(service.store_path)
            records = history(service.store_path)
            return {"interval_s": service.loop.interval_s, "running": service.loop.running,
                    "passes": len(records),
                    "monitors": {name: {**getattr(config.monitors, name).model_dump(),
                                        "bad": bad} for name, bad in BAD_SIDE.items()},
                    "history": records[-last:] if last else records}
        return _Json(await asyncio.to_thread(work))

    @api.get("/live", response_model=m.Live)
    async def live() -> Response:
        """The server's counters since it started, and the store's quarantine by reason."""
        def work(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
            stored = dict(con.execute("SELECT reason, count(*) FROM quarantine "
                                      "GROUP BY reason ORDER BY reason").fetchall())
            counters = _counters(service)
            counters["quarantine"] = {"since_start": counters["quarantine"], "stored": stored}
            return counters
        return _Json(await read(work))

    app.include_router(api)

    # the page: public files (no data in them); index.html for /console/
    app.mount("/console", StaticFiles(directory=WEB, html=True), name="console")

    @app.get("/console", include_in_schema=False)
    async def console_slash() -> Response:
        return RedirectResponse("/console/")

    @app.get("/", include_in_schema=False)
    async def home() -> Response:
        return RedirectResponse("/console/")


class _Json(JSONResponse):
    """JSON by orjson (numpy arrays too); a JSONResponse, so OpenAPI documents the model."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def _devices(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every device with raw events: fixes, first and last fix, batches, last arrival."""
    table = con.sql("""
        SELECT b.device_id, coalesce(f.n_fixes, 0) AS n_fixes, f.first_ms, f.last_ms,
               b.n_batches, b.last_received_ms
        FROM (SELECT device_id, count(*) AS n_batches, max(received_ms) AS last_received_ms
              FROM raw_batch GROUP BY device_id) b
        LEFT JOIN (SELECT device_id, count(*) AS n_fixes, min(t_ms) AS first_ms,
                          max(t_ms) AS last_ms FROM raw_fix GROUP BY device_id) f
        USING (device_id) ORDER BY b.device_id""").to_arrow_table()
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


def _models(service: Service) -> dict[str, Any]:
    from parkloop.interpret.report import PLOTS  # matplotlib: on the first ask only

    registry = service.registry
    versions = registry.versions()
    out = []
    for v in versions:
        try:
            folder: Path | None = registry.artifacts(v.version)
        except ParkloopError:
            folder = None
        out.append({"version": v.version, "created_ms": v.created_ms,
                    "is_champion": v.is_champion, "tags": dict(v.tags),
                    "metrics": dict(v.metrics),
                    "plots": [p for p in PLOTS if folder and (folder / p).is_file()],
                    "report": bool(folder and (folder / "report.md").is_file())})
    champion = next((v.version for v in versions if v.is_champion), None)
    return {"champion": champion, "versions": out,
            "history": [vars(r) for r in registry.audit()]}


def _artifact(service: Service, version: str, name: str) -> Path:
    path = service.registry.artifacts(version) / name  # an unknown version: 404
    if not path.is_file():
        raise ApiError(404, "not_found", f"model version {version} has no {name}")
    return path


def _counters(service: Service) -> dict[str, Any]:
    """The service's Prometheus counters as plain numbers, and its latency histograms."""
    by: dict[str, dict[str, float]] = {"events": {}, "batches": {}, "quarantine": {}}
    where = {"parkloop_events_ingested_total": ("events", "kind"),
             "parkloop_batches_total": ("batches", "status"),
             "parkloop_events_quarantined_total": ("quarantine", "reason")}
    requests: dict[str, dict[str, Any]] = {}
    for metric in service.metrics.registry.collect():
        for s in metric.samples:
            if s.name in where:
                part, label = where[s.name]
                by[part][s.labels[label]] = int(s.value)
            elif s.name.startswith("parkloop_http_request_seconds"):
                r = requests.setdefault(s.labels["route"],
                                        {"count": 0, "sum_s": 0.0, "buckets": [], "counts": []})
                if s.name.endswith("_bucket") and s.labels["le"] != "+Inf":
                    r["buckets"].append(float(s.labels["le"]))
                    r["counts"].append(int(s.value))
                elif s.name.endswith("_count"):
                    r["count"] = int(s.value)
                elif s.name.endswith("_sum"):
                    r["sum_s"] = s.value
    pipeline = service.pipeline
    return {"at_ms": int(time.time() * 1000), "started_ms": service.started_ms,
            "ready": service.ready, "committed": service.committed,
            "lag_batches": max(0, service.committed - pipeline.watermark) if pipeline else None,
            **by, "requests": requests}
