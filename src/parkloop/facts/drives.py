"""A device's earlier drives: where its vehicle legs started and ended, and how they moved.

A car is picked up where it was parked, so a leg end near where this person's earlier drives
*started* looks like parking, and a leg that starts where the previous drive ended looks like
the same car driven on; a taxi or bus drop-off rarely does either. And people differ: some
drive, some ride buses and subways all their lives, and their earlier vehicle legs show it
(how fast, how far, how straight, how often halting, what share of them ran at motor-road
speed, overall and lately). Only drives that ended before the leg
in question began count, so the history is causal. The incremental engine carries the
drives before its restart point in a :class:`DriveHistory`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from parkloop.facts.geo import _haversine_m, haversine_m


@dataclass(frozen=True)
class DriveHistory:
    """Vehicle legs, in order of their end: start and end time (ms) and position, and the
    motion summary the person's profile is made of."""

    start_ms: np.ndarray
    start_lat: np.ndarray
    start_lon: np.ndarray
    end_ms: np.ndarray
    end_lat: np.ndarray
    end_lon: np.ndarray
    p85_mps: np.ndarray
    distance_m: np.ndarray
    straightness: np.ndarray
    halts_per_km: np.ndarray

    @classmethod
    def empty(cls) -> DriveHistory:
        i, f = np.zeros(0, np.int64), np.zeros(0)
        return cls(i, f, f, i, f, f, f, f, f, f)

    def __len__(self) -> int:
        return len(self.end_ms)

    def extend(self, other: DriveHistory) -> DriveHistory:
        """This history followed by ``other`` (whose drives end later)."""
        return DriveHistory(*(np.concatenate([a, b]) for a, b in zip(
            self.columns(), other.columns(), strict=True)))

    def before(self, t_ms: int) -> DriveHistory:
        """The drives that started before ``t_ms``."""
        keep = self.start_ms < t_ms
        return DriveHistory(*(a[keep] for a in self.columns()))

    def columns(self) -> tuple[np.ndarray, ...]:
        return (self.start_ms, self.start_lat, self.start_lon, self.end_ms, self.end_lat,
                self.end_lon, self.p85_mps, self.distance_m, self.straightness,
                self.halts_per_km)


DRIVE_FEATURES = (
    "drives_before", "drives_started_near_before", "drives_ended_near_before",
    "chain_dist_m", "chain_gap_s", "hist_p85_speed_mps", "hist_distance_m",
    "hist_straightness", "hist_halts_per_km",
    "hist_fast_share", "hist_fast_share_recent", "hist_p85_recent_mps",
)
"""What :func:`drive_features` returns, in order."""

FAST_MPS = 12.0
"""an earlier vehicle leg whose 85th-percentile speed reaches this ran at motor-road speed
(a car, taxi or express bus; bicycles and city buses rarely do), m/s"""
RECENT_SHARE = 20
"""the latest this many earlier drives make ``hist_fast_share_recent``"""
RECENT_P85 = 10
"""the latest this many earlier drives make ``hist_p85_recent_mps``"""


def drive_features(leg_start_ms: np.ndarray, start_lat: np.ndarray, start_lon: np.ndarray,
                   end_lat: np.ndarray, end_lon: np.ndarray, drives: DriveHistory,
                   radius_m: float) -> dict[str, np.ndarray]:
    """For each leg (its start time, start and end position), from the drives that ended
    before it began: how many there were, how many started and ended within ``radius_m``
    of its end, how far and how long before its start the latest one ended (NaN without
    one), the median motion of all of them, the share of them (and of the latest
    :data:`RECENT_SHARE`) at :data:`FAST_MPS` or faster, and the median 85th-percentile
    speed of the latest :data:`RECENT_P85` (NaN without any)."""
    out = list(_drive_features(  # type: ignore[call-arg]
        np.asarray(leg_start_ms, np.int64), np.asarray(start_lat, float),
        np.asarray(start_lon, float), np.asarray(end_lat, float), np.asarray(end_lon, float),
        *drives.columns(), float(radius_m), FAST_MPS, RECENT_SHARE, RECENT_P85))
    # the chain's distance in NumPy, not in the kernel: compiled for the host CPU, the kernel's
    # inlined distance differed in the last bit from a generic CPU's (facts must not)
    latest = out[3]
    has = latest >= 0
    k = np.maximum(latest, 0)
    out[3] = np.where(has, haversine_m(np.asarray(start_lat, float), np.asarray(start_lon, float),
                                       drives.end_lat[k] if len(drives) else np.nan,
                                       drives.end_lon[k] if len(drives) else np.nan), np.nan)
    return dict(zip(DRIVE_FEATURES, out, strict=True))


@numba.njit(cache=True, nogil=True)
def _drive_features(q_start, q_slat, q_slon, q_lat, q_lon,  # type: ignore[no-untyped-def]
                    d_start, d_slat, d_slon, d_end, d_elat, d_elon, d_p85, d_dist, d_straight,
                    d_halts, radius_m, fast_mps, recent_share, recent_p85):
    n = len(q_start)
    n_before = np.zeros(n, np.int64)
    started_near = np.zeros(n, np.int64)
    ended_near = np.zeros(n, np.int64)
    chain_at = np.full(n, -1, np.int64)
    chain_s = np.full(n, np.nan)
    profile = np.full((7, n), np.nan)
    for k in range(n):
        earlier = np.zeros(len(d_end), np.bool_)
        latest = -1
        for j in range(len(d_end)):
            if d_end[j] >= q_start[k]:
                continue
            earlier[j] = True
            n_before[k] += 1
            if latest < 0 or d_end[j] >= d_end[latest]:
                latest = j
            if _haversine_m(q_lat[k], q_lon[k], d_slat[j], d_slon[j]) <= radius_m:
                started_near[k] += 1
            if _haversine_m(q_lat[k], q_lon[k], d_elat[j], d_elon[j]) <= radius_m:
                ended_near[k] += 1
        if latest >= 0:
            chain_at[k] = latest
            chain_s[k] = (q_start[k] - d_end[latest]) / 1000.0
            profile[0, k] = np.median(d_p85[earlier])
            profile[1, k] = np.median(d_dist[earlier])
            profile[2, k] = np.median(d_straight[earlier])
            profile[3, k] = np.median(d_halts[earlier])
            p85 = d_p85[earlier]
            profile[4, k] = np.mean(p85 >= fast_mps)
            # the latest first: by end time, ties by position (stable sort)
            latest_first = p85[np.argsort(-d_end[earlier], kind="mergesort")]
            profile[5, k] = np.mean(latest_first[:recent_share] >= fast_mps)
            profile[6, k] = np.median(latest_first[:recent_p85])
    return (n_before, started_near, ended_near, chain_at, chain_s, profile[0], profile[1],
            profile[2], profile[3], profile[4], profile[5], profile[6])
