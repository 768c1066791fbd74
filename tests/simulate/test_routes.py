"""Routes keep to the streets: axis-parallel moves, lights at crossings, tunnels on arterials."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from parkloop.simulate.routes import bus_route, route
from parkloop.simulate.world import make_world

WORLD = make_world(np.random.default_rng(0))
coord = st.floats(-5500.0, 5500.0)


def _on_street(x: np.ndarray, y: np.ndarray, arterial_only: bool = False) -> np.ndarray:
    xs = WORLD.xs[WORLD.arterial_x] if arterial_only else WORLD.xs
    ys = WORLD.ys[WORLD.arterial_y] if arterial_only else WORLD.ys
    return np.isin(x, xs) | np.isin(y, ys)


@settings(max_examples=80, deadline=None)
@given(coord, coord, coord, coord, st.booleans(), st.integers(0, 2**31))
def test_routes_follow_streets(ax: float, ay: float, bx: float, by: float, arterial: bool,
                               seed: int) -> None:
    a, b = WORLD.snap(np.array([ax, ay])), WORLD.snap(np.array([bx, by]))
    r = route(WORLD, a, b, np.random.default_rng(seed), arterial=arterial)
    assert (r.x_m[0], r.y_m[0]) == (a[0], a[1])
    assert (r.x_m[-1], r.y_m[-1]) == (b[0], b[1])
    assert np.all(_on_street(r.x_m, r.y_m))
    dx, dy = np.diff(r.x_m), np.diff(r.y_m)
    assert np.all((dx == 0) ^ (dy == 0))  # axis-parallel, no zero-length segments
    # a segment never skips a crossing: no street crosses its inside
    lo, hi = np.minimum(r.x_m[:-1], r.x_m[1:]), np.maximum(r.x_m[:-1], r.x_m[1:])
    skipped = (dy == 0) & ((WORLD.xs[None, :] > lo[:, None]) & (WORLD.xs[None, :] < hi[:, None])
                           ).any(axis=1)
    assert not skipped.any()
    assert r.length_m >= np.abs(b - a).sum() - 1e-6
    i, j = np.searchsorted(WORLD.xs, r.x_m), np.searchsorted(WORLD.ys, r.y_m)
    crossing = np.isin(r.x_m, WORLD.xs) & np.isin(r.y_m, WORLD.ys)
    assert np.all(r.light[crossing] == WORLD.light[i[crossing], j[crossing]])
    assert not r.light[~crossing].any()
    assert np.all(r.arterial[r.tunnel])


@settings(max_examples=40, deadline=None)
@given(coord, coord, coord, coord)
def test_buses_keep_to_arterials(ax: float, ay: float, bx: float, by: float) -> None:
    a = WORLD.snap(np.array([ax, ay]), arterial=True)
    b = WORLD.snap(np.array([bx, by]), arterial=True)
    r = bus_route(WORLD, a, b)
    assert np.all(_on_street(r.x_m, r.y_m, arterial_only=True))
    assert r.arterial.all()


def test_a_door_is_joined_to_its_street() -> None:
    rng = np.random.default_rng(5)
    home, shop = WORLD.place(np.array([100.0, 200.0]), rng), WORLD.place(np.zeros(2), rng)
    r = route(WORLD, home.street, shop.street, rng, door_a=home.xy, door_b=shop.xy)
    assert (r.x_m[0], r.y_m[0]) == tuple(home.xy)
    assert (r.x_m[-1], r.y_m[-1]) == tuple(shop.xy)
    assert 10.0 <= float(np.hypot(*(home.xy - home.street))) <= 40.0
