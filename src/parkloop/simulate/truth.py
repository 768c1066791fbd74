"""Ground truth: the store's ``truth`` schema, for evaluation only.

No pipeline code may read ``truth`` (facts, models and monitors see only the raw layer); only
evaluation and tests compare against it. Tables:

- ``truth.legs``: every leg a simulated person travelled, with its true mode;
- ``truth.parking``: every time a car was parked: when it stopped, where it stands, when it
  next moved, and the car leg that ended there;
- ``truth.devices``: who each simulated device belongs to and what kind of phone it is.

Times are int64 ms since the epoch, UTC; positions WGS 84 degrees. Writing a device again
replaces its rows, so a repeated simulation leaves the same truth.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from parkloop.simulate.device import DeviceRun
from parkloop.simulate.world import World

if TYPE_CHECKING:
    from parkloop.store import Store

SCHEMA = "truth"

DDL = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.legs (
        device_id VARCHAR NOT NULL,
        leg_no INTEGER NOT NULL,          -- 0, 1, ... per device in time order
        mode VARCHAR NOT NULL,            -- walk, bike, car, taxi, bus
        start_ms BIGINT NOT NULL,
        end_ms BIGINT NOT NULL,
        start_lat DOUBLE NOT NULL, start_lon DOUBLE NOT NULL,
        end_lat DOUBLE NOT NULL, end_lon DOUBLE NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.parking (
        device_id VARCHAR NOT NULL,
        parked_at_ms BIGINT NOT NULL,     -- when the car stopped
        lat DOUBLE NOT NULL, lon DOUBLE NOT NULL,  -- where the car stands
        left_at_ms BIGINT,                -- when the car next moved; NULL: still there
        leg_no INTEGER NOT NULL)          -- the car leg that ended here""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.devices (
        device_id VARCHAR NOT NULL,
        scenario VARCHAR NOT NULL,
        seed BIGINT NOT NULL,
        device_index INTEGER NOT NULL,
        owns_car BOOLEAN NOT NULL,
        vehicle_link BOOLEAN NOT NULL,    -- the phone reports the car's Bluetooth link
        labeller BOOLEAN NOT NULL,        -- the person labels some legs
        moving_interval_s DOUBLE NOT NULL,
        noise_sigma_m DOUBLE NOT NULL,
        activity BOOLEAN NOT NULL)        -- the phone sends activity guesses""",
)


def tables(world: World, run: DeviceRun, scenario: str, seed: int) -> dict[str, pa.Table]:
    """The truth rows of one device, by table name."""
    legs, parks = run.journey.legs, run.journey.parking

    def ms(s: object) -> np.ndarray:
        return run.epoch_ms + np.round(np.asarray(s, np.float64) * 1000.0).astype(np.int64)

    s_lat, s_lon = world.to_latlon(np.array([g.x_m[0] for g in legs]),
                                   np.array([g.y_m[0] for g in legs]))
    e_lat, e_lon = world.to_latlon(np.array([g.x_m[-1] for g in legs]),
                                   np.array([g.y_m[-1] for g in legs]))
    p_lat, p_lon = world.to_latlon(np.array([p.xy[0] for p in parks]),
                                   np.array([p.xy[1] for p in parks]))
    left = np.array([p.left_s if p.left_s is not None else 0.0 for p in parks])
    n = len(legs)
    return {
        "legs": pa.table({
            "device_id": pa.array([run.device_id] * n, pa.string()),
            "leg_no": pa.array(np.arange(n), pa.int32()),
            "mode": pa.array([g.mode for g in legs], pa.string()),
            "start_ms": ms([g.start_s for g in legs]), "end_ms": ms([g.end_s for g in legs]),
            "start_lat": s_lat, "start_lon": s_lon, "end_lat": e_lat, "end_lon": e_lon}),
        "parking": pa.table({
            "device_id": pa.array([run.device_id] * len(parks), pa.string()),
            "parked_at_ms": ms([p.parked_s for p in parks]),
            "lat": p_lat, "lon": p_lon,
            "left_at_ms": pa.array(ms(left), pa.int64(),
                                   mask=np.array([p.left_s is None for p in parks], bool)),
            "leg_no": pa.array([p.leg_no for p in parks], pa.int32())}),
        "devices": pa.table({
            "device_id": [run.device_id], "scenario": [scenario], "seed": [seed],
            "device_index": pa.array([run.index], pa.int32()),
            "owns_car": [run.person.owns_car], "vehicle_link": [run.person.vehicle is not None],
            "labeller": [run.labeller.labels],
            "moving_interval_s": [run.phone.moving_interval_s],
            "noise_sigma_m": [run.phone.noise_sigma_m], "activity": [run.phone.activity]}),
    }


def write(store: Store, world: World, run: DeviceRun, scenario: str, seed: int) -> None:
    """Replace the truth of one device in one transaction."""
    con = store.con
    con.execute("BEGIN")
    try:
        for stmt in DDL:
            con.execute(stmt)
        for name, table in tables(world, run, scenario, seed).items():
            con.execute(f"DELETE FROM {SCHEMA}.{name} WHERE device_id = ?", [run.device_id])
            con.register("_truth_rows", table)
            con.execute(f"INSERT INTO {SCHEMA}.{name} SELECT * FROM _truth_rows")
            con.unregister("_truth_rows")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def parking_scores(store: Store, called: pa.Table, devices_like: str = "%",
                   *, max_s: float = 300.0, max_m: float = 300.0,
                   devices: list[str] | None = None) -> dict[str, float]:
    """How well parking calls (``device_id, ended_ms, lat, lon``: leg ends a model called
    parked) find the true parkings of the devices matching ``devices_like`` (SQL LIKE), and
    among ``devices`` if given: a call is right within ``max_s`` and ``max_m`` of a true
    parking of its device; precision, recall and F1 (NaN where undefined)."""
    near = f"""abs(c.ended_ms - t.parked_at_ms) <= {int(max_s * 1000)}
        AND 2 * 6371000.0 * asin(sqrt(pow(sin(radians(t.lat - c.lat) / 2), 2)
            + cos(radians(c.lat)) * cos(radians(t.lat))
            * pow(sin(radians(t.lon - c.lon) / 2), 2))) <= {max_m}"""
    con = store.con.cursor()
    try:
        if devices is not None:
            called = called.filter(pc.is_in(called.column("device_id"),
                                                    pa.array(devices, pa.string())))
        con.register("_called", called.select(["device_id", "ended_ms", "lat", "lon"]))
        con.register("_among", pa.table({"device_id": pa.array(
            devices if devices is not None else [], pa.string())}))
        among = ("AND t.device_id IN (SELECT device_id FROM _among)" if devices is not None
                 else "")
        row = con.execute(f"""
            SELECT (SELECT avg((EXISTS (SELECT 1 FROM {SCHEMA}.parking t
                                        WHERE t.device_id = c.device_id AND {near}))::INT)
                    FROM _called c WHERE c.device_id LIKE $d),
                   (SELECT avg((EXISTS (SELECT 1 FROM _called c
                                        WHERE t.device_id = c.device_id AND {near}))::INT)
                    FROM {SCHEMA}.parking t WHERE t.device_id LIKE $d {among})""",
                          {"d": devices_like}).fetchone()
    finally:
        con.close()
    precision, recall = (float("nan") if v is None else float(v) for v in row or (None, None))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else float("nan")
    return {"precision": precision, "recall": recall, "f1": f1}
