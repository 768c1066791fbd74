"""Staypoints of one device by the sliding-window rule, as trackintel's ``sliding`` method.

A *staypoint* is a run of consecutive fixes that stay within ``radius_m`` of the run's first
fix (its *anchor*) for at least ``min_duration_ms``. :func:`sliding_staypoints` reproduces
``trackintel.preprocessing.generate_staypoints(method="sliding")`` (trackintel 1.4.2, itself
adapted from Li et al. 2008) fix for fix; :func:`staypoint_positions` gives their positions.
Walking the fixes in time order with the anchor at the window's first fix:

1. a gap of *more than* ``max_gap_ms`` between two consecutive fixes restarts the window at
   the later fix and drops the open window, however long it lasted (gap test first). With
   ``gap_within_radius="continue"`` (not trackintel's rule) a fix after such a gap that is
   still within ``radius_m`` of the anchor continues the window instead (a phone that slept
   where it lay); one outside it restarts the window as above;
2. when the current fix is ``>= radius_m`` from the anchor, the window anchor .. previous fix
   becomes a staypoint if ``t(current) - t(anchor) >= min_duration_ms``; either way the current
   fix becomes the anchor. The staypoint starts at the anchor's time and finishes at the time
   of that first fix outside the radius (not a member), so consecutive staypoints can touch;
3. the window still open at the end is not emitted (trackintel's ``include_last=False``).

Li, Zheng, Xie, Chen, Liu, Ma: Mining user similarity based on location history. ACM
SIGSPATIAL GIS 2008. Martin et al.: Trackintel: An open-source Python library for human
mobility analysis. Computers, Environment and Urban Systems 101, 2023.

>>> t = np.array([0, 60, 120, 400, 460, 470], dtype=np.int64) * 1000
>>> lat = np.array([40.0, 40.0001, 40.0, 40.0002, 40.01, 40.01])
>>> lon = np.full(6, 116.3)
>>> sp = sliding_staypoints(t, lat, lon, **TRACKINTEL_DEFAULTS)
>>> sp.first, sp.last, sp.finish, sp.started_ms, sp.finished_ms, sp.open_first
(array([0]), array([3]), array([4]), array([0]), array([460000]), 4)
>>> staypoint_positions(lat, lon, sp.first, sp.last)[0].round(6)  # 40.0 counted once
array([40.0001])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, TypedDict

import numba
import numpy as np
import numpy.typing as npt

from parkloop.errors import FactsError
from parkloop.facts import trig
from parkloop.facts.geo import _cosine_law_m, _haversine_m

Distance = Literal["cosine_law", "haversine"]
DISTANCES: Final[tuple[Distance, ...]] = ("cosine_law", "haversine")
GapRule = Literal["restart", "continue"]
GAP_RULES: Final[tuple[GapRule, ...]] = ("restart", "continue")
PositionMethod = Literal["trackintel", "median"]
POSITION_METHODS: Final[tuple[PositionMethod, ...]] = ("trackintel", "median")

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


class SlidingParams(TypedDict):
    """Parameters of :func:`sliding_staypoints`, to pass as ``**params``."""

    radius_m: float
    min_duration_ms: int
    max_gap_ms: int
    distance: Distance
    gap_within_radius: GapRule


TRACKINTEL_DEFAULTS: Final[SlidingParams] = {
    "radius_m": 100.0, "min_duration_ms": 5 * 60_000, "max_gap_ms": 15 * 60_000,
    "distance": "cosine_law", "gap_within_radius": "restart"}
"""trackintel 1.4.2's defaults: 100 m, 5 min, gap 15 min, its law-of-cosines distance, a gap
always restarts the window."""


@dataclass(frozen=True, eq=False)
class Staypoints:
    """Staypoints of one device, one row per staypoint, as read-only int64 arrays.

    Indices point into the fixes the kernel was given. Members are ``first..last``
    (inclusive); ``finish`` (= ``last + 1``) is the first fix outside the radius, whose time is
    ``finished_ms``. ``open_first`` is the anchor of the window still open after the last fix
    (0 when there are no fixes): every staypoint finishes at or before it, and running the
    kernel again from there with more fixes appended continues the same fold.
    """

    first: I64
    last: I64
    finish: I64
    started_ms: I64
    finished_ms: I64
    open_first: int

    def __len__(self) -> int:
        return len(self.first)

    def shifted(self, offset: int) -> Staypoints:
        """The same staypoints with every index moved by ``offset`` (for a run on a suffix)."""
        return Staypoints(_frozen(self.first + offset), _frozen(self.last + offset),
                          _frozen(self.finish + offset), self.started_ms, self.finished_ms,
                          self.open_first + offset)


def sliding_staypoints(t_ms: npt.ArrayLike, lat: npt.ArrayLike, lon: npt.ArrayLike, *,
                       radius_m: float, min_duration_ms: int, max_gap_ms: int,
                       distance: Distance = "cosine_law",
                       gap_within_radius: GapRule = "restart") -> Staypoints:
    """The staypoints of one device's fixes, sorted by time (ties in the order given).

    ``t_ms``: int64 ms since the epoch, UTC, non-decreasing; ``lat``, ``lon``: degrees;
    ``radius_m``: metres from the anchor at which a fix leaves the window; ``min_duration_ms``:
    shortest staypoint, ms (``>=``); ``max_gap_ms``: a longer silence (``>``) between two
    fixes restarts the window; ``distance``: ``"cosine_law"`` (trackintel's) or
    ``"haversine"``; ``gap_within_radius``: after such a gap, ``"restart"`` the window always
    (trackintel's) or ``"continue"`` it while the fix is within ``radius_m`` of the anchor.
    Inputs are not modified.

    The kernel is a left fold over the fixes whose only state is the anchor index. So for
    any fix ``a`` that is an anchor of the full run (index 0, any staypoint's ``first``, any
    fix after a gap, any fix that left a window, ``open_first``), the run on the fixes
    ``a:`` gives exactly the full run's staypoints from ``a`` on, shifted by ``-a``.
    """
    t = np.ascontiguousarray(t_ms, dtype=np.int64)
    la = np.ascontiguousarray(lat, dtype=np.float64)
    lo = np.ascontiguousarray(lon, dtype=np.float64)
    problems = _problems(t, la, lo, radius_m, min_duration_ms, max_gap_ms, distance,
                         gap_within_radius)
    if problems:
        raise FactsError("sliding_staypoints: " + "; ".join(problems))
    first, last, finish, open_first = _sliding(
        t, la, lo, float(radius_m), int(min_duration_ms), int(max_gap_ms),
        DISTANCES.index(distance), gap_within_radius == "continue")
    return Staypoints(_frozen(first), _frozen(last), _frozen(finish), _frozen(t[first]),
                      _frozen(t[finish]), int(open_first))


def staypoint_positions(lat: npt.ArrayLike, lon: npt.ArrayLike, first: npt.ArrayLike,
                        last: npt.ArrayLike, method: PositionMethod = "trackintel"
                        ) -> tuple[F64, F64]:
    """(lat, lon) in degrees of the staypoints whose members are fixes ``first..last``.

    ``"trackintel"``: as trackintel 1.4.2 places a staypoint (the centroid of the members'
    shapely union): the members' distinct (lon, lat) pairs, each counted once, sorted by lon
    then lat; latitude = their mean, longitude = their circular mean ``atan2(mean sin, mean
    cos)``. Computed with the same NumPy operations in the same order, so the result is
    trackintel's to the bit. ``"median"``: the per-axis median of all members.
    """
    la = np.asarray(lat, dtype=np.float64)
    lo = np.asarray(lon, dtype=np.float64)
    f = np.asarray(first, dtype=np.int64)
    e = np.asarray(last, dtype=np.int64)
    if method not in POSITION_METHODS:
        raise FactsError(f"unknown position method {method!r}; use one of {POSITION_METHODS}")
    if la.shape != lo.shape or f.shape != e.shape or (
            len(f) and (np.any(e < f) or f.min() < 0 or e.max() >= len(la))):
        raise FactsError("staypoint_positions: need lat, lon of one length and first <= last, "
                         "both indices of the fixes")
    if method == "median":
        return _medians(la, lo, f, e)
    k = len(f)
    counts = e - f + 1
    sp = np.repeat(np.arange(k, dtype=np.int64), counts)
    idx = np.arange(len(sp), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts - f, counts)
    mlo, mla = lo[idx], la[idx]
    order = np.lexsort((mla, mlo, sp))
    sp, mlo, mla = sp[order], mlo[order], mla[order]
    keep = np.ones(len(sp), dtype=bool)
    keep[1:] = (sp[1:] != sp[:-1]) | (mlo[1:] != mlo[:-1]) | (mla[1:] != mla[:-1])
    sp, mlo, mla = sp[keep], mlo[keep], mla[keep]
    n = np.bincount(sp, minlength=k)
    out_lat = np.bincount(sp, weights=mla, minlength=k) / n
    rad = np.deg2rad(mlo)
    s = np.bincount(sp, weights=trig.sin_v(rad), minlength=k) / n
    c = np.bincount(sp, weights=trig.cos_v(rad), minlength=k) / n
    return out_lat, np.rad2deg(trig.atan2_v(s, c))


def _problems(t: I64, lat: F64, lon: F64, radius_m: float, min_duration_ms: int,
              max_gap_ms: int, distance: str, gap_within_radius: str) -> list[str]:
    """Everything wrong with the arguments, so the caller learns it all at once."""
    out = []
    if not (t.ndim == lat.ndim == lon.ndim == 1) or not (len(t) == len(lat) == len(lon)):
        out.append(f"t_ms, lat, lon must be 1-D of one length (got shapes {t.shape}, "
                   f"{lat.shape}, {lon.shape})")
    elif len(t) > 1 and (bad := np.flatnonzero(t[1:] < t[:-1])).size:
        out.append(f"t_ms must be sorted ({bad.size} decreasing steps, first at index "
                   f"{bad[0] + 1})")
    if lat.size and not (np.isfinite(lat).all() and np.isfinite(lon).all()):
        out.append("lat and lon must be finite")
    if not (np.isfinite(radius_m) and radius_m > 0):
        out.append(f"radius_m must be > 0 metres (got {radius_m})")
    if min_duration_ms < 0:
        out.append(f"min_duration_ms must be >= 0 (got {min_duration_ms})")
    if max_gap_ms < 0:
        out.append(f"max_gap_ms must be >= 0 (got {max_gap_ms})")
    if distance not in DISTANCES:
        out.append(f"unknown distance {distance!r}; use one of {DISTANCES}")
    if gap_within_radius not in GAP_RULES:
        out.append(f"unknown gap_within_radius {gap_within_radius!r}; use one of {GAP_RULES}")
    return out


def _frozen(a: I64) -> I64:
    a.setflags(write=False)
    return a


@numba.njit(cache=True, nogil=True)
def _sliding(t: I64, lat: F64, lon: F64, radius_m: float, min_duration_ms: int,
             max_gap_ms: int, metric: int, gap_continues: bool) -> tuple[I64, I64, I64, int]:
    n = len(t)
    cap = 64
    first = np.empty(cap, dtype=np.int64)
    last = np.empty(cap, dtype=np.int64)
    finish = np.empty(cap, dtype=np.int64)
    k = 0
    anchor = 0
    for cur in range(1, n):
        if metric == 0:
            d = _cosine_law_m(lat[anchor], lon[anchor], lat[cur], lon[cur])
        else:
            d = _haversine_m(lat[anchor], lon[anchor], lat[cur], lon[cur])
        outside = d >= radius_m
        if t[cur] - t[cur - 1] > max_gap_ms and (outside or not gap_continues):
            anchor = cur  # the open window is dropped, however long it lasted
            continue
        if outside:
            if t[cur] - t[anchor] >= min_duration_ms:
                if k == cap:
                    cap *= 2
                    first = _grown(first, cap)
                    last = _grown(last, cap)
                    finish = _grown(finish, cap)
                first[k] = anchor
                last[k] = cur - 1
                finish[k] = cur
                k += 1
            anchor = cur
    return first[:k].copy(), last[:k].copy(), finish[:k].copy(), anchor


@numba.njit(cache=True, nogil=True)
def _grown(a: I64, cap: int) -> I64:
    out = np.empty(cap, dtype=a.dtype)
    out[:len(a)] = a
    return out


@numba.njit(cache=True, nogil=True)
def _medians(lat: F64, lon: F64, first: I64, last: I64) -> tuple[F64, F64]:
    k = len(first)
    out_lat = np.empty(k, dtype=np.float64)
    out_lon = np.empty(k, dtype=np.float64)
    for i in range(k):
        out_lat[i] = np.median(lat[first[i]:last[i] + 1])
        out_lon[i] = np.median(lon[first[i]:last[i] + 1])
    return out_lat, out_lon
