"""Legs and stays: how a person moves along a route, as time-position knots per mode.

A :class:`Leg` is the true track of one mode of travel: positions (m) at knot times (s since the
simulation's local midnight), straight lines between knots, so a phone can sample it with
``np.interp``. Waits (red lights, bus stops, standstills in jams) are pairs of knots at one
place. A :class:`Stay` is a time spent in one spot.

>>> from parkloop.simulate.routes import Route
>>> r = Route(np.array([0.0, 100.0, 200.0]), np.zeros(3), np.array([False, True, False]),
...           np.zeros(2, dtype=bool), np.array([False, True]))
>>> leg = timed("walk", r, 10.0, np.full(2, 2.0), waits_at_m=np.array([100.0]),
...             waits_s=np.array([30.0]))
>>> leg.t_s.tolist(), leg.x_m.tolist()
([10.0, 60.0, 90.0, 140.0], [0.0, 100.0, 100.0, 200.0])
>>> leg.gaps_s.tolist()
[[90.0, 140.0]]
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from parkloop.simulate.routes import Route
from parkloop.simulate.scenarios import Traffic

VEHICLES = ("car", "taxi", "bus")
"""Modes in which the person rides a motor vehicle."""


@dataclass(frozen=True)
class Leg:
    """The true track of one leg: mode, knot times (s), positions (m), and the spans without
    sky view (tunnels), shape (k, 2), s."""

    mode: str
    t_s: np.ndarray
    x_m: np.ndarray
    y_m: np.ndarray
    gaps_s: np.ndarray

    @property
    def start_s(self) -> float:
        return float(self.t_s[0])

    @property
    def end_s(self) -> float:
        return float(self.t_s[-1])

    @property
    def end(self) -> np.ndarray:
        return np.array([self.x_m[-1], self.y_m[-1]])


@dataclass(frozen=True)
class Stay:
    """Standing still at ``xy`` (m) from ``t0_s`` to ``t1_s``; indoors or out."""

    t0_s: float
    t1_s: float
    xy: np.ndarray
    indoor: bool


Segment = Leg | Stay


def timed(mode: str, route: Route, t0_s: float, speed_mps: np.ndarray, *,
          waits_at_m: np.ndarray | None = None, waits_s: np.ndarray | None = None,
          slow: tuple[float, float, float] | None = None) -> Leg:
    """Move along ``route`` from ``t0_s``: each segment at its speed (m/s), waiting ``waits_s``
    at distances ``waits_at_m`` along the route, and at ``slow = (from_m, to_m, speed_mps)``
    crawling instead (a jam, a search for parking)."""
    s_v = route.s_m
    waits_at = np.zeros(0) if waits_at_m is None else np.clip(waits_at_m, 0.0, s_v[-1])
    waits = np.zeros(0) if waits_s is None else waits_s
    extra = [waits_at] if slow is None else [waits_at, np.array(slow[:2])]
    s = np.unique(np.concatenate([s_v, *extra]))
    x, y = np.interp(s, s_v, route.x_m), np.interp(s, s_v, route.y_m)
    mid = (s[:-1] + s[1:]) / 2
    seg = np.clip(np.searchsorted(s_v, mid, side="right") - 1, 0, len(speed_mps) - 1)
    v = speed_mps[seg] if len(speed_mps) else np.zeros(0)
    if slow is not None:
        v = np.where((mid > slow[0]) & (mid < slow[1]), slow[2], v)
    t_run = np.concatenate([[0.0], np.cumsum(np.diff(s) / np.maximum(v, 0.1))])
    w = np.zeros(len(s))
    np.add.at(w, np.searchsorted(s, waits_at), waits)
    arrive = t0_s + t_run + np.cumsum(w) - w
    depart = arrive + w
    keep = np.stack([np.ones(len(s), dtype=bool), w > 0], axis=1).ravel()
    t = np.stack([arrive, depart], axis=1).ravel()[keep]
    xk, yk = np.repeat(x, 2)[keep], np.repeat(y, 2)[keep]
    in_tunnel = route.tunnel[seg] if len(seg) else np.zeros(0, dtype=bool)
    edges = np.diff(np.concatenate([[0], in_tunnel.astype(np.int8), [0]]))
    first, last = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    gaps = np.stack([depart[first], arrive[last]], axis=1) if len(first) else np.zeros((0, 2))
    return Leg(mode, t, xk, yk, gaps)


def _lights(route: Route, rng: np.random.Generator, red_prob: float,
            wait_s: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Where (m along the route) and how long (s) the mover waits at red lights."""
    lit = route.light.copy()
    lit[[0, -1]] = False
    at = route.s_m[lit]
    red = rng.random(len(at)) < red_prob
    return at[red], rng.uniform(*wait_s, size=int(red.sum()))


def on_foot(mode: str, route: Route, t0_s: float, speed_mps: float,
            rng: np.random.Generator) -> Leg:
    """Walking or cycling: steady pace (m/s, +-10 % per block), waits at some red lights; over
    tunnels, on the street above them."""
    n = max(len(route.x_m) - 1, 0)
    route = replace(route, tunnel=np.zeros(n, dtype=bool))
    v = speed_mps * rng.uniform(0.9, 1.1, size=n)
    at, w = _lights(route, rng, 0.45, (3.0, 40.0) if mode == "walk" else (3.0, 60.0))
    return timed(mode, route, t0_s, v, waits_at_m=at, waits_s=w)


def driven(mode: str, route: Route, t0_s: float, traffic: Traffic, rng: np.random.Generator,
           *, search_from_m: float | None = None) -> Leg:
    """A car, taxi or bus along ``route``: faster on arterials, red lights, maybe a jam and a
    roadside stop; buses stop every 300-500 m; a car searching for parking crawls after
    ``search_from_m``."""
    n = len(route.x_m) - 1
    bus = mode == "bus"
    fast, side = ((8.0, 12.0), (5.0, 8.0)) if bus else ((11.0, 16.0), (6.0, 9.0))
    v = np.where(route.arterial, rng.uniform(*fast, size=n), rng.uniform(*side, size=n))
    v = v * rng.uniform(0.85, 1.1)
    at, w = _lights(route, rng, traffic.red_prob, traffic.red_wait_s)
    length = route.length_m
    ats, ws = [at], [w]
    if bus:
        stops = np.cumsum(rng.uniform(300.0, 500.0, size=int(length // 300) + 1))
        seg = np.clip(np.searchsorted(route.s_m, stops, side="right") - 1, 0, max(n - 1, 0))
        above_ground = ~route.tunnel[seg] if n else np.ones(len(stops), dtype=bool)
        stops = stops[(stops < length - 50.0) & (rng.random(len(stops)) < 0.85) & above_ground]
        ats.append(stops)
        ws.append(rng.uniform(15.0, 40.0, size=len(stops)))
    slow = None
    if search_from_m is not None:
        slow = (search_from_m, length, float(rng.uniform(3.0, 6.0)))
    elif rng.random() < traffic.jam_prob and length > 400.0:
        crawl = float(rng.uniform(*traffic.jam_crawl_mps))
        duration = float(rng.uniform(*traffic.jam_duration_s))
        lo, hi = traffic.jam_standstill_s
        # standstills take up to 60 % of the jam's time; it crawls the rest
        stand = rng.uniform(lo, hi, size=int(duration // max(lo, 10.0)) + 1)
        stand = stand[np.cumsum(stand) <= 0.6 * duration]
        jam_m = min(max((duration - float(stand.sum())) * crawl, 40.0), 0.6 * length)
        s0 = float(rng.uniform(0.1 * length, max(0.9 * length - jam_m, 0.1 * length + 1.0)))
        slow = (s0, s0 + jam_m, crawl)
        ats.append(s0 + np.sort(rng.uniform(0.0, jam_m, size=len(stand))))
        ws.append(stand)
    if not bus and rng.random() < traffic.roadside_wait_prob:
        ats.append(np.array([rng.uniform(0.2, 0.8) * length]))
        ws.append(np.array([rng.uniform(*traffic.roadside_wait_s)]))
    return timed(mode, route, t0_s, v, waits_at_m=np.concatenate(ats),
                 waits_s=np.concatenate(ws), slow=slow)
