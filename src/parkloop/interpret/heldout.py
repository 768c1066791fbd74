"""The calls every person of a store gets from a model never trained on them.

Cross-validation scores labelled leg ends only; a person is also every leg end nobody
labelled, and people who never label at all. :func:`held_out_calls` splits the store's
people into the folds cross-validation used (people without labels spread over them), trains
the spec's chosen learner once per fold on the labelled people outside it, and calls every
leg end of the fold's people with it, under the spec's policy: what each of them would be
told had they not been in training. The simulator's ground truth then judges the calls
(``bench/signals.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from parkloop.interpret.model import ParkedModel, make_learner, one_thread
from parkloop.interpret.spec import Rule

if TYPE_CHECKING:
    from parkloop.interpret.spec import ModelSpec
    from parkloop.interpret.train import Evaluation
    from parkloop.store import Store


@dataclass(frozen=True)
class HeldOut:
    """Every leg end of the store's people (``ends``: ``facts_leg_end`` rows) with its
    out-of-fold p(parked) and call, and the fold each person was held out in."""

    ends: pa.Table
    p: np.ndarray
    called: np.ndarray
    fold: dict[str, int]

    def calls(self) -> pa.Table:
        """The leg ends called parked: device_id, ended_ms, lat, lon."""
        return self.ends.filter(pa.array(self.called)).select(
            ["device_id", "ended_ms", "lat", "lon"])


def held_out_calls(store: Store, spec: ModelSpec, result: Evaluation,
                   rules_version: str) -> HeldOut:
    """Calls on every leg end of ``rules_version`` by the learner ``result`` chose (at its
    threshold, under the spec's policy), each person's by the fold model not trained on
    them (see the module's text)."""
    data, chosen = result.data, result.chosen
    fold = {str(g): int(k) for g, k in zip(data.groups, chosen.fold, strict=True)}
    folds = sorted(set(fold.values()))
    ends = store.con.sql(
        "SELECT * FROM facts_leg_end WHERE rules_version = $rv ORDER BY device_id, ended_ms",
        params={"rv": rules_version}).to_arrow_table()
    devices = sorted(set(ends.column("device_id").to_pylist()))
    for i, device in enumerate(d for d in devices if d not in fold):
        fold[device] = folds[i % len(folds)]
    of = np.array([fold[d] for d in ends.column("device_id").to_pylist()], np.int64)
    p, called = np.zeros(ends.num_rows), np.zeros(ends.num_rows, bool)
    learner = spec.learners[chosen.name]
    calibration = "none" if isinstance(learner, Rule) else spec.train.calibration
    with one_thread():
        for k in folds:
            estimator = make_learner(learner, data.features, calibration, spec.train.seed)
            estimator.fit(*data.fit_data((chosen.fold != k) & result.train_rows))
            model = ParkedModel(estimator, data.features, chosen.threshold, chosen.name,
                                spec.identity, rules_version, spec.policy)
            rows = np.flatnonzero(of == k)
            mine = ends.take(pa.array(rows))
            p[rows] = model.predict(mine)
            called[rows] = model.call(mine, p[rows])
    return HeldOut(ends, p, called, fold)


__all__ = ["HeldOut", "held_out_calls"]
