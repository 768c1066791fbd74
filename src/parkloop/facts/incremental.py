"""Incremental facts: a per-device engine that takes events as they arrive.

It keeps the device's fixes from its *restart point* on: the start of a stop old enough that
nothing arriving later can change what lies before it (every step restarts cleanly at a stop:
the stop kernel's anchor, trips and legs, the place state). Each push reruns
:func:`~parkloop.facts.pipeline.device_facts` on that tail and returns the facts that became
final, plus the ones still open (provisional). A fact is final once its end plus the rules'
horizon lies before the watermark (newest fix seen minus the allowed lateness); fixes older than
that on arrival are late and ignored, exactly as the batch build ignores them.

The restart point lies at least the allowed lateness plus twice the horizon behind the newest
fix (7 h with ``v1``). Data mostly arrives in order, though, so the engine also keeps a *soft*
restart point: a later stop start that only data from before the newest fix at the time could
change, with the place state, drives, rows and cleaned fixes before it. While everything that
arrives is newer than that, a push reruns the steps from the soft point only (about the last
hour and a quarter of a moving device); anything older drops it, and that push reruns from the
restart point as before. Either way a push's rows are the same, bit for bit.

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
from parkloop.facts.pipeline import DeviceFacts, Fixes, _stops, device_facts
from parkloop.facts.places import PlaceState, assign
from parkloop.facts.rules import RulesVersion
from parkloop.facts.said import Statements
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
        self._soft: _Soft | None = None
        self.late = 0
        self._last_tables: dict[str, pa.Table] = {
            name: schema.empty_table() for name, schema in SCHEMAS.items()}

    @property
    def statements(self) -> Statements:
        """Everything the person said so far (labels, feedback), in canonical order."""
        return self._signals.statements

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
        soft = self._soft
        if soft is not None and (np.any(new.t_ms <= soft.seen) or (
                signals is not None and _older(signals, soft.seen))):
            soft = self._soft = None  # older data came in after all: rerun from the restart
        if soft is not None:
            soft.fixes = _concat(soft.fixes, new)
        if signals is not None:
            self._signals = _merge_signals(self._signals, signals)
        return self._run(final_until=self._max_seen - self._lateness - self._horizon)

    def flush(self) -> Update:
        """End of stream: everything still open becomes final."""
        self._soft = None
        return self._run(final_until=np.iinfo(np.int64).max)

    def places(self) -> pa.Table:
        """The device's places as of the last push."""
        return self._last_tables["facts_place"]

    def _run(self, final_until: int) -> Update:
        complete = None if final_until == np.iinfo(np.int64).max else \
            self._max_seen - self._lateness
        soft = self._soft
        if soft is None:
            facts = device_facts(self.device_id, self._fixes, self._signals, self.rules,
                                 places=self._places, drives=self._drives, lateness_ms=np.inf,
                                 start_ms=self._restart, complete_until_ms=complete,
                                 keep_clean=complete is not None)
            tables, open_since = facts.tables, facts.open_since_ms
        else:  # the rows before the soft restart point are settled: run from there
            assert complete is not None
            facts = device_facts(self.device_id, soft.fixes, self._signals, self.rules,
                                 places=soft.places, drives=soft.drives, lateness_ms=np.inf,
                                 start_ms=soft.start, complete_until_ms=complete,
                                 keep_clean=True)
            tables = {name: _after(soft.before[name], facts.tables[name], name, soft.start)
                      for name in KEY}
            tables["facts_place"] = facts.tables["facts_place"]
            open_since = facts.open_since_ms if complete >= soft.start else \
                soft.open_since(complete, self.rules)
        self._last_tables = tables
        final, provisional = {}, {}
        for name, end_col in END.items():
            table = tables[name]
            key = np.asarray(table.column(KEY[name]))
            end = np.asarray(table.column(end_col))
            until = final_until
            if name in ("facts_trip", "facts_leg") and open_since is not None \
                    and final_until != np.iinfo(np.int64).max:
                until = min(until, open_since - 1)  # a stop may still start there
            fresh = key > self._emitted[name]
            if self._restart is not None:  # rows before the restart point were settled
                fresh &= key >= self._restart
            done = fresh & (end <= until)
            final[name] = _rows(name, table, done)
            provisional[name] = _rows(name, table, fresh & ~done)
            if done.any():
                self._emitted[name] = int(key[done].max())
        provisional["facts_place"] = tables["facts_place"]
        self._advance(tables, final_until, open_since)
        if complete is not None:
            self._settle(tables, facts, complete)
        return Update(final, provisional)

    def _settle(self, tables: dict[str, pa.Table], facts: DeviceFacts, complete: int) -> None:
        """Move the soft restart point: the latest stop start that only older data than the
        newest fix could change (the restart point's rule without the allowed lateness),
        with the place state, drives, rows and cleaned fixes before it kept."""
        soft, lo = self._soft, self._restart
        if soft is not None and lo is not None and soft.start <= lo:
            soft = self._soft = None  # the restart point caught up with it
        stops = tables["facts_stop"]
        start = np.asarray(stops.column("started_ms"))
        ok = start + self._horizon <= self._max_seen - self._horizon
        if facts.open_end_ms is not None:
            ok &= start < facts.open_end_ms
        floor = soft.start if soft is not None else lo
        if floor is not None:
            ok &= start > floor
        r = _candidate(tables, start, ok)
        if r is None:
            return
        assert facts.clean is not None
        c = facts.clean
        base = soft.start if soft is not None else lo
        cut = int(np.searchsorted(c.t_ms, r))
        if soft is None and cut <= (int(np.searchsorted(c.t_ms, lo)) if lo is not None else 0):
            return  # nothing before it to keep
        places, drives = (soft.places, soft.drives) if soft is not None else (
            self._places, self._drives)
        places, drives = _carry(tables, base, r, places, drives,
                                self.rules.params.places.radius_m)
        # the cleaned fixes from the window open at ``complete`` (an anchor of the stop fold)
        # up to r: enough to find that window as ``complete`` moves on
        if soft is not None and complete < soft.start:
            at = int(np.searchsorted(c.t_ms, soft.start))
            clean = tuple(np.concatenate([a, b[at:cut]]) for a, b in zip(
                soft.clean, (c.t_ms, c.lat, c.lon), strict=True))
        else:
            at = int(np.searchsorted(c.t_ms, base)) if base is not None else 0
            clean = tuple(a[at:cut] for a in (c.t_ms, c.lat, c.lon))
        before = {name: _between(tables[name], name, lo, r) for name in KEY}
        keep_from = _context_start(self._fixes, r, self.rules)
        fixes = self._fixes.take(np.flatnonzero(self._fixes.t_ms >= keep_from))
        self._soft = _Soft(r, self._max_seen, places, drives, before, fixes,
                           (clean[0], clean[1], clean[2]))

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
        r = _candidate(tables, start, ok)
        if r is None:
            return
        self._places, self._drives = _carry(tables, self._restart, r, self._places,
                                            self._drives, self.rules.params.places.radius_m)
        self._restart = r
        self._trim(r)
        soft = self._soft
        if soft is not None:
            if soft.start <= r:
                self._soft = None
            else:
                soft.before = {name: _between(soft.before[name], name, r, soft.start)
                               for name in KEY}

    def _trim(self, restart: int) -> None:
        """Drop fixes before the restart point, keeping a few usable ones before it as
        context for cleaning and speed smoothing."""
        f = self._fixes
        self._fixes = f.take(np.flatnonzero(f.t_ms >= _context_start(f, restart, self.rules)))


@dataclass
class _Soft:
    """A soft restart point: a stop start that nothing arriving after :attr:`seen` can
    change. While data keeps arriving after it (the common case: a phone sends its fixes in
    order), a push reruns the steps from here and takes the rows before it as they were;
    anything at or before :attr:`seen` drops it and the next push reruns from the restart
    point, as every push did before."""

    start: int
    seen: int
    """the newest fix when it was set"""
    places: PlaceState
    drives: DriveHistory
    before: dict[str, pa.Table]
    """the rows from the restart point up to ``start``"""
    fixes: Fixes
    """the fixes from ``start`` on, with context before it (as the restart point keeps)"""
    clean: tuple[np.ndarray, np.ndarray, np.ndarray]
    """cleaned fixes (time, lat, lon) from the anchor of the stop window open at the
    complete data's end up to ``start``"""

    def open_since(self, complete: int, rules: RulesVersion) -> int:
        """Where the stop window open at ``complete`` (< ``start``) began: the stop fold from
        the last such anchor over the fixes up to ``complete`` (its only state is the
        anchor, so it resumes there; see :func:`~parkloop.facts.staypoints.sliding_staypoints`)
        ."""
        t, lat, lon = self.clean
        upto = int(np.searchsorted(t, complete, side="right"))
        anchor = _stops(t[:upto], lat[:upto], lon[:upto], rules)[3] if upto else 0
        self.clean = (t[anchor:], lat[anchor:], lon[anchor:])
        return int(t[anchor])


def _context_start(f: Fixes, restart: int, rules: RulesVersion) -> int:
    """The first fix time to keep for a run from ``restart``: a few usable fixes before it
    as context for cleaning and speed smoothing."""
    acc_ok = ~(f.accuracy_m > rules.params.clean.max_accuracy_m)
    earlier = np.unique(f.t_ms[(f.t_ms < restart) & acc_ok])
    legs = rules.params.legs
    context = 2 * legs.speed_window + 2
    keep_from = int(earlier[-context]) if len(earlier) >= context else (
        int(earlier[0]) if len(earlier) else restart)
    return keep_from - (int(legs.speed_baseline_s * 1000) + 1)  # speeds reach back this far


def _candidate(tables: dict[str, pa.Table], start: np.ndarray, ok: np.ndarray) -> int | None:
    """The latest stop start allowed by ``ok`` that no vehicle leg overlaps."""
    if not ok.any():
        return None
    legs = tables["facts_leg"]
    vehicle = np.asarray(legs.column("mode").to_numpy(zero_copy_only=False)) == "vehicle"
    # a leg may end inside a stop's first fixes; a stop after the leg's end is a clean
    # restart (a margin of max_pause_s + 60 s here kept the tail of anyone who parks and
    # walks in under 3.5 min from ever being trimmed: 54k fixes after 15 h at 1 Hz)
    l_start = np.asarray(legs.column("started_ms"))[vehicle]
    l_end = np.asarray(legs.column("finished_ms"))[vehicle]
    for k in np.flatnonzero(ok)[::-1]:  # newest first; usually the first one will do
        r = int(start[k])
        if not np.any((l_start < r) & (l_end >= r)):
            return r
    return None


def _carry(tables: dict[str, pa.Table], lo: int | None, r: int, places: PlaceState,
           drives: DriveHistory, radius_m: float) -> tuple[PlaceState, DriveHistory]:
    """The place state and drives at ``r`` from those at ``lo`` and the rows between."""
    before = _between(tables["facts_stop"], "facts_stop", lo, r)
    _, _, places = assign(
        np.asarray(before.column("lat")), np.asarray(before.column("lon")),
        np.asarray(before.column("started_ms")), np.asarray(before.column("finished_ms")),
        np.zeros(0, np.int64), np.zeros(0), np.zeros(0), places, radius_m)
    legs = _between(tables["facts_leg"], "facts_leg", lo, r)
    moved = legs.filter(pc.equal(legs.column("mode"), "vehicle"))
    ends = tables["facts_leg_end"]  # one per vehicle leg, in the same order
    ends = ends.filter(pc.is_in(ends.column("leg_started_ms"), moved.column("started_ms")))
    return places, drives.extend(DriveHistory(
        *(np.asarray(moved.column(c)) for c in (
            "started_ms", "start_lat", "start_lon", "finished_ms", "end_lat", "end_lon")),
        *(np.asarray(ends.column(c)) for c in (
            "leg_p85_speed_mps", "leg_distance_m", "leg_straightness", "leg_halts_per_km"))))


def _between(table: pa.Table, name: str, lo: int | None, hi: int) -> pa.Table:
    """The rows whose key is in ``[lo, hi)`` (the tables are sorted by it)."""
    key = np.asarray(table.column(KEY[name]))
    mask = key < hi
    if lo is not None:
        mask &= key >= lo
    return _rows(name, table, mask)


def _after(before: pa.Table, table: pa.Table, name: str, start: int) -> pa.Table:
    """``before``'s rows, then those of ``table`` from ``start`` on."""
    key = np.asarray(table.column(KEY[name]))
    rest = _rows(name, table, key >= start)
    if not before.num_rows:
        return rest
    return pa.concat_tables([before, rest]) if rest.num_rows else before


def _older(signals: Signals, seen: int) -> bool:
    """Whether any of these signals or statements is from ``seen`` or before."""
    return bool(np.any(signals.link_ms <= seen) or np.any(signals.activity_ms <= seen)
                or np.any(signals.statements.said_ms <= seen))


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
