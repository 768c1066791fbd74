"""The simulated city: a street grid in a local metric frame, its lights, tunnels and places.

Positions are metres east (``x``) and north (``y``) of a fixed centre; :meth:`World.to_latlon`
turns them into WGS 84 degrees with a local equirectangular projection (errors of centimetres
over a city). North-south streets run at ``x = xs[i]``, east-west streets at ``y = ys[j]``;
every few streets one is an arterial road, where buses run and cars drive fast.

>>> w = make_world(np.random.default_rng(0))
>>> lat, lon = w.to_latlon(np.array([0.0]), np.array([1000.0]))
>>> round(float(lat[0]) - WorldParams().centre_lat, 5), float(lon[0]) == WorldParams().centre_lon
(0.00899, True)
>>> p = w.place(np.array([120.0, -340.0]), np.random.default_rng(1))
>>> bool(np.isin(p.street[0], w.xs) or np.isin(p.street[1], w.ys))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG), m."""

Point = np.ndarray
"""A position ``[x, y]`` in the local frame, m."""


@dataclass(frozen=True)
class WorldParams:
    """The shape of the city. Units in the names; defaults make a Munich-sized grid."""

    centre_lat: float = 48.137
    centre_lon: float = 11.575
    half_size_m: float = 6000.0
    """the grid spans [-half_size_m, +half_size_m] in x and y, m"""
    block_m: tuple[float, float] = (100.0, 200.0)
    """distance between neighbouring parallel streets, m"""
    arterial_every: int = 7
    """every n-th street is an arterial road"""
    light_share_arterial: float = 0.6
    """share of intersections on an arterial that have traffic lights"""
    light_share_side: float = 0.1
    """share of other intersections that have traffic lights"""
    tunnels: int = 8
    """number of tunnels, all on arterials"""
    tunnel_blocks: tuple[int, int] = (3, 9)
    """tunnel length in blocks (low inclusive, high exclusive)"""
    pnr_lots: int = 8
    """number of park-and-ride lots, on arterials outside the centre"""


@dataclass(frozen=True)
class Place:
    """A building people go to, and the point on the street in front of it (both m)."""

    xy: Point
    street: Point


@dataclass(frozen=True)
class World:
    """A city: streets, arterials, lights, tunnels and park-and-ride lots."""

    params: WorldParams
    xs: np.ndarray
    """x of each north-south street, ascending, m"""
    ys: np.ndarray
    """y of each east-west street, ascending, m"""
    arterial_x: np.ndarray
    """per north-south street: is it an arterial"""
    arterial_y: np.ndarray
    """per east-west street: is it an arterial"""
    light: np.ndarray
    """[i, j]: traffic light at the crossing of street x=xs[i] and street y=ys[j]"""
    tunnel_h: np.ndarray
    """[j, i]: the block of street y=ys[j] between xs[i] and xs[i+1] is a tunnel"""
    tunnel_v: np.ndarray
    """[i, j]: the block of street x=xs[i] between ys[j] and ys[j+1] is a tunnel"""
    pnr: np.ndarray
    """park-and-ride lots, shape (k, 2), points on arterials, m"""

    def to_latlon(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """WGS 84 latitude and longitude (degrees) of local positions (m)."""
        lat0 = self.params.centre_lat
        lat = lat0 + np.degrees(y / EARTH_RADIUS_M)
        lon = self.params.centre_lon + np.degrees(x / (EARTH_RADIUS_M * np.cos(np.radians(lat0))))
        return lat, lon

    def clamp(self, p: Point) -> Point:
        """``p`` moved inside the street grid."""
        return np.array([np.clip(p[0], self.xs[0], self.xs[-1]),
                         np.clip(p[1], self.ys[0], self.ys[-1])])

    def snap(self, p: Point, *, arterial: bool = False) -> Point:
        """The nearest point on a street (on an arterial if asked: a bus stop, an access
        point) to ``p``; for arterials, never inside a tunnel when the other direction has a
        street in the open."""
        p = self.clamp(p)
        xs = self.xs[self.arterial_x] if arterial else self.xs
        ys = self.ys[self.arterial_y] if arterial else self.ys
        i = int(np.argmin(np.abs(xs - p[0])))
        j = int(np.argmin(np.abs(ys - p[1])))
        on_ns, on_ew = np.array([xs[i], p[1]]), np.array([p[0], ys[j]])
        ns_nearer = abs(xs[i] - p[0]) <= abs(ys[j] - p[1])
        best, alt = (on_ns, on_ew) if ns_nearer else (on_ew, on_ns)
        if arterial and self.in_tunnel(best) and not self.in_tunnel(alt):
            return alt
        return best

    def place(self, near: Point, rng: np.random.Generator) -> Place:
        """A building 10-40 m off the street nearest to ``near``."""
        street = self.snap(near)
        off = rng.uniform(10.0, 40.0) * rng.choice([-1.0, 1.0])
        on_ns = bool(np.isin(street[0], self.xs))
        xy = street + (np.array([off, 0.0]) if on_ns else np.array([0.0, off]))
        return Place(xy, street)

    def kerb_near(self, p: Point, distance_m: tuple[float, float],
                  rng: np.random.Generator) -> Point:
        """A point on a street roughly ``distance_m`` (low, high) from ``p``: a parking space or
        a drop-off point."""
        r = rng.uniform(*distance_m)
        a = rng.uniform(0.0, 2.0 * np.pi)
        near = self.clamp(p + r * np.array([np.cos(a), np.sin(a)]))
        kerb = self.snap(near)
        if self.in_tunnel(kerb):  # nobody stops in a tunnel: take the cross street instead
            if np.isin(kerb[0], self.xs):
                return np.array([near[0], self.ys[np.argmin(np.abs(self.ys - near[1]))]])
            return np.array([self.xs[np.argmin(np.abs(self.xs - near[0]))], near[1]])
        return kerb

    def in_tunnel(self, p: Point) -> bool:
        """Whether street point ``p`` lies inside a tunnel (not at its ends)."""
        i = int(np.clip(np.searchsorted(self.xs, p[0], side="right") - 1, 0, len(self.xs) - 2))
        j = int(np.clip(np.searchsorted(self.ys, p[1], side="right") - 1, 0, len(self.ys) - 2))
        on_ns, on_ew = bool(np.isin(p[0], self.xs)), bool(np.isin(p[1], self.ys))
        if on_ns and not on_ew:
            return bool(self.tunnel_v[int(np.searchsorted(self.xs, p[0])), j])
        if on_ew and not on_ns:
            return bool(self.tunnel_h[int(np.searchsorted(self.ys, p[1])), i])
        return False


def _streets(rng: np.random.Generator, p: WorldParams) -> np.ndarray:
    n = int(2 * p.half_size_m / p.block_m[0]) + 2
    gaps = rng.uniform(*p.block_m, size=n)
    pos = np.concatenate([[0.0], np.cumsum(gaps)])
    pos = pos[pos <= 2 * p.half_size_m] - p.half_size_m
    return np.round(pos, 1)


def make_world(rng: np.random.Generator, params: WorldParams = WorldParams()) -> World:
    """Draw a city from ``rng``."""
    xs, ys = _streets(rng, params), _streets(rng, params)
    k = params.arterial_every
    art_x = (np.arange(len(xs)) % k) == k // 2
    art_y = (np.arange(len(ys)) % k) == k // 2
    on_art = art_x[:, None] | art_y[None, :]
    share = np.where(on_art, params.light_share_arterial, params.light_share_side)
    light = rng.random((len(xs), len(ys))) < share
    tunnel_h = np.zeros((len(ys), len(xs) - 1), dtype=bool)
    tunnel_v = np.zeros((len(xs), len(ys) - 1), dtype=bool)
    for t in range(params.tunnels):
        blocks = int(rng.integers(*params.tunnel_blocks))
        if t % 2 == 0:
            j = int(rng.choice(np.flatnonzero(art_y)))
            i = int(rng.integers(0, len(xs) - 1 - blocks))
            tunnel_h[j, i:i + blocks] = True
            light[i + 1:i + blocks, j] = False  # nothing crosses a tunnel
        else:
            i = int(rng.choice(np.flatnonzero(art_x)))
            j = int(rng.integers(0, len(ys) - 1 - blocks))
            tunnel_v[i, j:j + blocks] = True
            light[i, j + 1:j + blocks] = False
    pnr = []
    for _ in range(params.pnr_lots):
        a = rng.uniform(0.0, 2.0 * np.pi)
        r = rng.uniform(0.55, 0.85) * params.half_size_m
        pnr.append(np.array([r * np.cos(a), r * np.sin(a)]))
    world = World(params, xs, ys, art_x, art_y, light, tunnel_h, tunnel_v,
                  np.zeros((0, 2)))
    lots = np.array([world.snap(p, arterial=True) for p in pnr])
    return World(params, xs, ys, art_x, art_y, light, tunnel_h, tunnel_v, lots)
