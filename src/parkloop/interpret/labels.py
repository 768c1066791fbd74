"""Labels for leg ends, read from raw events only (never from the simulator's ground truth).

A vehicle-leg end is labelled by the person's own statements:

- a ``label`` event (GeoLife's labels.txt, a simulated labeller) whose span ends within
  :data:`MATCH_S` seconds and :data:`MATCH_M` metres of the leg end — positive if its mode is
  ``car``, negative for any other mode (taxi, bus, bike, subway, ...). The span end's position
  is the device's fix nearest in time to it (within :data:`MATCH_S`);
- a ``feedback`` event ("yes, I parked here" / "no") about a parking answer within the same
  distance and time; feedback, being explicit, overrides a label.

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

_HAVERSINE = """2 * 6371000.0 * asin(sqrt(
    pow(sin(radians({b}.lat - {a}.lat) / 2), 2) + cos(radians({a}.lat)) * cos(radians({b}.lat))
    * pow(sin(radians({b}.lon - {a}.lon) / 2), 2)))"""


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
                   'feedback', 0 FROM raw_feedback),
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
