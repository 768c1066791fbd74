"""Interpretations: every leg end judged by a model version, and the answers made of them.

``interp_leg_end`` holds one row per (model version, leg end, facts build): p(parked), the
call at the model's threshold, and when it was decided; the leg end is named by its rules
version, device and end time, so every answer traces back to its facts and raw events. Rows
are only added: a rebuild (more raw events in) may end a drive elsewhere or change a leg
end's features, so the current build's leg ends are judged when asked
(:func:`score_pending`), answers read only those judgements, and older ones stay as history.

"Where is my car?" for a device is its latest parking event, until a later vehicle leg
starts within :data:`MOVED_M` of it: then the car has moved on and the answer is unknown.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from parkloop.errors import ModelError
from parkloop.facts.catalog import built_watermark
from parkloop.interpret.labels import _HAVERSINE
from parkloop.interpret.model import one_thread

if TYPE_CHECKING:
    from parkloop.interpret.model import ParkedModel
    from parkloop.store import Store

MOVED_M = 300.0
"""a vehicle leg starting this close to the parked car drove it away, m"""

DDL = """CREATE TABLE IF NOT EXISTS interp_leg_end (
    model_version VARCHAR NOT NULL, rules_version VARCHAR NOT NULL, device_id VARCHAR NOT NULL,
    ended_ms BIGINT NOT NULL, lat DOUBLE NOT NULL, lon DOUBLE NOT NULL,
    p_parked DOUBLE NOT NULL, parked BOOLEAN NOT NULL, decided_at_ms BIGINT NOT NULL,
    facts_built_ms BIGINT NOT NULL,
    PRIMARY KEY (model_version, rules_version, device_id, ended_ms, facts_built_ms))"""

_CURRENT = """i.facts_built_ms = (SELECT built_ms FROM facts_build b
                                 WHERE b.rules_version = i.rules_version)"""
"""a judgement of the facts as they are: a rebuild (more raw events in) may end a drive
elsewhere or change a leg end's features, so every build's leg ends are judged afresh and
older judgements stay as history"""

EXPORT_COLUMNS = ("device_id", "parked_at", "lat", "lon", "p_parked", "model_version",
                  "rules_version")
"""The parked CSV of DESIGN.md, in order."""


def score_pending(store: Store, model: ParkedModel, version: str) -> int:
    """Judge every leg end of the model's rules version that ``version`` has not judged in
    the current build of its facts; returns how many were judged."""
    if built_watermark(store, model.rules_version) is None:
        raise ModelError(f"no facts for rules version {model.rules_version} (the model's): "
                         "run `parkloop facts build` first")
    store.con.execute(DDL)
    built = int(store.scalar("SELECT built_ms FROM facts_build WHERE rules_version = ?",
                             [model.rules_version]))
    pending = store.con.sql("""
        SELECT e.* FROM facts_leg_end e
        WHERE e.rules_version = $rv AND NOT EXISTS (
            SELECT 1 FROM interp_leg_end i
            WHERE i.model_version = $mv AND i.rules_version = e.rules_version
              AND i.device_id = e.device_id AND i.ended_ms = e.ended_ms
              AND i.facts_built_ms = $built)
        ORDER BY e.device_id, e.ended_ms""", params={
            "rv": model.rules_version, "mv": version, "built": built}).to_arrow_table()
    if not pending.num_rows:
        return 0
    with one_thread():
        p = model.predict(pending)
    rows = pa.table({
        "model_version": pa.array([version] * pending.num_rows, pa.string()),
        "rules_version": pending.column("rules_version"),
        "device_id": pending.column("device_id"), "ended_ms": pending.column("ended_ms"),
        "lat": pending.column("lat"), "lon": pending.column("lon"),
        "p_parked": pa.array(p, pa.float64()), "parked": pa.array(p >= model.threshold),
        "decided_at_ms": pa.array([int(time.time() * 1000)] * pending.num_rows, pa.int64()),
        "facts_built_ms": pa.array([built] * pending.num_rows, pa.int64())})
    store.con.register("_judged", rows)
    try:
        store.con.execute("INSERT INTO interp_leg_end SELECT * FROM _judged")
    finally:
        store.con.unregister("_judged")
    return int(rows.num_rows)


def parking_events(store: Store, version: str, rules_version: str) -> pa.Table:
    """Every leg end ``version`` called parked, as the parked CSV's columns (parked_at as
    UTC ISO 8601) plus ``ended_ms``."""
    store.con.execute(DDL)
    current = _CURRENT if built_watermark(store, rules_version) is not None else "false"
    return store.con.sql(f"""
        SELECT device_id, strftime(epoch_ms(ended_ms), '%Y-%m-%dT%H:%M:%S.%gZ') AS parked_at,
               lat, lon, p_parked, model_version, rules_version, ended_ms
        FROM interp_leg_end i
        WHERE model_version = $mv AND rules_version = $rv AND parked AND {current}
        ORDER BY device_id, ended_ms""",
                         params={"mv": version, "rv": rules_version}).to_arrow_table()


def export_parked(store: Store, model: ParkedModel, version: str, out: Path) -> int:
    """Judge what is pending, then write every parking event of every device to ``out``
    (CSV); returns the number of rows."""
    score_pending(store, model, version)
    events = parking_events(store, version, model.rules_version).select(list(EXPORT_COLUMNS))
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:  # quoted only where needed
        w = csv.writer(fh)
        w.writerow(EXPORT_COLUMNS)
        w.writerows(zip(*(events.column(c).to_pylist() for c in EXPORT_COLUMNS), strict=True))
    return int(events.num_rows)


@dataclass(frozen=True)
class CarAnswer:
    """Where a device's car is: parked at (lat, lon) since ``parked_at_ms``, or unknown."""

    device_id: str
    parked: bool
    lat: float | None
    lon: float | None
    parked_at_ms: int | None
    p_parked: float | None
    model_version: str
    rules_version: str
    reason: str


def where_is_car(store: Store, device_id: str, version: str, rules_version: str) -> CarAnswer:
    """The device's latest parking event, unless a later vehicle leg started from there."""
    store.con.execute(DDL)
    row = store.con.execute(f"""
        WITH last AS (
            SELECT * FROM interp_leg_end i
            WHERE model_version = ? AND rules_version = ? AND device_id = ? AND parked
              AND {_CURRENT}
            ORDER BY ended_ms DESC LIMIT 1),
        drives AS (
            SELECT l.started_ms, l.start_lat AS lat, l.start_lon AS lon
            FROM facts_leg l JOIN last USING (rules_version, device_id)
            WHERE l.mode = 'vehicle' AND l.started_ms > last.ended_ms)
        SELECT last.ended_ms, last.lat, last.lon, last.p_parked, EXISTS (
            SELECT 1 FROM drives WHERE {_HAVERSINE.format(a="last", b="drives")} <= {MOVED_M}
        ) AS moved
        FROM last""", [version, rules_version, device_id]).fetchall()
    if not row:
        return CarAnswer(device_id, False, None, None, None, None, version, rules_version,
                         "no parking event known")
    ended, lat, lon, p, moved = row[0]
    if moved:
        return CarAnswer(device_id, False, None, None, None, None, version, rules_version,
                         "the car was driven away from where it was last parked")
    return CarAnswer(device_id, True, lat, lon, ended, p, version, rules_version, "parked")

