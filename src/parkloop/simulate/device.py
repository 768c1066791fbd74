"""One simulated device from start to end: a person, their days, their phone, its uploads.

Every device draws from its own random streams, seeded by ``(seed, device index)`` only, so
device ``i`` is the same whether 5 or 50 devices are simulated, and each concern (the person,
their plans, their travel, the phone, ...) has its own stream, so that changing how labels are
drawn does not move anybody's car.

>>> device_id("default", 0, 7)
'sim-default-s0-0007'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from parkloop.simulate.gps import fixes
from parkloop.simulate.labels import Labeller, labels
from parkloop.simulate.people import Person, draw_person
from parkloop.simulate.phone import PhoneProfile, draw_profile, sample_times
from parkloop.simulate.routine import plan_days
from parkloop.simulate.scenarios import Scenario
from parkloop.simulate.sensors import activities, vehicle_links
from parkloop.simulate.track import Track
from parkloop.simulate.trips import Journey, travel
from parkloop.simulate.upload import Sent, send
from parkloop.simulate.world import World

UTC_OFFSET_S = 3600
"""The simulated city keeps Central European Time, UTC+1, all year (no daylight saving)."""
DEVICE_STREAM = 1
"""Tag that keeps device random streams apart from the world's."""
WORLD_STREAM = 0


@dataclass(frozen=True)
class DeviceRun:
    """What one device did and sent: the truth behind it and the batches as they arrive."""

    device_id: str
    index: int
    person: Person
    phone: PhoneProfile
    labeller: Labeller
    journey: Journey
    sent: Sent
    epoch_ms: int
    """ms since epoch (UTC) of the local midnight that starts the simulation"""


def device_id(scenario: str, seed: int, index: int) -> str:
    """The device id of simulated person ``index``: distinct across scenarios and seeds."""
    return f"sim-{scenario}-s{seed}-{index:04d}"


def epoch_ms(start: date) -> int:
    """ms since the Unix epoch of local midnight starting ``start``."""
    return (start - date(1970, 1, 1)).days * 86_400_000 - UTC_OFFSET_S * 1000


def simulate_device(world: World, sc: Scenario, seed: int, index: int, days: int,
                    start: date, label_share: float) -> DeviceRun:
    """Simulate device ``index`` for ``days`` days from ``start``."""
    streams = np.random.SeedSequence([seed, DEVICE_STREAM, index]).spawn(8)
    r_person, r_plan, r_travel, r_phone, r_gps, r_sensors, r_labels, r_upload = (
        np.random.default_rng(s) for s in streams)
    did = device_id(sc.name, seed, index)
    person = draw_person(world, sc.travel, did, r_person)
    phone = draw_profile(sc.phone, r_phone)
    who = Labeller.draw(label_share, r_labels)
    journey = travel(world, person, sc, plan_days(person, days, start.weekday(), r_plan), days,
                     r_travel)
    t0 = epoch_ms(start)
    track = Track.of(journey.segments)
    samples = sample_times(journey.segments, phone, r_gps)
    sensors = {
        "fix": fixes(world, track, journey.segments, samples, phone, t0, r_gps),
        "activity": activities(track, journey.segments, phone, t0, r_sensors),
        "vehicle_link": vehicle_links(journey.legs, person.vehicle, t0, r_sensors),
    }
    sent = send(did, sensors, labels(journey.legs, who, t0, r_labels), sc.uploads, r_upload)
    return DeviceRun(did, index, person, phone, who, journey, sent, t0)
