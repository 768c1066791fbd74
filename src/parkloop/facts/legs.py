"""Step 4: trips between stops, and their legs: vehicle-like stretches and the rest.

A vehicle leg is a run of segments whose smoothed speed is vehicle-like, kept together across
pauses of at most ``max_pause_s`` (red lights, jams), stretched at both ends while the
vehicle is still rolling faster than walking pace, and at least ``min_vehicle_leg_m`` long.
Its last fix is the *leg end*: where and when the vehicle stopped for good, or where
recording stopped. Vehicle legs depend on the motion alone (recording gaps break them, stops
do not), so a leg end is settled ``max_pause_s`` after it, whatever the device does later;
trips run between stops and gaps, and their non-vehicle parts are the other legs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from parkloop.facts.clean import segment_speeds
from parkloop.facts.geo import haversine_m
from parkloop.facts.rules import Legs


@dataclass(frozen=True)
class Segments:
    """Per-segment quantities of a time-ordered track (segment s joins fix s and s+1)."""

    distance_m: np.ndarray
    speed_mps: np.ndarray
    smooth_mps: np.ndarray
    """rolling median of ``speed_mps`` over the rules' window"""
    gap: np.ndarray
    """across a recording gap longer than the rules' max_gap_s: nothing runs through it"""
    in_stop: np.ndarray
    """inside a stop: trips do not run through it"""
    piece: np.ndarray
    """stretch between recording gaps; legs and speed smoothing stay within one"""
    trip_piece: np.ndarray
    """stretch between gaps and stop boundaries; trips stay within one"""


@dataclass(frozen=True)
class Spans:
    """Fix index spans ``[start, end]`` (inclusive) of trips or legs."""

    start: np.ndarray
    end: np.ndarray

    def __len__(self) -> int:
        return len(self.start)


def segments(t_ms: np.ndarray, lat: np.ndarray, lon: np.ndarray, stop_first: np.ndarray,
             stop_last: np.ndarray, *, window: int, max_gap_ms: float,
             baseline_ms: float = 0.0) -> Segments:
    """Distances, speeds and blocking of every segment of a cleaned track. With a
    ``baseline_ms``, a segment's speed is the displacement over about that long around it
    (GPS noise of a few metres reads as walking or driving speed between fixes a second
    apart, not over twenty seconds)."""
    n = len(t_ms)
    d = haversine_m(lat[:-1], lon[:-1], lat[1:], lon[1:]) if n > 1 else np.zeros(0)
    v = segment_speeds(t_ms, lat, lon, d) if n > 1 else np.zeros(0)
    marks = np.zeros(max(n, 1), dtype=np.int64)
    np.add.at(marks, stop_first, 1)
    np.add.at(marks, stop_last, -1)
    in_stop = np.cumsum(marks)[: max(n - 1, 0)] > 0
    gap = np.diff(t_ms) > max_gap_ms
    piece = _pieces(gap)
    if baseline_ms > 0 and n > 1:
        v = baseline_speed(t_ms, lat, lon, piece, baseline_ms)
    trip_starts = np.zeros(len(gap), dtype=bool)
    if len(gap):
        trip_starts[0] = True
        blocked = gap | in_stop
        trip_starts[1:] = (blocked[1:] != blocked[:-1]) | (piece[1:] != piece[:-1])
        for cut in (stop_first, stop_last):  # a stop of one fix blocks nothing, but cuts
            trip_starts[cut[cut < n - 1]] = True
    smooth = rolling_median(np.minimum(v, 1e4), window, piece)
    return Segments(d, v, np.where(gap, 0.0, smooth), gap, in_stop, piece,
                    np.cumsum(trip_starts) - 1)


def baseline_speed(t_ms: np.ndarray, lat: np.ndarray, lon: np.ndarray, piece: np.ndarray,
                   baseline_ms: float) -> np.ndarray:
    """Speed of each segment s as the straight-line displacement, m/s, from the fix about
    ``baseline_ms/2`` before fix s to the one about as long after fix s+1, both within the
    segment's piece (never across a recording gap)."""
    n = len(t_ms)
    s = np.arange(n - 1)
    new = np.concatenate([[True], piece[1:] != piece[:-1]])
    lo = np.maximum.accumulate(np.where(new, s, 0))                    # first fix of piece
    end = np.concatenate([piece[1:] != piece[:-1], [True]])
    hi = np.minimum.accumulate(np.where(end, s, n)[::-1])[::-1] + 1    # last fix of piece
    a = np.maximum(np.minimum(np.searchsorted(t_ms, t_ms[s] - baseline_ms / 2), s), lo)
    b = np.minimum(np.maximum(np.searchsorted(t_ms, t_ms[s + 1] + baseline_ms / 2,
                                              side="right") - 1, s + 1), hi)
    dt = (t_ms[b] - t_ms[a]) / 1000.0
    dist = haversine_m(lat[a], lon[a], lat[b], lon[b])
    return np.where(dt > 0, dist / np.where(dt > 0, dt, 1.0), 0.0)


def _pieces(gap: np.ndarray) -> np.ndarray:
    """Label consecutive segments, starting a new label after every gap segment and at it."""
    starts = np.zeros(len(gap), dtype=bool)
    if len(gap):
        starts[0] = True
        starts[1:] = gap[1:] | gap[:-1]
    return np.cumsum(starts) - 1


def rolling_median(x: np.ndarray, window: int, piece: np.ndarray | None = None) -> np.ndarray:
    """Centered rolling median that never reaches across pieces: each value's window is cut
    to its own piece (``piece`` labels consecutive runs; None = one piece) and padded with the
    piece's edge values, so a trip's smoothed speeds depend on that trip alone.

    >>> rolling_median(np.array([0., 0., 9., 0., 0., 5., 5., 5.]), 3).tolist()
    [0.0, 0.0, 0.0, 0.0, 0.0, 5.0, 5.0, 5.0]
    >>> rolling_median(np.array([1., 1., 1., 9., 9., 9.]), 5, np.array([0, 0, 0, 1, 1, 1]))
    array([1., 1., 1., 9., 9., 9.])
    """
    if window <= 1 or len(x) == 0:
        return x.copy()
    n = len(x)
    piece = np.zeros(n, np.int64) if piece is None else np.asarray(piece, np.int64)
    i = np.arange(n)
    new = np.concatenate([[True], piece[1:] != piece[:-1]])
    lo = np.maximum.accumulate(np.where(new, i, 0))
    end = np.concatenate([piece[1:] != piece[:-1], [True]])
    hi = np.minimum.accumulate(np.where(end, i, n)[::-1])[::-1]
    return _rolling_median(np.asarray(x, np.float64), window, lo, hi)


@numba.njit(cache=True, nogil=True)
def _rolling_median(x: np.ndarray, window: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    n = len(x)
    out = np.empty(n)
    buf = np.empty(window)
    half = window // 2
    for i in range(n):
        for k in range(window):  # gather (edge-padded within the piece), insertion-sorted
            v = x[min(max(i - half + k, lo[i]), hi[i])]
            j = k
            while j > 0 and buf[j - 1] > v:
                buf[j] = buf[j - 1]
                j -= 1
            buf[j] = v
        out[i] = buf[half] if window % 2 else 0.5 * (buf[half - 1] + buf[half])
    return out


def runs(mask: np.ndarray, piece: np.ndarray | None = None) -> Spans:
    """Maximal runs of True (not crossing a change of ``piece``) as inclusive index spans.

    >>> r = runs(np.array([1, 1, 0, 1, 1, 1], bool), np.array([0, 0, 0, 0, 1, 1]))
    >>> r.start.tolist(), r.end.tolist()
    ([0, 3, 4], [1, 3, 5])
    """
    m = mask.astype(bool)
    begin = m.copy()
    begin[1:] &= ~m[:-1] | (piece[1:] != piece[:-1] if piece is not None else False)
    end = m.copy()
    end[:-1] &= ~m[1:] | (piece[1:] != piece[:-1] if piece is not None else False)
    return Spans(np.flatnonzero(begin), np.flatnonzero(end))


def trips(seg: Segments) -> Spans:
    """Trips: maximal runs of segments outside stops and gaps, as fix spans."""
    r = runs(~(seg.gap | seg.in_stop), seg.trip_piece)
    return Spans(r.start, r.end + 1)


def vehicle_legs(t_ms: np.ndarray, seg: Segments, p: Legs) -> Spans:
    """Vehicle legs as fix spans (see the module docstring)."""
    fast = runs((seg.smooth_mps >= p.vehicle_speed_mps) & ~seg.gap, seg.piece)
    if not len(fast):
        return fast
    start, end = fast.start, fast.end + 1                      # fix spans
    pause_ms = t_ms[start[1:]] - t_ms[end[:-1]]
    same_piece = seg.piece[start[1:]] == seg.piece[end[:-1] - 1]
    join = (pause_ms <= p.max_pause_s * 1000) & same_piece
    start, end = _merge(start, end, join)
    # roll on while faster than walking: to the first slow or blocked segment
    # roll on (and back) while faster than walking, never out of the piece
    slow = (seg.smooth_mps <= p.walk_max_speed_mps) | seg.gap
    new_piece = np.concatenate([[True], seg.piece[1:] != seg.piece[:-1]])
    forward = np.flatnonzero(slow | new_piece)
    backward = np.flatnonzero(slow | np.concatenate([new_piece[1:], [True]]))
    after = np.searchsorted(forward, end)
    end = np.where(after < len(forward), forward[np.minimum(after, len(forward) - 1)],
                   len(t_ms) - 1)
    before = np.searchsorted(backward, start) - 1
    start = np.where(before >= 0, backward[np.maximum(before, 0)] + 1, 0)
    end = _roll_through_pauses(t_ms, seg, p, start, end, forward)
    start, end = _merge(start, end, start[1:] < end[:-1])
    long_enough = span_sum(seg.distance_m, start, end) >= p.min_vehicle_leg_m
    return Spans(start[long_enough], end[long_enough])


def _roll_through_pauses(t_ms: np.ndarray, seg: Segments, p: Legs, start: np.ndarray,
                         end: np.ndarray, stoppers: np.ndarray) -> np.ndarray:
    """After a leg's end, a pause of at most ``max_pause_s`` followed by motion faster than
    ``tail_speed_mps`` (the slow last stretch after a light or while looking for a space)
    still belongs to the leg: carry the end on to that stretch's next stopper, repeatedly,
    never into the next leg or across a recording gap."""
    if not len(end) or p.tail_speed_mps <= 0:
        return end
    moving = runs((seg.smooth_mps > p.tail_speed_mps) & ~seg.gap, seg.piece)
    if not len(moving):
        return end
    n_seg = len(seg.piece)
    next_start = np.concatenate([start[1:], [len(t_ms)]])
    for _ in range(64):  # each pass carries every leg at most one stretch further
        k = np.minimum(np.searchsorted(moving.start, end), len(moving) - 1)
        run_start, run_end = moving.start[k], moving.end[k] + 1
        ok = (run_start >= end) & (t_ms[np.minimum(run_start, len(t_ms) - 1)] - t_ms[end]
                                   <= p.max_pause_s * 1000)
        ok &= seg.piece[np.minimum(run_start, n_seg - 1)] == seg.piece[np.maximum(end - 1, 0)]
        ok &= run_start < next_start
        if not ok.any():
            break
        j = np.searchsorted(stoppers, run_end)
        rolled = np.where(j < len(stoppers), stoppers[np.minimum(j, len(stoppers) - 1)],
                          len(t_ms) - 1)
        end = np.where(ok, np.minimum(np.maximum(rolled, run_end), next_start), end)
    return end


def _merge(start: np.ndarray, end: np.ndarray, join: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge span i+1 into span i wherever ``join[i]``."""
    first = np.concatenate([[True], ~join])
    group = np.cumsum(first) - 1
    new_start = start[first]
    new_end = np.zeros(len(new_start), dtype=end.dtype)
    np.maximum.at(new_end, group, end)
    return new_start, new_end


def other_legs(trip: Spans, vehicle: Spans, n_fixes: int) -> Spans:
    """The parts of trips not in a vehicle leg (walking, cycling, standing): segments inside
    a trip and outside every vehicle leg, never joined across trips.

    >>> other = other_legs(Spans(np.array([0, 6]), np.array([4, 9])),
    ...                    Spans(np.array([1]), np.array([7])), 10)
    >>> other.start.tolist(), other.end.tolist()
    ([0, 7], [1, 9])
    """
    n_seg = max(n_fixes - 1, 0)
    in_trip, trip_id = _cover(trip, n_seg)
    in_vehicle, _ = _cover(vehicle, n_seg)
    r = runs(in_trip & ~in_vehicle, trip_id)
    return Spans(r.start, r.end + 1)


def _cover(spans: Spans, n_seg: int) -> tuple[np.ndarray, np.ndarray]:
    """Which segments lie in a span, and the number of the span each belongs to."""
    marks = np.zeros(n_seg + 1, dtype=np.int64)
    np.add.at(marks, spans.start, 1)
    np.add.at(marks, spans.end, -1)
    inside = np.cumsum(marks)[:n_seg] > 0
    ids = np.cumsum(np.bincount(spans.start, minlength=n_seg + 1))[:n_seg]
    return inside, ids


def span_distance(seg: Segments, spans: Spans) -> np.ndarray:
    """Path length of each span, metres."""
    return span_sum(seg.distance_m, spans.start, spans.end)


def span_sum(x: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """``x[start:end]`` summed left to right for every span: a span's value depends on its own
    elements only, not on where it lies (prefix-sum differences and NumPy's pairwise sums
    do not guarantee that).

    >>> span_sum(np.array([1., 2., 3., 4.]), np.array([0, 2]), np.array([2, 4])).tolist()
    [3.0, 7.0]
    """
    return _span_sum(np.asarray(x, np.float64), np.asarray(start, np.int64),
                     np.asarray(end, np.int64))


@numba.njit(cache=True, nogil=True)
def _span_sum(x: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    out = np.zeros(len(start))
    for k in range(len(start)):
        total = 0.0
        for i in range(start[k], end[k]):
            total += x[i]
        out[k] = total
    return out


__all__ = ["Segments", "Spans", "baseline_speed", "other_legs", "rolling_median", "runs",
           "segments", "span_distance", "span_sum", "trips", "vehicle_legs"]
