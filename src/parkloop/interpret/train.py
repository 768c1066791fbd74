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
from parkloop.interpret.dataset import TrainingSet, training_set, training_table
from parkloop.interpret.endtoend import end_to_end, subset
from parkloop.interpret.evaluate import (
    Scores,
    best_threshold,
    cross_validate,
    metrics,
    nested_threshold_f1,
    permutation_drops,
)
from parkloop.interpret.labels import leg_end_labels
from parkloop.interpret.model import (
    POLICY_COLUMNS,
    ParkedModel,
    feature_matrix,
    make_learner,
    one_thread,
)
from parkloop.interpret.report import write_report
from parkloop.interpret.spec import ModelSpec, Rule, load_spec
from parkloop.interpret.views import PersonView, person_views

if TYPE_CHECKING:
    from parkloop.interpret.registry import Registry
    from parkloop.store import Store

DOMINANT_PEOPLE = frozenset({"geolife-128", "geolife-115"})
"""GeoLife people holding most car ends of the dev data: end-to-end figures are also given
without them, so that a model that only learned them shows it"""

Step = Callable[[str], None]

_SELECT = {"pr_auc": "pr_auc", "f1": "nested_f1"}
"""the figure each `select` of a spec compares: F1 as honestly as it is measured"""

LABELS = "labels.parquet"
"""the labelled leg ends (and raw events behind them) a version was trained on"""
REFERENCE = "reference.parquet"
"""a version's training reference: see :func:`reference`"""
REFERENCE_ROWS = 5000

MIN_PER_CLASS = 20
"""fewer labelled car (or other) ends than this cannot be cross-validated meaningfully"""


@dataclass(frozen=True)
class Gate:
    """The publish gate's verdict and the numbers it read."""

    passed: bool
    reasons: tuple[str, ...]
    figures: dict[str, float] = field(default_factory=dict)


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


def usable_rows(spec: ModelSpec, data: TrainingSet, ended_ms: np.ndarray) -> np.ndarray:
    """Rows training may use: none matching an exclusion rule, and at most
    ``max_labels_per_device`` (the latest) per person so no one device dominates."""
    ok = np.ones(len(data), bool)
    for rule in spec.exclude:
        if rule.feature in data.features:
            ok &= ~rule.matches(data.X[:, data.features.index(rule.feature)])
    cap = spec.train.max_labels_per_device
    if cap:
        order = np.lexsort((-ended_ms, data.groups.astype(str)))
        rank = np.zeros(len(data), int)
        groups = data.groups[order]
        start = np.r_[0, np.flatnonzero(groups[1:] != groups[:-1]) + 1]
        rank[order] = np.arange(len(data)) - np.repeat(start, np.diff(np.r_[start, len(data)]))
        ok &= rank < cap
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
        step("building each person's facts as a stranger's (cold) and warm")
        views = person_views(store, load_rules(spec.rules, store.path),
                             sorted(set(data.groups.tolist())))
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
    chosen = max(candidates, key=lambda c: figure[c.name][_SELECT[spec.train.select]])
    nan = float("nan")
    unknown = {"precision": nan, "recall": nan, "f1": nan, "per_person": [],
               "without_dominant": {"precision": nan, "recall": nan, "f1": nan}}
    e2e: dict[str, Any] = {**unknown, "warm": unknown}
    if full:
        step(f"end to end and feature importance ({chosen.name})")
        e2e, importance = _end_to_end(store, spec, rules_version, data, chosen,
                                      train_rows, ended, views)
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


def _end_to_end(store: Store, spec: ModelSpec, rules_version: str, data: TrainingSet,
                chosen: Scores, train_rows: np.ndarray, ended_ms: np.ndarray,
                views: dict[str, PersonView]
                ) -> tuple[dict[str, Any], dict[str, float]]:
    """Every leg end of each held-out person scored by the fold's model and called by the
    spec's policy, the two ways people meet it (:mod:`parkloop.interpret.views`): **cold**
    (nothing they said known; all their labelled segments judged) and **warm** (what they
    said about their first segments known, as facts and as training rows, the way a retrain
    would have them; the later ones judged). Those called parked are the person's exported
    events. And the permutation importance of each feature in the
    held-out folds (see :func:`~parkloop.interpret.evaluate.cross_validate`)."""
    make = _make(spec, chosen.name, data.features)
    people = sorted(set(data.groups.tolist()))
    events: dict[str, list[pa.Table]] = {"cold": [], "warm": []}
    calls: dict[str, dict[str, tuple[int, int]]] = {"cold": {}, "warm": {}}
    drops = []
    for k in np.unique(chosen.fold):
        test = chosen.fold == k
        model = make().fit(*data.fit_data(~test & train_rows))
        if data.y[test].any() and not data.y[test].all():
            drops.append(permutation_drops(model, data.X[test], data.y[test],
                                           seed=spec.train.seed))
        held_out = sorted(set(data.groups[test].tolist()))
        cutoff = np.array([views[g].warm_from_ms if g in views else np.iinfo(np.int64).min
                           for g in data.groups], np.int64)
        told = test & (ended_ms <= cutoff)  # what the held-out people said early on
        warm_model = make().fit(*data.fit_data((~test | told) & train_rows))
        for person in held_out:
            for how, fitted in (("cold", model), ("warm", warm_model)):
                pm = ParkedModel(fitted, data.features, chosen.threshold, chosen.name,
                                 spec.identity, rules_version, spec.policy)
                ends = getattr(views[person], how)
                called = pm.call(ends, pm.predict(ends))
                calls[how][person] = (int(called.sum()), ends.num_rows)
                events[how].append(_events(ends.filter(pa.array(called))))
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


def label_set(labels: pa.Table) -> tuple[str, pa.Table]:
    """The labels a model saw (raw events behind them) and their hash."""
    seen = labels.select(["device_id", "ended_ms", "parked", "mode", "source", "batch_no",
                          "seq"])
    return table_digest(seen), seen


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
        mine = m[_SELECT[key]]
        theirs = champion.get(_SELECT[key], float("nan"))
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
            events.append(_events(view.warm.filter(pa.array(called))))
    theirs = end_to_end(store, pa.concat_tables(events),
                        after={p: v.warm_from_ms for p, v in views.items()})
    mine = subset(result.end_to_end["warm"], set(result.views) - set(people))
    return {"people": float(len(people)),
            **{f"champion_{k}": float(theirs[k]) for k in ("precision", "recall", "f1")},
            **{f"challenger_{k}": float(mine[k]) for k in ("precision", "recall", "f1")}}


def _events(ends: pa.Table) -> pa.Table:
    """Leg ends as end-to-end events (device_id, t_ms, lat, lon)."""
    return ends.select(["device_id", "ended_ms", "lat", "lon"]).rename_columns(
        ["device_id", "t_ms", "lat", "lon"])


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


__all__ = [
    "Evaluation",
    "Gate",
    "TrainResult",
    "evaluate",
    "gate",
    "label_set",
    "load_spec",
    "never_seen",
    "reference",
    "report_end_to_end",
    "train",
    "unsaid_rows",
    "unseen_comparison",
    "usable_rows",
    "warm_comparison",
]
