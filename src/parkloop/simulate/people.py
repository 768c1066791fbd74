"""Simulated people: where they live, work and run errands, whether they own a car, how fast
they walk and cycle.

>>> from parkloop.simulate.world import make_world
>>> from parkloop.simulate.scenarios import scenario
>>> w = make_world(np.random.default_rng(0))
>>> p = draw_person(w, scenario("default").travel, "sim-default-s0-0000",
...                 np.random.default_rng(3))
>>> p.device_id, 1.0 <= p.walk_mps <= 1.7
('sim-default-s0-0000', True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parkloop.simulate.scenarios import Travel
from parkloop.simulate.world import Place, Point, World


@dataclass(frozen=True)
class Person:
    """One simulated person (and their phone's device id). Speeds m/s, probabilities [0, 1]."""

    device_id: str
    home: Place
    work: Place | None
    """None for people who do not commute"""
    lunch: Place
    """a place to eat near work (or near home)"""
    errands: tuple[Place, ...]
    """shops near home"""
    leisure: tuple[Place, ...]
    """gym, friends, restaurants: anywhere in the city"""
    park: Place
    """a park within walking distance of home, for strolls"""
    owns_car: bool
    garage: Point | None
    """where the car stands at home when the person has a garage or a drive, else None (they
    park on the street near home)"""
    work_lot: Point | None
    """the employer's car park, if any"""
    vehicle: str | None
    """the id the car's Bluetooth link reports, when the phone sees it"""
    drive_prob: float
    """chance that a tour from home is made by car"""
    park_and_ride: bool
    """commutes by park-and-ride on some days"""
    pnr_lot: Point | None
    cyclist: bool
    walk_mps: float
    bike_mps: float


def _around(centre: Point, sigma_m: float, rng: np.random.Generator) -> Point:
    return np.asarray(centre + rng.normal(0.0, sigma_m, size=2), dtype=np.float64)


def _ring(centre: Point, r_m: tuple[float, float], rng: np.random.Generator) -> Point:
    r, a = rng.uniform(*r_m), rng.uniform(0.0, 2.0 * np.pi)
    return np.asarray(centre + r * np.array([np.cos(a), np.sin(a)]), dtype=np.float64)


def draw_person(world: World, travel: Travel, device_id: str,
                rng: np.random.Generator) -> Person:
    """Draw one person: homes spread around the centre, jobs concentrated in it."""
    origin = np.zeros(2)
    home = world.place(_around(origin, 2500.0, rng), rng)
    worker = bool(rng.random() < travel.worker_share)
    work = world.place(_around(origin, 1800.0, rng), rng) if worker else None
    lunch = world.place(_ring(work.xy if work else home.xy, (80.0, 500.0), rng), rng)
    errands = tuple(world.place(_ring(home.xy, (200.0, 1500.0), rng), rng)
                    for _ in range(int(rng.integers(2, 5))))
    leisure = tuple(world.place(_around(home.xy, 2500.0, rng), rng)
                    for _ in range(int(rng.integers(2, 5))))
    park = world.place(_ring(home.xy, (400.0, 1200.0), rng), rng)
    owns_car = bool(rng.random() < travel.car_owner_share)
    garage = world.kerb_near(home.street, (5.0, 20.0), rng) if rng.random() < 0.35 else None
    work_lot = (world.kerb_near(work.street, (20.0, 120.0), rng)
                if work is not None and rng.random() < 0.4 else None)
    link = rng.random() < travel.vehicle_link_share
    vehicle = f"bt-{int(rng.integers(2**32)):08x}"
    pnr = bool(rng.random() < travel.park_and_ride_prob) and work is not None
    lot = None
    if pnr and work is not None and len(world.pnr):
        # the lot that makes the smallest detour on the way to work
        detour = (np.hypot(*(world.pnr - home.xy).T) * 1.5 + np.hypot(*(world.pnr - work.xy).T))
        lot = world.pnr[int(np.argmin(detour))]
    return Person(
        device_id=device_id, home=home, work=work, lunch=lunch, errands=errands,
        leisure=leisure, park=park, owns_car=owns_car, garage=garage if owns_car else None,
        work_lot=work_lot if owns_car else None,
        vehicle=vehicle if owns_car and link else None,
        drive_prob=float(rng.uniform(*travel.drive_prob)),
        park_and_ride=owns_car and lot is not None, pnr_lot=lot,
        cyclist=bool(rng.random() < travel.cyclist_share),
        walk_mps=float(rng.uniform(1.1, 1.6)), bike_mps=float(rng.uniform(3.5, 6.0)))
