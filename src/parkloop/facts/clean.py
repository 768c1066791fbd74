"""Step 2: remove fixes that cannot be where the device was.

Two rules, both local (a fix and its neighbours), so a stream can be cleaned piece by piece:

- poor accuracy: a fix reporting a horizontal accuracy worse than ``max_accuracy_m``;
- spikes: a fix that is both reached and left faster than ``max_speed_mps`` (a jump of
  hundreds of metres and back). Neighbours across a recording gap longer than ``max_gap_ms``
  do not count, so gaps separate the stream into independent pieces.

Jitter while standing still is left to the stop step, which uses a radius and a robust
(median) position.
"""

from __future__ import annotations

import numpy as np

from parkloop.facts.geo import haversine_m


def segment_speeds(t_ms: np.ndarray, lat: np.ndarray, lon: np.ndarray,
                   distance_m: np.ndarray | None = None) -> np.ndarray:
    """Speed between consecutive fixes, m/s (n-1 values; inf for a move in no time)."""
    d = haversine_m(lat[:-1], lon[:-1], lat[1:], lon[1:]) if distance_m is None else distance_m
    dt = np.diff(t_ms) / 1000.0
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(dt > 0, d / np.where(dt > 0, dt, 1.0), np.where(d > 0, np.inf, 0.0))
    return v


def clean_mask(t_ms: np.ndarray, lat: np.ndarray, lon: np.ndarray, accuracy_m: np.ndarray, *,
               max_accuracy_m: float, max_speed_mps: float, max_gap_ms: float) -> np.ndarray:
    """True for fixes kept (inputs in time order; accuracy NaN means not reported)."""
    keep = ~(accuracy_m > max_accuracy_m)
    idx = np.flatnonzero(keep)
    if len(idx) < 3 or not np.isfinite(max_speed_mps):
        return keep
    t, y, x = t_ms[idx], lat[idx], lon[idx]
    v = segment_speeds(t, y, x)
    joined = np.diff(t) <= max_gap_ms
    fast = (v > max_speed_mps) & joined
    spike = np.zeros(len(idx), dtype=bool)
    spike[1:-1] = fast[:-1] & fast[1:]
    keep[idx[spike]] = False
    return keep
