"""A synthetic drive-park-walk day for the driver's page's tests: the positions a phone's
browser reports, one every few seconds, with the ground truth of where the car was parked.

Home, a drive east, park (P1), walk north and stay eleven minutes, walk back, a drive south,
park (P2), walk west and stay eleven minutes: the stays outlast the rules' decision wait
(``features.wait_s``, 600 s) after each parking, so both are judged before the day ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EARTH_M = 6_371_008.8
HOME = (48.1372, 11.5756)
DRIVE_MPS = 12.5
"""above the served rule model's p85-speed threshold (tests/serve: 10 m/s), m/s"""
WALK_MPS = 1.2
ACCURACY_M = 8.0


@dataclass(frozen=True)
class Fix:
    t_ms: int
    lat: float
    lon: float
    accuracy_m: float


@dataclass(frozen=True)
class Trip:
    fixes: list[Fix]
    parked: list[tuple[int, float, float]]
    """(t_ms, lat, lon) where and when each drive ended: the truth"""


def _moved(at: tuple[float, float], north_m: float, east_m: float) -> tuple[float, float]:
    lat, lon = at
    return (lat + math.degrees(north_m / EARTH_M),
            lon + math.degrees(east_m / (EARTH_M * math.cos(math.radians(lat)))))


def day(start_ms: int, seed: int = 0) -> Trip:
    """The day's fixes from ``start_ms`` on, with a metre or two of GPS noise."""
    rng = np.random.default_rng(seed)
    fixes: list[Fix] = []
    parked: list[tuple[int, float, float]] = []
    t = start_ms
    here = HOME

    def go(north_m: float, east_m: float, speed_mps: float, every_s: float) -> None:
        nonlocal t, here
        steps = max(1, round(math.hypot(north_m, east_m) / speed_mps / every_s))
        for i in range(1, steps + 1):
            t += int(every_s * 1000)
            p = _moved(here, north_m * i / steps, east_m * i / steps)
            record(p)
        here = _moved(here, north_m, east_m)

    def stay(seconds: float, every_s: float) -> None:
        nonlocal t
        for _ in range(round(seconds / every_s)):
            t += int(every_s * 1000)
            record(here)

    def record(p: tuple[float, float]) -> None:
        n, e = rng.normal(0, 1.5, 2)
        lat, lon = _moved(p, float(n), float(e))
        fixes.append(Fix(t, lat, lon, ACCURACY_M))

    record(here)
    stay(120, 20)
    go(0, 3000, DRIVE_MPS, 5)            # drive east
    parked.append((t, *here))            # P1
    go(180, 0, WALK_MPS, 10)             # walk north
    stay(660, 30)
    go(-180, 0, WALK_MPS, 10)            # back to the car
    go(-2500, 0, DRIVE_MPS, 5)           # drive south
    parked.append((t, *here))            # P2
    go(0, -150, WALK_MPS, 10)            # walk west
    stay(660, 30)
    return Trip(fixes, parked)
