"""How the vehicle moved during a leg: the shape of its speeds, halts, gaps and turns.

A car, a bus, a taxi, a train and a subway differ less in their top speed than in how they
get there: buses halt every few hundred metres, trains and subways run straight (and
subways lose the sky), cars turn at junctions and crawl the last stretch looking for a
space. These numbers describe one leg from its own fixes; a person's earlier legs are
summarised by :mod:`parkloop.facts.drives`.

Speeds are the segments' baseline speeds (displacement over the rules' baseline), capped at
:data:`MAX_MPS`; shares and quantiles are weighted by time.
"""

from __future__ import annotations

import numba
import numpy as np

from parkloop.facts import trig
from parkloop.facts.legs import Segments, Spans

MOTION = (
    "leg_p50_speed_mps", "leg_p85_speed_mps", "leg_p95_speed_mps", "leg_speed_std_mps",
    "leg_share_5_10_mps", "leg_share_10_20_mps", "leg_share_over_20_mps", "leg_halts_per_km",
    "leg_max_gap_s", "leg_gap_share", "leg_straightness", "leg_turns_per_km",
    "leg_last_speed_mps", "gap_before_s",
)
"""The motion features, in the order :func:`motion_features` returns them."""

MAX_MPS = 80.0
"""speeds above this are GPS jumps, not motion"""
HALT_MPS = 1.0
"""a smoothed speed below this is a halt (lights, stops, jams)"""
GAP_S = 60.0
"""a segment longer than this is a hole in the recording (tunnel, underground, doze)"""
TURN_RAD = np.pi / 4
"""a heading change larger than this between moving segments is a turn"""
TURN_MIN_M = 5.0
"""segments shorter than this carry no usable heading"""
LAST_M = 300.0
"""the leg's last stretch: looking for a space, or a kerbside drop-off"""


def motion_features(t_ms: np.ndarray, lat: np.ndarray, lon: np.ndarray, seg: Segments,
                    legs: Spans) -> dict[str, np.ndarray]:
    """One value per leg for each of :data:`MOTION` (legs are fix spans over ``t_ms``)."""
    out = _motion(np.asarray(t_ms, np.int64), np.asarray(lat, float), np.asarray(lon, float),
                  np.minimum(seg.speed_mps, MAX_MPS), seg.smooth_mps, seg.distance_m,
                  np.asarray(legs.start, np.int64), np.asarray(legs.end, np.int64))
    return dict(zip(MOTION, out, strict=True))


@numba.njit(cache=True, nogil=True)
def _weighted_quantile(v, w, q):  # type: ignore[no-untyped-def]
    order = np.argsort(v, kind="mergesort")
    total = w.sum()
    acc = 0.0
    for i in order:
        acc += w[i]
        if acc >= q * total:
            return v[i]
    return v[order[-1]]


@numba.njit(cache=True, nogil=True)
def _motion(t, lat, lon, v, smooth, dist, start, end):  # type: ignore[no-untyped-def]
    n = len(start)
    out = np.full((14, n), np.nan)
    for k in range(n):
        s, e = start[k], end[k]
        if e <= s:
            continue
        dt = np.diff(t[s:e + 1]) / 1000.0
        vv = v[s:e]
        w = np.maximum(dt, 1e-3)
        dur = max(dt.sum(), 1e-3)
        km = max(dist[s:e].sum() / 1000.0, 0.1)
        out[0, k] = _weighted_quantile(vv, w, 0.50)
        out[1, k] = _weighted_quantile(vv, w, 0.85)
        out[2, k] = _weighted_quantile(vv, w, 0.95)
        mean = (vv * w).sum() / w.sum()
        out[3, k] = np.sqrt(((vv - mean) ** 2 * w).sum() / w.sum())
        out[4, k] = dt[(vv >= 5.0) & (vv < 10.0)].sum() / dur
        out[5, k] = dt[(vv >= 10.0) & (vv < 20.0)].sum() / dur
        out[6, k] = dt[vv >= 20.0].sum() / dur
        halts = 0
        was_slow = False
        turns = 0
        have_heading = False
        heading = 0.0
        for i in range(s, e):
            slow = smooth[i] < HALT_MPS
            if slow and not was_slow:
                halts += 1
            was_slow = slow
            if smooth[i] > 2.0 and dist[i] > TURN_MIN_M:
                y = lat[i + 1] - lat[i]
                x = (lon[i + 1] - lon[i]) * trig.cos(np.radians(lat[i]))
                h = trig.atan2(y, x)
                if have_heading:
                    d = abs(h - heading)
                    if min(d, 2 * np.pi - d) > TURN_RAD:
                        turns += 1
                heading = h
                have_heading = True
        out[7, k] = halts / km
        out[8, k] = dt.max()
        out[9, k] = dt[dt > GAP_S].sum() / dur
        r = 6371000.0
        p1, p2 = np.radians(lat[s]), np.radians(lat[e])
        a = trig.sin((p2 - p1) / 2) ** 2 + trig.cos(p1) * trig.cos(p2) * trig.sin(
            np.radians(lon[e] - lon[s]) / 2) ** 2
        out[10, k] = 2 * r * trig.asin(np.sqrt(a)) / max(dist[s:e].sum(), 1.0)
        out[11, k] = turns / km
        covered = 0.0
        num = 0.0
        den = 0.0
        for i in range(e - 1, s - 1, -1):
            num += vv[i - s] * w[i - s]
            den += w[i - s]
            covered += dist[i]
            if covered >= LAST_M:
                break
        out[12, k] = num / den
        out[13, k] = (t[s] - t[s - 1]) / 1000.0 if s > 0 else np.nan
    return out
