"""``simulate``: write synthetic phone streams into a store, with ground truth kept apart.

>>> import tempfile
>>> from parkloop.store import Store
>>> with tempfile.TemporaryDirectory() as d, Store.create(d) as store:
...     s = simulate(store, devices=1, days=1, seed=3)
>>> s.events["fix"] > 500, s.batches_stored > 10, s.legs > 0
(True, True, True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import numpy as np

from parkloop.raw.log import store_batches
from parkloop.simulate.device import WORLD_STREAM, simulate_device
from parkloop.simulate.scenarios import scenario as get_scenario
from parkloop.simulate.truth import write as write_truth
from parkloop.simulate.world import make_world

if TYPE_CHECKING:
    from parkloop.store import Store

KINDS_SENT = ("fix", "activity", "vehicle_link", "label")


@dataclass(frozen=True)
class SimulationSummary:
    """What a simulation sent and what the store made of it."""

    devices: int
    days: int
    seed: int
    scenario: str
    events: dict[str, int]
    """events sent, by kind (each batch counted once; fixes re-sent in a later batch count
    again): on an empty store, exactly the events stored"""
    batches_sent: int
    """batches sent, duplicate sends included"""
    batches_stored: int
    """new batches the store accepted"""
    duplicate_sends: int
    parking_events: int
    """true parking events in ``truth.parking``"""
    legs: int
    """true legs in ``truth.legs``"""

    def describe(self) -> str:
        """A few lines for the terminal."""
        ev = ", ".join(f"{n:,} {k}" for k, n in self.events.items())
        return (
            f"simulated {self.devices} devices x {self.days} days "
            f"(scenario {self.scenario}, seed {self.seed})\n"
            f"sent {ev} events\n"
            f"  in {self.batches_sent:,} batches: {self.batches_stored:,} new, "
            f"{self.duplicate_sends:,} duplicate sends\n"
            f"ground truth: {self.legs:,} legs, {self.parking_events:,} parking events "
            f"(schema truth, evaluation only)")


def simulate(store: Store, *, devices: int = 10, days: int = 7, seed: int = 0,
             scenario: str = "default", label_share: float = 0.3,
             start: date = date(2025, 3, 3),
             on_device_done: Callable[[], None] | None = None) -> SimulationSummary:
    """Simulate ``devices`` people with one phone each for ``days`` days from ``start`` (local
    midnight, UTC+1) and store their raw events; ground truth goes to the ``truth`` schema.

    Same arguments, same raw events and truth, byte for byte; device ``i`` does not depend on
    how many devices are simulated. ``label_share`` is the share of people who label some of
    their legs.
    """
    sc = get_scenario(scenario)
    if devices < 1 or days < 1:
        raise ValueError(f"devices and days must be at least 1, got {devices} and {days}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if not 0.0 <= label_share <= 1.0:
        raise ValueError(f"label_share must be in [0, 1], got {label_share}")
    world = make_world(np.random.default_rng(np.random.SeedSequence([seed, WORLD_STREAM])))
    events = dict.fromkeys(KINDS_SENT, 0)
    sent = stored = dups = parks = legs = 0
    for i in range(devices):
        run = simulate_device(world, sc, seed, i, days, start, label_share)
        results = store_batches(store, run.sent.batches)
        write_truth(store, world, run, sc.name, seed)
        for b in run.sent.unique:
            for kind, table in b.tables.items():
                events[kind] += table.num_rows
        sent += len(run.sent.batches)
        stored += sum(r.status == "stored" for r in results)
        dups += run.sent.duplicate_sends
        parks += len(run.journey.parking)
        legs += len(run.journey.legs)
        if on_device_done is not None:
            on_device_done()
    return SimulationSummary(devices, days, seed, sc.name, events, sent, stored, dups, parks,
                             legs)
