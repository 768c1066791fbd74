"""Benchmark: the facts engine against ground truth (recall ceilings for the parking answer).

On simulated data (``parkloop simulate``, ground truth in the ``truth`` schema):

- **true stops**: a *true stay* is the time between two consecutive legs of a device (and from
  the start of the simulated period to the first leg, and from the last leg to its end). A
  true stay of 5 minutes or more is *found* when some ``facts_stop`` of the device overlaps it
  by at least half of the shorter of the two (``overlap >= 0.5 * min(stay, fact stop)``). A
  fact stop that overlaps no true stay (of any length) that way is *unmatched*. The headline
  leaves out each device's last stay (still open when the data ends: a stop is only emitted
  once the device leaves it); it is reported by kind;
- **parking recall**: share of ``truth.parking`` rows with a ``facts_leg_end`` of the device
  within 60 s of ``parked_at_ms`` and 50 m (haversine) of the car; also at 120 s / 100 m and
  300 s / 300 m to show the shape;
- **spurious leg ends**: share of ``facts_leg_end`` rows with no true vehicle-leg end (mode car,
  taxi, bus or motorcycle) within 60 s and 50 m; matched leg ends are broken down by the mode
  of the true leg they match, and the share of true taxi and bus ends that became leg ends is
  given too (the hard negatives the parking interpreter must reject).

On GeoLife (``geolife-dev.zip``): for each labelled ``car`` segment (``raw_label``), its end
position is the device's raw fix nearest in time to ``end_ms``; the end is *found* when a
``facts_leg_end`` of the device lies within 5 minutes and 300 m of it. The same for ``taxi``.
Also given: the recall over *observable* ends (a fix within 5 min / 60 s of the label end;
others cannot be found by any engine), and a recall that also counts the last vehicle-leg end
inside the label when the device went on at walking pace to the label end (volunteers often
label the walk from the parked car as part of the car segment). Misses are sorted by cause.

The target for every recall here is >= 97 %. Prints a markdown table, samples of misses
(``--misses N``) with what the engine did around them, and one JSON line with every figure.
No truth table is read by the engine; only this script joins facts with truth.

    python bench/facts_quality.py                                  # default scenario + GeoLife
    python bench/facts_quality.py --scenario default shifted --no-geolife
    python bench/facts_quality.py --rules v1 mytry --rules-file /tmp/mytry.toml --work /tmp/fq
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb

from parkloop.facts.build import build
from parkloop.facts.rules import load_rules
from parkloop.raw.geolife import import_geolife
from parkloop.simulate import SCENARIOS, simulate
from parkloop.store import Store

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "geolife"
SIM_START = date(2025, 3, 3)
SIM_TZ = timezone(timedelta(hours=1))  # the simulated city keeps UTC+1 (docs/simulator.md)
VEHICLE_MODES = ("car", "taxi", "bus", "motorcycle")
STOP_MIN_MS = 300_000
SIM_TOLERANCES = ((60, 50), (120, 100), (300, 300))   # (s, m); the first is the headline
GEO_TOLERANCES = ((300, 300), (120, 100), (600, 500))
TARGET = 0.97
WALK_ON_MPS = 2.0       # GeoLife: from the leg end to the label end no faster than walking:
WALK_ON_MAX_S = 1800    # the label likely includes the walk from the parked car
MOVED_ON_MPS = 3.0      # GeoLife: from the label end to a later leg end at least this fast

MACROS = """
CREATE OR REPLACE TEMP MACRO hav_m(lat1, lon1, lat2, lon2) AS
    2 * 6371000.0 * asin(sqrt(least(1.0,
        pow(sin(radians(lat2 - lat1) / 2), 2)
        + cos(radians(lat1)) * cos(radians(lat2)) * pow(sin(radians(lon2 - lon1) / 2), 2))));
"""


# --------------------------------------------------------------------------------- helpers


def nearest_vehicle_leg(points: str, vlegs: str, start_col: str) -> str:
    """SQL: per point (pid, t_ms, lat, lon), the vehicle legs overlapping its span (from
    ``start_col`` to t_ms) and the time and distance to the one ending nearest in time."""
    return f"""
            SELECT p.pid, count(v.started_ms) AS n_vleg,
                   arg_min((v.finished_ms - p.t_ms) / 1000.0, abs(v.finished_ms - p.t_ms))
                       AS vleg_dt_s,
                   arg_min(hav_m(p.lat, p.lon, v.end_lat, v.end_lon),
                           abs(v.finished_ms - p.t_ms)) AS vleg_d_m
            FROM {points} p LEFT JOIN {vlegs} v ON v.device_id = p.device_id
             AND v.started_ms < p.t_ms AND v.finished_ms > p.{start_col}
            GROUP BY p.pid"""

def q(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    return con.execute(sql, params or []).fetchall()


def one(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> Any:
    return q(con, sql, params)[0][0]


def share(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def tol_key(s: int, m: int) -> str:
    return f"{s}s_{m}m"


def match_points(con: duckdb.DuckDBPyConnection, points: str, ends: str, out: str,
                 tolerances: tuple[tuple[int, int], ...], window_s: int = 900) -> None:
    """For every row of ``points`` (pid, device_id, t_ms, lat, lon): whether some row of
    ``ends`` (device_id, ended_ms, lat, lon) lies within each tolerance, and the end nearest in
    time within ``window_s`` (its signed dt in s and distance in m). Written to table ``out``."""
    flags = ", ".join(
        f"coalesce(bool_or(abs(e.ended_ms - p.t_ms) <= {s * 1000} AND "
        f"hav_m(p.lat, p.lon, e.lat, e.lon) <= {m}), false) AS hit_{tol_key(s, m)}"
        for s, m in tolerances)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {out} AS
        SELECT p.pid, {flags},
               arg_min((e.ended_ms - p.t_ms) / 1000.0, abs(e.ended_ms - p.t_ms)) AS near_dt_s,
               arg_min(hav_m(p.lat, p.lon, e.lat, e.lon), abs(e.ended_ms - p.t_ms))
                   AS near_d_m,
               min(hav_m(p.lat, p.lon, e.lat, e.lon)) AS min_d_m
        FROM {points} p LEFT JOIN {ends} e
          ON e.device_id = p.device_id AND abs(e.ended_ms - p.t_ms) <= {window_s * 1000}
        GROUP BY p.pid""")


def markdown(headers: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join("" if v is None else str(v) for v in r) + " |" for r in rows]
    return "\n".join(out)


def fmt_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


# ------------------------------------------------------------------------------ the stores

def sim_store(work: Path, scenario: str, devices: int, days: int, seed: int
              ) -> tuple[Store, float | None]:
    """A store with the simulation; reused (not simulated again) if ``work`` already has it."""
    path = work / f"sim-{scenario}-d{devices}-n{days}-s{seed}"
    store = Store.create(path)
    have = one(store.con, """SELECT count(*) FROM information_schema.tables
                             WHERE table_schema = 'truth' AND table_name = 'devices'""")
    if have and one(store.con, "SELECT count(*) FROM truth.devices WHERE scenario = ? AND "
                    "seed = ?", [scenario, seed]) == devices:
        return store, None
    start = time.perf_counter()
    simulate(store, devices=devices, days=days, seed=seed, scenario=scenario, start=SIM_START)
    return store, time.perf_counter() - start


def geolife_store(path: Path, zip_path: Path) -> tuple[Store, float | None]:
    store = Store.create(path)
    if one(store.con, "SELECT count(*) FROM raw_label") > 0:
        return store, None
    start = time.perf_counter()
    import_geolife(store, zip_path)
    return store, time.perf_counter() - start


def build_rules(store: Store, name: str, rules_files: dict[str, Path]) -> tuple[str, float]:
    if name in rules_files:
        folder = store.path / "rules"
        folder.mkdir(exist_ok=True)
        shutil.copyfile(rules_files[name], folder / f"{name}.toml")
    rules = load_rules(name, store.path)
    start = time.perf_counter()
    build(store, rules)
    return rules.identity, time.perf_counter() - start


# ------------------------------------------------------------------------- simulated data

def sim_metrics(con: duckdb.DuckDBPyConnection, identity: str, scenario: str, seed: int,
                days: int, n_misses: int) -> tuple[dict[str, Any], list[str]]:
    """Every figure on one simulated store, and markdown samples of misses."""
    p0 = int(datetime(SIM_START.year, SIM_START.month, SIM_START.day,
                      tzinfo=SIM_TZ).timestamp() * 1000)
    p1 = p0 + days * 86_400_000
    con.execute(MACROS)
    con.execute("""CREATE OR REPLACE TEMP TABLE q_dev AS SELECT * FROM truth.devices
                   WHERE scenario = ? AND seed = ?""", [scenario, seed])
    con.execute("""CREATE OR REPLACE TEMP TABLE q_leg AS SELECT * FROM truth.legs
                   WHERE device_id IN (SELECT device_id FROM q_dev)""")
    for name, table, extra in (("q_stop", "facts_stop", ""),
                               ("q_end", "facts_leg_end", ""),
                               ("q_vleg", "facts_leg", "AND mode = 'vehicle'")):
        con.execute(f"""CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {table}
                        WHERE rules_version = ? {extra}
                          AND device_id IN (SELECT device_id FROM q_dev)""", [identity])
    fig: dict[str, Any] = {}
    samples: list[str] = []

    # --- true stays and fact stops
    con.execute("""
        CREATE OR REPLACE TEMP TABLE q_stay AS
        WITH l AS (SELECT device_id, leg_no, mode, start_ms, end_ms,
                          lag(end_ms) OVER w AS prev_end, lag(mode) OVER w AS prev_mode,
                          lead(leg_no) OVER w AS next_no
                   FROM q_leg WINDOW w AS (PARTITION BY device_id ORDER BY leg_no)),
        s AS (SELECT device_id, coalesce(prev_end, $p0) AS start_ms, start_ms AS end_ms,
                     coalesce(prev_mode, '-') AS before, mode AS after FROM l
              UNION ALL SELECT device_id, end_ms, $p1, mode, '-' FROM l WHERE next_no IS NULL
              UNION ALL SELECT device_id, $p0, $p1, '-', '-' FROM q_dev
                        WHERE device_id NOT IN (SELECT device_id FROM q_leg))
        SELECT row_number() OVER (ORDER BY device_id, start_ms) AS sid, *,
               end_ms - start_ms AS dur_ms,
               CASE WHEN after IN ('bus', 'taxi') THEN 'wait for ' || after
                    WHEN after = '-' THEN 'last stay (still open when the data ends)'
                    WHEN before = '-' THEN 'first stay (from the period start)'
                    ELSE 'at destination' END AS kind
        FROM s WHERE end_ms > start_ms""", {"p0": p0, "p1": p1})
    con.execute("""
        CREATE OR REPLACE TEMP TABLE q_stay_pair AS
        SELECT s.sid, f.device_id, f.started_ms, s.dur_ms,
               least(s.end_ms, f.finished_ms) - greatest(s.start_ms, f.started_ms) AS ov,
               f.finished_ms - f.started_ms AS f_dur
        FROM q_stay s JOIN q_stop f ON f.device_id = s.device_id
         AND f.started_ms < s.end_ms AND f.finished_ms > s.start_ms""")
    good = "ov >= 0.5 * least(dur_ms, f_dur)"
    found = f"sid IN (SELECT sid FROM q_stay_pair WHERE {good})"
    # the last stay of each device has not ended when the data ends: a stop is emitted when
    # the device leaves it, so the headline leaves it out (it is counted in by_kind)
    n_true, n_found = q(con, f"""
        SELECT count(*), count(*) FILTER (WHERE {found}) FROM q_stay
        WHERE dur_ms >= {STOP_MIN_MS} AND after <> '-'""")[0]
    fig["true_stops_5min"] = n_true
    fig["stop_recall"] = share(n_found, n_true)
    fig["stop_recall_by_kind"] = {k: {"n": n, "recall": share(f, n)} for k, n, f in q(con, f"""
        SELECT kind, count(*), count(*) FILTER (WHERE sid IN (SELECT sid FROM q_stay_pair
                                                             WHERE {good}))
        FROM q_stay WHERE dur_ms >= {STOP_MIN_MS} GROUP BY kind ORDER BY kind""")}
    fig["stop_recall_by_duration"] = {k: {"n": n, "recall": share(f, n)} for k, n, f in q(
        con, f"""
        SELECT CASE WHEN dur_ms < 600000 THEN '5-10 min' WHEN dur_ms < 1800000
                    THEN '10-30 min' ELSE '30+ min' END AS b, count(*),
               count(*) FILTER (WHERE sid IN (SELECT sid FROM q_stay_pair WHERE {good}))
        FROM q_stay WHERE dur_ms >= {STOP_MIN_MS} GROUP BY b ORDER BY b""")}
    if n_misses:
        rel = con.sql(f"""
            WITH miss AS (SELECT * FROM q_stay WHERE dur_ms >= {STOP_MIN_MS} AND NOT {found}),
            fx AS (SELECT m.sid, count(f.t_ms) AS n_fixes,
                          max(f.t_ms - f.prev_ms) / 60000.0 AS max_gap_min,
                          max(f.accuracy_m) AS max_acc_m
                   FROM miss m LEFT JOIN (SELECT device_id, t_ms, accuracy_m, lag(t_ms) OVER
                                          (PARTITION BY device_id ORDER BY t_ms) AS prev_ms
                                          FROM raw_fix) f
                     ON f.device_id = m.device_id AND f.t_ms BETWEEN m.start_ms AND m.end_ms
                   GROUP BY m.sid)
            SELECT m.device_id, m.start_ms, round(m.dur_ms / 60000.0, 1) AS stay_min, m.kind,
                   d.moving_interval_s, fx.n_fixes, round(fx.max_gap_min, 1) AS max_gap_min,
                   fx.max_acc_m,
                   (SELECT count(*) FROM q_stay_pair p WHERE p.sid = m.sid) AS fact_stops_over
            FROM miss m JOIN fx USING (sid) JOIN q_dev d USING (device_id)
            ORDER BY m.kind, m.device_id, m.start_ms LIMIT {n_misses}""")
        rows = [list(r) for r in rel.fetchall()]
        for r in rows:
            r[1] = fmt_ms(r[1])
        samples.append(f"missed true stays (>= 5 min), {scenario}:\n\n"
                       + markdown(rel.columns, rows))
    n_fact, n_unmatched = q(con, f"""
        SELECT count(*), count(*) FILTER (WHERE (device_id, started_ms) NOT IN
            (SELECT (device_id, started_ms) FROM q_stay_pair WHERE {good}))
        FROM q_stop""")[0]
    fig["fact_stops"] = n_fact
    fig["fact_stops_unmatched"] = share(n_unmatched, n_fact)
    # what unmatched fact stops were, by the true leg they overlap most
    fig["fact_stops_unmatched_by_true_mode"] = dict(q(con, f"""
        WITH u AS (SELECT * FROM q_stop WHERE (device_id, started_ms) NOT IN
                   (SELECT (device_id, started_ms) FROM q_stay_pair WHERE {good}))
        SELECT coalesce(m, 'stay < 5 min'), count(*) FROM (
            SELECT u.device_id, u.started_ms, arg_max(l.mode,
                   least(u.finished_ms, l.end_ms) - greatest(u.started_ms, l.start_ms)) AS m
            FROM u LEFT JOIN q_leg l ON l.device_id = u.device_id
             AND l.start_ms < u.finished_ms AND l.end_ms > u.started_ms
            GROUP BY ALL) GROUP BY ALL ORDER BY 2 DESC"""))

    # --- parking recall
    con.execute("""
        CREATE OR REPLACE TEMP TABLE q_park AS
        SELECT row_number() OVER (ORDER BY p.device_id, p.parked_at_ms) AS pid, p.device_id,
               p.leg_no, p.parked_at_ms AS t_ms, p.lat, p.lon, l.start_ms AS leg_start_ms
        FROM truth.parking p JOIN q_leg l USING (device_id, leg_no)""")
    match_points(con, "q_park", "q_end", "q_park_hit", SIM_TOLERANCES)
    n_park = one(con, "SELECT count(*) FROM q_park")
    fig["parking_events"] = n_park
    for s, m in SIM_TOLERANCES:
        fig[f"parking_recall_{tol_key(s, m)}"] = share(one(
            con, f"SELECT count(*) FROM q_park_hit WHERE hit_{tol_key(s, m)}"), n_park)
    h = tol_key(*SIM_TOLERANCES[0])
    fig["parking_recall_by_moving_interval_s"] = {
        f"{iv:g} s": {"n": n, "recall": share(k, n)} for iv, n, k in q(con, f"""
            SELECT d.moving_interval_s, count(*), count(*) FILTER (WHERE hit_{h})
            FROM q_park JOIN q_park_hit USING (pid) JOIN q_dev d USING (device_id)
            GROUP BY ALL ORDER BY 1""")}
    # why parking events were missed (at the headline tolerance)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE q_park_miss AS
        WITH v AS ({nearest_vehicle_leg("q_park", "q_vleg", "leg_start_ms")}),
        fx AS (
            SELECT p.pid, count(f.t_ms) AS fixes_2min,
                   max(f.t_ms) FILTER (WHERE f.t_ms <= p.t_ms) AS last_before,
                   min(f.t_ms) FILTER (WHERE f.t_ms > p.t_ms) AS first_after
            FROM q_park p LEFT JOIN raw_fix f ON f.device_id = p.device_id
             AND f.t_ms BETWEEN p.t_ms - 120000 AND p.t_ms + 120000
            GROUP BY p.pid)
        SELECT p.pid, p.device_id, p.leg_no, p.t_ms, d.moving_interval_s,
               round(d.noise_sigma_m, 1) AS noise_m, d.vehicle_link,
               round((p.t_ms - p.leg_start_ms) / 60000.0, 1) AS drive_min,
               v.n_vleg, round(v.vleg_dt_s) AS vleg_dt_s, round(v.vleg_d_m) AS vleg_d_m,
               round(hh.near_dt_s) AS end_dt_s, round(hh.near_d_m) AS end_d_m,
               fx.fixes_2min, round((p.t_ms - fx.last_before) / 1000.0) AS fix_before_s,
               round((fx.first_after - p.t_ms) / 1000.0) AS fix_after_s,
               CASE WHEN v.n_vleg = 0 THEN 'no vehicle leg over the drive'
                    WHEN abs(v.vleg_dt_s) <= {SIM_TOLERANCES[0][0]}
                         THEN 'leg end at the right time, too far'
                    WHEN v.vleg_dt_s < 0 AND v.vleg_d_m <= {SIM_TOLERANCES[0][1]}
                         THEN 'leg ends early, near the spot (car stood there, crept on)'
                    WHEN v.vleg_dt_s < 0 THEN 'leg ends early'
                    ELSE 'leg ends late' END AS why
        FROM q_park p JOIN q_park_hit hh USING (pid) JOIN v USING (pid) JOIN fx USING (pid)
        JOIN q_dev d USING (device_id)
        WHERE NOT hh.hit_{h}""")
    fig[f"parking_misses_{h}_by_cause"] = dict(q(con, """
        SELECT why, count(*) FROM q_park_miss GROUP BY why ORDER BY 2 DESC"""))
    if n_misses:
        rel = con.sql(f"""SELECT * EXCLUDE (pid) FROM q_park_miss ORDER BY why, device_id, t_ms
                          LIMIT {n_misses}""")
        rows = [list(r) for r in rel.fetchall()]
        for r in rows:
            r[2] = fmt_ms(r[2])
        samples.append(f"missed parking events ({h}), {scenario}:\n\n"
                       + markdown(rel.columns, rows))

    # --- spurious leg ends, and what true vehicle ends became leg ends
    modes = ", ".join(f"'{m}'" for m in VEHICLE_MODES)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE q_vend AS
        SELECT row_number() OVER (ORDER BY device_id, end_ms) AS pid, device_id, leg_no, mode,
               end_ms AS t_ms, end_lat AS lat, end_lon AS lon
        FROM q_leg WHERE mode IN ({modes})""")
    match_points(con, "q_vend", "q_end", "q_vend_hit", SIM_TOLERANCES[:1])
    fig["true_vehicle_end_recall_by_mode"] = {m: {"n": n, "recall": share(k, n)} for m, n, k in q(
        con, f"""SELECT mode, count(*), count(*) FILTER (WHERE hit_{h})
                 FROM q_vend JOIN q_vend_hit USING (pid) GROUP BY mode ORDER BY mode""")}
    s0, m0 = SIM_TOLERANCES[0]
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE q_end_cls AS
        WITH m AS (
            SELECT e.device_id, e.ended_ms,
                   arg_min(v.mode, abs(v.t_ms - e.ended_ms)) FILTER (
                       WHERE abs(v.t_ms - e.ended_ms) <= {s0 * 1000}
                         AND hav_m(v.lat, v.lon, e.lat, e.lon) <= {m0}) AS mode,
                   bool_or(abs(v.t_ms - e.ended_ms) <= 120000
                           AND hav_m(v.lat, v.lon, e.lat, e.lon) <= 100) AS near
            FROM q_end e LEFT JOIN q_vend v ON v.device_id = e.device_id
             AND abs(v.t_ms - e.ended_ms) <= 600000
            GROUP BY ALL),
        inside AS (
            SELECT e.device_id, e.ended_ms, arg_max(l.mode, l.end_ms) AS cur
            FROM q_end e JOIN q_leg l ON l.device_id = e.device_id
             AND e.ended_ms BETWEEN l.start_ms AND l.end_ms GROUP BY ALL)
        SELECT m.*, CASE WHEN m.mode IS NOT NULL THEN m.mode
                         WHEN m.near THEN 'none: within 120 s / 100 m of a vehicle end'
                         WHEN i.cur IS NOT NULL THEN 'none: during a ' || i.cur || ' leg'
                         ELSE 'none: during a stay' END AS cls
        FROM m LEFT JOIN inside i USING (device_id, ended_ms)""")
    n_end = one(con, "SELECT count(*) FROM q_end")
    fig["leg_ends"] = n_end
    fig[f"leg_ends_spurious_{h}"] = share(one(
        con, "SELECT count(*) FROM q_end_cls WHERE mode IS NULL"), n_end)
    fig["leg_ends_by_true_mode"] = dict(q(con, """
        SELECT cls, count(*) FROM q_end_cls GROUP BY cls ORDER BY 2 DESC"""))
    return fig, samples


# -------------------------------------------------------------------------------- GeoLife

def geolife_metrics(con: duckdb.DuckDBPyConnection, identity: str, n_misses: int
                    ) -> tuple[dict[str, Any], list[str]]:
    con.execute(MACROS)
    con.execute("""CREATE OR REPLACE TEMP TABLE g_end AS SELECT * FROM facts_leg_end
                   WHERE rules_version = ?""", [identity])
    con.execute("""CREATE OR REPLACE TEMP TABLE g_vleg AS SELECT * FROM facts_leg
                   WHERE rules_version = ? AND mode = 'vehicle'""", [identity])
    con.execute("""
        CREATE OR REPLACE TEMP TABLE g_lab AS
        SELECT row_number() OVER (ORDER BY device_id, end_ms, start_ms, mode) AS pid, *
        FROM (SELECT DISTINCT device_id, start_ms, end_ms, mode FROM raw_label
              WHERE mode IN ('car', 'taxi'))""")
    # the end position: the raw fix nearest in time to end_ms (before or after it)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE g_pt AS
        WITH b AS (SELECT l.pid, f.t_ms, f.lat, f.lon FROM g_lab l ASOF JOIN raw_fix f
                   ON l.device_id = f.device_id AND l.end_ms >= f.t_ms),
             a AS (SELECT l.pid, f.t_ms, f.lat, f.lon FROM g_lab l ASOF JOIN raw_fix f
                   ON l.device_id = f.device_id AND l.end_ms <= f.t_ms)
        SELECT l.pid, l.device_id, l.mode, l.start_ms, l.end_ms AS t_ms,
               CASE WHEN a.t_ms IS NULL OR (b.t_ms IS NOT NULL
                         AND l.end_ms - b.t_ms <= a.t_ms - l.end_ms) THEN b.lat ELSE a.lat
               END AS lat,
               CASE WHEN a.t_ms IS NULL OR (b.t_ms IS NOT NULL
                         AND l.end_ms - b.t_ms <= a.t_ms - l.end_ms) THEN b.lon ELSE a.lon
               END AS lon,
               least(coalesce(l.end_ms - b.t_ms, 9e18), coalesce(a.t_ms - l.end_ms, 9e18))
                   / 1000.0 AS fix_dt_s
        FROM g_lab l LEFT JOIN b USING (pid) LEFT JOIN a USING (pid)""")
    match_points(con, "g_pt", "g_end", "g_hit", GEO_TOLERANCES, window_s=1800)
    fig: dict[str, Any] = {}
    samples: list[str] = []
    h = tol_key(*GEO_TOLERANCES[0])
    for mode in ("car", "taxi"):
        n, *hits = q(con, f"""
            SELECT count(*), {', '.join(f'count(*) FILTER (WHERE hit_{tol_key(s, m)})'
                                        for s, m in GEO_TOLERANCES)}
            FROM g_pt JOIN g_hit USING (pid) WHERE mode = ?""", [mode])[0]
        fig[f"{mode}_ends"] = n
        for (s, m), k in zip(GEO_TOLERANCES, hits, strict=True):
            fig[f"{mode}_end_recall_{tol_key(s, m)}"] = share(k, n)
        for within in (300, 60):   # ends the fixes can show at all: a fix near the end
            n_cov, k_cov = q(con, f"""SELECT count(*), count(*) FILTER (WHERE hit_{h})
                                      FROM g_pt JOIN g_hit USING (pid)
                                      WHERE mode = ? AND fix_dt_s <= {within}""", [mode])[0]
            fig[f"{mode}_ends_with_fix_within_{within}s"] = n_cov
            fig[f"{mode}_end_recall_{h}_fix_within_{within}s"] = share(k_cov, n_cov)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE g_miss AS
        WITH v AS ({nearest_vehicle_leg("g_pt", "g_vleg", "start_ms")}),
        fx AS (
            SELECT p.pid, count(f.t_ms) AS fixes_last_5min,
                   median(f.step_ms) / 1000.0 AS median_step_s
            FROM g_pt p LEFT JOIN (SELECT device_id, t_ms, t_ms - lag(t_ms) OVER
                                   (PARTITION BY device_id ORDER BY t_ms) AS step_ms
                                   FROM raw_fix WHERE device_id IN
                                   (SELECT device_id FROM g_pt)) f
              ON f.device_id = p.device_id AND f.t_ms BETWEEN p.t_ms - 300000 AND p.t_ms
            GROUP BY p.pid),
        st AS (
            SELECT p.pid, bool_or(s.started_ms IS NOT NULL) AS in_stop
            FROM g_pt p LEFT JOIN facts_stop s ON s.rules_version = '{identity}'
             AND s.device_id = p.device_id AND p.t_ms BETWEEN s.started_ms AND s.finished_ms
            GROUP BY p.pid)
        SELECT p.pid, p.device_id, p.mode, p.t_ms AS label_end,
               round((p.t_ms - p.start_ms) / 60000.0, 1) AS label_min, p.fix_dt_s,
               v.n_vleg, round(v.vleg_dt_s) AS vleg_dt_s, round(v.vleg_d_m) AS vleg_d_m,
               round(hh.near_dt_s) AS end_dt_s, round(hh.near_d_m) AS end_d_m,
               fx.fixes_last_5min, fx.median_step_s, st.in_stop,
               CASE WHEN p.fix_dt_s > 300 THEN 'no fix within 5 min of the label end'
                    WHEN v.n_vleg = 0 THEN 'no vehicle leg over the segment'
                    WHEN v.vleg_dt_s > 0 AND v.vleg_dt_s <= {GEO_TOLERANCES[0][0]}
                         AND v.vleg_d_m / greatest(v.vleg_dt_s, 1) >= {MOVED_ON_MPS}
                         THEN 'vehicle moved on past the label end (leg end within 5 min)'
                    WHEN abs(v.vleg_dt_s) <= {GEO_TOLERANCES[0][0]}
                         THEN 'leg end at the right time, too far'
                    WHEN v.vleg_dt_s < 0 AND v.vleg_d_m / -v.vleg_dt_s <= {WALK_ON_MPS}
                         THEN 'leg ends early, then walking pace to the label end'
                    WHEN v.vleg_dt_s < 0 THEN 'leg ends early'
                    WHEN v.vleg_d_m / v.vleg_dt_s >= {MOVED_ON_MPS}
                         THEN 'vehicle moved on past the label end'
                    ELSE 'leg ends late' END AS why,
               coalesce(v.vleg_dt_s < 0 AND v.vleg_dt_s >= -{WALK_ON_MAX_S}
                        AND v.vleg_d_m / -v.vleg_dt_s <= {WALK_ON_MPS}, false) AS walked_on
        FROM g_pt p JOIN g_hit hh USING (pid) JOIN v USING (pid) JOIN fx USING (pid)
        JOIN st USING (pid)
        WHERE NOT hh.hit_{h}""")
    for mode in ("car", "taxi"):
        n, k = q(con, f"""SELECT count(*), count(*) FILTER (WHERE hit_{h} OR coalesce(
                                m.walked_on, false))
                           FROM g_pt JOIN g_hit USING (pid) LEFT JOIN g_miss m USING (pid)
                           WHERE g_pt.mode = ?""", [mode])[0]
        fig[f"{mode}_end_recall_{h}_or_walked_on"] = share(k, n)
        fig[f"{mode}_misses_{h}_by_cause"] = dict(q(con, """
            SELECT why, count(*) FROM g_miss WHERE mode = ? GROUP BY why ORDER BY 2 DESC""",
                                                   [mode]))
    if n_misses:
        rel = con.sql(f"""SELECT * EXCLUDE (pid, mode) FROM g_miss WHERE mode = 'car'
                          ORDER BY why, device_id, label_end LIMIT {n_misses}""")
        rows = [list(r) for r in rel.fetchall()]
        for r in rows:
            r[1] = fmt_ms(r[1])
        samples.append(f"missed GeoLife car ends ({h}):\n\n" + markdown(rel.columns, rows))
    return fig, samples


# ---------------------------------------------------------------------------------- report

SIM_ROWS = [
    ("true stops >= 5 min (not counting the last, still open one)", "true_stops_5min", None),
    ("stop recall (overlap >= 50 % of the shorter)", "stop_recall", "pct"),
    ("fact stops", "fact_stops", None),
    ("fact stops matching no true stay", "fact_stops_unmatched", "pct"),
    ("parking events", "parking_events", None),
    *((f"parking recall {s} s / {m} m", f"parking_recall_{tol_key(s, m)}", "pct")
      for s, m in SIM_TOLERANCES),
    ("vehicle leg ends", "leg_ends", None),
    ("spurious leg ends (no vehicle end within 60 s / 50 m)", "leg_ends_spurious_60s_50m",
     "pct"),
]
GEO_ROWS = [
    ("car segment ends", "car_ends", None),
    *((f"car end recall {s // 60} min / {m} m", f"car_end_recall_{tol_key(s, m)}", "pct")
      for s, m in GEO_TOLERANCES),
    ("car ends with a fix within 5 min of the end (observable)",
     "car_ends_with_fix_within_300s", None),
    ("car end recall 5 min / 300 m, observable ends",
     "car_end_recall_300s_300m_fix_within_300s", "pct"),
    ("car end recall 5 min / 300 m, fix within 60 s of the end",
     "car_end_recall_300s_300m_fix_within_60s", "pct"),
    ("car end recall 5 min / 300 m, or the last vehicle-leg end before a walking-pace "
     "finish of the label (<= 2 m/s, <= 30 min)", "car_end_recall_300s_300m_or_walked_on",
     "pct"),
    ("taxi segment ends", "taxi_ends", None),
    ("taxi end recall 5 min / 300 m (hard negatives as leg ends)",
     "taxi_end_recall_300s_300m", "pct"),
]


def table(runs: list[dict[str, Any]]) -> str:
    headers = ["figure"] + [f"{r['data']} · {r['rules']}" for r in runs]
    rows: list[list[Any]] = []
    for label, key, kind in SIM_ROWS + GEO_ROWS:
        if not any(key in r["figures"] for r in runs):
            continue
        cells = []
        for r in runs:
            v = r["figures"].get(key)
            cells.append("" if key not in r["figures"] else pct(v) if kind == "pct"
                         else f"{v:,}")
        rows.append([label, *cells])
    for key, label in (("true_vehicle_end_recall_by_mode",
                        "true {} ends that became leg ends"),):
        modes = sorted({m for r in runs for m in r["figures"].get(key, {})})
        for m in modes:
            rows.append([label.format(m)] + [
                (lambda d: f"{pct(d['recall'])} of {d['n']}" if d else "")(
                    r["figures"].get(key, {}).get(m)) for r in runs])
    for key in ("prepare_s", "build_s", "measure_s"):
        rows.append([key.replace("_s", " (s)")] + [
            "reused" if r["timings"].get(key) is None else f"{r['timings'][key]:.1f}"
            for r in runs])
    return markdown(headers, rows)


def breakdowns(runs: list[dict[str, Any]]) -> str:
    out = []
    for r in runs:
        for key, v in r["figures"].items():
            if isinstance(v, dict) and key != "true_vehicle_end_recall_by_mode":
                items = ", ".join(
                    f"{k}: {pct(x['recall'])} of {x['n']}" if isinstance(x, dict) else f"{k}: {x}"
                    for k, x in v.items())
                out.append(f"- {r['data']} · {r['rules']} · {key}: {items}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], epilog="Figures are recall ceilings for the "
        "parking answer; the target is >= 97 %.")
    parser.add_argument("--rules", nargs="+", default=["v1"],
                        help="rules versions to measure (default: v1)")
    parser.add_argument("--rules-file", type=Path, action="append", default=[],
                        help="a rules TOML to try, copied into each store's rules/ folder "
                        "under its file name (repeatable; add its name to --rules)")
    parser.add_argument("--devices", type=int, default=20, help="simulated devices (20)")
    parser.add_argument("--days", type=int, default=7, help="simulated days (7)")
    parser.add_argument("--seed", type=int, default=1, help="simulation seed (1)")
    parser.add_argument("--scenario", nargs="*", default=["default"],
                        choices=sorted(SCENARIOS),
                        help="simulated scenarios to measure (default: default; none: skip)")
    parser.add_argument("--geolife", type=Path, default=DATA / "geolife-dev.zip",
                        help="GeoLife zip (default: ../shared/data/geolife/geolife-dev.zip)")
    parser.add_argument("--no-geolife", action="store_true", help="skip GeoLife")
    parser.add_argument("--geolife-store", type=Path,
                        help="store holding the GeoLife import (imported if empty); "
                        "default: one under --work")
    parser.add_argument("--work", type=Path,
                        help="keep the stores in this folder and reuse them on the next run "
                        "(default: a temporary folder, removed at the end)")
    parser.add_argument("--misses", type=int, default=0, metavar="N",
                        help="print up to N missed parking events / GeoLife car ends per run")
    args = parser.parse_args(argv)
    rules_files = {p.stem: p for p in args.rules_file}
    for p in args.rules_file:
        if not p.is_file():
            parser.error(f"--rules-file {p}: not found")

    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="parkloop-facts-quality-")
        work = Path(tmp.name)
    else:
        work = args.work
        work.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    samples: list[str] = []
    try:
        for scenario in args.scenario:
            store, sim_s = sim_store(work, scenario, args.devices, args.days, args.seed)
            with store:
                for name in args.rules:
                    identity, build_s = build_rules(store, name, rules_files)
                    start = time.perf_counter()
                    fig, smp = sim_metrics(store.con, identity, scenario, args.seed, args.days,
                                           args.misses)
                    samples += [f"{identity}, {s}" for s in smp]
                    runs.append({"data": f"sim-{scenario}", "rules": identity, "figures": fig,
                                 "timings": {"prepare_s": sim_s, "build_s": build_s,
                                             "measure_s": time.perf_counter() - start}})
                    sim_s = None
                    print(f"measured sim-{scenario} {identity}", file=sys.stderr)
        if not args.no_geolife:
            if not args.geolife.is_file():
                print(f"skipped GeoLife: {args.geolife} not found", file=sys.stderr)
            else:
                path = args.geolife_store or work / f"geolife-{args.geolife.stem}"
                store, imp_s = geolife_store(path, args.geolife)
                with store:
                    for name in args.rules:
                        identity, build_s = build_rules(store, name, rules_files)
                        start = time.perf_counter()
                        fig, smp = geolife_metrics(store.con, identity, args.misses)
                        samples += [f"{identity}, {s}" for s in smp]
                        runs.append({"data": args.geolife.stem, "rules": identity,
                                     "figures": fig,
                                     "timings": {"prepare_s": imp_s, "build_s": build_s,
                                                 "measure_s": time.perf_counter() - start}})
                        imp_s = None
                        print(f"measured {args.geolife.stem} {identity}", file=sys.stderr)
    finally:
        if tmp is not None:
            tmp.cleanup()

    print(table(runs))
    print()
    print(breakdowns(runs))
    for s in samples:
        print()
        print(s)
    print()
    for r in runs:
        r["timings"] = {k: None if v is None else round(v, 2) for k, v in r["timings"].items()}
    print(json.dumps({"bench": "facts_quality", "devices": args.devices, "days": args.days,
                      "seed": args.seed, "target": TARGET, "runs": runs}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
