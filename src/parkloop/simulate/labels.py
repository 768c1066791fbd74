"""Labels: like GeoLife's volunteers, some people say how they travelled on some legs.

A labelling person labels 50-80 % of their legs of a minute or more, a few minutes after each
ends, with the mode as they would say it and times off by up to a quarter of a minute.

>>> import numpy as np
>>> from parkloop.simulate.movement import Leg
>>> leg = Leg("car", np.array([0.0, 600.0]), np.zeros(2), np.zeros(2), np.zeros((0, 2)))
>>> rng = np.random.default_rng(0)
>>> who = Labeller.draw(1.0, rng)
>>> t = labels([leg] * 20, who, 0, rng)
>>> 10 <= t.num_rows <= 16, set(t.column("mode").to_pylist())
(True, {'car'})
>>> labels([leg], Labeller.draw(0.0, rng), 0, rng).num_rows
0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from parkloop.simulate.movement import Leg

MIN_LABELLED_S = 60.0
"""Legs shorter than this (s) are never labelled."""


@dataclass(frozen=True)
class Labeller:
    """Whether a person labels, and which share of their legs."""

    labels: bool
    share: float

    @classmethod
    def draw(cls, label_share: float, rng: np.random.Generator) -> Labeller:
        """Draw the same random numbers whatever ``label_share``, so that changing it changes
        who labels and nothing else."""
        u, share = rng.random(), float(rng.uniform(0.5, 0.8))
        return cls(bool(u < label_share), share)


def labels(legs: list[Leg], who: Labeller, epoch_ms: int, rng: np.random.Generator) -> pa.Table:
    """Label events (no ``seq``), sorted by time: ``t_ms`` when the label was entered,
    ``start_ms``/``end_ms`` the span labelled, ``mode`` what the person said."""
    start = np.array([leg.start_s for leg in legs])
    end = np.array([leg.end_s for leg in legs])
    n = len(legs)
    pick = (rng.random(n) < who.share) & (end - start >= MIN_LABELLED_S) & who.labels
    s = start + rng.uniform(-15.0, 15.0, size=n)
    e = np.maximum(end + rng.uniform(-15.0, 15.0, size=n), s)
    t = end + rng.uniform(60.0, 900.0, size=n)
    mode = np.array([leg.mode for leg in legs], dtype=object)

    def ms(v: np.ndarray) -> np.ndarray:
        out: np.ndarray = epoch_ms + np.round(v[pick] * 1000.0).astype(np.int64)
        return out

    t_ms = ms(t)
    order = np.argsort(t_ms, kind="stable")
    return pa.table({
        "t_ms": pa.array(t_ms[order], pa.int64()),
        "start_ms": pa.array(ms(s)[order], pa.int64()),
        "end_ms": pa.array(ms(e)[order], pa.int64()),
        "mode": pa.array(mode[pick][order], pa.string()),
    })
