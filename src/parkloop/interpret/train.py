"""Training: a spec's learners cross-validated with people held out, the best one fitted,
reported, registered with its lineage and, if its gate passes, published.

Every step reads facts and raw labels as of one raw watermark; the facts of the spec's rules
version are (re)built first when raw events arrived after them.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from parkloop.errors import ModelError
from parkloop.facts.build import build
from parkloop.facts.catalog import built_watermark
from parkloop.facts.inputs import raw_watermark
from parkloop.facts.rules import load_rules
from parkloop.facts.tables import table_digest
from parkloop.interpret.dataset import TrainingSet, training_set
from parkloop.interpret.evaluate import (
    Scores,
    best_threshold,
    cross_validate,
    metrics,
    nested_threshold_f1,
)
from parkloop.interpret.gate import (
    LABELS,
    SELECT,
    Gate,
    gate,
    unseen_comparison,
    warm_comparison,
)
from parkloop.interpret.labels import leg_end_labels
from parkloop.interpret.model import (
    POLICY_COLUMNS,
    ParkedModel,
    make_learner,
    one_thread,
)
from parkloop.interpret.people import people_end_to_end, report_end_to_end, unsaid_rows
from parkloop.interpret.report import write_report
from parkloop.interpret.spec import ModelSpec, Rule, load_spec
from parkloop.interpret.views import PersonView, person_views

if TYPE_CHECKING:
    from parkloop.interpret.registry import Registry
    from parkloop.store import Store

Step = Callable[[str], None]

REFERENCE = "reference.parquet"
"""a version's training reference: see :func:`reference`"""
REFERENCE_ROWS = 5000

MIN_PER_CLASS = 20
"""fewer labelled car (or other) ends than this cannot be cross-validated meaningfully"""


@dataclass(frozen=True)
class TrainResult:
    version: str
    published: bool
    chosen: str
    metrics: dict[str, float]
    gate: Gate
    report: Path
    lineage: dict[str, str]


@dataclass(frozen=True)
class Evaluation:
    """Everything cross-validation found for one spec on one training set."""

    data: TrainingSet
    candidates: list[Scores]
    chosen: Scores
    train_rows: np.ndarray
    metrics: dict[str, float]
    end_to_end: dict[str, Any]
    figures: dict[str, dict[str, float]]
    """every candidate's pooled out-of-fold figures"""
    views: dict[str, PersonView] = field(default_factory=dict)
    """each labelled person's cold and warm leg ends (:func:`person_views`)"""


def _make(spec: ModelSpec, name: str, features: tuple[str, ...]) -> Callable[[], Any]:
    learner = spec.learners[name]
    calibration = "none" if isinstance(learner, Rule) else spec.train.calibration
    return lambda: make_learner(learner, features, calibration, spec.train.seed)


def usable_rows(spec: ModelSpec, data: TrainingSet, ended_ms: np.ndarray,
                known: np.ndarray | None = None) -> np.ndarray:
    """Rows training may use: none matching an exclusion rule, and at most
    ``max_labels_per_device`` (the latest) per person so no one device dominates. ``known``
    (a mask; default all): the rows known at the time, of which the cap keeps the latest (a
    person's early statements are their latest when only those are known)."""
    ok = np.ones(len(data), bool) if known is None else np.asarray(known, bool).copy()
    cap = spec.train.max_labels_per_device
    if cap:
        rows = np.flatnonzero(ok)
        order = rows[np.lexsort((-ended_ms[rows], data.groups[rows].astype(str)))]
        groups = data.groups[order]
        start = np.r_[0, np.flatnonzero(groups[1:] != groups[:-1]) + 1]
        rank = np.arange(len(order)) - np.repeat(start, np.diff(np.r_[start, len(order)]))
        ok[order[rank >= cap]] = False
    for rule in spec.exclude:
        if rule.feature in data.features:
            ok &= ~rule.matches(data.X[:, data.features.index(rule.feature)])
    return ok


def evaluate(store: Store, spec: ModelSpec, rules_version: str, labels: pa.Table,
             step: Step = lambda _: None, *, end_to_end: bool = True) -> Evaluation:
    """Cross-validate every learner of ``spec``, choose one, and (unless ``end_to_end`` is
    false: comparing with a champion needs only the leg-level figures) measure it end to
    end, with its feature importance."""
    with one_thread():
        return _evaluate(store, spec, rules_version, labels, step, end_to_end)


def _evaluate(store: Store, spec: ModelSpec, rules_version: str, labels: pa.Table,
              step: Step, full: bool) -> Evaluation:
    data = training_set(store, rules_version, tuple(spec.features), labels)
    people, cars = len(set(data.groups.tolist())), int(data.y.sum())
    if people < 2 or min(cars, len(data) - cars) < MIN_PER_CLASS:
        raise ModelError(
            f"cannot train: {len(data)} labelled leg ends from {people} people, {cars} of "
            f"them car ends; training needs at least {MIN_PER_CLASS} car and "
            f"{MIN_PER_CLASS} other ends from at least two people (import or simulate "
            "more labels: `parkloop simulate --label-share`)")
    ended = np.asarray(labels.column("ended_ms").to_numpy(), np.int64)  # same order
    train_rows = usable_rows(spec, data, ended)
    usable_cars = int(data.y[train_rows].sum())
    if min(usable_cars, int(train_rows.sum()) - usable_cars) < MIN_PER_CLASS:
        raise ModelError(
            f"cannot train: the spec's exclusion rules and label cap leave {usable_cars} car "
            f"and {int(train_rows.sum()) - usable_cars} other labelled leg ends of "
            f"{len(data)}; training needs at least {MIN_PER_CLASS} of each")
    views: dict[str, PersonView] = {}
    if spec.train.unsaid_copies or full:
        step("building each person's facts as a stranger's (cold)" + (" and warm" if full else ""))
        views = person_views(store, load_rules(spec.rules, store.path),
                             sorted(set(data.groups.tolist())), warm=full)
    if spec.train.unsaid_copies:
        data = replace(data, X_unsaid=unsaid_rows(data, ended, views))
    candidates = []
    for name in spec.learners:
        step(f"cross-validating {name}")
        try:
            scores = cross_validate(data, name, _make(spec, name, data.features),
                                    folds=spec.train.folds, seed=spec.train.seed,
                                    train_rows=train_rows, importance=False)
        except ValueError as exc:  # e.g. a training fold too small to calibrate
            raise ModelError(f"cannot cross-validate {name!r}: {exc}") from None
        t = (best_threshold(data.y, scores.p) if spec.train.threshold == "best_f1"
             else float(spec.train.threshold))
        candidates.append(replace(scores, threshold=t))
    figure = {c.name: _figures(data, c) for c in candidates}
    chosen = max(candidates, key=lambda c: figure[c.name][SELECT[spec.train.select]])
    nan = float("nan")
    unknown = {"precision": nan, "recall": nan, "f1": nan, "per_person": [],
               "without_dominant": {"precision": nan, "recall": nan, "f1": nan}}
    e2e: dict[str, Any] = {**unknown, "warm": unknown}
    if full:
        step(f"end to end and feature importance ({chosen.name})")
        e2e, importance = people_end_to_end(
            store, spec, rules_version, data, chosen, _make(spec, chosen.name, data.features),
            lambda known: usable_rows(spec, data, ended, known), ended, views)
        chosen = replace(chosen, importance=importance)
        candidates = [chosen if c.name == chosen.name else c for c in candidates]
    m = {**figure[chosen.name], **{f"rule_{k}": v for k, v in figure[candidates[0].name].items()
                                   if isinstance(spec.learners[candidates[0].name], Rule)},
         "e2e_precision": e2e["precision"], "e2e_recall": e2e["recall"], "e2e_f1": e2e["f1"],
         "e2e_f1_others": e2e["without_dominant"]["f1"],
         "e2e_precision_others": e2e["without_dominant"]["precision"],
         "warm_precision": e2e["warm"]["precision"], "warm_recall": e2e["warm"]["recall"],
         "warm_f1": e2e["warm"]["f1"], "warm_f1_others": e2e["warm"]["without_dominant"]["f1"],
         "warm_precision_others": e2e["warm"]["without_dominant"]["precision"],
         "threshold": chosen.threshold,
         "stranger_odds": float(spec.policy.stranger_odds),
         "n_labelled": float(len(data)), "n_parked": float(data.y.sum()),
         "n_people": float(len(set(data.groups.tolist())))}
    return Evaluation(data, candidates, chosen, train_rows, m, e2e, figure, views)


def _figures(data: TrainingSet, scores: Scores) -> dict[str, float]:
    """Pooled out-of-fold figures over every labelled leg end, and over those at a label's
    end only (leaving out the halts inside bus, train, ... spans)."""
    m = metrics(data.y, scores.p, scores.threshold, scores.fold, data.modes)
    ends = data.sources != "inside" if data.sources is not None else np.ones(len(data), bool)
    e = metrics(data.y[ends], scores.p[ends], scores.threshold)
    return {"precision": m.precision, "recall": m.recall, "f1": m.f1, "pr_auc": m.pr_auc,
            "nested_f1": nested_threshold_f1(data, scores),
            "fold_f1_min": float(np.nanmin(m.fold_f1)), "fold_f1_max": float(np.nanmax(m.fold_f1)),
            "f1_ends": e.f1, "pr_auc_ends": e.pr_auc}


def label_set(labels: pa.Table) -> tuple[str, pa.Table]:
    """The labels a model saw (raw events behind them) and their hash."""
    seen = labels.select(["device_id", "ended_ms", "parked", "mode", "source", "batch_no",
                          "seq"])
    return table_digest(seen), seen


def reference(store: Store, model: ParkedModel, rows: int = REFERENCE_ROWS) -> pa.Table:
    """What the model was trained beside: the features it reads and its p(parked) on the leg
    ends of its rules version (at most ``rows`` of them, drawn with a fixed seed). The loop's
    drift and answer monitors compare recent leg ends with it."""
    columns = dict.fromkeys([*model.features, *POLICY_COLUMNS])  # in order, once each
    ends = store.con.sql(
        f"SELECT {', '.join(columns)} FROM facts_leg_end WHERE rules_version = $rv "
        "ORDER BY device_id, ended_ms", params={"rv": model.rules_version}).to_arrow_table()
    if ends.num_rows > rows:
        pick = np.sort(np.random.default_rng(0).choice(ends.num_rows, rows, replace=False))
        ends = ends.take(pa.array(pick))
    with one_thread():
        p = model.predict(ends)
    return ends.append_column("p_parked", pa.array(p, pa.float64()))


def train(store: Store, registry: Registry, spec: ModelSpec, *, publish: bool = False,
          step: Step = lambda _: None, actor: str = "cli", labels: pa.Table | None = None,
          against: Literal["spec", "unseen"] = "spec", min_unseen: int = 30,
          reason: str = "") -> TrainResult:
    """Train ``spec`` on the store's facts and labels (``labels``: :func:`leg_end_labels`,
    if already read), report, register; publish if asked and the gate passes.

    The gate compares with the champion ``against`` its spec cross-validated on today's
    people (``spec``: a new spec on the same data), or the champion model as it is on the
    labelled leg ends it never saw, where the challenger's figures are out of fold
    (``unseen``: the same spec on new data, which is what the loop retrains)."""
    rules = load_rules(spec.rules, store.path)
    watermark = raw_watermark(store.con)
    built = built_watermark(store, rules.identity)
    if built is None or built < watermark:
        step(f"building facts {rules.identity}")
        build(store, rules)
    if labels is None:
        labels = leg_end_labels(store, rules.identity)
    label_hash, seen = label_set(labels)
    result = evaluate(store, spec, rules.identity, labels, step)
    champion = registry.champion()
    if champion is None:
        verdict = gate(spec, result.metrics, None)
    elif against == "spec":
        step(f"re-evaluating champion {champion} on the same people")
        verdict = gate(spec, result.metrics, _champion_figures(
            store, registry, champion, rules.identity, labels))
    else:
        step(f"comparing with champion {champion} on the leg ends it never saw")
        directory = registry.artifacts(champion)
        verdict = gate(spec, result.metrics, None, unseen=unseen_comparison(
            store, directory, result, labels, rules.identity),
            warm=warm_comparison(store, directory, result, rules.identity),
            min_unseen=min_unseen)

    step(f"fitting {result.chosen.name} on every labelled leg end")
    data = result.data
    with one_thread():
        estimator = _make(spec, result.chosen.name, data.features)().fit(
            *data.fit_data(result.train_rows))
    model = ParkedModel(estimator, data.features, result.chosen.threshold, result.chosen.name,
                        spec.identity, rules.identity, spec.policy)
    lineage = {"rules_version": rules.identity, "raw_watermark": str(watermark),
               "label_set_hash": label_hash, "labels": str(labels.num_rows),
               "spec": spec.identity, "learner": result.chosen.name,
               "excluded_from_training": str(int((~result.train_rows).sum()))}
    with tempfile.TemporaryDirectory(prefix="parkloop-train-") as tmp:
        out = Path(tmp)
        model.save(out)
        (out / "spec.toml").write_text(spec.text, encoding="utf-8")
        pq.write_table(seen, out / LABELS)
        step("writing the training reference")
        pq.write_table(reference(store, model), out / REFERENCE)
        (out / "metrics.json").write_text(json.dumps(
            {"metrics": result.metrics, "gate": verdict.figures,
             "end_to_end": _jsonable(result.end_to_end)}, indent=2, sort_keys=True))
        step("writing the report")
        write_report(out, data, result.candidates, result.chosen.name,
                     title=f"parked model: {spec.identity} on {rules.identity}",
                     lineage=lineage, end_to_end=report_end_to_end(result.end_to_end, model),
                     baseline=_baseline(spec))
        step("registering")
        version = registry.register(
            out, params={"spec": spec.identity, "learner": result.chosen.name,
                         "threshold": f"{result.chosen.threshold:.6f}"},
            metrics={k: v for k, v in result.metrics.items() if math.isfinite(v)},
            tags={**lineage, "spec_name": spec.name, "spec_hash": spec.identity.split("@")[1],
                  "gate": "passed" if verdict.passed else "; ".join(verdict.reasons)})
        report = registry.artifacts(version) / "report.md"
    published = False
    if publish and verdict.passed:
        registry.publish(version, reason=reason or (
            f"trained {time.strftime('%Y-%m-%d')}: gate passed (F1 "
            f"{result.metrics['nested_f1']:.3f}, PR-AUC {result.metrics['pr_auc']:.3f})"),
                         actor=actor)
        published = True
    return TrainResult(version, published, result.chosen.name, result.metrics, verdict, report,
                       lineage)


def _baseline(spec: ModelSpec) -> str | None:
    return next((n for n, ln in spec.learners.items() if isinstance(ln, Rule)), None)


def _champion_figures(store: Store, registry: Registry, version: str, rules_version: str,
                      labels: pa.Table) -> dict[str, float] | None:
    """The champion's spec cross-validated on today's labels and people (its recorded
    figures where its spec no longer applies)."""
    directory = registry.artifacts(version)
    try:
        from parkloop.interpret.spec import parse_spec

        spec = parse_spec("champion", (directory / "spec.toml").read_text(encoding="utf-8"))
        model = ParkedModel.load(directory)
        if model.rules_version != rules_version:
            raise ModelError("another rules version")
        result = evaluate(store, spec, rules_version, labels, end_to_end=False)
        return result.metrics
    except (ModelError, OSError):
        recorded = next((v.metrics for v in registry.versions() if v.version == version), {})
        return {k: float(v) for k, v in recorded.items()} or None



def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


__all__ = ["Evaluation", "TrainResult", "evaluate", "label_set", "load_spec", "reference",
           "train", "usable_rows"]
