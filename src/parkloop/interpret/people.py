"""How held-out people meet a model, end to end: cold (nothing they said known) and warm
(their first segments known), each judged as a person would judge the answers (see
:mod:`parkloop.interpret.views` for the two views and :mod:`parkloop.interpret.endtoend` for
the judge).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from parkloop.interpret.dataset import TrainingSet
from parkloop.interpret.endtoend import end_to_end, subset
from parkloop.interpret.evaluate import Scores, permutation_drops
from parkloop.interpret.model import ParkedModel, feature_matrix

if TYPE_CHECKING:
    from parkloop.interpret.spec import ModelSpec
    from parkloop.interpret.views import PersonView
    from parkloop.store import Store

DOMINANT_PEOPLE = frozenset({"geolife-128", "geolife-115"})
"""GeoLife people holding most car ends of the dev data: end-to-end figures are also given
without them, so that a model that only learned them shows it"""


def unsaid_rows(data: TrainingSet, ended_ms: np.ndarray, views: dict[str, PersonView]
                ) -> np.ndarray:
    """The training rows' features as each person's cold view has them (nothing said)."""
    X = np.full(data.X.shape, np.nan)
    for person, view in views.items():
        rows = np.flatnonzero(data.groups == person)
        cold = view.cold
        at = {t: i for i, t in enumerate(cold.column("ended_ms").to_pylist())}
        pick = np.array([at.get(int(t), -1) for t in ended_ms[rows]], np.int64)
        cols = feature_matrix(cold, data.features)
        ok = pick >= 0
        X[rows[ok]] = cols[pick[ok]]
        X[rows[~ok]] = data.X[rows[~ok]]
    return X


def people_end_to_end(store: Store, spec: ModelSpec, rules_version: str, data: TrainingSet,
                      chosen: Scores, make: Callable[[], Any],
                      usable: Callable[[np.ndarray], np.ndarray], ended_ms: np.ndarray,
                      views: dict[str, PersonView]
                      ) -> tuple[dict[str, Any], dict[str, float]]:
    """Every leg end of each held-out person scored by the fold's model and called by the
    spec's policy, the two ways people meet it (:mod:`parkloop.interpret.views`): **cold**
    (nothing they said known; all their labelled segments judged) and **warm** (what they
    said about their first segments known, as facts and as training rows, the way a retrain
    would have them; the later ones judged). Those called parked are the person's exported
    events. And the permutation importance of each feature in the held-out folds (see
    :func:`~parkloop.interpret.evaluate.cross_validate`). ``make``: the chosen learner,
    unfitted; ``usable``: the rows training may use of those known then (a mask), as
    :func:`~parkloop.interpret.train.usable_rows` has them, so that a warm person's early
    statements are trained on as their latest."""
    people = sorted(set(data.groups.tolist()))
    events: dict[str, list[pa.Table]] = {"cold": [], "warm": []}
    calls: dict[str, dict[str, tuple[int, int]]] = {"cold": {}, "warm": {}}
    drops = []
    cutoff = np.array([views[g].warm_from_ms if g in views else np.iinfo(np.int64).min
                       for g in data.groups], np.int64)
    for k in np.unique(chosen.fold):
        test = chosen.fold == k
        # the fold's model as cross-validation fitted it (the same rows), else fitted here
        model = chosen.models[k] if len(chosen.models) > k else make().fit(
            *data.fit_data(usable(~test)))
        if data.y[test].any() and not data.y[test].all():
            drops.append(permutation_drops(model, data.X[test], data.y[test],
                                           seed=spec.train.seed))
        held_out = sorted(set(data.groups[test].tolist()))
        told = test & (ended_ms <= cutoff)  # what the held-out people said early on
        warm_model = make().fit(*data.fit_data(usable(~test | told))) if told.any() \
            else model  # nobody held out here said anything early: warm is cold
        for person in held_out:
            for how, fitted in (("cold", model), ("warm", warm_model)):
                pm = ParkedModel(fitted, data.features, chosen.threshold, chosen.name,
                                 spec.identity, rules_version, spec.policy)
                ends = getattr(views[person], how)
                called = pm.call(ends, pm.predict(ends))
                calls[how][person] = (int(called.sum()), ends.num_rows)
                events[how].append(as_events(ends.filter(pa.array(called))))
    figures = {}
    for how in ("cold", "warm"):
        got = pa.concat_tables(events[how])
        f = end_to_end(store, got, people) if how == "cold" else end_to_end(
            store, got, after={p: views[p].warm_from_ms for p in people})
        for row in f["per_person"]:
            row["called"], row["leg_ends"] = calls[how].get(row["device_id"], (0, 0))
        f["without_dominant"] = subset(f, set(DOMINANT_PEOPLE))
        figures[how] = f
    mean = np.mean(drops, axis=0) if drops else np.zeros(len(data.features))
    return {**figures["cold"], "warm": figures["warm"]}, {
        f: float(v) for f, v in zip(data.features, mean, strict=True)}


def report_end_to_end(e2e: dict[str, Any], model: ParkedModel) -> dict[str, Any]:
    """The end-to-end figures as the report shows them: the call policy, then cold and warm,
    each pooled, without the dominant people and per person."""
    out: dict[str, Any] = {"call policy": model.describe_policy()}
    for how, f in (("cold", e2e), ("warm", e2e["warm"])):
        without = " and ".join(sorted(DOMINANT_PEOPLE))
        out[f"{how}: nothing said known" if how == "cold" else
            f"{how}: first 30 % of segments known"] = {
            **{k: f[k] for k in ("car_ends", "found", "hits", "false_alarms", "precision",
                                 "recall", "f1")},
            **{f"{k} without {without}": f["without_dominant"][k]
               for k in ("precision", "recall", "f1")}}
        out[f"{how} per person"] = f["per_person"]
    return out


def as_events(ends: pa.Table) -> pa.Table:
    """Leg ends as end-to-end events (device_id, t_ms, lat, lon)."""
    return ends.select(["device_id", "ended_ms", "lat", "lon"]).rename_columns(
        ["device_id", "t_ms", "lat", "lon"])


__all__ = ["DOMINANT_PEOPLE", "as_events", "people_end_to_end", "report_end_to_end",
           "unsaid_rows"]
