"""Daily routines: when each person means to leave for where, weekday or weekend.

Times are seconds since the simulation's first local midnight. A plan is a list of
:class:`Outing` in order; every day's outings start and end at home, so a plan splits into
tours (home -> ... -> home), the unit in which people decide whether to take the car.

>>> from parkloop.simulate.world import make_world
>>> from parkloop.simulate.people import draw_person
>>> from parkloop.simulate.scenarios import scenario
>>> w = make_world(np.random.default_rng(0))
>>> p = draw_person(w, scenario("default").travel, "d", np.random.default_rng(3))
>>> plan = plan_days(p, 3, 0, np.random.default_rng(4))
>>> all(t[-1].dest is p.home for t in tours(plan))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parkloop.simulate.people import Person
from parkloop.simulate.world import Place

HOUR_S = 3600.0
DAY_S = 86_400.0


@dataclass(frozen=True)
class Outing:
    """Leave for ``dest`` at ``depart_s`` (s since the first local midnight)."""

    depart_s: float
    dest: Place
    purpose: str
    """home, work, lunch, errand, leisure or stroll (on foot, outdoors)"""


def _hours(rng: np.random.Generator, mean_h: float, sd_h: float, lo_h: float,
           hi_h: float) -> float:
    return float(np.clip(rng.normal(mean_h, sd_h), lo_h, hi_h)) * HOUR_S


def _workday(p: Person, work: Place, rng: np.random.Generator) -> list[Outing]:
    leave = _hours(rng, 7.75, 0.6, 5.5, 10.0)
    out = [Outing(leave, work, "work")]
    back = leave + _hours(rng, 8.75, 0.75, 5.0, 11.0)
    if rng.random() < 0.35:
        lunch = _hours(rng, 12.5, 0.4, 11.5, 14.0)
        if leave + HOUR_S < lunch < back - 2 * HOUR_S:
            out += [Outing(lunch, p.lunch, "lunch"),
                    Outing(lunch + rng.uniform(0.4, 1.0) * HOUR_S, work, "work")]
    if rng.random() < 0.45:
        out.append(Outing(back, p.errands[int(rng.integers(len(p.errands)))], "errand"))
        back += rng.uniform(0.3, 1.5) * HOUR_S
    out.append(Outing(back, p.home, "home"))
    return out


def _free_day(p: Person, rng: np.random.Generator) -> list[Outing]:
    out: list[Outing] = []
    if rng.random() < 0.7:
        t = _hours(rng, 10.5, 1.0, 8.5, 12.5)
        for _ in range(1 + int(rng.random() < 0.3)):
            out.append(Outing(t, p.errands[int(rng.integers(len(p.errands)))], "errand"))
            t += rng.uniform(0.3, 1.0) * HOUR_S
        out.append(Outing(t, p.home, "home"))
    if rng.random() < 0.6:
        t = max(_hours(rng, 15.0, 1.0, 13.0, 17.0), out[-1].depart_s + HOUR_S if out else 0.0)
        out += [Outing(t, p.leisure[int(rng.integers(len(p.leisure)))], "leisure"),
                Outing(t + rng.uniform(1.0, 3.0) * HOUR_S, p.home, "home")]
    return out


def plan_days(p: Person, days: int, first_weekday: int,
              rng: np.random.Generator) -> list[Outing]:
    """Outings for ``days`` days; ``first_weekday`` is the first day's weekday (Monday 0)."""
    plan: list[Outing] = []
    for d in range(days):
        weekday = (first_weekday + d) % 7 < 5
        day = _workday(p, p.work, rng) if weekday and p.work is not None else _free_day(p, rng)
        if rng.random() < (0.3 if weekday else 0.4):
            t = max(_hours(rng, 19.5, 0.6, 18.5, 21.0),
                    day[-1].depart_s + 1.5 * HOUR_S if day else 0.0)
            if t < 22.0 * HOUR_S:
                day += [Outing(t, p.leisure[int(rng.integers(len(p.leisure)))], "leisure"),
                        Outing(t + rng.uniform(1.5, 3.5) * HOUR_S, p.home, "home")]
        if rng.random() < 0.3:
            t = max(_hours(rng, 18.0, 1.0, 7.0, 21.0),
                    day[-1].depart_s + HOUR_S if day else 0.0)
            if t < 22.0 * HOUR_S:
                day += [Outing(t, p.park, "stroll"),
                        Outing(t + rng.uniform(0.2, 0.6) * HOUR_S, p.home, "home")]
        plan += [Outing(o.depart_s + d * DAY_S, o.dest, o.purpose) for o in day]
    return plan


def tours(plan: list[Outing]) -> list[list[Outing]]:
    """The plan cut into tours, each ending with the return home."""
    out: list[list[Outing]] = [[]]
    for o in plan:
        out[-1].append(o)
        if o.purpose == "home":
            out.append([])
    return [t for t in out if t]
