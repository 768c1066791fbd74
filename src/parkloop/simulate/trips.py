"""Carrying out a plan: choosing modes, walking to the car, driving, parking and walking on.

:func:`travel` turns a person's plan into a contiguous timeline of legs and stays (the truth a
phone samples) and the true parking events. The car has a place: a drive starts where the car
was left (the person walks to it first) and ends at a parking space near the destination, from
where the person walks on. Taxis and buses drop their passengers without parking.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from parkloop.simulate.movement import Leg, Segment, Stay, driven, on_foot
from parkloop.simulate.people import Person
from parkloop.simulate.routes import bus_route, join, route
from parkloop.simulate.routine import DAY_S, Outing, tours
from parkloop.simulate.scenarios import Scenario
from parkloop.simulate.world import Place, Point, World

CAR_MIN_M = 700.0
"""Trips shorter than this (straight line, m) are not made by car when the car is at hand."""
CAR_AT_HAND_M = 1000.0
"""The car is at hand when it stands within this distance (m) of the person."""


@dataclass
class Parking:
    """A true parking event: the car leg that ended, when and where the car stopped (s, m),
    and when the car next moved (s) or None."""

    leg_no: int
    parked_s: float
    xy: Point
    left_s: float | None = None


@dataclass
class Journey:
    """Everything a person did: the timeline, its legs in order, and the parking events."""

    segments: list[Segment] = field(default_factory=list)
    legs: list[Leg] = field(default_factory=list)
    parking: list[Parking] = field(default_factory=list)


def _dist(a: Point, b: Point) -> float:
    return float(np.hypot(*(a - b)))


class _Traveller:
    def __init__(self, world: World, person: Person, sc: Scenario,
                 rng: np.random.Generator) -> None:
        self.w, self.p, self.sc, self.rng = world, person, sc, rng
        self.t = 0.0
        self.pos, self.kerb = person.home.xy, person.home.street
        self.car: Point | None = None
        if person.owns_car:
            self.car = person.garage if person.garage is not None else world.kerb_near(
                person.home.street, (20.0, 200.0), rng)
        self.j = Journey()

    def still(self, duration_s: float, *, indoor: bool) -> None:
        if duration_s > 0:
            self.j.segments.append(Stay(self.t, self.t + duration_s, self.pos, indoor))
            self.t += duration_s

    def _leg(self, leg: Leg, pos: Point, kerb: Point) -> None:
        self.j.segments.append(leg)
        self.j.legs.append(leg)
        self.t, self.pos, self.kerb = leg.end_s, pos, kerb

    def walk(self, to: Place) -> None:
        """Walk from here to ``to`` (a building, or a street point when ``to.xy`` is on it)."""
        door_a = self.pos if _dist(self.pos, self.kerb) > 0 else None
        door_b = to.xy if _dist(to.xy, to.street) > 0 else None
        r = route(self.w, self.kerb, to.street, self.rng, door_a=door_a, door_b=door_b)
        if r.length_m >= 1.0:
            self._leg(on_foot("walk", r, self.t, self.p.walk_mps, self.rng), to.xy, to.street)

    def drive(self, to: Place, spot: Point) -> None:
        """Walk to the car, drive it to ``spot``, sit a moment, walk on to ``to``."""
        assert self.car is not None
        self.walk(Place(self.car, self.car))
        self.still(self.rng.uniform(10.0, 60.0), indoor=False)
        r = route(self.w, self.car, spot, self.rng, arterial=True)
        search = None
        if self.rng.random() < self.sc.traffic.search_prob:
            detour = self.w.kerb_near(spot, (100.0, 250.0), self.rng)
            first = route(self.w, self.car, detour, self.rng, arterial=True)
            r, search = join(first, route(self.w, detour, spot, self.rng)), first.length_m
        if r.length_m < 1.0:
            self.walk(to)
            return
        leg = driven("car", r, self.t, self.sc.traffic, self.rng, search_from_m=search)
        if self.j.parking:
            self.j.parking[-1].left_s = leg.start_s
        self.j.parking.append(Parking(len(self.j.legs), leg.end_s, spot))
        self._leg(leg, spot, spot)
        self.car = spot
        self.still(self.rng.uniform(*self.sc.travel.sit_in_car_s), indoor=False)
        self.walk(to)

    def drive_to(self, to: Place) -> None:
        """Drive to ``to``, parking in the garage, the employer's car park or on the street."""
        p = self.p
        if to is p.home and p.garage is not None:
            spot = p.garage
        elif p.work is not None and to is p.work and p.work_lot is not None:
            spot = self.w.kerb_near(p.work_lot, (0.0, 15.0), self.rng)
        else:
            spot = self.w.kerb_near(to.street, self.sc.travel.park_distance_m, self.rng)
        self.drive(to, spot)

    def taxi(self, to: Place) -> None:
        """Called to the door, driven to the destination's door or, now and then, short of it."""
        self.walk(Place(self.kerb, self.kerb))
        self.still(self.rng.uniform(60.0, 480.0), indoor=False)
        drop = to.street
        if self.rng.random() < self.sc.travel.taxi_walk_on_prob:
            drop = self.w.kerb_near(to.street, (80.0, 300.0), self.rng)
        r = route(self.w, self.kerb, drop, self.rng, arterial=True)
        if r.length_m >= 1.0:
            self._leg(driven("taxi", r, self.t, self.sc.traffic, self.rng), drop, drop)
            self.still(self.rng.uniform(10.0, 40.0), indoor=False)
        self.walk(to)

    def bus(self, to: Place) -> None:
        """Walk to the stop on the nearest arterial, wait, ride, walk on; walk if it is close."""
        a, b = self.w.snap(self.kerb, arterial=True), self.w.snap(to.street, arterial=True)
        if _dist(a, b) < 400.0:
            self.walk(to)
            return
        self.walk(Place(a, a))
        self.still(self.rng.uniform(60.0, 600.0), indoor=False)
        self._leg(driven("bus", bus_route(self.w, a, b), self.t, self.sc.traffic, self.rng), b, b)
        self.still(self.rng.uniform(5.0, 20.0), indoor=False)
        self.walk(to)

    def bike(self, to: Place) -> None:
        """Unlock the bike at the door, ride, lock it near the destination, walk in."""
        self.walk(Place(self.kerb, self.kerb))
        self.still(self.rng.uniform(20.0, 60.0), indoor=False)
        stand = self.w.kerb_near(to.street, (5.0, 40.0), self.rng)
        r = route(self.w, self.kerb, stand, self.rng)
        if r.length_m >= 1.0:
            self._leg(on_foot("bike", r, self.t, self.p.bike_mps, self.rng), stand, stand)
            self.still(self.rng.uniform(15.0, 45.0), indoor=False)
        self.walk(to)

    def any_but_car(self, to: Place) -> None:
        """Walk when it is near, cycle if a cyclist, else bus or (now and then) taxi."""
        d, rng = _dist(self.pos, to.xy), self.rng
        if d < 800.0 and rng.random() < 0.9:
            self.walk(to)
        elif self.p.cyclist and d < 7000.0 and rng.random() < 0.85:
            self.bike(to)
        elif d < 1800.0 and rng.random() < 0.5:
            self.walk(to)
        elif rng.random() < self.sc.travel.taxi_prob:
            self.taxi(to)
        else:
            self.bus(to)

    def tour(self, outings: list[Outing]) -> None:
        """One tour from home: by car (the car comes home at the end), park-and-ride, on
        foot for a stroll, or trip by trip without the car."""
        p, rng = self.p, self.rng
        by_car = p.owns_car and rng.random() < p.drive_prob
        stroll = any(o.purpose == "stroll" for o in outings)
        pnr = (by_car and p.park_and_ride and p.pnr_lot is not None
               and outings[0].purpose == "work" and rng.random() < 0.7)
        for k, o in enumerate(outings):
            wait = o.depart_s - self.t
            outdoors = k > 0 and outings[k - 1].purpose == "stroll"
            self.still(wait if wait > 0 else rng.uniform(120.0, 600.0), indoor=not outdoors)
            last = k == len(outings) - 1
            if stroll:
                self.walk(o.dest)
                continue
            if pnr and p.pnr_lot is not None and (k == 0 or last):
                lot = Place(p.pnr_lot, p.pnr_lot)
                if k == 0:
                    self.drive(lot, self.w.kerb_near(p.pnr_lot, (0.0, 60.0), rng))
                    self.bus(o.dest)
                else:
                    self.bus(lot)
                    self.drive_to(o.dest)
                continue
            at_hand = self.car is not None and _dist(self.car, self.pos) < CAR_AT_HAND_M
            car_away = self.car is not None and _dist(self.car, p.home.street) > 300.0
            if by_car and ((last and car_away) or (at_hand and _dist(self.pos, o.dest.xy)
                                                   >= CAR_MIN_M)):
                self.drive_to(o.dest)
            else:
                self.any_but_car(o.dest)


def travel(world: World, person: Person, sc: Scenario, plan: list[Outing], days: int,
           rng: np.random.Generator) -> Journey:
    """Carry out ``plan``; the timeline covers at least ``days`` days from local midnight."""
    tr = _Traveller(world, person, sc, rng)
    for t in tours(plan):
        tr.tour(t)
    tr.still(max(days * DAY_S - tr.t, 1.0), indoor=True)
    return tr.j
