"""One device's facts: the steps of DESIGN.md in order, as one pure function.

``device_facts(fixes, signals, rules, places)`` is what both the batch build and the
incremental engine run; it depends on nothing but its arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

from parkloop.facts import legs as L
from parkloop.facts.clean import clean_mask
from parkloop.facts.drives import DriveHistory
from parkloop.facts.features import Signals, leg_end_features
from parkloop.facts.motion import motion_features
from parkloop.facts.order import order_fixes
from parkloop.facts.places import PlaceState, assign
from parkloop.facts.rules import RulesVersion
from parkloop.facts.staypoints import PositionMethod, sliding_staypoints, staypoint_positions
from parkloop.facts.tables import SCHEMAS


@dataclass(frozen=True)
class Fixes:
    """A device's raw fixes in any order; ``arrival`` ranks them in arrival order."""

    t_ms: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    accuracy_m: np.ndarray
    altitude_m: np.ndarray
    arrival: np.ndarray

    def take(self, idx: np.ndarray) -> Fixes:
        return Fixes(*(a[idx] for a in (self.t_ms, self.lat, self.lon, self.accuracy_m,
                                        self.altitude_m, self.arrival)))

    def __len__(self) -> int:
        return len(self.t_ms)


@dataclass(frozen=True)
class DeviceFacts:
    """The fact tables of one device and how many of its fixes were late or used."""

    tables: dict[str, pa.Table]
    n_late: int
    n_used: int
    open_since_ms: int | None = None
    """start of the stop window still open at the end (a stop may begin there): trips and
    legs reaching it are not settled yet"""
    clean: Fixes | None = None
    """with ``keep_clean``: the fixes the facts were made of (:func:`clean_fixes`)"""
    open_end_ms: int | None = None
    """start of the stop window still open after the last fix (None without fixes after
    ``start_ms``): what ``open_since_ms`` would be if every fix had arrived"""


def device_facts(device_id: str, fixes: Fixes, signals: Signals, rules: RulesVersion, *,
                 places: PlaceState | None = None, drives: DriveHistory | None = None,
                 lateness_ms: float | None = None,
                 start_ms: int | None = None, complete_until_ms: int | None = None,
                 keep_clean: bool = False) -> DeviceFacts:
    """Every fact of one device from its fixes and signals (see the step modules).

    The incremental engine resumes with ``start_ms`` (the start of a stop: every step
    restarts there), ``places`` and ``drives`` (the place state and vehicle legs before it),
    fixes from just before it
    (context for cleaning), and ``complete_until_ms``: no fix at or before it can still
    arrive, which settles every stop window closed by then. ``keep_clean`` keeps the cleaned
    fixes in the result (a viewer draws them; a build would only hold memory with them)."""
    p = rules.params
    f, n_late = clean_fixes(fixes, rules, lateness_ms=lateness_ms)
    t, lat, lon = f.t_ms, f.lat, f.lon

    # the stop kernel restarts at ``start_ms`` (an anchor); fixes before it are context only
    skip = int(np.searchsorted(t, start_ms)) if start_ms is not None else 0
    first, last, finish, open_first = _stops(t[skip:], lat[skip:], lon[skip:], rules)
    first, last, finish = first + skip, last + skip, finish + skip
    open_since = _open_since(t, lat, lon, skip, open_first, complete_until_ms, rules)
    s_lat, s_lon = _positions(lat, lon, first, last, p.stops.position)
    seg = L.segments(t, lat, lon, first, last, window=p.legs.speed_window,
                     max_gap_ms=p.stops.max_gap_s * 1000,
                     baseline_ms=p.legs.speed_baseline_s * 1000)
    if skip:  # context before the restart point informs speeds but starts no leg
        before = np.zeros(len(seg.smooth_mps), dtype=bool)
        before[:max(skip - 1, 0)] = True  # segments ending at or before the first kept fix
        seg = replace(seg, smooth_mps=np.where(before, 0.0, seg.smooth_mps))
    trips = L.trips(seg)
    vehicle = L.vehicle_legs(t, seg, p.legs)
    other = L.other_legs(trips, vehicle, len(t))

    state = PlaceState.empty() if places is None else places
    e = vehicle.end
    stop_place, history, state_after = assign(
        s_lat, s_lon, t[first], t[finish], t[e], lat[e], lon[e], state, p.places.radius_m)
    motion = motion_features(t, lat, lon, seg, vehicle)
    mine = DriveHistory(t[vehicle.start], lat[vehicle.start], lon[vehicle.start], t[e], lat[e],
                        lon[e], motion["leg_p85_speed_mps"], L.span_distance(seg, vehicle),
                        motion["leg_straightness"], motion["leg_halts_per_km"])
    if start_ms is not None:  # legs before the restart point are in ``drives`` already
        keep = mine.start_ms >= start_ms
        mine = DriveHistory(*(a[keep] for a in mine.columns()))
    earlier = DriveHistory.empty() if drives is None else drives
    feats = leg_end_features(t, lat, lon, seg, vehicle, history, signals, p,
                             earlier.extend(mine), motion)

    key = {"rules_version": rules.identity, "device_id": device_id}
    n_stop = len(first)
    tables = {
        "facts_stop": _table("facts_stop", key, n_stop, {
            "started_ms": t[first], "finished_ms": t[finish], "lat": s_lat, "lon": s_lon,
            "n_fixes": last - first + 1, "place_no": stop_place}),
        "facts_trip": _spans_table("facts_trip", key, trips, t, lat, lon, seg, {}),
        "facts_leg": _legs_table(key, vehicle, other, t, lat, lon, seg),
        "facts_leg_end": _table("facts_leg_end", key, len(e), {
            "ended_ms": t[e], "lat": lat[e], "lon": lon[e], "leg_started_ms": t[vehicle.start],
            "decided_ms": t[e] + int(p.features.wait_s * 1000), "place_no": history.place,
            **feats}),
        "facts_place": _table("facts_place", key, len(state_after), {
            "place_no": np.arange(len(state_after)), "lat": state_after.lat,
            "lon": state_after.lon, "n_visits": state_after.visits,
            "dwell_total_s": state_after.dwell_ms / 1000.0, "first_ms": state_after.first_ms,
            "last_ms": state_after.last_ms}),
    }
    open_end = int(t[skip + open_first]) if len(t) > skip else None
    return DeviceFacts(tables, n_late, len(t), open_since, f if keep_clean else None, open_end)


def clean_fixes(fixes: Fixes, rules: RulesVersion, *, lateness_ms: float | None = None
                ) -> tuple[Fixes, int]:
    """The fixes the rules use, in time order: ordered (late ones dropped), de-duplicated and
    cleaned (the first steps of :func:`device_facts`); and how many arrived too late."""
    p = rules.params
    lateness = p.order.allowed_lateness_s * 1000 if lateness_ms is None else lateness_ms
    idx, n_late = order_fixes(fixes.t_ms, fixes.lat, fixes.lon, fixes.arrival,
                              lateness_ms=lateness, dedup=p.order.dedup,
                              altitude=fixes.altitude_m)
    f = fixes.take(idx)
    keep = clean_mask(f.t_ms, f.lat, f.lon, f.accuracy_m, max_accuracy_m=p.clean.max_accuracy_m,
                      max_speed_mps=p.clean.max_speed_mps, max_gap_ms=p.stops.max_gap_s * 1000)
    return f.take(np.flatnonzero(keep)), n_late


def _stops(t: np.ndarray, lat: np.ndarray, lon: np.ndarray, rules: RulesVersion
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """First member, last member and finishing fix (the first fix outside) of every stop, in
    time order, and the anchor of the window still open at the end."""
    p = rules.params.stops
    sp = sliding_staypoints(t, lat, lon, radius_m=p.radius_m,
                            min_duration_ms=int(p.min_duration_s * 1000),
                            max_gap_ms=int(p.max_gap_s * 1000), distance=p.distance,
                            gap_within_radius=p.gap_within_radius)
    return (np.asarray(sp.first, np.int64), np.asarray(sp.last, np.int64),
            np.asarray(sp.finish, np.int64), int(sp.open_first))


def _open_since(t: np.ndarray, lat: np.ndarray, lon: np.ndarray, skip: int, open_first: int,
                complete_until_ms: int | None, rules: RulesVersion) -> int | None:
    """When the stop window still open at the end of the *complete* data began (a stop may
    yet begin there, so trips and legs reaching it are unsettled); None without fixes."""
    if len(t) <= skip:
        return None
    upto = len(t) if complete_until_ms is None else int(
        np.searchsorted(t, complete_until_ms, side="right"))
    if upto <= skip:
        return int(t[skip])
    if upto < len(t):
        open_first = _stops(t[skip:upto], lat[skip:upto], lon[skip:upto], rules)[3]
    return int(t[skip + open_first])


def _positions(lat: np.ndarray, lon: np.ndarray, first: np.ndarray, last: np.ndarray,
               method: PositionMethod) -> tuple[np.ndarray, np.ndarray]:
    s_lat, s_lon = staypoint_positions(lat, lon, first, last, method)
    return np.asarray(s_lat, np.float64), np.asarray(s_lon, np.float64)


_EMPTY = {name: schema.empty_table() for name, schema in SCHEMAS.items()}


def _table(name: str, key: dict[str, str], n: int, cols: dict[str, object]) -> pa.Table:
    schema = SCHEMAS[name]
    if n == 0:
        return _EMPTY[name]
    return pa.Table.from_arrays(
        [pa.array([key[f.name]] * n, f.type) if f.name in key else pa.array(cols[f.name], f.type)
         for f in schema], schema=schema)


def _spans_table(name: str, key: dict[str, str], spans: L.Spans, t: np.ndarray,
                 lat: np.ndarray, lon: np.ndarray, seg: L.Segments,
                 extra: dict[str, object]) -> pa.Table:
    s, e = spans.start, spans.end
    return _table(name, key, len(s), {
        "started_ms": t[s], "finished_ms": t[e], "start_lat": lat[s], "start_lon": lon[s],
        "end_lat": lat[e], "end_lon": lon[e], "distance_m": L.span_distance(seg, spans),
        "n_fixes": e - s + 1, **extra})


def _legs_table(key: dict[str, str], vehicle: L.Spans, other: L.Spans, t: np.ndarray,
                lat: np.ndarray, lon: np.ndarray, seg: L.Segments) -> pa.Table:
    both = L.Spans(np.concatenate([vehicle.start, other.start]),
                   np.concatenate([vehicle.end, other.end]))
    mode = np.concatenate([np.full(len(vehicle), "vehicle"), np.full(len(other), "other")])
    order = np.argsort(both.start, kind="stable")
    both = L.Spans(both.start[order], both.end[order])
    return _spans_table("facts_leg", key, both, t, lat, lon, seg, {"mode": mode[order]})
