"""Routes through the street grid: polylines that follow streets and know what lies along them.

A route turns only at intersections (Manhattan paths) and lists every intersection it passes, so
movement can stop at traffic lights and bus stops and lose the sky in tunnels. Long car trips
and all bus trips use the arterial roads.

>>> from parkloop.simulate.world import make_world
>>> w = make_world(np.random.default_rng(0))
>>> a, b = w.snap(np.array([-800.0, 300.0])), w.snap(np.array([900.0, -450.0]))
>>> r = route(w, a, b, np.random.default_rng(2))
>>> bool(np.all((np.diff(r.x_m) == 0) | (np.diff(r.y_m) == 0)))  # axis-parallel moves
True
>>> bool(r.length_m >= abs(b - a).sum() - 1e-6)
True
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from parkloop.simulate.world import Point, World

LONG_TRIP_M = 1500.0
"""Car trips longer than this (Manhattan distance, m) go by the arterial roads."""


@dataclass(frozen=True)
class Route:
    """A polyline (m) with, per vertex, whether a traffic light stands there and, per segment,
    whether it is on an arterial road and whether it is in a tunnel."""

    x_m: np.ndarray
    y_m: np.ndarray
    light: np.ndarray
    arterial: np.ndarray
    tunnel: np.ndarray

    @property
    def s_m(self) -> np.ndarray:
        """Distance along the route at each vertex, m."""
        return np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(self.x_m), np.diff(self.y_m)))])

    @property
    def length_m(self) -> float:
        return float(self.s_m[-1])


def _index(values: np.ndarray, v: float) -> int | None:
    i = int(np.searchsorted(values, v))
    return i if i < len(values) and values[i] == v else None


def _corners(world: World, p: Point, q: Point, rng: np.random.Generator | None,
             arterial: bool) -> list[Point]:
    """Waypoints from street point ``p`` to street point ``q`` where consecutive ones share a
    street (at most two turns). Without ``rng`` the middle street is the one nearest midway."""
    # on arterials, only arterial streets count: a point where a side street crosses an
    # arterial must not lead the route down the side street
    xs = world.xs[world.arterial_x] if arterial else world.xs
    ys = world.ys[world.arterial_y] if arterial else world.ys
    pv, ph = _index(xs, p[0]), _index(ys, p[1])
    qv, qh = _index(xs, q[0]), _index(ys, q[1])
    if (pv is not None and pv == qv) or (ph is not None and ph == qh):
        return [p, q]
    if pv is not None and qh is not None:
        return [p, np.array([p[0], q[1]]), q]
    if ph is not None and qv is not None:
        return [p, np.array([q[0], p[1]]), q]
    vertical = pv is not None  # both on north-south streets, else both on east-west ones
    lines = ys if vertical else xs
    a, b = (p[1], q[1]) if vertical else (p[0], q[0])
    between = lines[(lines >= min(a, b)) & (lines <= max(a, b))]
    if len(between) == 0:
        c = float(lines[np.argmin(np.abs(lines - a) + np.abs(lines - b))])
    elif arterial or rng is None:
        c = float(between[np.argmin(np.abs(between - (a + b) / 2))])
    else:
        c = float(rng.choice(between))
    if vertical:
        return [p, np.array([p[0], c]), np.array([q[0], c]), q]
    return [p, np.array([c, p[1]]), np.array([c, q[1]]), q]


def _expand(world: World, waypoints: list[Point]) -> tuple[np.ndarray, np.ndarray]:
    """All vertices along axis-parallel waypoints: every intersection passed is a vertex."""
    xs: list[np.ndarray] = [np.array([waypoints[0][0]])]
    ys: list[np.ndarray] = [np.array([waypoints[0][1]])]
    for a, b in pairwise(waypoints):
        if a[1] == b[1]:
            lo, hi = min(a[0], b[0]), max(a[0], b[0])
            inner = world.xs[(world.xs > lo) & (world.xs < hi)]
            inner = inner if b[0] > a[0] else inner[::-1]
            xs += [inner, np.array([b[0]])]
            ys += [np.full(len(inner) + 1, a[1])]
        else:
            lo, hi = min(a[1], b[1]), max(a[1], b[1])
            inner = world.ys[(world.ys > lo) & (world.ys < hi)]
            inner = inner if b[1] > a[1] else inner[::-1]
            ys += [inner, np.array([b[1]])]
            xs += [np.full(len(inner) + 1, a[0])]
    return np.concatenate(xs), np.concatenate(ys)


def _flags(world: World, x: np.ndarray, y: np.ndarray) -> Route:
    """Lights, arterials and tunnels along street vertices."""
    i = np.clip(np.searchsorted(world.xs, x), 0, len(world.xs) - 1)
    j = np.clip(np.searchsorted(world.ys, y), 0, len(world.ys) - 1)
    crossing = (world.xs[i] == x) & (world.ys[j] == y)
    light = crossing & world.light[i, j]
    horizontal = np.diff(y) == 0
    mx, my = (x[:-1] + x[1:]) / 2, (y[:-1] + y[1:]) / 2
    bi = np.clip(np.searchsorted(world.xs, mx) - 1, 0, len(world.xs) - 2)
    bj = np.clip(np.searchsorted(world.ys, my) - 1, 0, len(world.ys) - 2)
    arterial = np.where(horizontal, world.arterial_y[j[:-1]], world.arterial_x[i[:-1]])
    tunnel = np.where(horizontal, world.tunnel_h[j[:-1], bi], world.tunnel_v[i[:-1], bj])
    return Route(x, y, light, arterial, tunnel)


def _dedup(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = np.concatenate([[True], (np.diff(x) != 0) | (np.diff(y) != 0)])
    return x[keep], y[keep]


def join(*routes: Route) -> Route:
    """Routes one after the other (each starting where the previous one ends)."""
    x = np.concatenate([routes[0].x_m] + [r.x_m[1:] for r in routes[1:]])
    y = np.concatenate([routes[0].y_m] + [r.y_m[1:] for r in routes[1:]])
    light = np.concatenate([routes[0].light] + [r.light[1:] for r in routes[1:]])
    return Route(x, y, light, np.concatenate([r.arterial for r in routes]),
                 np.concatenate([r.tunnel for r in routes]))


def route(world: World, a: Point, b: Point, rng: np.random.Generator, *,
          arterial: bool = False, door_a: Point | None = None,
          door_b: Point | None = None) -> Route:
    """A street route from street point ``a`` to street point ``b``.

    ``arterial``: reach the nearest arterial, ride it and leave it near ``b`` when the trip is
    long (a car); ``door_a``/``door_b``: start from / end at a building off the street.
    """
    parts: list[Route] = []
    if arterial and np.abs(b - a).sum() > LONG_TRIP_M:
        on_a, on_b = world.snap(a, arterial=True), world.snap(b, arterial=True)
        legs = [(a, on_a, False), (on_a, on_b, True), (on_b, b, False)]
    else:
        legs = [(a, b, False)]
    for p, q, art in legs:
        x, y = _dedup(*_expand(world, _corners(world, p, q, rng, art)))
        if len(x) > 1:
            parts.append(_flags(world, x, y))
    if not parts:
        parts.append(Route(np.array([a[0]]), np.array([a[1]]), np.zeros(1, dtype=bool),
                           np.zeros(0, dtype=bool), np.zeros(0, dtype=bool)))
    if door_a is not None:
        parts.insert(0, _plain(door_a, a))
    if door_b is not None:
        parts.append(_plain(b, door_b))
    return join(*parts)


def bus_route(world: World, a: Point, b: Point) -> Route:
    """The bus ride between two stops on arterials (no choice involved: buses keep to lines)."""
    x, y = _dedup(*_expand(world, _corners(world, a, b, None, True)))
    return _flags(world, x, y)


def _plain(a: Point, b: Point) -> Route:
    """A straight path off the street grid (door to kerb)."""
    return Route(np.array([a[0], b[0]]), np.array([a[1], b[1]]), np.zeros(2, dtype=bool),
                 np.zeros(1, dtype=bool), np.zeros(1, dtype=bool))
