"""Step 6: the numbers an interpreter reads for each vehicle-leg end.

Every feature of a leg end ending at ``t_end`` uses only what was known by its decision time
``t_end + wait_s``: the leg itself, what the device did during the wait (did the person walk
away? did recording stop? did driving resume?), the place history so far, and the phone's
own signals (car link, activity), and what the person said before (:mod:`parkloop.facts.said`).
A test truncates streams at the decision time and finds the same features.

Local time is solar time (UTC + longitude/15 h): deterministic and needs no time-zone data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from parkloop.facts.drives import DRIVE_FEATURES, DriveHistory, drive_features
from parkloop.facts.geo import haversine_m
from parkloop.facts.legs import Segments, Spans, span_sum
from parkloop.facts.motion import MOTION
from parkloop.facts.places import PlaceHistory
from parkloop.facts.rules import Params
from parkloop.facts.said import SAID_FEATURES, Statements, said_features

DAY_MS = 86_400_000
SLOW_MPS = 1.0
"""below this a vehicle counts as standing (lights, jams), m/s"""
NEAR_END_MS = 120_000
"""a car-link disconnect this long before a leg end still belongs to it, ms"""
ON_FOOT = ("on_foot", "walking", "running")

FEATURES = (
    "leg_duration_s", "leg_distance_m", "leg_mean_speed_mps", "leg_max_speed_mps",
    "leg_standing_share", "leg_n_halts", "hour_local", "weekday_local",
    "n_fixes_after", "first_fix_after_s", "away_m", "max_away_m", "drives_on",
    "place_visits_before", "place_dwell_mean_s", "place_is_top", "n_places_known",
    "link_seen", "link_disconnect_near_end", "activity_on_foot_share_after",
    *MOTION, *DRIVE_FEATURES, *SAID_FEATURES,
)


@dataclass(frozen=True)
class Signals:
    """A device's phone signals, time-ordered: car-link changes and activity guesses; and
    the person's own statements (labels, feedback)."""

    link_ms: np.ndarray
    link_connected: np.ndarray
    activity_ms: np.ndarray
    activity_on_foot: np.ndarray
    statements: Statements = field(default_factory=Statements.none)

    @classmethod
    def none(cls) -> Signals:
        e = np.zeros(0, np.int64)
        return cls(e, np.zeros(0, bool), e, np.zeros(0, bool))

    def with_statements(self, statements: Statements) -> Signals:
        """The same phone signals with other statements (none: a stranger's view)."""
        return Signals(self.link_ms, self.link_connected, self.activity_ms,
                       self.activity_on_foot, statements)


def leg_end_features(t_ms: np.ndarray, lat: np.ndarray, lon: np.ndarray, seg: Segments,
                     legs: Spans, history: PlaceHistory, signals: Signals,
                     params: Params, drives: DriveHistory,
                     motion: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One value per vehicle leg (``legs``) for each of :data:`FEATURES`; ``drives``: the
    device's vehicle legs so far (earlier ones carried in, these ones included);
    ``motion``: the legs' :func:`~parkloop.facts.motion.motion_features`."""
    s, e = legs.start, legs.end
    t_end = t_ms[e]
    decided = t_end + int(params.features.wait_s * 1000)
    dt = np.diff(t_ms) / 1000.0
    slow = (seg.smooth_mps < SLOW_MPS).astype(np.int64)
    halt_starts = np.concatenate([[0], np.cumsum(np.diff(np.concatenate([[0], slow])) == 1)])
    duration = (t_end - t_ms[s]) / 1000.0
    distance = span_sum(seg.distance_m, s, e)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_speed = np.where(duration > 0, distance / duration, 0.0)
        standing = np.where(duration > 0, span_sum(dt * slow, s, e) / duration, 0.0)
    solar = t_end + (lon[e] / 15.0 * 3_600_000).astype(np.int64)

    # after the leg end, up to the decision time
    last = np.searchsorted(t_ms, decided, side="right") - 1
    n_after = np.maximum(last - e, 0)
    nxt = np.minimum(e + 1, len(t_ms) - 1)
    first_after = np.where(n_after > 0, (t_ms[nxt] - t_end) / 1000.0, np.nan)
    away = np.where(n_after > 0, haversine_m(lat[e], lon[e], lat[last], lon[last]), 0.0)
    max_away = np.zeros(len(e))
    drives_on = np.zeros(len(e), dtype=bool)
    fast = (seg.smooth_mps >= params.legs.vehicle_speed_mps) & ~seg.gap
    for k in np.flatnonzero(n_after > 0):  # one iteration per leg end, vectorised within
        window = slice(e[k] + 1, last[k] + 1)
        max_away[k] = haversine_m(lat[e[k]], lon[e[k]], lat[window], lon[window]).max()
        drives_on[k] = bool(fast[e[k]:last[k]].any())

    link_seen = np.searchsorted(signals.link_ms, decided, side="right") > 0
    lo = np.searchsorted(signals.link_ms, t_end - NEAR_END_MS, side="left")
    hi = np.searchsorted(signals.link_ms, decided, side="right")
    off = np.concatenate([[0], np.cumsum(~signals.link_connected)])
    disconnect = off[hi] - off[lo] > 0
    a_lo = np.searchsorted(signals.activity_ms, t_end, side="right")
    a_hi = np.searchsorted(signals.activity_ms, decided, side="right")
    foot = np.concatenate([[0], np.cumsum(signals.activity_on_foot)])
    with np.errstate(invalid="ignore", divide="ignore"):
        foot_share = np.where(a_hi > a_lo, (foot[a_hi] - foot[a_lo]) / (a_hi - a_lo), np.nan)

    history_of_drives = drive_features(t_ms[s], lat[s], lon[s], lat[e], lon[e], drives,
                                       params.places.radius_m)
    return {
        "leg_duration_s": duration, "leg_distance_m": distance,
        "leg_mean_speed_mps": mean_speed, "leg_max_speed_mps": _span_max(seg.smooth_mps, s, e),
        "leg_standing_share": standing,
        "leg_n_halts": (halt_starts[e] - halt_starts[s]).astype(np.int64),
        "hour_local": (solar % DAY_MS) / 3_600_000.0,
        "weekday_local": ((solar // DAY_MS + 3) % 7).astype(np.int64),  # 1970-01-01: Thursday
        "n_fixes_after": n_after.astype(np.int64), "first_fix_after_s": first_after,
        "away_m": away, "max_away_m": max_away, "drives_on": drives_on,
        "place_visits_before": history.visits_before, "place_dwell_mean_s": history.dwell_mean_s,
        "place_is_top": history.is_top, "n_places_known": history.n_places,
        "link_seen": link_seen, "link_disconnect_near_end": disconnect,
        "activity_on_foot_share_after": foot_share,
        **motion, **history_of_drives,
        **said_features(t_ms[s], lat[s], lon[s], t_end, lat[e], lon[e], decided,
                        signals.statements, drives),
    }


def _span_max(x: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Max of ``x[start:end]`` for every span (spans non-empty)."""
    out = np.zeros(len(start))
    cummax_ok = len(start) and np.all(start[1:] >= end[:-1])
    if cummax_ok:  # disjoint, ordered spans: one reduceat over their bounds
        bounds = np.stack([start, end], axis=1).ravel()
        padded = np.concatenate([x, [0.0]])
        out = np.maximum.reduceat(padded, bounds)[::2]
    else:
        for k, (a, b) in enumerate(zip(start, end, strict=True)):
            out[k] = x[a:b].max() if b > a else 0.0
    return out
