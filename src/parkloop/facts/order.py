"""Step 1: from fixes as they arrived to one time-ordered fix per moment.

Late fixes (older, on arrival, than the newest fix already seen minus the allowed lateness)
are set aside: arrival order is part of the raw log (``batch_no``, ``seq``), so batch and
incremental runs agree on which fixes were late. Copies of a fix (same device and time,
e.g. sent in two batches) are kept once; among copies that differ, the smallest
``(lat, lon)`` wins, so the result never depends on arrival order.

>>> import numpy as np
>>> t = np.array([5_000, 1_000, 1_000, 9_000_000, 2_000])
>>> arrival = np.arange(5)
>>> keep, late = order_fixes(t, np.array([1., 2., 1., 1., 1.]), np.zeros(5), arrival,
...                          lateness_ms=60_000, dedup="time")
>>> keep.tolist(), late
([2, 0, 3], 1)
"""

from __future__ import annotations

import numpy as np


def late_mask(t_ms: np.ndarray, arrival: np.ndarray, lateness_ms: float) -> np.ndarray:
    """True for fixes older, when they arrived, than the newest earlier arrival minus the
    allowed lateness. ``arrival`` ranks the fixes in arrival order."""
    order = np.argsort(arrival, kind="stable")
    t = t_ms[order]
    newest_before = np.maximum.accumulate(np.concatenate([[-np.inf], t[:-1].astype(float)]))
    late = np.zeros(len(t_ms), dtype=bool)
    late[order] = t < newest_before - float(lateness_ms)
    return late


def order_fixes(t_ms: np.ndarray, lat: np.ndarray, lon: np.ndarray, arrival: np.ndarray, *,
                lateness_ms: float, dedup: str, altitude: np.ndarray | None = None
                ) -> tuple[np.ndarray, int]:
    """Indices of the fixes to use, in time order, and how many were late.

    ``dedup="time"`` keeps one fix per time; ``"exact"`` drops only fixes identical in time,
    position and altitude (trackintel's rule)."""
    late = late_mask(t_ms, arrival, lateness_ms) if len(t_ms) else np.zeros(0, bool)
    idx = np.flatnonzero(~late)
    alt = np.zeros(len(t_ms)) if altitude is None else np.nan_to_num(altitude, nan=-1e12)
    t = t_ms[idx]
    if len(t) > 1 and not bool(np.all(t[1:] >= t[:-1])):
        idx = idx[np.argsort(t, kind="stable")]
        t = t_ms[idx]
    # equal times (rare): order the tied fixes by content, so arrival order never matters
    tied = np.flatnonzero(t[1:] == t[:-1]) if len(t) > 1 else np.zeros(0, np.int64)
    if len(tied):
        mark = np.zeros(len(t), dtype=bool)
        mark[tied] = True
        mark[tied + 1] = True
        pos = np.flatnonzero(mark)
        sub = idx[pos]
        idx[pos] = sub[np.lexsort((alt[sub], lon[sub], lat[sub], t_ms[sub]))]
    if len(idx) > 1:
        same_t = t_ms[idx][1:] == t_ms[idx][:-1]
        if dedup == "exact":
            same_t &= (lat[idx][1:] == lat[idx][:-1]) & (lon[idx][1:] == lon[idx][:-1]) \
                & (alt[idx][1:] == alt[idx][:-1])
        idx = idx[np.concatenate([[True], ~same_t])]
    return idx, int(late.sum())
