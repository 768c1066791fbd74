"""Incremental facts: a per-device engine that takes events as they arrive.

It keeps the device's fixes from its *restart point* on: the start of a stop old enough that
nothing arriving later can change what lies before it (every step restarts cleanly at a stop:
the stop kernel's anchor, trips and legs, the place state). Each push reruns
:func:`~parkloop.facts.pipeline.device_facts` on that tail and returns the facts that became
final, plus the ones still open (provisional). A fact is final once its end plus the rules'
horizon lies before the watermark (newest fix seen minus the allowed lateness); fixes older than
that on arrival are late and ignored, exactly as the batch build ignores them.

Fed the same events in any chunking, and in any order within the allowed lateness, the final
facts after :meth:`DeviceStream.flush` equal the batch build's, row for row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from parkloop.facts.drives import DriveHistory
from parkloop.facts.features import Signals
from parkloop.facts.pipeline import Fixes, device_facts
from parkloop.facts.places import PlaceState, assign
from parkloop.facts.rules import RulesVersion
from parkloop.facts.tables import SCHEMAS

END = {"facts_stop": "finished_ms", "facts_trip": "finished_ms", "facts_leg": "finished_ms",
       "facts_leg_end": "decided_ms"}
"""When a row of each table stops depending on new data (plus the rules' horizon)."""
KEY = {"facts_stop": "started_ms", "facts_trip": "started_ms", "facts_leg": "started_ms",
       "facts_leg_end": "ended_ms"}
NEVER = np.iinfo(np.int64).min


@dataclass(frozen=True)
class Update:
    """What one push produced: newly final rows, and the open (provisional) ones."""

    final: dict[str, pa.Table]
    provisional: dict[str, pa.Table]


class DeviceStream:
    """Incremental facts of one device under one rules version."""

    def __init__(self, device_id: str, rules: RulesVersion) -> None:
        self.device_id = device_id
        self.rules = rules
        p = rules.params
        self._lateness = int(p.order.allowed_lateness_s * 1000)
        self._horizon = rules.horizon_ms
        self._fixes = Fixes(*(np.zeros(0, d) for d in (np.int64, float, float, float, float,
                                                         np.int64)))
        self._arrivals = 0
        self._max_seen = NEVER
        self._restart: int | None = None
        self._places = PlaceState.empty()
        self._drives = DriveHistory.empty()
        self._emitted = dict.fromkeys(KEY, NEVER)
        self._signals = Signals.none()
        """every car-link change and activity guess so far, merged in time order as they
        arrive (the batch build's order: by time, then value), and the statements"""
        self.late = 0
        self._last_tables: dict[str, pa.Table] = {
            name: schema.empty_table() for name, schema in SCHEMAS.items()}

    def push(self, t_ms: np.ndarray, lat: np.ndarray, lon: np.ndarray,
             accuracy_m: np.ndarray | None = None, altitude_m: np.ndarray | None = None,
             signals: Signals | None = None) -> Update:
        """Take the next fixes in arrival order (and any phone signals and statements); return
        the update. A statement counts for the leg ends not yet final when it arrives (the
        batch build counts it for every leg end decided after it was said): the two agree
        when statements arrive within the allowed lateness, as phone signals do."""
        t_ms = np.asarray(t_ms, np.int64)
        n = len(t_ms)
        nan = np.full(n, np.nan)
        before = np.maximum.accumulate(np.concatenate([[self._max_seen], t_ms]))[:-1]
        late = (before != NEVER) & (t_ms < before - self._lateness)
        self.late += int(late.sum())
        if n:
            self._max_seen = max(self._max_seen, int(t_ms.max()))
        ok = ~late
        new = Fixes(t_ms[ok], np.asarray(lat, float)[ok], np.asarray(lon, float)[ok],
                    (nan if accuracy_m is None else np.asarray(accuracy_m, float))[ok],
                    (nan if altitude_m is None else np.asarray(altitude_m, float))[ok],
                    np.arange(self._arrivals, self._arrivals + int(ok.sum()), dtype=np.int64))
        self._arrivals += int(ok.sum())
        self._fixes = _concat(self._fixes, new)
        if signals is not None:
            self._signals = _merge_signals(self._signals, signals)
        return self._run(final_until=self._max_seen - self._lateness - self._horizon)

    def flush(self) -> Update:
        """End of stream: everything still open becomes final."""
        return self._run(final_until=np.iinfo(np.int64).max)

    def places(self) -> pa.Table:
        """The device's places as of the last push."""
        return self._last_tables["facts_place"]

    def _run(self, final_until: int) -> Update:
        complete = None if final_until == np.iinfo(np.int64).max else \
            self._max_seen - self._lateness
        facts = device_facts(self.device_id, self._fixes, self._signals, self.rules,
                             places=self._places, drives=self._drives, lateness_ms=np.inf,
                             start_ms=self._restart,
                             complete_until_ms=complete)
        self._last_tables = facts.tables
        final, provisional = {}, {}
        for name, end_col in END.items():
            table = facts.tables[name]
            key = np.asarray(table.column(KEY[name]))
            end = np.asarray(table.column(end_col))
            until = final_until
            if name in ("facts_trip", "facts_leg") and facts.open_since_ms is not None \
                    and final_until != np.iinfo(np.int64).max:
                until = min(until, facts.open_since_ms - 1)  # a stop may still start there
            fresh = key > self._emitted[name]
            if self._restart is not None:  # rows before the restart point were settled
                fresh &= key >= self._restart
            done = fresh & (end <= until)
            final[name] = _rows(name, table, done)
            provisional[name] = _rows(name, table, fresh & ~done)
            if done.any():
                self._emitted[name] = int(key[done].max())
        provisional["facts_place"] = facts.tables["facts_place"]
        self._advance(facts.tables, final_until, facts.open_since_ms)
        return Update(final, provisional)

    def _advance(self, tables: dict[str, pa.Table], final_until: int,
                 open_since: int | None) -> None:
        """Move the restart point to the latest stop start that nothing can change any more
        and that no vehicle leg overlaps."""
        stops = tables["facts_stop"]
        start = np.asarray(stops.column("started_ms"))
        ok = start + self._horizon <= final_until
        if open_since is not None:  # what precedes the restart point must be settled
            ok &= start < open_since
        if self._restart is not None:
            ok &= start > self._restart
        if not ok.any():
            return
        legs = tables["facts_leg"].filter(pc.equal(tables["facts_leg"].column("mode"),
                                                   "vehicle"))
        # a leg may end inside a stop's first fixes; a stop after the leg's end is a clean
        # restart (a margin of max_pause_s + 60 s here kept the tail of anyone who parks and
        # walks in under 3.5 min from ever being trimmed: 54k fixes after 15 h at 1 Hz)
        l_start = np.asarray(legs.column("started_ms"))
        l_end = np.asarray(legs.column("finished_ms"))
        for k in np.flatnonzero(ok)[::-1]:  # newest first; usually the first one will do
            r = int(start[k])
            if not np.any((l_start < r) & (l_end >= r)):
                break
        else:
            return
        before = stops.slice(0, int(k))
        if self._restart is not None:
            before = before.filter(pc.greater_equal(before.column("started_ms"), self._restart))
        _, _, self._places = assign(
            np.asarray(before.column("lat")), np.asarray(before.column("lon")),
            np.asarray(before.column("started_ms")), np.asarray(before.column("finished_ms")),
            np.zeros(0, np.int64), np.zeros(0), np.zeros(0), self._places,
            self.rules.params.places.radius_m)
        moved = legs.filter(pc.less(legs.column("started_ms"), r))
        if self._restart is not None:
            moved = moved.filter(pc.greater_equal(moved.column("started_ms"), self._restart))
        ends = tables["facts_leg_end"]  # one per vehicle leg, in the same order
        ends = ends.filter(pc.is_in(ends.column("leg_started_ms"), moved.column("started_ms")))
        self._drives = self._drives.extend(DriveHistory(
            *(np.asarray(moved.column(c)) for c in (
                "started_ms", "start_lat", "start_lon", "finished_ms", "end_lat", "end_lon")),
            *(np.asarray(ends.column(c)) for c in (
                "leg_p85_speed_mps", "leg_distance_m", "leg_straightness", "leg_halts_per_km"))))
        self._restart = r
        self._trim(r)

    def _trim(self, restart: int) -> None:
        """Drop fixes before the restart point, keeping a few usable ones before it as
        context for cleaning and speed smoothing."""
        f = self._fixes
        acc_ok = ~(f.accuracy_m > self.rules.params.clean.max_accuracy_m)
        earlier = np.unique(f.t_ms[(f.t_ms < restart) & acc_ok])
        legs = self.rules.params.legs
        context = 2 * legs.speed_window + 2
        keep_from = int(earlier[-context]) if len(earlier) >= context else (
            int(earlier[0]) if len(earlier) else restart)
        keep_from -= int(legs.speed_baseline_s * 1000) + 1  # speeds reach back this far
        self._fixes = f.take(np.flatnonzero(f.t_ms >= keep_from))


def _rows(name: str, table: pa.Table, mask: np.ndarray) -> pa.Table:
    """The rows of ``table`` where ``mask`` holds: a slice (no copy) when they are one run,
    as they are in these time-ordered tables."""
    idx = np.flatnonzero(mask)
    if not len(idx):
        return _EMPTY[name]
    if len(idx) == table.num_rows:
        return table
    if idx[-1] - idx[0] + 1 != len(idx):
        return table.take(pa.array(idx))
    return table.slice(int(idx[0]), len(idx))


_EMPTY = {name: schema.empty_table() for name, schema in SCHEMAS.items()}


def _concat(a: Fixes, b: Fixes) -> Fixes:
    return Fixes(*(np.concatenate([x, y]) for x, y in zip(
        (a.t_ms, a.lat, a.lon, a.accuracy_m, a.altitude_m, a.arrival),
        (b.t_ms, b.lat, b.lon, b.accuracy_m, b.altitude_m, b.arrival), strict=True)))


def _merge_signals(old: Signals, new: Signals) -> Signals:
    """``old`` (merged) and ``new`` (one push's) signals, merged: new values are sorted in;
    nothing is re-sorted when none arrive (rows equal in time and value are the same row)."""
    link = _merge_sorted(old.link_ms, old.link_connected, new.link_ms, new.link_connected)
    act = _merge_sorted(old.activity_ms, old.activity_on_foot, new.activity_ms,
                        new.activity_on_foot)
    said = old.statements.extend(new.statements) if len(new.statements) else old.statements
    return Signals(*link, *act, said)


def _merge_sorted(t: np.ndarray, v: np.ndarray, new_t: np.ndarray, new_v: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    if not len(new_t):
        return t, v
    t = np.concatenate([t, np.asarray(new_t, np.int64)])
    v = np.concatenate([v, np.asarray(new_v, bool)])
    order = np.lexsort((v, t))
    return t[order], v[order]


__all__ = ["DeviceStream", "Update"]
