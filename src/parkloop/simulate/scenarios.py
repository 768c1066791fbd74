"""Named simulation scenarios: frozen parameter sets for traffic, travel, phones and uploads.

A scenario changes how people travel and how their phones behave; the city is the same for a
given seed whatever the scenario. Ranges are ``(low, high)`` tuples drawn uniformly unless a
field says otherwise. Add a scenario by adding an entry to :data:`SCENARIO_PARAMS`.

>>> scenario("shifted").traffic.jam_prob > scenario("default").traffic.jam_prob
True
>>> scenario("rush")
Traceback (most recent call last):
...
ValueError: unknown scenario 'rush'; known: default, shifted
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

Range = tuple[float, float]


@dataclass(frozen=True)
class Traffic:
    """How vehicles move through the street grid."""

    red_prob: float = 0.45
    """chance that a car or bus meets a traffic light at red"""
    red_wait_s: Range = (3.0, 90.0)
    """wait at a red light, s"""
    jam_prob: float = 0.2
    """chance that a drive (car, taxi, bus) runs into one jam"""
    jam_duration_s: Range = (60.0, 360.0)
    """how long a jam holds a vehicle up, crawling and standing, s"""
    jam_crawl_mps: Range = (0.5, 3.0)
    """speed while crawling in a jam, m/s"""
    jam_standstill_s: Range = (0.0, 45.0)
    """length of each full standstill inside a jam (they fill up to 60 % of its time), s"""
    search_prob: float = 0.25
    """chance that a driver circles a block looking for a parking space"""
    roadside_wait_prob: float = 0.03
    """chance that a drive includes a stop with the engine on (picking someone up), no parking"""
    roadside_wait_s: Range = (60.0, 300.0)
    """length of such a stop, s"""


@dataclass(frozen=True)
class Travel:
    """Who people are and how they choose to travel."""

    worker_share: float = 0.75
    """share of people who commute to work on weekdays"""
    car_owner_share: float = 0.6
    """share of people who own a car"""
    drive_prob: Range = (0.6, 0.95)
    """per car owner: chance that a tour from home is made by car"""
    cyclist_share: float = 0.3
    """share of people who cycle trips up to 7 km"""
    taxi_prob: float = 0.12
    """chance that a trip made neither by car, bike nor on foot is made by taxi (else bus)"""
    taxi_walk_on_prob: float = 0.15
    """chance that a taxi drops its passenger 80-300 m short of the destination"""
    park_and_ride_prob: float = 0.0
    """chance that a car owner's commute tour is park-and-ride (car to a P+R lot, then bus)"""
    vehicle_link_share: float = 0.5
    """share of cars whose Bluetooth link the phone reports (vehicle_link events)"""
    park_distance_m: Range = (30.0, 300.0)
    """distance from the destination at which a car is parked on the street, m"""
    sit_in_car_s: Range = (15.0, 90.0)
    """time between the car stopping and its driver walking away, s"""


@dataclass(frozen=True)
class PhoneMix:
    """The population of phones: each device draws one profile from these ranges."""

    moving_interval_s: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 5.0, 10.0,
                                          15.0)
    """sampling interval while moving, s (one value drawn per phone)"""
    still_interval_s: Range = (30.0, 120.0)
    """sampling interval while standing still, before doze, s"""
    doze_after_s: Range = (300.0, 1800.0)
    """stillness after which the phone stops sampling, s"""
    doze_silent_share: float = 0.5
    """share of phones that send no fix at all while dozing (others wake now and then)"""
    doze_wake_s: Range = (900.0, 3600.0)
    """interval between wake-up fixes while dozing, s"""
    noise_sigma_m: Range = (3.0, 15.0)
    """GPS noise standard deviation per axis outdoors, m (x2.5 indoors)"""
    drift_m: Range = (10.0, 40.0)
    """amplitude of the slow drift while standing still indoors, m"""
    jump_prob: Range = (0.001, 0.005)
    """chance per fix of a single-fix jump of 200-800 m"""
    speed_share: float = 0.5
    """share of phones reporting speed_mps and bearing_deg"""
    provider_share: float = 0.7
    """share of phones reporting a provider"""
    altitude_share: float = 0.3
    """share of phones reporting altitude_m"""
    activity_share: float = 0.6
    """share of phones sending activity events"""
    activity_conf_right: Range = (8.0, 2.0)
    """Beta(a, b) of the phone's confidence when its activity guess is right"""
    activity_conf_wrong: Range = (3.0, 3.0)
    """Beta(a, b) of the phone's confidence when its activity guess is wrong"""
    activity_conf_step: float = 0.01
    """confidence is reported in steps of this size"""


@dataclass(frozen=True)
class Uploads:
    """How phones batch and send their events."""

    window_s: Range = (300.0, 1200.0)
    """span of sensor data gathered into one batch, s"""
    duplicate_prob: float = 0.03
    """chance that a batch is sent twice (same id, same content)"""
    resend_prob: float = 0.05
    """chance that a batch's last 1-5 fixes are sent again inside the next batch"""
    delay_prob: float = 0.05
    """chance that a batch is held back (phone offline) and arrives after later ones"""
    delay_s: Range = (600.0, 7200.0)
    """how long a held-back batch is delayed, s"""


@dataclass(frozen=True)
class Scenario:
    """A named set of simulation parameters."""

    name: str
    traffic: Traffic = field(default_factory=Traffic)
    travel: Travel = field(default_factory=Travel)
    phone: PhoneMix = field(default_factory=PhoneMix)
    uploads: Uploads = field(default_factory=Uploads)


_DEFAULT = Scenario("default")

SCENARIO_PARAMS: dict[str, Scenario] = {
    "default": _DEFAULT,
    # What a model trained on `default` should get wrong more often: long standstills that look
    # like parking, drop-offs followed by a walk, cars left at P+R lots, and another kind of
    # phone (sparser, noisier, no car link, hesitant activity guesses).
    "shifted": Scenario(
        "shifted",
        traffic=replace(_DEFAULT.traffic, jam_prob=0.55, jam_duration_s=(300.0, 1200.0),
                        jam_standstill_s=(60.0, 300.0), roadside_wait_prob=0.12),
        travel=replace(_DEFAULT.travel, taxi_prob=0.3, taxi_walk_on_prob=0.6,
                       park_and_ride_prob=0.35, vehicle_link_share=0.0),
        phone=replace(_DEFAULT.phone, moving_interval_s=(5.0, 10.0, 15.0, 20.0, 30.0),
                      noise_sigma_m=(8.0, 25.0), jump_prob=(0.004, 0.012), speed_share=0.2,
                      activity_conf_right=(4.0, 3.0), activity_conf_wrong=(3.0, 2.0),
                      activity_conf_step=0.1),
    ),
}

SCENARIOS: tuple[str, ...] = tuple(SCENARIO_PARAMS)
"""Names of the scenarios ``simulate`` accepts."""


def scenario(name: str) -> Scenario:
    """The scenario called ``name``; raise ValueError listing the known names otherwise."""
    try:
        return SCENARIO_PARAMS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
