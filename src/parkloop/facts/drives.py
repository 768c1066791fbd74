"""A device's earlier drives: where its vehicle legs started and ended, for leg-end features.

A car is picked up where it was parked, so a leg end near where this person's earlier drives
*started* looks like parking; a taxi or bus drop-off rarely does. Only drives that ended before
the leg in question began count, so the history is causal. The incremental engine carries the
drives before its restart point in a :class:`DriveHistory`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from parkloop.facts.geo import _haversine_m


@dataclass(frozen=True)
class DriveHistory:
    """Vehicle legs, in order of their end: start and end time (ms) and position."""

    start_ms: np.ndarray
    start_lat: np.ndarray
    start_lon: np.ndarray
    end_ms: np.ndarray
    end_lat: np.ndarray
    end_lon: np.ndarray

    @classmethod
    def empty(cls) -> DriveHistory:
        i, f = np.zeros(0, np.int64), np.zeros(0)
        return cls(i, f, f, i, f, f)

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
                self.end_lon)


def drive_features(leg_start_ms: np.ndarray, end_lat: np.ndarray, end_lon: np.ndarray,
                   drives: DriveHistory, radius_m: float) -> tuple[np.ndarray, ...]:
    """For each leg (its start time and end position): how many earlier drives (ended before
    the leg began) there were, how many started within ``radius_m`` of its end, and how many
    ended there."""
    out: tuple[np.ndarray, ...] = _drive_features(  # type: ignore[call-arg]
        np.asarray(leg_start_ms, np.int64), np.asarray(end_lat, float),
        np.asarray(end_lon, float), *drives.columns(), float(radius_m))
    return out


@numba.njit(cache=True, nogil=True)
def _drive_features(q_start, q_lat, q_lon, d_start, d_slat, d_slon,  # type: ignore[no-untyped-def]
                    d_end, d_elat, d_elon, radius_m):
    n = len(q_start)
    n_before = np.zeros(n, np.int64)
    started_near = np.zeros(n, np.int64)
    ended_near = np.zeros(n, np.int64)
    for k in range(n):
        for j in range(len(d_end)):
            if d_end[j] >= q_start[k]:
                continue
            n_before[k] += 1
            if _haversine_m(q_lat[k], q_lon[k], d_slat[j], d_slon[j]) <= radius_m:
                started_near[k] += 1
            if _haversine_m(q_lat[k], q_lon[k], d_elat[j], d_elon[j]) <= radius_m:
                ended_near[k] += 1
    return n_before, started_near, ended_near
