"""The phone's other signals: its own activity guesses and the car's Bluetooth link.

Activity guesses come about once a minute while moving and once after settling down; they
follow what the person truly does, but not always (a car waiting at a light looks ``still``,
a bus may look like a bicycle). A phone paired with its owner's car sees the link come up as
the engine starts and go down after parking; never in taxis or buses.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from parkloop.raw.schema import ACTIVITIES
from parkloop.simulate.movement import VEHICLES, Leg, Segment
from parkloop.simulate.phone import PhoneProfile
from parkloop.simulate.track import Track

_A = {name: i for i, name in enumerate(ACTIVITIES)}

# what the phone guesses, per true state: {activity: weight}; and which guesses are right
_GUESSES: dict[str, tuple[dict[str, float], tuple[str, ...]]] = {
    "vehicle": ({"in_vehicle": 82, "on_bicycle": 5, "on_foot": 2, "still": 3, "tilting": 2,
                 "unknown": 6}, ("in_vehicle",)),
    "stopped": ({"still": 60, "in_vehicle": 30, "unknown": 10}, ("still", "in_vehicle")),
    "bike": ({"on_bicycle": 65, "in_vehicle": 15, "on_foot": 5, "walking": 3, "still": 2,
              "tilting": 3, "unknown": 7}, ("on_bicycle",)),
    "walk": ({"on_foot": 45, "walking": 35, "running": 2, "still": 5, "tilting": 5,
              "on_bicycle": 2, "in_vehicle": 1, "unknown": 5}, ("on_foot", "walking")),
    "stay": ({"still": 85, "tilting": 5, "on_foot": 5, "unknown": 5}, ("still",)),
}
_STATES = tuple(_GUESSES)
_CUM = np.cumsum([[w.get(a, 0.0) / sum(w.values()) for a in ACTIVITIES]
                  for w, _ in _GUESSES.values()], axis=1)
_RIGHT = np.array([[a in right for a in ACTIVITIES] for _, right in _GUESSES.values()])


def activities(track: Track, segments: list[Segment], prof: PhoneProfile, epoch_ms: int,
               rng: np.random.Generator) -> pa.Table:
    """The phone's activity events (no ``seq``), sorted by time; empty if it sends none."""
    if not prof.activity:
        return pa.table({"t_ms": pa.array([], pa.int64()), "activity": pa.array([], pa.string()),
                         "confidence": pa.array([], pa.float64())})
    ts, states = [], []
    for seg in segments:
        if isinstance(seg, Leg):
            t = seg.start_s + rng.uniform(5.0, 60.0) + np.cumsum(
                rng.uniform(45.0, 75.0, size=int((seg.end_s - seg.start_s) / 45.0) + 1)) - 45.0
            t = t[t < seg.end_s]
            name = "vehicle" if seg.mode in VEHICLES else seg.mode
            ts.append(t)
            states.append(np.full(len(t), _STATES.index(name)))
        elif seg.t1_s - seg.t0_s > 180.0:
            ts.append(np.array([seg.t0_s + rng.uniform(30.0, 150.0)]))
            states.append(np.array([_STATES.index("stay")]))
    t = np.concatenate(ts) if ts else np.zeros(0)
    state = np.concatenate(states) if states else np.zeros(0, dtype=np.int64)
    vx, vy = track.velocity(t)
    stopped = (state == _STATES.index("vehicle")) & (np.hypot(vx, vy) < 0.5)
    state = np.where(stopped, _STATES.index("stopped"), state)
    guess = (rng.random(len(t))[:, None] > _CUM[state]).sum(axis=1)
    guess = np.minimum(guess, len(ACTIVITIES) - 1)
    right = _RIGHT[state, guess]
    conf = np.where(right, rng.beta(*prof.conf_right, size=len(t)),
                    rng.beta(*prof.conf_wrong, size=len(t)))
    conf = np.clip(np.round(conf / prof.conf_step) * prof.conf_step, 0.0, 1.0)
    t_ms = epoch_ms + np.round(t * 1000.0).astype(np.int64)
    order = np.argsort(t_ms, kind="stable")
    return pa.table({
        "t_ms": pa.array(t_ms[order], pa.int64()),
        "activity": pa.array(np.asarray(ACTIVITIES, dtype=object)[guess[order]], pa.string()),
        "confidence": pa.array(np.round(conf[order], 4), pa.float64()),
    })


def vehicle_links(legs: list[Leg], vehicle: str | None, epoch_ms: int,
                  rng: np.random.Generator) -> pa.Table:
    """Bluetooth connect just before each drive of the person's own car and disconnect just
    after it parks (each event lost now and then); empty without a paired car."""
    starts = np.array([leg.start_s for leg in legs if leg.mode == "car"])
    ends = np.array([leg.end_s for leg in legs if leg.mode == "car"])
    if vehicle is None or len(starts) == 0:
        return pa.table({"t_ms": pa.array([], pa.int64()), "connected": pa.array([], pa.bool_()),
                         "link": pa.array([], pa.string()), "vehicle": pa.array([], pa.string())})
    t = np.concatenate([starts - rng.uniform(5.0, 40.0, size=len(starts)),
                        ends + rng.uniform(5.0, 60.0, size=len(ends))])
    connected = np.concatenate([np.ones(len(starts), dtype=bool),
                                np.zeros(len(ends), dtype=bool)])
    keep = rng.random(len(t)) >= 0.05
    t_ms = epoch_ms + np.round(t[keep] * 1000.0).astype(np.int64)
    order = np.argsort(t_ms, kind="stable")
    n = len(t_ms)
    return pa.table({
        "t_ms": pa.array(t_ms[order], pa.int64()),
        "connected": pa.array(connected[keep][order], pa.bool_()),
        "link": pa.array(["bluetooth"] * n, pa.string()),
        "vehicle": pa.array([vehicle] * n, pa.string()),
    })
