"""Sliding staypoints: a slow oracle written from the peer's description, the restart and append
properties incremental building relies on, and trackintel's own output on GeoLife 000 and 001."""

from __future__ import annotations

import csv
import math
import os
import statistics
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parkloop.errors import FactsError
from parkloop.facts import trig
from parkloop.facts.geo import _cosine_law_m, _haversine_m, cosine_law_m, haversine_m
from parkloop.facts.staypoints import (
    TRACKINTEL_DEFAULTS,
    Distance,
    GapRule,
    PositionMethod,
    Staypoints,
    sliding_staypoints,
    staypoint_positions,
)
from parkloop.raw.geolife import import_geolife
from parkloop.store import Store

PEER_CSV = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "peers" \
    / "trackintel_staypoints_000_001.csv"
MIN = 60_000
R = 6_371_000.0


# --- the oracle: peers/README.md read literally, one fix at a time ---------------------------

def oracle_distance(lat1: float, lon1: float, lat2: float, lon2: float, how: str) -> float:
    # the facts' own trigonometry (facts/trig.py, checked against libm in test_trig.py): the
    # oracle checks the formulas and the window, not which libm rounds the last bit
    p1, p2 = math.radians(lat1), math.radians(lat2)
    l1, l2 = math.radians(lon1), math.radians(lon2)
    if how == "haversine":
        a = (trig.sin((p2 - p1) / 2) ** 2
             + trig.cos(p1) * trig.cos(p2) * trig.sin((l2 - l1) / 2) ** 2)
        return 2 * R * trig.asin(math.sqrt(min(max(a, 0.0), 1.0)))
    c = trig.cos(p1 - p2) - trig.cos(p1) * trig.cos(p2) * (1 - trig.cos(l1 - l2))
    return R * trig.acos(min(max(c, -1.0), 1.0))


@dataclass
class Oracle:
    rows: list[tuple[int, int, int]]  # (first, last, finish)
    anchors: list[int]  # every fix that became the anchor, in order
    positions: list[tuple[float, float]]  # trackintel's (lat, lon)
    medians: list[tuple[float, float]]


def oracle(t: list[int], lat: list[float], lon: list[float], radius_m: float,
           min_duration_ms: int, max_gap_ms: int, distance: str,
           gap_within_radius: str = "restart") -> Oracle:
    out = Oracle([], [0] if t else [], [], [])
    anchor = 0
    for cur in range(1, len(t)):
        far = oracle_distance(lat[anchor], lon[anchor], lat[cur], lon[cur], distance) >= radius_m
        gap = t[cur] - t[cur - 1] > max_gap_ms
        # the gap test comes first, unless the rule lets a gap continue a window in the radius
        if gap and (gap_within_radius == "restart" or far):
            anchor = cur
            out.anchors.append(cur)
            continue
        if far:
            if t[cur] - t[anchor] >= min_duration_ms:
                out.rows.append((anchor, cur - 1, cur))
            anchor = cur
            out.anchors.append(cur)
    for first, last, _ in out.rows:
        members = range(first, last + 1)
        distinct = sorted({(lon[i], lat[i]) for i in members})  # (lon, lat) order
        s = sum(math.sin(math.radians(x)) for x, _ in distinct) / len(distinct)
        c = sum(math.cos(math.radians(x)) for x, _ in distinct) / len(distinct)
        out.positions.append((sum(y for _, y in distinct) / len(distinct),
                              math.degrees(math.atan2(s, c))))
        out.medians.append((statistics.median(lat[i] for i in members),
                            statistics.median(lon[i] for i in members)))
    return out


# --- random tracks: stays, walks, jumps, repeated fixes, equal times, gaps ---------------------

@dataclass
class Track:
    t: list[int]
    lat: list[float]
    lon: list[float]
    radius_m: float
    min_duration_ms: int
    max_gap_ms: int
    distance: Distance
    gap_within_radius: GapRule

    def run(self, start: int = 0, stop: int | None = None) -> Staypoints:
        sl = slice(start, stop)
        return sliding_staypoints(np.array(self.t[sl], np.int64), np.array(self.lat[sl]),
                                  np.array(self.lon[sl]), radius_m=self.radius_m,
                                  min_duration_ms=self.min_duration_ms,
                                  max_gap_ms=self.max_gap_ms, distance=self.distance,
                                  gap_within_radius=self.gap_within_radius)

    def oracle(self) -> Oracle:
        return oracle(self.t, self.lat, self.lon, self.radius_m, self.min_duration_ms,
                      self.max_gap_ms, self.distance, self.gap_within_radius)


STEP_DEG = {"same": 0.0, "jitter": 0.0002, "walk": 0.0008, "jump": 0.01}


@st.composite
def tracks(draw: st.DrawFn, max_segments: int = 40) -> Track:
    """Segments of 1-30 alike steps (same kind, interval and move; jitter swings back and
    forth), on every side of the globe, times and gaps at and around the thresholds."""
    radius = draw(st.sampled_from([30.0, 100.0]))
    min_duration = draw(st.sampled_from([0, MIN, 5 * MIN]))
    max_gap = draw(st.sampled_from([MIN, 3 * MIN, 15 * MIN]))
    lat, lon = draw(st.sampled_from([(40.0, 116.3), (-33.9, 151.2), (0.0, 179.9995),
                                     (60.0, -0.0004)]))
    t = draw(st.integers(1_200_000_000_000, 1_300_000_000_000))
    segments = draw(st.lists(st.tuples(
        st.sampled_from(list(STEP_DEG)), st.integers(1, 30),
        st.one_of(st.integers(0, 90_000), st.sampled_from(
            [0, 0, max_gap, max_gap + 1, min_duration, 20 * MIN])),
        st.floats(-1, 1), st.floats(-1, 1)), max_size=max_segments))
    ts: list[int] = []
    lats: list[float] = []
    lons: list[float] = []
    for kind, reps, dt, u, v in segments:
        for i in range(reps):
            sign = -1 if kind == "jitter" and i % 2 else 1
            if ts:
                t += dt
                lat = round(min(max(lat + sign * STEP_DEG[kind] * u, -89.9), 89.9), 6)
                lon = round((lon + sign * STEP_DEG[kind] * v + 180.0) % 360.0 - 180.0, 6)
            ts.append(t)
            lats.append(lat)
            lons.append(lon)
    return Track(ts, lats, lons, radius, min_duration, max_gap,
                 draw(st.sampled_from(["cosine_law", "cosine_law", "haversine"])),
                 draw(st.sampled_from(["restart", "continue"])))


def rows(sp: Staypoints) -> list[tuple[int, int, int]]:
    return list(zip(sp.first.tolist(), sp.last.tolist(), sp.finish.tolist(), strict=True))


def tail(sp: Staypoints, start: int) -> tuple[list[tuple[int, int, int]], int]:
    return [r for r in rows(sp) if r[0] >= start], sp.open_first


def angle_diff(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]
               ) -> npt.NDArray[np.float64]:
    return np.asarray(np.abs((a - b + 180.0) % 360.0 - 180.0), np.float64)


# --- the kernel against the oracle ----------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(tracks())
def test_kernel_matches_oracle(track: Track) -> None:
    sp = track.run()
    want = track.oracle()
    assert rows(sp) == want.rows
    assert sp.open_first == (want.anchors[-1] if want.anchors else 0)
    t = np.array(track.t, np.int64)
    assert sp.started_ms.tolist() == t[sp.first].tolist()
    assert sp.finished_ms.tolist() == t[sp.finish].tolist()
    methods: tuple[tuple[PositionMethod, list[tuple[float, float]]], ...] = (
        ("trackintel", want.positions), ("median", want.medians))
    for method, expected in methods:
        lat, lon = staypoint_positions(track.lat, track.lon, sp.first, sp.last, method)
        exp = np.array(expected).reshape(-1, 2)
        assert np.abs(lat - exp[:, 0]).max(initial=0) < 1e-9, method
        assert angle_diff(lon, exp[:, 1]).max(initial=0) < 1e-9, method


@settings(max_examples=150, deadline=None)
@given(tracks(), st.data())
def test_restart_at_any_anchor_gives_the_same_tail(track: Track, data: st.DataObject) -> None:
    """The fold's only state is the anchor: a run from any anchor of the full run continues it."""
    full = track.run()
    anchors = track.oracle().anchors
    candidates = sorted({*anchors, *full.first.tolist(), full.open_first} - {len(track.t)})
    a = data.draw(st.sampled_from(candidates)) if candidates else 0
    assert a in anchors or a == 0
    assert tail(track.run(a).shifted(a), a) == tail(full, a)


@settings(max_examples=150, deadline=None)
@given(tracks(), st.data())
def test_appending_fixes_continues_from_open_first(track: Track, data: st.DataObject) -> None:
    """Incremental = batch: the staypoints of a prefix are final, and a run from the prefix's
    ``open_first`` over the prefix's rest plus the new fixes gives all later ones."""
    m = data.draw(st.integers(0, len(track.t)))
    before = track.run(0, m)
    after = track.run(before.open_first).shifted(before.open_first)
    full = track.run()
    assert rows(before) + rows(after) == rows(full)
    assert after.open_first == full.open_first


# --- the rules, one at a time ---------------------------------------------------------------

def run(t_min: list[float], lat_m: list[float], **kw: float | str) -> Staypoints:
    """Fixes along a meridian near Beijing: minutes and metres north of the first fix."""
    params = {**TRACKINTEL_DEFAULTS, **kw}
    return sliding_staypoints(np.round(np.array(t_min) * MIN).astype(np.int64),
                              40.0 + np.array(lat_m) / 111_195.0, np.full(len(t_min), 116.3),
                              **params)  # type: ignore[arg-type]


def test_gap_of_exactly_max_gap_keeps_the_window() -> None:
    assert rows(run([0, 15, 20], [0, 10, 500])) == [(0, 1, 2)]


def test_gap_longer_than_max_gap_drops_even_a_long_window() -> None:
    sp = run([0, 10, 25.001, 26], [0, 10, 20, 500])
    assert rows(sp) == []
    assert sp.open_first == 3


def test_gap_test_comes_before_distance() -> None:
    # the fix after the gap is far away, but the window is dropped, not emitted
    assert rows(run([0, 10, 30, 31], [0, 10, 5000, 5001])) == []
    assert rows(run([0, 10, 30, 31], [0, 10, 5000, 5001], gap_within_radius="continue")) == []


def test_a_gap_may_continue_a_window_within_the_radius() -> None:
    t, lat_m = [0.0, 2, 60, 61, 62], [0.0, 10, 20, 30, 500]
    assert rows(run(t, lat_m)) == []                                   # restarted at 60 min
    sp = run(t, lat_m, gap_within_radius="continue")                   # slept where it lay
    assert rows(sp) == [(0, 3, 4)]
    assert sp.finished_ms.tolist() == [62 * MIN]


def test_duration_is_measured_to_the_first_fix_outside() -> None:
    assert rows(run([0, 1, 5], [0, 10, 500])) == [(0, 1, 2)]       # exactly 5 min: >=
    assert rows(run([0, 1, 4.99], [0, 10, 500])) == []


def test_staypoints_touch_and_the_open_window_is_not_emitted() -> None:
    sp = run([0, 3, 6, 9, 12, 20, 21], [0, 50, 150, 180, 300, 300, 900])
    assert rows(sp) == [(0, 1, 2), (2, 3, 4), (4, 5, 6)]
    assert sp.finished_ms.tolist()[:2] == sp.started_ms.tolist()[1:]
    assert rows(run([0, 10, 20], [0, 10, 20])) == []


def test_equal_times_and_empty_or_single_input() -> None:
    assert rows(run([0, 0, 0, 6, 6], [0, 0, 5, 5, 200])) == [(0, 3, 4)]
    for t in ([], [0.0]):
        sp = run(t, [0.0] * len(t))
        assert len(sp) == 0
        assert sp.open_first == 0


def test_positions_count_each_distinct_coordinate_once() -> None:
    lat = np.array([40.0, 40.0, 40.0, 40.0003])
    lon = np.array([179.9999, 179.9999, -179.9999, 179.9999])
    s_lat, s_lon = staypoint_positions(lat, lon, np.array([0]), np.array([3]))
    assert s_lat[0] == pytest.approx((40.0 * 2 + 40.0003) / 3)
    # circular mean across the antimeridian: two at +179.9999, one at -179.9999
    assert angle_diff(s_lon, np.array([179.9999 + 0.0002 / 3]))[0] < 1e-9
    m_lat, m_lon = staypoint_positions(lat, lon, np.array([0]), np.array([3]), "median")
    assert (m_lat[0], m_lon[0]) == (40.0, 179.9999)


def test_results_are_read_only_and_inputs_untouched() -> None:
    t = np.array([0, 6 * MIN, 7 * MIN])
    lat = np.array([40.0, 40.0, 41.0])
    before = lat.copy()
    sp = sliding_staypoints(t, lat, np.full(3, 116.3), **TRACKINTEL_DEFAULTS)
    assert np.array_equal(lat, before)
    with pytest.raises(ValueError, match="read-only"):
        sp.first[0] = 1


def test_bad_arguments_are_all_reported_at_once() -> None:
    with pytest.raises(FactsError) as err:
        sliding_staypoints(np.array([2, 1]), np.array([40.0, np.nan]), np.array([116.0, 116.0]),
                           radius_m=0, min_duration_ms=-1, max_gap_ms=-1,
                           distance="euclid", gap_within_radius="skip")  # type: ignore[arg-type]
    for words in ("sorted", "finite", "radius_m", "min_duration_ms", "max_gap_ms",
                  "'cosine_law', 'haversine'", "'restart', 'continue'"):
        assert words in str(err.value)
    with pytest.raises(FactsError, match="one length"):
        sliding_staypoints([0, 1], [40.0], [116.0], **TRACKINTEL_DEFAULTS)
    with pytest.raises(FactsError, match="'trackintel', 'median'"):
        staypoint_positions([40.0], [116.0], [0], [0], "mean")  # type: ignore[arg-type]
    with pytest.raises(FactsError, match="first <= last"):
        staypoint_positions([40.0], [116.0], [0], [1])


# --- distances --------------------------------------------------------------------------------

def test_cosine_law_is_trackintels() -> None:
    # trackintel.geogr.point_haversine_dist(8.5, 47.3, 8.7, 47.2) in its own docstring; the
    # law of cosines is ill-conditioned, so the last digits follow the platform's cos (here
    # trackintel itself gives ...756805, ours facts/trig.py's): same formula, same order
    assert _cosine_law_m(47.3, 8.5, 47.2, 8.7) == pytest.approx(18749.056277719905, abs=1e-6)
    assert _cosine_law_m(47.3, 8.5, 47.2, 8.7) == oracle_distance(47.3, 8.5, 47.2, 8.7, "cos")


@settings(max_examples=200, deadline=None)
@given(st.floats(-80, 80), st.floats(-180, 180), st.floats(-0.01, 0.01), st.floats(-0.01, 0.01))
def test_distances_agree(lat: float, lon: float, dlat: float, dlon: float) -> None:
    args = (lat, lon, lat + dlat, lon + dlon)
    cos_law, hav = float(cosine_law_m(*args)), float(haversine_m(*args))
    assert _cosine_law_m(*args) == pytest.approx(cos_law, abs=1e-9)
    assert _haversine_m(*args) == pytest.approx(hav, abs=1e-9)
    assert oracle_distance(*args, "haversine") == pytest.approx(hav, abs=1e-6)
    # the law of cosines resolves ~0.1 m near 0 (acos near 1), ~0.05 mm at 100 m
    assert cos_law == pytest.approx(hav, abs=0.15)


# --- the peer: trackintel 1.4.2 on GeoLife people 000 and 001 -----------------------------------

FIXES_AS_TRACKINTEL_SEES_THEM = """
    SELECT t_ms, lat, lon FROM raw_fix WHERE device_id = ?
    -- trackintel reads lat, lon, altitude and time; drops rows equal in all, keeping the first
    QUALIFY row_number() OVER (PARTITION BY t_ms, lat, lon, altitude_m
                               ORDER BY batch_no, seq) = 1
    ORDER BY t_ms, batch_no, seq  -- a stable sort by time of the files in order"""


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def test_matches_trackintel_on_geolife_000_001(store: Store, geolife_mini: Path) -> None:
    if not PEER_CSV.is_file():
        if os.environ.get("PARKLOOP_REQUIRE_DATA"):
            pytest.fail(f"PARKLOOP_REQUIRE_DATA is set but {PEER_CSV} is missing")
        pytest.skip(f"trackintel's reference output not found at {PEER_CSV}")
    with PEER_CSV.open(newline="") as f:
        peer = list(csv.DictReader(f))
    assert len(peer) == 668
    import_geolife(store, geolife_mini)
    matched = 0
    worst_m = 0.0
    for user in ("000", "001"):
        t, lat, lon = (np.asarray(c) for c in store.con.execute(
            FIXES_AS_TRACKINTEL_SEES_THEM, [f"geolife-{user}"]).fetchnumpy().values())
        sp = sliding_staypoints(t, lat, lon, **TRACKINTEL_DEFAULTS)
        s_lat, s_lon = staypoint_positions(lat, lon, sp.first, sp.last)
        ours = {(a, b): k for k, (a, b) in enumerate(zip(sp.started_ms.tolist(),
                                                         sp.finished_ms.tolist(), strict=True))}
        theirs = [r for r in peer if r["user_id"] == user]
        hits = [(ours[key], r) for r in theirs
                if (key := (_ms(r["started_at"]), _ms(r["finished_at"]))) in ours]
        matched += len(hits)
        assert len(sp) == len(theirs), user
        if hits:
            k = np.array([i for i, _ in hits])
            d = haversine_m(s_lat[k], s_lon[k], np.array([float(r["lat"]) for _, r in hits]),
                            np.array([float(r["lon"]) for _, r in hits]))
            worst_m = max(worst_m, float(d.max()))
    print(f"trackintel 1.4.2 peer: {matched}/{len(peer)} staypoints with the same start and "
          f"finish; positions within {worst_m:.3g} m")  # shown by pytest -rP
    assert matched >= 0.99 * len(peer), f"matched {matched}/{len(peer)} of trackintel's staypoints"
    assert matched == len(peer), f"matched {matched}/{len(peer)}"
    assert worst_m < 0.01, f"positions differ by up to {worst_m} m"
