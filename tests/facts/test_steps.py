"""Each vectorised or compiled step against a slow, obvious version of itself."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from parkloop.facts.clean import clean_mask
from parkloop.facts.legs import rolling_median, runs, span_sum
from parkloop.facts.order import order_fixes
from parkloop.facts.places import PlaceState, assign

R = 6_371_000.0


def hav(a: float, b: float, c: float, d: float) -> float:
    p1, p2 = math.radians(a), math.radians(c)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(
        math.radians(d - b) / 2) ** 2
    return 2 * R * math.asin(math.sqrt(min(1.0, h)))


fix_rows = st.lists(st.tuples(st.integers(0, 50), st.sampled_from([1.0, 1.5, 2.0]),
                              st.sampled_from([3.0, 4.0])), max_size=40)


@given(fix_rows, st.integers(0, 30), st.sampled_from(["time", "exact"]))
def test_order_matches_a_plain_sort(rows: list[tuple[int, float, float]], lateness: int,
                                    dedup: str) -> None:
    t = np.array([r[0] for r in rows], np.int64)
    lat = np.array([r[1] for r in rows])
    lon = np.array([r[2] for r in rows])
    keep, n_late = order_fixes(t, lat, lon, np.arange(len(rows)), lateness_ms=lateness,
                               dedup=dedup)
    newest, ok = None, []
    for i, (ti, _, _) in enumerate(rows):
        if newest is None or ti >= newest - lateness:
            ok.append(i)
        newest = ti if newest is None else max(newest, ti)
    assert n_late == len(rows) - len(ok)
    expected, seen = [], set()
    for i in sorted(ok, key=lambda i: (rows[i][0], rows[i][1], rows[i][2])):
        k = rows[i][0] if dedup == "time" else rows[i]
        if k not in seen:
            seen.add(k)
            expected.append(rows[i])
    assert [rows[i] for i in keep] == expected


@given(st.permutations(list(range(12))))
def test_order_does_not_depend_on_arrival_within_lateness(perm: list[int]) -> None:
    t = np.array([0, 0, 5, 5, 5, 9, 12, 12, 20, 21, 21, 30], np.int64)
    lat = np.array([3.0, 1.0, 2.0, 2.0, 1.0, 0.0, 5.0, 4.0, 1.0, 1.0, 2.0, 0.0])
    base, _ = order_fixes(t, lat, lat, np.arange(12), lateness_ms=1e9, dedup="time")
    shuffled, _ = order_fixes(t, lat, lat, np.array(perm), lateness_ms=1e9, dedup="time")
    assert list(zip(t[base], lat[base], strict=True)) == list(
        zip(t[shuffled], lat[shuffled], strict=True))


@settings(max_examples=60)
@given(st.lists(st.tuples(st.integers(1, 120), st.floats(-0.02, 0.02), st.floats(-0.02, 0.02),
                          st.sampled_from([np.nan, 5.0, 500.0])), min_size=1, max_size=40))
def test_clean_matches_the_rule_as_written(rows: list[tuple[int, float, float, float]]) -> None:
    t = np.cumsum([r[0] for r in rows]).astype(np.int64) * 1000
    lat = 40 + np.array([r[1] for r in rows])
    lon = 116 + np.array([r[2] for r in rows])
    acc = np.array([r[3] for r in rows])
    got = clean_mask(t, lat, lon, acc, max_accuracy_m=100, max_speed_mps=30,
                     max_gap_ms=60_000)
    ok = [i for i in range(len(rows)) if not acc[i] > 100]
    expected = [not acc[i] > 100 for i in range(len(rows))]
    if len(ok) >= 3:
        def fast(a: int, b: int) -> bool:
            dt = (t[b] - t[a]) / 1000
            return t[b] - t[a] <= 60_000 and hav(lat[a], lon[a], lat[b], lon[b]) > 30 * dt
        for k in range(1, len(ok) - 1):
            if fast(ok[k - 1], ok[k]) and fast(ok[k], ok[k + 1]):
                expected[ok[k]] = False
    assert got.tolist() == expected


@given(hnp.arrays(np.float64, st.integers(1, 30), elements=st.floats(0, 50)),
       st.sampled_from([1, 3, 5, 6]), st.data())
def test_rolling_median_matches_its_definition(x: np.ndarray, window: int,
                                              data: st.DataObject) -> None:
    piece = np.sort(np.array(data.draw(st.lists(st.integers(0, 3), min_size=len(x),
                                                 max_size=len(x)))))
    got = rolling_median(x, window, piece)
    half = window // 2
    for i in range(len(x)):
        idx = np.flatnonzero(piece == piece[i])
        lo, hi = idx.min(), idx.max()
        vals = [x[min(max(i - half + k, lo), hi)] for k in range(window)]
        assert got[i] == np.median(vals)


@given(hnp.arrays(bool, st.integers(0, 30)))
def test_runs_cover_exactly_the_true_positions(mask: np.ndarray) -> None:
    r = runs(mask)
    covered = np.zeros(len(mask), bool)
    for a, b in zip(r.start, r.end, strict=True):
        assert not covered[a:b + 1].any()
        covered[a:b + 1] = True
    assert covered.tolist() == mask.tolist()


@given(hnp.arrays(np.float64, st.integers(1, 30), elements=st.floats(0, 1e6)), st.data())
def test_span_sum_sums_each_span_on_its_own(x: np.ndarray, data: st.DataObject) -> None:
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(x)), max_size=8))))
    start, end = np.array(cuts[:-1:2], np.int64), np.array(cuts[1::2], np.int64)
    n = min(len(start), len(end))
    got = span_sum(x, start[:n], end[:n])
    assert got.tolist() == [float(sum(x[a:b].tolist())) if b > a else 0.0
                            for a, b in zip(start[:n], end[:n], strict=True)]


@given(st.lists(st.tuples(st.floats(-0.01, 0.01), st.floats(-0.01, 0.01)), max_size=25),
       st.integers(0, 25))
def test_places_match_leader_clustering_and_resume(stops: list[tuple[float, float]],
                                                   split: int) -> None:
    lat = 40 + np.array([s[0] for s in stops])
    lon = 116 + np.array([s[1] for s in stops])
    start = np.arange(len(stops), dtype=np.int64) * 10_000
    end = start + 5_000
    q = np.zeros(0, np.int64)
    got, _, state = assign(lat, lon, start, end, q, np.zeros(0), np.zeros(0),
                           PlaceState.empty(), 300.0)
    centres: list[tuple[float, float]] = []
    expected = []
    for a, b in zip(lat, lon, strict=True):
        d = [hav(a, b, c, e) for c, e in centres]
        k = int(np.argmin(d)) if d and min(d) <= 300 else -1
        if k < 0:
            centres.append((a, b))
            k = len(centres) - 1
        expected.append(k)
    assert got.tolist() == expected
    # resuming from the state after the first `split` stops gives the same places
    s = min(split, len(stops))
    _, _, mid = assign(lat[:s], lon[:s], start[:s], end[:s], q, np.zeros(0), np.zeros(0),
                       PlaceState.empty(), 300.0)
    rest, _, after = assign(lat[s:], lon[s:], start[s:], end[s:], q, np.zeros(0), np.zeros(0),
                            mid, 300.0)
    assert rest.tolist() == expected[s:]
    assert after.visits.tolist() == state.visits.tolist()


@given(st.lists(st.tuples(st.integers(0, 100), st.integers(1, 50), st.floats(-0.01, 0.01),
                          st.floats(-0.01, 0.01), st.floats(-0.01, 0.01),
                          st.floats(-0.01, 0.01)), max_size=30),
       st.lists(st.tuples(st.integers(0, 200), st.floats(-0.01, 0.01), st.floats(-0.01, 0.01)),
                max_size=10))
def test_drive_features_count_earlier_drives_as_written(
        drives: list[tuple[int, int, float, float, float, float]],
        legs: list[tuple[int, float, float]]) -> None:
    from parkloop.facts.drives import (
        FAST_MPS,
        RECENT_P85,
        RECENT_SHARE,
        DriveHistory,
        drive_features,
    )

    hist = DriveHistory(
        np.array([d[0] for d in drives], np.int64), 40 + np.array([d[2] for d in drives]),
        116 + np.array([d[3] for d in drives]), np.array([d[0] + d[1] for d in drives], np.int64),
        40 + np.array([d[4] for d in drives]), 116 + np.array([d[5] for d in drives]),
        *(np.arange(len(drives), dtype=float) * (c + 1) for c in range(4)))
    q_start = np.array([leg[0] for leg in legs], np.int64)
    q_lat = 40 + np.array([leg[1] for leg in legs])
    q_lon = 116 + np.array([leg[2] for leg in legs])
    out = drive_features(q_start, q_lat, q_lon, q_lat, q_lon, hist, 300.0)
    n, started, ended = (out[c] for c in (
        "drives_before", "drives_started_near_before", "drives_ended_near_before"))
    for k in range(len(legs)):
        earlier = [j for j in range(len(drives)) if hist.end_ms[j] < q_start[k]]
        assert n[k] == len(earlier)
        assert started[k] == sum(hav(q_lat[k], q_lon[k], hist.start_lat[j], hist.start_lon[j])
                                 <= 300 for j in earlier)
        assert ended[k] == sum(hav(q_lat[k], q_lon[k], hist.end_lat[j], hist.end_lon[j]) <= 300
                               for j in earlier)
        if earlier:
            latest = max(earlier, key=lambda j: (hist.end_ms[j], j))
            assert out["chain_gap_s"][k] == (q_start[k] - hist.end_ms[latest]) / 1000
            assert out["hist_p85_speed_mps"][k] == np.median(hist.p85_mps[earlier])
            fast = [hist.p85_mps[j] >= FAST_MPS for j in earlier]
            assert out["hist_fast_share"][k] == np.mean(fast)
            latest = sorted(earlier, key=lambda j: (-hist.end_ms[j], j))
            assert out["hist_fast_share_recent"][k] == np.mean(
                [hist.p85_mps[j] >= FAST_MPS for j in latest[:RECENT_SHARE]])
            assert out["hist_p85_recent_mps"][k] == np.median(
                [hist.p85_mps[j] for j in latest[:RECENT_P85]])
        else:
            assert np.isnan(out["chain_dist_m"][k])
            assert np.isnan(out["hist_fast_share"][k])
