"""The publish gate: the spec's floors, and the comparison with the champion on what it never
saw (leg ends, and people warm), so that a retrain that is no better keeps the champion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from parkloop.interpret.dataset import training_table
from parkloop.interpret.endtoend import end_to_end, subset
from parkloop.interpret.evaluate import metrics
from parkloop.interpret.model import ParkedModel, one_thread
from parkloop.interpret.people import as_events

if TYPE_CHECKING:
    from parkloop.interpret.spec import ModelSpec
    from parkloop.interpret.train import Evaluation
    from parkloop.store import Store

LABELS = "labels.parquet"
"""the labelled leg ends (and raw events behind them) a version was trained on"""
SELECT = {"pr_auc": "pr_auc", "f1": "nested_f1"}
"""the figure each `select` of a spec compares: F1 as honestly as it is measured"""


@dataclass(frozen=True)
class Gate:
    """The publish gate's verdict and the numbers it read."""

    passed: bool
    reasons: tuple[str, ...]
    figures: dict[str, float] = field(default_factory=dict)


def gate(spec: ModelSpec, m: dict[str, float], champion: dict[str, float] | None, *,
         unseen: dict[str, float] | None = None, warm: dict[str, float] | None = None,
         min_unseen: int = 30) -> Gate:
    """The spec's publish gate on the honest figures (nested F1, PR-AUC), and the margin
    over the champion's figure of ``select``: measured by its spec on the same people
    (``champion``), or by the champion model itself on the leg ends it never saw
    (``unseen``, from :func:`unseen_comparison`: at least ``min_unseen`` of them, of both
    classes) and on the people it never saw, warm (``warm``, from :func:`warm_comparison`):
    the challenger must beat it by the margin on one of the two and fall short by no more
    than the margin on the other, so that a model that learns people can win."""
    g = spec.gate
    f1, pr_auc = m["nested_f1"], m["pr_auc"]
    reasons = []
    if not f1 >= g.min_f1:
        reasons.append(f"F1 {f1:.3f} < {g.min_f1}")
    if not pr_auc >= g.min_pr_auc:
        reasons.append(f"PR-AUC {pr_auc:.3f} < {g.min_pr_auc}")
    figures = {"f1": f1, "pr_auc": pr_auc}
    key = spec.train.select
    if champion is not None:
        mine = m[SELECT[key]]
        theirs = champion.get(SELECT[key], float("nan"))
        figures |= {"champion": theirs, "challenger": mine}
        if math.isnan(theirs):
            reasons.append(f"the champion's {key} is unknown: publish by hand if meant")
        elif not mine >= theirs + g.margin:
            reasons.append(f"{key} {mine:.3f} does not beat the champion's {theirs:.3f} "
                           f"by {g.margin}")
    if unseen is not None or warm is not None:
        beats: list[str] = []
        short: list[str] = []
        if unseen is not None:
            figures |= {f"unseen_{k}": v for k, v in unseen.items()}
            n, cars = int(unseen["n"]), int(unseen["n_parked"])
            mine, theirs = unseen[f"challenger_{key}"], unseen[f"champion_{key}"]
            if n < min_unseen or cars == 0 or cars == n:
                short.append(f"{n} labelled leg ends the champion never saw ({cars} car "
                             f"ends): comparing needs {min_unseen}, of both classes")
            else:
                _compare(f"{key} on {n} leg ends the champion never saw", mine, theirs,
                         g.margin, beats, short)
        if warm is not None and warm.get("people"):
            figures |= {f"warm_{k}": v for k, v in warm.items()}
            _compare(f"warm F1 on {int(warm['people'])} people the champion never saw",
                     warm["challenger_f1"], warm["champion_f1"], g.margin, beats, short)
        if not beats or any("falls short" in r for r in short):
            reasons += short or ["no comparison with the champion was possible"]
    return Gate(not reasons, tuple(reasons), figures)


def _compare(what: str, mine: float, theirs: float, margin: float, beats: list[str],
             short: list[str]) -> None:
    """Sort one comparison with the champion into ``beats`` or ``short`` (with why)."""
    if mine >= theirs + margin:
        beats.append(what)
    elif mine < theirs - margin:
        short.append(f"{what}: {mine:.3f} falls short of the champion's {theirs:.3f} by more "
                     f"than {margin}")
    else:
        short.append(f"{what}: {mine:.3f} does not beat the champion's {theirs:.3f} by "
                     f"{margin}")


def unseen_comparison(store: Store, champion_dir: Path, result: Evaluation, labels: pa.Table,
                      rules_version: str) -> dict[str, float]:
    """The champion model (as published) and the challenger (out of fold: its people held
    out) on the labelled leg ends the champion was not trained on: how many, how many car
    ends, and each one's PR-AUC, F1 and accuracy at its own threshold."""
    champion = ParkedModel.load(champion_dir)
    table = training_table(store, rules_version, labels)  # the rows of result.data, in order
    unseen = never_seen(table, champion_dir)
    if champion.rules_version != rules_version:
        unseen[:] = False  # facts of another rules version: nothing to compare it on
    y = result.data.y[unseen]
    out = {"n": float(unseen.sum()), "n_parked": float(y.sum())}
    with one_thread():
        theirs = champion.predict(table.filter(pa.array(unseen)))
    for who, p, t in (("champion", theirs, champion.threshold),
                      ("challenger", result.chosen.p[unseen], result.chosen.threshold)):
        called = p >= t
        fig = metrics(y, p, t)
        out |= {f"{who}_pr_auc": fig.pr_auc, f"{who}_f1": fig.f1,
                f"{who}_accuracy": float(np.mean(called == y)) if len(y) else float("nan")}
    return out


def warm_comparison(store: Store, champion_dir: Path, result: Evaluation,
                    rules_version: str) -> dict[str, float]:
    """The champion model (as published) and the challenger (its fold models, which knew the
    person's early labelled segments) on the warm views of the people the champion never
    saw: how many people, and each one's pooled end-to-end precision, recall and F1 on their
    later segments (:mod:`parkloop.interpret.views`)."""
    champion = ParkedModel.load(champion_dir)
    path = champion_dir / LABELS
    seen = set(pq.read_table(path, columns=["device_id"]).column("device_id").to_pylist()) \
        if path.is_file() else set()
    people = sorted(p for p in result.views if p not in seen)
    if not people or champion.rules_version != rules_version:
        return {"people": 0.0}
    views = {p: result.views[p] for p in people}
    events = []
    with one_thread():
        for view in views.values():
            called = champion.call(view.warm, champion.predict(view.warm))
            events.append(as_events(view.warm.filter(pa.array(called))))
    theirs = end_to_end(store, pa.concat_tables(events),
                        after={p: v.warm_from_ms for p, v in views.items()})
    mine = subset(result.end_to_end["warm"], set(result.views) - set(people))
    return {"people": float(len(people)),
            **{f"champion_{k}": float(theirs[k]) for k in ("precision", "recall", "f1")},
            **{f"challenger_{k}": float(mine[k]) for k in ("precision", "recall", "f1")}}


def never_seen(labels: pa.Table, version_dir: Path) -> np.ndarray:
    """Mask of the rows of ``labels`` (device_id, ended_ms, ...) naming leg ends the version
    in ``version_dir`` was not trained on (all of them, for a version without a label set)."""
    path = version_dir / LABELS
    if not path.is_file():
        return np.ones(labels.num_rows, bool)
    seen = pq.read_table(path, columns=["device_id", "ended_ms"])
    keys = set(zip(seen.column("device_id").to_pylist(), seen.column("ended_ms").to_pylist(),
                   strict=True))
    return np.array([k not in keys for k in zip(labels.column("device_id").to_pylist(),
                                                 labels.column("ended_ms").to_pylist(),
                                                 strict=True)], bool)


__all__ = ["LABELS", "SELECT", "Gate", "gate", "never_seen", "unseen_comparison",
           "warm_comparison"]
