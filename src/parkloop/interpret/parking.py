"""Interpretations: every leg end judged by a model version, and the answers made of them.

``interp_leg_end`` holds one row per (model version, leg end, facts build): p(parked), the
call at the model's threshold, and when it was decided; the leg end is named by its rules
version, device and end time, so every answer traces back to its facts and raw events. Rows
are only added: a rebuild (more raw events in) may end a drive elsewhere or change a leg
end's features, so the current build's leg ends are judged when asked
(:func:`score_pending`), answers read only those judgements, and older ones stay as history.

"Where is my car?" for a device is its latest parking event, until a later vehicle leg
starts within :data:`MOVED_M` of it: then the car has moved on and the answer is unknown.
The person's own word about parking answers counts in it (:func:`car_answer`): "no, I did not
park here" takes a parking event back, "yes" or "I parked here" makes one.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa

from parkloop.errors import ModelError
from parkloop.facts.catalog import built_watermark
from parkloop.facts.geo import haversine_m
from parkloop.facts.said import Statements
from parkloop.interpret.labels import MATCH_M, MATCH_S
from parkloop.interpret.model import CALLS, one_thread

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
        "p_parked": pa.array(p, pa.float64()), "parked": pa.array(model.call(pending, p)),
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
    """Where a device's car is: ``parked`` at (lat, lon) since ``parked_at_ms``,
    ``driven_away`` from its last parking place, or ``unknown``."""

    device_id: str
    status: Literal["parked", "driven_away", "unknown"]
    lat: float | None
    lon: float | None
    parked_at_ms: int | None
    p_parked: float | None
    model_version: str | None
    rules_version: str
    reason: str

    @property
    def parked(self) -> bool:
        return self.status == "parked"


def car_answer(device_id: str, ends: pa.Table, drives: pa.Table, version: str | None,
               rules_version: str, said: Statements | None = None) -> CarAnswer:
    """The answer made of a device's judged leg ends (``ended_ms, lat, lon, p_parked,
    parked``) and its vehicle legs (``started_ms, start_lat, start_lon``): the latest parking
    event, unless a later vehicle leg started within :data:`MOVED_M` of it. Batch
    (:func:`where_is_car`) and live serving both answer through here.

    ``said``: the person's statements; those about a parking answer (feedback: they have a
    position) count, in the order they were said. "No" takes back the parking events it is
    about (within :data:`~parkloop.interpret.labels.MATCH_S` and
    :data:`~parkloop.interpret.labels.MATCH_M`), whatever the model called; "yes" makes the
    leg ends it is about parking events, or, where it is about none ("I parked here"), is one
    itself, at the time and place it names."""
    ended = np.asarray(ends.column("ended_ms"), np.int64)
    lat_e = np.asarray(ends.column("lat"), float)
    lon_e = np.asarray(ends.column("lon"), float)
    parked = np.asarray(ends.column("parked"), bool).copy()
    told = np.zeros(len(ended), bool)  # parking events by the person's word
    pins: list[tuple[int, float, float]] = []
    if said is not None:
        about_answers = np.flatnonzero(np.isfinite(said.lat))  # labels are about trips' modes
        for i in about_answers[np.argsort(said.said_ms[about_answers], kind="stable")]:
            t, la, lo, yes = int(said.about_ms[i]), said.lat[i], said.lon[i], bool(said.car[i])
            near = (np.abs(ended - t) <= MATCH_S * 1000) & (
                haversine_m(la, lo, lat_e, lon_e) <= MATCH_M)
            parked[near], told[near] = yes, yes
            pins = [p for p in pins if not _about(p, t, la, lo)]
            if yes and not near.any():
                pins.append((t, float(la), float(lo)))
    events = [(int(ended[k]), float(lat_e[k]), float(lon_e[k]), k)
              for k in np.flatnonzero(parked)] + [(*p, -1) for p in pins]
    if not events:
        taken_back = bool(np.any(np.asarray(ends.column("parked"), bool) & ~parked))
        return CarAnswer(device_id, "unknown", None, None, None, None, version, rules_version,
                         "no parking event known: you said you did not park where parkloop "
                         "thought" if taken_back else _why_unknown(ends))
    at, lat, lon, k = max(events)
    later = np.asarray(drives.column("started_ms"), np.int64) > at
    if later.any():
        dist = haversine_m(lat, lon, np.asarray(drives.column("start_lat"))[later],
                           np.asarray(drives.column("start_lon"))[later])
        if np.any(dist <= MOVED_M):
            return CarAnswer(device_id, "driven_away", None, None, None, None, version,
                             rules_version, "the car was driven away from where it was last "
                             "parked")
    p = None if k < 0 else float(ends.column("p_parked")[k].as_py())
    return CarAnswer(device_id, "parked", lat, lon, at, p, version, rules_version,
                     "you said you parked here" if k < 0 or told[k] else "parked")


def _about(pin: tuple[int, float, float], t: int, lat: float, lon: float) -> bool:
    """Whether a statement at ``t``, (``lat``, ``lon``) is about the same parking as ``pin``."""
    return abs(pin[0] - t) <= MATCH_S * 1000 and \
        float(haversine_m(lat, lon, pin[1], pin[2])) <= MATCH_M


def _why_unknown(ends: pa.Table) -> str:
    """Why no leg end of a device is a parking event, in words."""
    if not ends.num_rows:
        return "no parking event known"
    if "why" in ends.column_names:
        latest = int(np.argmax(np.asarray(ends.column("ended_ms"), np.int64)))
        why = CALLS[int(ends.column("why")[latest].as_py())]
        if why == "stranger":
            return ("abstained: the last drive's end is not sure enough to name a parking "
                    "place for someone who has told parkloop nothing yet (say 'I parked "
                    "here' or answer 'did you park here?' to teach it)")
        if why == "ride goes on":
            return "no parking event known: the last vehicle moved on with you aboard"
    return "no parking event known: no drive's end looked like parking"


def where_is_car(store: Store, device_id: str, version: str, rules_version: str) -> CarAnswer:
    """The device's answer from the store: its judged leg ends of the current build and
    what the person said about parking answers."""
    store.con.execute(DDL)
    current = _CURRENT if built_watermark(store, rules_version) is not None else "false"
    ends = store.con.sql(f"""
        SELECT ended_ms, lat, lon, p_parked, parked FROM interp_leg_end i
        WHERE model_version = $mv AND rules_version = $rv AND device_id = $d AND {current}
        ORDER BY ended_ms""", params={"mv": version, "rv": rules_version, "d": device_id}
    ).to_arrow_table()
    drives = store.con.sql("""
        SELECT started_ms, start_lat, start_lon FROM facts_leg
        WHERE rules_version = $rv AND device_id = $d AND mode = 'vehicle'
        ORDER BY started_ms""", params={"rv": rules_version, "d": device_id}
    ).to_arrow_table() if current != "false" else pa.table(
        {"started_ms": pa.array([], pa.int64()), "start_lat": pa.array([], pa.float64()),
         "start_lon": pa.array([], pa.float64())})
    fb = store.con.execute(
        "SELECT t_ms, parked_at_ms, lat, lon, parked FROM raw_feedback WHERE device_id = ?",
        [device_id]).fetchnumpy()
    none = np.zeros(0, np.int64)
    said = Statements.from_events(none, none, np.zeros(0, object), fb["t_ms"],
                                  fb["parked_at_ms"], fb["lat"], fb["lon"], fb["parked"])
    return car_answer(device_id, ends, drives, version, rules_version, said)
