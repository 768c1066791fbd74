"""Legs as knots: the vectorised timing against a slow oracle, and traffic per scenario."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parkloop.simulate.movement import driven, timed
from parkloop.simulate.routes import Route, bus_route, route
from parkloop.simulate.scenarios import scenario
from parkloop.simulate.world import make_world


def _slow_position(x: np.ndarray, y: np.ndarray, v: np.ndarray, waits: dict[int, float],
                   t0: float, t: float) -> tuple[float, float]:
    """Where a mover is at ``t``: walk the segments one by one (the obvious way)."""
    clock = t0
    for k in range(len(v)):
        clock += waits.get(k, 0.0)
        if t <= clock:
            return float(x[k]), float(y[k])
        dur = float(np.hypot(x[k + 1] - x[k], y[k + 1] - y[k]) / v[k])
        if t <= clock + dur:
            f = (t - clock) / dur
            return float(x[k] + f * (x[k + 1] - x[k])), float(y[k] + f * (y[k + 1] - y[k]))
        clock += dur
    return float(x[-1]), float(y[-1])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(1.0, 300.0), st.booleans(), st.floats(0.5, 20.0),
                          st.floats(0.0, 120.0)), min_size=1, max_size=12),
       st.floats(0.0, 1e5), st.integers(0, 2**31))
def test_timed_agrees_with_a_slow_oracle(
        segs: list[tuple[float, bool, float, float]], t0: float, seed: int) -> None:
    lengths = np.array([s[0] for s in segs])
    # a staircase: alternate east and north, so every vertex is distinct
    dx = np.where(np.arange(len(segs)) % 2 == 0, lengths, 0.0)
    dy = np.where(np.arange(len(segs)) % 2 == 1, lengths, 0.0)
    x, y = np.concatenate([[0.0], np.cumsum(dx)]), np.concatenate([[0.0], np.cumsum(dy)])
    v = np.array([s[2] for s in segs])
    waits = {k + 1: s[3] for k, s in enumerate(segs) if s[1]}
    r = Route(x, y, np.zeros(len(x), bool), np.zeros(len(segs), bool), np.zeros(len(segs), bool))
    s_v = r.s_m
    at = np.array([s_v[k] for k in waits])
    leg = timed("walk", r, t0, v, waits_at_m=at, waits_s=np.array(list(waits.values())))
    assert np.all(np.diff(leg.t_s) >= 0)
    total = float(np.sum(lengths / v) + sum(waits.values()))
    assert leg.end_s - leg.start_s == pytest.approx(total, rel=1e-9, abs=1e-6)
    ts = t0 + np.random.default_rng(seed).uniform(0.0, total, size=20)
    got = np.stack([np.interp(ts, leg.t_s, leg.x_m), np.interp(ts, leg.t_s, leg.y_m)], axis=1)
    want = np.array([_slow_position(x, y, v, waits, t0, float(t)) for t in ts])
    np.testing.assert_allclose(got, want, atol=1e-6)


def _longest_standstill_s(t: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    still = (np.diff(x) == 0) & (np.diff(y) == 0)
    return float(np.max(np.diff(t)[still], initial=0.0))


def test_shifted_drives_stand_still_longer() -> None:
    world = make_world(np.random.default_rng(0))
    rng = np.random.default_rng(1)
    a, b = world.snap(np.array([-3000.0, -2000.0])), world.snap(np.array([2500.0, 1500.0]))
    r = route(world, a, b, rng, arterial=True)
    longest = {}
    for name in ("default", "shifted"):
        traffic = scenario(name).traffic
        legs = [driven("car", r, 0.0, traffic, np.random.default_rng(i)) for i in range(150)]
        longest[name] = np.array([_longest_standstill_s(g.t_s, g.x_m, g.y_m) for g in legs])
    assert np.mean(longest["shifted"] >= 120.0) > 0.3 > np.mean(longest["default"] >= 120.0)
    assert np.median(longest["default"]) <= 90.0  # red lights, mostly


def test_buses_stop_every_few_hundred_metres() -> None:
    world = make_world(np.random.default_rng(0))
    a = world.snap(np.array([-3000.0, 0.0]), arterial=True)
    b = world.snap(np.array([3000.0, 0.0]), arterial=True)
    r = bus_route(world, a, b)
    leg = driven("bus", r, 0.0, scenario("default").traffic, np.random.default_rng(3))
    still = np.flatnonzero((np.diff(leg.x_m) == 0) & (np.diff(leg.y_m) == 0))
    assert len(still) >= r.length_m / 500.0 * 0.85 * 0.7
