"""Labels for leg ends, read from raw events only (never from the simulator's ground truth).

A vehicle-leg end is labelled by the person's own statements:

- a ``label`` event (GeoLife's labels.txt, a simulated labeller) whose span ends within
  :data:`MATCH_S` seconds and :data:`MATCH_M` metres of the leg end — positive if its mode is
  ``car``, negative for any other mode (taxi, bus, bike, subway, ...). The span end's position
  is the device's fix nearest in time to it (within :data:`MATCH_S`);
- a ``feedback`` event ("yes, I parked here" / "no") about a parking answer within the same
  distance and time; feedback, being explicit, overrides a label.

Feedback its own device's raw data contradicts is left out (:func:`feedback_checks`): a
person's word cannot put their phone where its fixes say it was not. That, the per-device cap
of the spec's ``max_labels_per_device`` and tokens that let a device speak only for itself are
the guard against poisoned labels.

Each label event labels at most one leg end at its end (the nearest in time) and each leg
end takes its nearest label. A leg end strictly inside a labelled non-car segment (before
its last :data:`MATCH_S` seconds) is a negative too: the bus or train halted there, nobody
parked. Leg ends no statement reaches stay unlabelled and out of training. Every
labelled row names the raw event behind it (``batch_no``, ``seq``) for lineage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from parkloop.store import Store

MATCH_S = 300
"""largest time between a statement and the leg end it labels, s"""
MATCH_M = 300.0
"""largest distance between them, m"""
FEEDBACK_MAX_M = 1000.0
"""feedback about a place farther than this from every fix of its device around that time
contradicts the device's own raw data, m"""
FEEDBACK_MAX_GAP_S = 600
"""feedback with no fix of its device this close in time cannot be checked, s"""

_HAVERSINE = """2 * 6371000.0 * asin(sqrt(
    pow(sin(radians({b}.lat - {a}.lat) / 2), 2) + cos(radians({a}.lat)) * cos(radians({b}.lat))
    * pow(sin(radians({b}.lon - {a}.lon) / 2), 2)))"""


_CHECKED = f"""
    SELECT fb.device_id, fb.batch_no, fb.seq, fb.parked_at_ms, fb.lat, fb.lon, fb.parked,
           CASE WHEN count(x.t_ms) = 0 THEN 'no_fix_near'
                WHEN min({_HAVERSINE.format(a="fb", b="x")}) > {FEEDBACK_MAX_M}
                THEN 'far_from_device'
                ELSE 'ok' END AS verdict
    FROM raw_feedback fb LEFT JOIN raw_fix x
      ON x.device_id = fb.device_id
     AND x.t_ms BETWEEN fb.parked_at_ms - {FEEDBACK_MAX_GAP_S * 1000}
                    AND fb.parked_at_ms + {FEEDBACK_MAX_GAP_S * 1000}
    GROUP BY ALL"""


def feedback_checks(store: Store) -> pa.Table:
    """Every feedback event (device_id, batch_no, seq, parked_at_ms, lat, lon, parked) with
    its ``verdict``: ``ok``; ``far_from_device`` (every fix of the device within
    :data:`FEEDBACK_MAX_GAP_S` of the answer's time is more than :data:`FEEDBACK_MAX_M` from
    its place); ``no_fix_near`` (no fix that close in time: it cannot be checked). Only
    ``ok`` feedback labels leg ends."""
    return store.con.sql(f"{_CHECKED} ORDER BY device_id, batch_no, seq").to_arrow_table()


def leg_end_labels(store: Store, rules_version: str) -> pa.Table:
    """One row per labelled leg end of ``rules_version``: device_id, ended_ms, parked (bool),
    mode (the stated mode, or ``feedback``), source (``label``: at a label span's end;
    ``inside``: inside a non-car span; ``feedback``), and the raw event it came from
    (batch_no, seq)."""
    win = MATCH_S * 1000
    return store.con.sql(f"""
        WITH ends AS (
            SELECT device_id, ended_ms, lat, lon FROM facts_leg_end WHERE rules_version = $rv),
        label_end AS (          -- each label span's end, placed at the nearest fix in time
            SELECT l.device_id, l.batch_no, l.seq, l.mode, l.end_ms, f.lat, f.lon
            FROM raw_label l JOIN raw_fix f
              ON f.device_id = l.device_id AND f.t_ms BETWEEN l.end_ms - {win} AND l.end_ms + {win}
            QUALIFY row_number() OVER (PARTITION BY l.device_id, l.batch_no, l.seq
                                       ORDER BY abs(f.t_ms - l.end_ms), f.t_ms, f.lat, f.lon) = 1),
        statements AS (
            SELECT device_id, batch_no, seq, mode, end_ms AS at_ms, lat, lon,
                   mode = 'car' AS parked, 'label' AS source, 1 AS rank FROM label_end
            UNION ALL
            SELECT device_id, batch_no, seq, 'feedback', parked_at_ms, lat, lon, parked,
                   'feedback', 0 FROM ({_CHECKED}) WHERE verdict = 'ok'),
        pairs AS (
            SELECT e.device_id, e.ended_ms, s.parked, s.mode, s.source, s.batch_no, s.seq,
                   s.rank, abs(e.ended_ms - s.at_ms) AS dt
            FROM ends e JOIN statements s
              ON s.device_id = e.device_id AND e.ended_ms BETWEEN s.at_ms - {win}
                                                              AND s.at_ms + {win}
            WHERE {_HAVERSINE.format(a="e", b="s")} <= {MATCH_M}),
        per_statement AS (      -- a statement labels the leg end nearest to it in time
            SELECT * FROM pairs
            QUALIFY row_number() OVER (PARTITION BY device_id, source, batch_no, seq
                                       ORDER BY dt, ended_ms) = 1),
        at_end AS (
            SELECT device_id, ended_ms, parked, mode, source, batch_no, seq FROM per_statement
            QUALIFY row_number() OVER (PARTITION BY device_id, ended_ms
                                       ORDER BY rank, dt, batch_no, seq) = 1),
        inside AS (             -- a vehicle stopping inside a bus, train, ... segment
            SELECT e.device_id, e.ended_ms, false AS parked, l.mode, 'inside' AS source,
                   l.batch_no, l.seq
            FROM ends e JOIN raw_label l
              ON l.device_id = e.device_id AND e.ended_ms > l.start_ms
                                           AND e.ended_ms < l.end_ms - {win}
            WHERE l.mode <> 'car'
              AND NOT EXISTS (SELECT 1 FROM at_end a
                              WHERE a.device_id = e.device_id AND a.ended_ms = e.ended_ms)
            QUALIFY row_number() OVER (PARTITION BY e.device_id, e.ended_ms
                                       ORDER BY l.batch_no, l.seq) = 1)
        SELECT * FROM at_end UNION ALL SELECT * FROM inside
        ORDER BY device_id, ended_ms""", params={"rv": rules_version}).to_arrow_table()
