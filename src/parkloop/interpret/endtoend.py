"""End-to-end quality: parking events as exported, against every labelled car-segment end.

What a person would check by hand. A labelled ``car`` segment's end (placed at the device's
fix nearest in time, as in :mod:`parkloop.interpret.labels`) is *found* when a parking event
lies within :data:`~parkloop.interpret.labels.MATCH_S` seconds and
:data:`~parkloop.interpret.labels.MATCH_M` metres of it, and *missed* otherwise. An event is a
*hit* when it finds a car end, a *false alarm* when it lies at another mode's end (same
window) or inside a labelled non-car segment, and is not judged otherwise (nobody said what
happened there). Recall counts car ends, precision counts events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from parkloop.interpret.labels import _HAVERSINE, MATCH_M, MATCH_S

if TYPE_CHECKING:
    from parkloop.store import Store


def end_to_end(store: Store, events: pa.Table, devices: list[str] | None = None, *,
               after: dict[str, int] | None = None) -> dict[str, Any]:
    """Pooled and per-person figures for ``events`` (columns device_id, t_ms, lat, lon) over
    ``devices`` (default: every device with labels); with ``after``, only each device's
    segments ending after its time there (ms) and the events after it are judged (a warm
    person's later trips)."""
    win = MATCH_S * 1000
    con = store.con.cursor()
    con.register("_events", events.select(["device_id", "t_ms", "lat", "lon"]))
    who = sorted(after) if devices is None and after is not None else devices
    con.register("_devices", pa.table({
        "device_id": pa.array(who if who is not None else [], pa.string()),
        "from_ms": pa.array([(after or {}).get(d, np.iinfo(np.int64).min)
                             for d in (who or [])], pa.int64())}))
    chosen = "SELECT device_id, from_ms FROM _devices" if who is not None else \
        "SELECT DISTINCT device_id, -9223372036854775808 AS from_ms FROM raw_label"
    rows = con.sql(f"""
        WITH who AS ({chosen}),
        seg AS (SELECT l.* FROM raw_label l JOIN who USING (device_id)
                WHERE l.end_ms > who.from_ms),
        ends AS (          -- each segment's end at the fix nearest in time
            SELECT s.device_id, s.batch_no, s.seq, s.mode = 'car' AS car, s.end_ms AS t_ms,
                   f.lat, f.lon
            FROM seg s JOIN raw_fix f ON f.device_id = s.device_id
                                     AND f.t_ms BETWEEN s.end_ms - {win} AND s.end_ms + {win}
            QUALIFY row_number() OVER (PARTITION BY s.device_id, s.batch_no, s.seq
                                       ORDER BY abs(f.t_ms - s.end_ms), f.t_ms) = 1),
        ev AS (SELECT e.*, row_number() OVER () AS ev_no FROM _events e JOIN who USING (device_id)
               WHERE e.t_ms > who.from_ms),
        near AS (
            SELECT ev.ev_no, ends.batch_no, ends.seq, ends.car
            FROM ev JOIN ends ON ends.device_id = ev.device_id
                             AND ev.t_ms BETWEEN ends.t_ms - {win} AND ends.t_ms + {win}
            WHERE {_HAVERSINE.format(a="ev", b="ends")} <= {MATCH_M}),
        inside AS (
            SELECT DISTINCT ev.ev_no FROM ev JOIN seg s ON s.device_id = ev.device_id
              AND ev.t_ms BETWEEN s.start_ms AND s.end_ms AND s.mode <> 'car'),
        judged AS (
            SELECT ev.device_id, ev.ev_no,
                   coalesce(bool_or(near.car), false) AS hit,
                   coalesce(bool_or(NOT near.car), false) OR ev.ev_no IN (SELECT ev_no FROM inside)
                       AS other
            FROM ev LEFT JOIN near USING (ev_no) GROUP BY ev.device_id, ev.ev_no),
        found AS (
            SELECT ends.device_id, ends.batch_no, ends.seq,
                   count(near.ev_no) > 0 AS found
            FROM ends LEFT JOIN near ON near.batch_no = ends.batch_no AND near.seq = ends.seq
                                     AND near.car
            WHERE ends.car GROUP BY ALL),
        per_event AS (
            SELECT device_id, count(*) FILTER (WHERE hit) AS hits,
                   count(*) FILTER (WHERE other AND NOT hit) AS false_alarms,
                   count(*) AS events
            FROM judged GROUP BY device_id),
        per_end AS (
            SELECT device_id, count(*) AS car_ends, count(*) FILTER (WHERE found) AS found
            FROM found GROUP BY device_id)
        SELECT who.device_id, coalesce(car_ends, 0) AS car_ends, coalesce(found, 0) AS found,
               coalesce(events, 0) AS events, coalesce(hits, 0) AS hits,
               coalesce(false_alarms, 0) AS false_alarms
        FROM who LEFT JOIN per_end USING (device_id) LEFT JOIN per_event USING (device_id)
        ORDER BY who.device_id""").to_arrow_table().to_pylist()
    con.close()
    return {**_figures(rows), "per_person": [{**r, **_figures([r])} for r in rows]}


def _figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    car_ends = sum(r["car_ends"] for r in rows)
    found = sum(r["found"] for r in rows)
    hits = sum(r["hits"] for r in rows)
    judged = hits + sum(r["false_alarms"] for r in rows)
    recall = found / car_ends if car_ends else float("nan")
    precision = hits / judged if judged else float("nan")
    if not (car_ends or judged):
        f1 = float("nan")  # nothing to find and nothing claimed
    else:  # no claim where there were car ends, or claims where there were none: F1 0
        p, r = (precision if judged else 0.0), (recall if car_ends else 0.0)
        f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return {"car_ends": car_ends, "found": found, "hits": hits,
            "false_alarms": judged - hits, "precision": precision, "recall": recall, "f1": f1}


def subset(figures: dict[str, Any], leave_out: set[str]) -> dict[str, Any]:
    """The pooled figures over every person but ``leave_out``."""
    return _figures([r for r in figures["per_person"] if r["device_id"] not in leave_out])
