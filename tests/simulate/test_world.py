"""The city: projection, streets, and where people may stop."""

from __future__ import annotations

import numpy as np

from parkloop.simulate.world import EARTH_RADIUS_M, make_world

WORLD = make_world(np.random.default_rng(0))


def test_projection_keeps_distances() -> None:
    x, y = np.array([0.0, 3000.0, -4000.0]), np.array([0.0, 4000.0, 2500.0])
    lat, lon = WORLD.to_latlon(x, y)
    # haversine between the projected points equals the metric distance to < 0.1 %
    p1, p2 = np.radians([lat[1], lon[1]]), np.radians([lat[2], lon[2]])
    h = (np.sin((p2[0] - p1[0]) / 2) ** 2
         + np.cos(p1[0]) * np.cos(p2[0]) * np.sin((p2[1] - p1[1]) / 2) ** 2)
    d = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(h))
    assert abs(d - np.hypot(7000.0, 1500.0)) / d < 1e-3


def test_the_grid_has_lights_tunnels_and_lots() -> None:
    gaps = np.concatenate([np.diff(WORLD.xs), np.diff(WORLD.ys)])
    assert gaps.min() >= 99.9
    assert gaps.max() <= 200.1
    assert 0.1 < WORLD.light.mean() < 0.4
    assert WORLD.tunnel_h.any()
    assert WORLD.tunnel_v.any()
    assert len(WORLD.pnr) == WORLD.params.pnr_lots
    assert all(WORLD.snap(p, arterial=True).tolist() == p.tolist() for p in WORLD.pnr)


def test_nobody_stops_in_a_tunnel() -> None:
    rng = np.random.default_rng(1)
    j, i = np.argwhere(WORLD.tunnel_h)[0]
    inside = np.array([(WORLD.xs[i] + WORLD.xs[i + 1]) / 2, WORLD.ys[j]])
    assert WORLD.in_tunnel(inside)
    kerbs = [WORLD.kerb_near(inside, (0.0, 20.0), rng) for _ in range(100)]
    assert not any(WORLD.in_tunnel(k) for k in kerbs)
    assert max(float(np.hypot(*(k - inside))) for k in kerbs) < 200.0
