"""Step 5: places, a device's own recurring locations, and its history at each moment.

Leader clustering online, in time order (Hartigan, *Clustering Algorithms*, 1975): each stop,
as it finishes, joins the nearest place whose centre (its first stop's position) lies within
``radius_m``, or founds a new place. Because it only ever looks back, the same stops give the
same places whether processed at once or as they stream in, and any moment's place history is
exactly what was known then.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from parkloop.facts.geo import _haversine_m as haversine_scalar_m


@dataclass(frozen=True)
class PlaceState:
    """A device's places so far (index = place number, in order of founding)."""

    lat: np.ndarray
    lon: np.ndarray
    visits: np.ndarray
    dwell_ms: np.ndarray
    first_ms: np.ndarray
    last_ms: np.ndarray

    @classmethod
    def empty(cls) -> PlaceState:
        f, i = np.zeros(0), np.zeros(0, np.int64)
        return cls(f, f, i, i, i, i)

    def __len__(self) -> int:
        return len(self.lat)


@dataclass(frozen=True)
class PlaceHistory:
    """What was known of a device's places at given moments (one row per query)."""

    place: np.ndarray
    """nearest known place within the radius, or -1"""
    visits_before: np.ndarray
    dwell_mean_s: np.ndarray
    """mean stay at that place so far, s (NaN without a place)"""
    is_top: np.ndarray
    """that place is (one of) the most visited so far"""
    n_places: np.ndarray


def assign(stop_lat: np.ndarray, stop_lon: np.ndarray, stop_start_ms: np.ndarray,
           stop_end_ms: np.ndarray, query_ms: np.ndarray, query_lat: np.ndarray,
           query_lon: np.ndarray, state: PlaceState, radius_m: float
           ) -> tuple[np.ndarray, PlaceHistory, PlaceState]:
    """Place of every stop (stops sorted by end time) and the place history at every query
    (sorted by time; a query sees the stops finished at or before it), continuing ``state``."""
    cap = len(state) + len(stop_lat)
    arrays = [np.concatenate([a, np.zeros(cap - len(state), a.dtype)]) for a in (
        state.lat, state.lon, state.visits, state.dwell_ms, state.first_ms, state.last_ms)]
    out = _assign(stop_lat, stop_lon, stop_start_ms, stop_end_ms,  # type: ignore[call-arg]
                  query_ms, query_lat, query_lon, *arrays, len(state), radius_m)
    stop_place, q_place, q_visits, q_dwell, q_top, q_n, n = out
    new = PlaceState(*(a[:n] for a in arrays))
    return stop_place, PlaceHistory(q_place, q_visits, q_dwell, q_top, q_n), new


@numba.njit(cache=True, nogil=True)
def _nearest(lat: float, lon: float, plat: np.ndarray, plon: np.ndarray, n: int,
             radius_m: float) -> int:
    best, best_d = -1, radius_m
    for k in range(n):
        d = haversine_scalar_m(lat, lon, plat[k], plon[k])
        if d <= best_d:
            best, best_d = k, d
    return best


@numba.njit(cache=True, nogil=True)
def _assign(s_lat, s_lon, s_start, s_end, q_ms, q_lat, q_lon,  # type: ignore[no-untyped-def]
            p_lat, p_lon, p_visits, p_dwell, p_first, p_last, n, radius_m):
    stop_place = np.full(len(s_lat), -1, np.int64)
    q_place = np.full(len(q_ms), -1, np.int64)
    q_visits = np.zeros(len(q_ms), np.int64)
    q_dwell = np.full(len(q_ms), np.nan)
    q_top = np.zeros(len(q_ms), np.bool_)
    q_n = np.zeros(len(q_ms), np.int64)
    top = 0
    for k in range(n):
        top = max(top, p_visits[k])
    i = 0
    for j in range(len(q_ms) + 1):
        until = q_ms[j] if j < len(q_ms) else np.iinfo(np.int64).max
        while i < len(s_lat) and s_end[i] <= until:
            k = _nearest(s_lat[i], s_lon[i], p_lat, p_lon, n, radius_m)
            if k < 0:
                k = n
                p_lat[k], p_lon[k], p_first[k] = s_lat[i], s_lon[i], s_start[i]
                n += 1
            p_visits[k] += 1
            p_dwell[k] += s_end[i] - s_start[i]
            p_last[k] = s_end[i]
            top = max(top, p_visits[k])
            stop_place[i] = k
            i += 1
        if j < len(q_ms):
            k = _nearest(q_lat[j], q_lon[j], p_lat, p_lon, n, radius_m)
            q_n[j] = n
            if k >= 0:
                q_place[j] = k
                q_visits[j] = p_visits[k]
                q_dwell[j] = p_dwell[k] / p_visits[k] / 1000.0
                q_top[j] = p_visits[k] == top
    return stop_place, q_place, q_visits, q_dwell, q_top, q_n, n
